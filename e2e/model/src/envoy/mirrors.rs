//! Mirror shares as istiod writes them (`MirrorPercent`, `translatePercentToFractionalPercent`,
//! `TranslateRequestMirrorPolicy` in istio/istio `pilot/pkg/networking/core/route/route.go`).

use serde_json::{Value, json};

use crate::istio::HttpRoute;
use crate::version::IstioVersion;

/// A runtime fraction: `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// Numerator.
    pub numerator: u64,
    /// `HUNDRED` or `MILLION`.
    pub denominator: &'static str,
}

impl Fraction {
    /// Every request.
    pub const HUNDRED_PERCENT: Fraction = Fraction {
        numerator: 100,
        denominator: "HUNDRED",
    };

    /// `mirrorPercentage` (a double) as istiod encodes it (`translatePercentToFractionalPercent`):
    /// parts per million, the product truncated as Go's `uint32(v * 10000)` does (0.57 is
    /// 5699). 0 and below mirror nothing: no policy at all.
    pub fn from_percentage(value: f64) -> Option<Fraction> {
        (value > 0.0).then(|| Fraction {
            // `as` truncates toward zero and saturates, as Go's conversion does in range.
            numerator: u64::from((value * 10_000.0) as u32),
            denominator: "MILLION",
        })
    }

    /// The share as a percentage.
    pub fn percent(self) -> f64 {
        let scale = if self.denominator == "MILLION" {
            10_000.0
        } else {
            1.0
        };
        self.numerator as f64 / scale
    }
}

/// The share mirrored by a route's `mirror` (`MirrorPercent`): `mirrorPercentage` wins over
/// the deprecated integer forms; absent means 100%; a share of 0 mirrors nothing (`None`).
pub fn mirror_fraction(route: &HttpRoute) -> Option<Fraction> {
    if let Some(p) = &route.mirror_percentage {
        return Fraction::from_percentage(p.value);
    }
    let deprecated = route
        .mirror_percent
        .as_ref()
        .or(route.mirror_percent_snake.as_ref())
        .and_then(Value::as_u64);
    match deprecated {
        Some(0) => None,
        Some(p) => Some(Fraction {
            numerator: p,
            denominator: "HUNDRED",
        }),
        None => Some(Fraction::HUNDRED_PERCENT),
    }
}

pub(crate) fn mirror_policy(cluster: String, fraction: Fraction, version: &IstioVersion) -> Value {
    let mut policy = json!({
        "cluster": cluster,
        "runtime_fraction": {"default_value": {"numerator": fraction.numerator, "denominator": fraction.denominator}},
        "trace_sampled": false,
    });
    if !version.appends_shadow_suffix() {
        policy["disable_shadow_host_suffix_append"] = true.into();
    }
    policy
}

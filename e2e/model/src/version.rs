//! Istio versions, and the mirroring behaviour that depends on them.

use std::fmt;
use std::str::FromStr;

/// The Istio version a run uses when none is given: the newest release the project pins.
pub const DEFAULT_ISTIO: &str = "1.31.1";

/// An Istio release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IstioVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

/// A version string that is not `major.minor.patch`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not an Istio version (expected MAJOR.MINOR.PATCH, e.g. 1.31.1)")]
pub struct VersionError(pub String);

impl FromStr for IstioVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(s.to_owned());
        let mut parts = s.trim_start_matches('v').split('.');
        let mut next = || -> Result<u32, VersionError> {
            parts.next().ok_or_else(err)?.parse().map_err(|_| err())
        };
        let v = IstioVersion {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl IstioVersion {
    /// Whether Envoy, as configured by this Istio, appends `-shadow` to the host of mirrored
    /// requests. Istio 1.28 turned the suffix off by default (pilot `DISABLE_SHADOW_HOST_SUFFIX`).
    pub fn appends_shadow_suffix(&self) -> bool {
        (self.major, self.minor) < (1, 28)
    }

    /// The `hostname` the mirror sees for a request sent to `host`.
    pub fn shadow_hostname(&self, host: &str) -> String {
        if self.appends_shadow_suffix() {
            format!("{host}-shadow")
        } else {
            host.to_owned()
        }
    }
}

/// istiod's switch for the shadow host suffix (pilot/pkg/features/pilot.go, from 1.28.0,
/// default true); `profile-compatibility-version-1.27.yaml` sets it back to "false".
pub const DISABLE_SHADOW_HOST_SUFFIX: &str = "DISABLE_SHADOW_HOST_SUFFIX";

/// Which rule says whether the mirror's Host carries `-shadow`: the version's default, or
/// what istiod's own environment sets. A 1.28+ istiod installed with the 1.27 compatibility
/// profile keeps the suffix, so the version alone would expect wrongly there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowRule {
    /// The version's default (appended up to 1.27, not from 1.28), and why no setting of
    /// istiod's applies.
    VersionDefault {
        /// The Istio version.
        version: IstioVersion,
        /// Why the default applies (the variable is unset, cannot be read, ...).
        why: String,
    },
    /// istiod's `DISABLE_SHADOW_HOST_SUFFIX`, as its Deployment sets it.
    IstiodEnv {
        /// The Istio version.
        version: IstioVersion,
        /// The value as written.
        value: String,
        /// Whether it disables the suffix.
        disabled: bool,
    },
}

impl ShadowRule {
    /// The rule for an istiod of `version` whose Deployment sets `DISABLE_SHADOW_HOST_SUFFIX`
    /// to `env` (`Ok(None)`: not set; `Err(why)`: set in a way that cannot be read here).
    pub fn for_istiod(version: IstioVersion, env: Result<Option<&str>, String>) -> ShadowRule {
        let default = |why: String| ShadowRule::VersionDefault { version, why };
        if version.appends_shadow_suffix() {
            return default(format!(
                "{DISABLE_SHADOW_HOST_SUFFIX} exists from Istio 1.28 on"
            ));
        }
        match env {
            Ok(None) => default(format!("istiod does not set {DISABLE_SHADOW_HOST_SUFFIX}")),
            Err(why) => default(why),
            // Istio reads it with strconv.ParseBool and keeps the default when that fails.
            Ok(Some(value)) => match parse_go_bool(value) {
                Some(disabled) => ShadowRule::IstiodEnv {
                    version,
                    value: value.to_owned(),
                    disabled,
                },
                None => default(format!(
                    "istiod's {DISABLE_SHADOW_HOST_SUFFIX}={value:?} is not a boolean, so istiod keeps its default"
                )),
            },
        }
    }

    /// Whether the mirror's Host carries `-shadow`.
    pub fn appends_suffix(&self) -> bool {
        match self {
            ShadowRule::VersionDefault { version, .. } => version.appends_shadow_suffix(),
            ShadowRule::IstiodEnv { disabled, .. } => !disabled,
        }
    }

    /// The Host the mirror sees for a request sent to `host`.
    pub fn hostname(&self, host: &str) -> String {
        if self.appends_suffix() {
            format!("{host}-shadow")
        } else {
            host.to_owned()
        }
    }
}

impl fmt::Display for ShadowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShadowRule::VersionDefault { version, why } => write!(
                f,
                "Istio {version}'s default (the -shadow suffix is appended up to 1.27 and not from 1.28; {why})"
            ),
            ShadowRule::IstiodEnv { version, value, .. } => write!(
                f,
                "istiod's {DISABLE_SHADOW_HOST_SUFFIX}={value} on Istio {version}"
            ),
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IstioVersion {
        s.parse().expect("valid version")
    }

    #[test]
    fn parses_and_orders() {
        assert_eq!(v("1.31.1").to_string(), "1.31.1");
        assert_eq!(v("v1.28.0"), v("1.28.0"));
        assert!(v("1.27.9") < v("1.28.0"));
        for bad in ["1.31", "1.31.x", "", "1.2.3.4"] {
            assert!(bad.parse::<IstioVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_1_28_istiod_with_the_1_27_compatibility_profile_keeps_the_suffix() {
        let kept = ShadowRule::for_istiod(v("1.28.4"), Ok(Some("false")));
        assert!(kept.appends_suffix());
        assert_eq!(kept.hostname("reviews"), "reviews-shadow");
        assert_eq!(
            kept.to_string(),
            "istiod's DISABLE_SHADOW_HOST_SUFFIX=false on Istio 1.28.4"
        );
        let default = ShadowRule::for_istiod(v("1.28.4"), Ok(None));
        assert_eq!(default.hostname("reviews"), "reviews");
        assert!(
            default.to_string().starts_with("Istio 1.28.4's default")
                && default.to_string().contains("istiod does not set"),
            "{default}"
        );
        // Before 1.28 the variable does not exist: the suffix is always there.
        let old = ShadowRule::for_istiod(v("1.27.7"), Ok(Some("true")));
        assert_eq!(old.hostname("reviews"), "reviews-shadow");
        let unreadable = ShadowRule::for_istiod(v("1.29.8"), Err("set from ConfigMap x".into()));
        assert!(
            unreadable.to_string().contains("set from ConfigMap x"),
            "{unreadable}"
        );
        assert!(!ShadowRule::for_istiod(v("1.29.8"), Ok(Some("bogus"))).appends_suffix());
    }

    #[test]
    fn shadow_suffix_stops_at_1_28() {
        assert_eq!(v("1.27.5").shadow_hostname("reviews"), "reviews-shadow");
        assert_eq!(v("1.28.0").shadow_hostname("reviews"), "reviews");
        assert_eq!(v("1.31.1").shadow_hostname("reviews"), "reviews");
    }
}

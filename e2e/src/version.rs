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
    fn shadow_suffix_stops_at_1_28() {
        assert_eq!(v("1.27.5").shadow_hostname("reviews"), "reviews-shadow");
        assert_eq!(v("1.28.0").shadow_hostname("reviews"), "reviews");
        assert_eq!(v("1.31.1").shadow_hostname("reviews"), "reviews");
    }
}

//! A VirtualService duration (`timeout`, `perTryTimeout`, `fixedDelay`, `maxAge`, ...), as
//! istiod reads it, and as Envoy's JSON writes it.
//!
//! istiod decodes Istio objects with `github.com/golang/protobuf/jsonpb` (istio/api's
//! `*_json.gen.go`), whose `google.protobuf.Duration` is Go's `time.ParseDuration`
//! (`jsonpb/decode.go`): `500ms`, `1.5s` and `1h2m` are all durations, a bare `5` is not.
//! The CRD's CEL rule (`duration(self) >= duration('1ms')`) parses the same syntax.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as written, and its length in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    nanos: i64,
}

/// Text that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration ({reason}; write it as Go does, e.g. 1.5s, 500ms, 1m)")]
pub struct DurationError {
    /// The text.
    pub text: String,
    /// What `time.ParseDuration` says of it.
    pub reason: &'static str,
}

impl GoDuration {
    /// Parses `text` as Go's `time.ParseDuration` does.
    pub fn parse(text: &str) -> Result<GoDuration, DurationError> {
        let nanos = parse_go_duration(text).map_err(|reason| DurationError {
            text: text.to_owned(),
            reason,
        })?;
        Ok(GoDuration {
            text: text.to_owned(),
            nanos,
        })
    }

    /// Nanoseconds.
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// Whole seconds (`Duration.seconds`, what `maxAge` keeps).
    pub fn seconds(&self) -> i64 {
        self.nanos / 1_000_000_000
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The protobuf JSON form Envoy reads and writes: seconds with 0, 3, 6 or 9 fraction
    /// digits, e.g. `0s`, `1.500s`.
    pub fn to_proto_json(&self) -> String {
        proto_json(self.nanos)
    }
}

/// protobuf's JSON form of a duration of `nanos` nanoseconds.
pub fn proto_json(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (secs, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    let fraction = if frac == 0 {
        String::new()
    } else if frac % 1_000_000 == 0 {
        format!(".{:03}", frac / 1_000_000)
    } else if frac % 1_000 == 0 {
        format!(".{:06}", frac / 1_000)
    } else {
        format!(".{frac:09}")
    };
    format!("{sign}{secs}{fraction}s")
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Go's `time.ParseDuration` (`src/time/format.go`): `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`,
/// or `0`; a fraction is added as `float64(f) * (float64(unit) / scale)`, truncated.
fn parse_go_duration(text: &str) -> Result<i64, &'static str> {
    let mut s = text;
    let negative = s.starts_with('-');
    if let Some(rest) = s.strip_prefix(['-', '+']) {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty");
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, rest) = s.split_at(digits);
        let mut v: u64 = 0;
        for b in whole.bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or("out of range")?;
        }
        s = rest;
        let (mut f, mut scale) = (0u64, 1f64);
        let mut fraction_digits = 0;
        if let Some(rest) = s.strip_prefix('.') {
            fraction_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in rest[..fraction_digits].bytes() {
                // Go stops taking digits once they would overflow, keeping the rest's scale
                // out of it: they are below any unit's precision.
                if overflow {
                    continue;
                }
                match f
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                    .filter(|f| *f <= 1 << 63)
                {
                    Some(next) => {
                        f = next;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &rest[fraction_digits..];
            if digits == 0 && fraction_digits == 0 {
                return Err("no digits");
            }
        } else if digits == 0 {
            return Err("no digits");
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        let unit: u64 = match unit {
            "" => return Err("missing unit"),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err("unknown unit"),
        };
        s = rest;
        v = v
            .checked_mul(unit)
            .filter(|v| *v <= 1 << 63)
            .ok_or("out of range")?;
        if fraction_digits > 0 {
            v = v
                .checked_add((f as f64 * (unit as f64 / scale)) as u64)
                .filter(|v| *v <= 1 << 63)
                .ok_or("out of range")?;
        }
        total = total
            .checked_add(v)
            .filter(|v| *v <= 1 << 63)
            .ok_or("out of range")?;
    }
    if negative {
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(total).map_err(|_| "out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i64 {
        GoDuration::parse(text).expect("a duration").nanos()
    }

    #[test]
    fn go_duration_syntax_as_time_parse_duration_reads_it() {
        assert_eq!(nanos("5s"), 5_000_000_000);
        assert_eq!(nanos("500ms"), 500_000_000);
        assert_eq!(nanos("1.5s"), 1_500_000_000);
        assert_eq!(nanos(".5s"), 500_000_000);
        assert_eq!(nanos("1m30s"), 90_000_000_000);
        assert_eq!(nanos("1h"), 3_600_000_000_000);
        assert_eq!(nanos("2us"), 2_000);
        assert_eq!(nanos("2µs"), 2_000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("-1s"), -1_000_000_000);
        for bad in ["", "5", "s", "1x", "1.s.", ".s", "1s2"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} is no Go duration");
        }
        let err = GoDuration::parse("5").expect_err("no unit");
        assert_eq!(
            err.to_string(),
            "\"5\" is not a duration (missing unit; write it as Go does, e.g. 1.5s, 500ms, 1m)"
        );
    }

    #[test]
    fn envoy_json_has_zero_three_six_or_nine_fraction_digits() {
        let json = |t: &str| GoDuration::parse(t).expect("a duration").to_proto_json();
        assert_eq!(json("0"), "0s");
        assert_eq!(json("5s"), "5s");
        assert_eq!(json("500ms"), "0.500s");
        assert_eq!(json("1m0.25s"), "60.250s");
        assert_eq!(json("1500us"), "0.001500s");
        assert_eq!(json("7ns"), "0.000000007s");
    }

    #[test]
    fn a_duration_keeps_its_text_through_serde() {
        let d: GoDuration = serde_json::from_value(serde_json::json!("1m")).expect("parses");
        assert_eq!(serde_json::to_value(&d).expect("serializes"), "1m");
        assert_eq!(d.seconds(), 60);
        assert!(serde_json::from_value::<GoDuration>(serde_json::json!("1 m")).is_err());
    }
}

//! Seconds as both sides take them (`--patience`, `--phase NAME=SECONDS`, `--elapsed`): a
//! positive decimal number, parsed once at the flag, and written back exactly enough for
//! the other side to read the same value to the millisecond.

use std::time::Duration;

/// `text` as a positive number of seconds (fractions allowed: `2.5`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a positive number of seconds"))
}

/// `text` as a number of seconds that may be zero (a clock's reading).
pub fn parse_elapsed(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

/// A duration as an argument: seconds with three decimals.
pub fn seconds_arg(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_decimals_and_read_back_as_written() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds(" 300 "), Ok(Duration::from_secs(300)));
        for bad in ["0", "-1", "soon", "", "inf", "NaN"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_elapsed("0"), Ok(Duration::ZERO));
        for ms in [1, 999, 2500, 300_000, 86_400_123] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_elapsed(&seconds_arg(d)), Ok(d), "{ms} ms");
        }
    }
}

//! The run id, `YYYYMMDD-HHMMSS-xxxx` (UTC, then four hex digits), that names a run's
//! directory under the artifacts root and its cluster: made in one place, so xtask's and
//! the suite's ids read the same and every directory sorts by time.

use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh run id, e.g. `20261125-193314-a3f0`.
pub fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // The pid is spread over the low bits (a plain shift would be masked away), so two runs
    // started in the same second differ by more than their clock's nanoseconds.
    let noise =
        u64::from(std::process::id()).wrapping_mul(0x9e37_79b9) ^ u64::from(now.subsec_nanos());
    format!("{}-{:04x}", utc_stamp(now.as_secs()), noise & 0xffff)
}

/// Whether `name` is a run id as [`new_run_id`] makes them.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == "20261125-193314-a3f0".len()
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-'
        && b[16..].iter().all(u8::is_ascii_hexdigit)
}

/// `YYYYMMDD-HHMMSS` of a Unix time (Hinnant's civil-from-days algorithm).
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_the_suites_format() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        // 2026-11-27T07:52:04Z, as `date -u -d @1795765924` says.
        assert_eq!(utc_stamp(1_795_765_924), "20261127-075204");
        let id = new_run_id();
        assert_eq!(id.len(), "20261127-075204-a6a7".len(), "{id}");
        assert!(is_run_id(&id), "{id}");
        assert!(!is_run_id("20261127-075204-a6ag"));
        assert!(!is_run_id("upgrade-20261127-0752"));
    }
}

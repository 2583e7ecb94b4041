//! Bounded waits that say what they waited for and what they saw last.
//!
//! Watch-based waits (kube's `await_condition`) need no polling; this module is for the
//! things that offer no watch: a file Envoy writes, Envoy's admin readiness. Every wait has a
//! name and a limit, and its error carries the last observation instead of "timed out".

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The environment variable that sets the patience of every wait and retry.
pub const PATIENCE_ENV: &str = mirror_e2e_contract::env::PATIENCE;

/// A wait that ran out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last seen: {last_seen}")]
pub struct WaitError {
    /// What was awaited, e.g. "envoy admin /ready to say LIVE".
    pub what: String,
    /// How long it waited.
    pub waited: Duration,
    /// The last observation.
    pub last_seen: String,
}

/// Parses a patience in seconds, e.g. `30` or `2.5`.
pub fn parse_patience(text: &str) -> Result<Duration, String> {
    mirror_e2e_contract::parse_seconds(text)
}

/// Polls `probe` until it returns `Ok(Some(value))`, for at most `limit`. `Ok(None)` and
/// `Err(observation)` both mean "not yet", the latter recording what was seen. The interval
/// starts at 2 ms and doubles to 50 ms, so a fast answer is seen fast.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    limit: Duration,
    mut probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    let mut interval = Duration::from_millis(2);
    let mut last_seen = "nothing yet".to_owned();
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(seen) => last_seen = seen,
        }
        if start.elapsed() >= limit {
            return Err(WaitError {
                what: what.to_owned(),
                waited: start.elapsed(),
                last_seen,
            });
        }
        tokio::time::sleep(interval.min(limit.saturating_sub(start.elapsed()))).await;
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_probe_succeeds() {
        let mut calls = 0;
        let got = poll_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { Ok((n == 3).then_some(n)) }
        })
        .await
        .expect("succeeds");
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn timeout_reports_what_and_the_last_observation() {
        let err = poll_until::<(), _, _>("a door to open", Duration::from_millis(30), || async {
            Err("door closed".to_owned())
        })
        .await
        .expect_err("never opens");
        assert_eq!(err.what, "a door to open");
        assert_eq!(err.last_seen, "door closed");
        assert!(err.to_string().contains("last seen: door closed"));
    }

    #[test]
    fn patience_parsing() {
        assert_eq!(parse_patience("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_patience("0").is_err());
        assert!(parse_patience("soon").is_err());
    }
}

//! Retrying a send-and-verify step until it passes several times in a row.
//!
//! Applying routing does not wait for it to reach the proxies (Istio removed config
//! distribution tracking in 1.23), so a check cannot tell "not propagated yet" from "wrong"
//! on one try. Istio's own mirror test retries the whole step for up to 30 s with backoff
//! 20 ms growing to 320 ms and requires 3 consecutive passes; this module does the same and
//! reports how many attempts it took, so a flaky pass is visible rather than hidden.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long and how hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up after this long.
    pub limit: Duration,
    /// Consecutive passes required.
    pub passes: u32,
    /// Pause after the first failure.
    pub first_backoff: Duration,
    /// The pause doubles up to this.
    pub max_backoff: Duration,
    /// A failure after a pass ends the retry: for checks of an exact behaviour (every
    /// request to one subset), where propagation explains failures before the first pass
    /// but a failure after it is the behaviour itself (a split lets 3 lucky batches in a
    /// row through, however wrong).
    pub fail_after_pass: bool,
    /// The configuration under test is in place before the first attempt (local mode
    /// writes it before Envoy starts): nothing propagates, so with `fail_after_pass` the
    /// first failure ends the retry. A 90/10 split then fails an "all to v1" check at its
    /// first v2 reply instead of passing when three lucky batches follow.
    pub settled: bool,
}

/// Consecutive passes Istio's tests require (and so every check of the suite).
pub const PASSES_IN_A_ROW: u32 = 3;

impl RetryPolicy {
    /// Istio's policy, with the run's patience as the limit.
    pub fn istio(patience: Duration) -> RetryPolicy {
        RetryPolicy {
            limit: patience,
            passes: PASSES_IN_A_ROW,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(320),
            fail_after_pass: false,
            settled: false,
        }
    }

    /// The same policy, for a mesh whose configuration is in place before any attempt.
    pub fn settled(self) -> RetryPolicy {
        RetryPolicy {
            settled: true,
            ..self
        }
    }

    /// The same policy, for a sampled check: where the routing is settled one batch
    /// decides, since its acceptance region already bounds both error rates (three in a row
    /// would only triple the requests); elsewhere a failing batch may be propagation, so
    /// it is retried until three pass in a row.
    pub fn sampled(self) -> RetryPolicy {
        if self.settled {
            RetryPolicy {
                passes: 1,
                fail_after_pass: true,
                ..self
            }
        } else {
            self
        }
    }

    /// The same policy, ending at the first failure after a pass.
    pub fn exact(self) -> RetryPolicy {
        RetryPolicy {
            fail_after_pass: true,
            ..self
        }
    }
}

/// What an attempt knows: its number (from 1) and when the whole retry gives up.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// The retry's deadline; waits inside an attempt end by then.
    pub deadline: Instant,
}

/// How a stable pass was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stable {
    /// Attempts made, passes included.
    pub attempts: u32,
    /// Attempts that failed before the final streak.
    pub failures: u32,
}

/// The step never passed often enough in a row.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{last_error} (after {attempts} attempts over {waited:.1?}; {passes} consecutive passes needed)"
)]
pub struct RetryError {
    /// Attempts made.
    pub attempts: u32,
    /// Time spent.
    pub waited: Duration,
    /// Passes required in a row.
    pub passes: u32,
    /// The last failure.
    pub last_error: String,
}

/// Runs `step` until it passes `policy.passes` times in a row or `policy.limit` runs out.
pub async fn until_stable<F, Fut>(policy: RetryPolicy, mut step: F) -> Result<Stable, RetryError>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let deadline = start + policy.limit;
    let mut backoff = policy.first_backoff;
    let (mut attempts, mut streak, mut failures) = (0, 0, 0);
    let mut passed_once = false;
    loop {
        attempts += 1;
        match step(Attempt {
            number: attempts,
            deadline,
        })
        .await
        {
            Ok(()) => {
                streak += 1;
                passed_once = true;
                if streak >= policy.passes {
                    return Ok(Stable { attempts, failures });
                }
                continue;
            }
            Err(last_error) => {
                streak = 0;
                failures += 1;
                if policy.fail_after_pass && (passed_once || policy.settled) {
                    let why = if passed_once {
                        "after a passing attempt: not a propagation delay"
                    } else {
                        "the routing was in place before the first request: nothing propagates"
                    };
                    return Err(RetryError {
                        attempts,
                        waited: start.elapsed(),
                        passes: policy.passes,
                        last_error: format!("{last_error} ({why})"),
                    });
                }
                if Instant::now() + backoff >= deadline {
                    return Err(RetryError {
                        attempts,
                        waited: start.elapsed(),
                        passes: policy.passes,
                        last_error,
                    });
                }
            }
        }
        // Pacing between failed attempts, not synchronisation: the next attempt re-checks.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(limit_ms: u64) -> RetryPolicy {
        RetryPolicy {
            limit: Duration::from_millis(limit_ms),
            passes: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            fail_after_pass: false,
            settled: false,
        }
    }

    #[tokio::test]
    async fn an_exact_policy_fails_at_the_first_failure_after_a_pass() {
        // fail (propagation), pass, fail: a behaviour that only sometimes holds.
        let outcomes = [false, true, false, true, true, true];
        let err = until_stable(quick(1000).exact(), |a| async move {
            if outcomes[a.number as usize - 1] {
                Ok(())
            } else {
                Err(format!("attempt {}", a.number))
            }
        })
        .await
        .expect_err("fails on the third attempt");
        assert_eq!(err.attempts, 3);
        assert!(
            err.last_error
                .starts_with("attempt 3 (after a passing attempt"),
            "{err}"
        );
        // The same steps under the plain policy pass, later.
        let stable = until_stable(quick(1000), |a| async move {
            if outcomes[a.number as usize - 1] {
                Ok(())
            } else {
                Err(format!("attempt {}", a.number))
            }
        })
        .await
        .expect("passes");
        assert_eq!(stable.attempts, 6);
    }

    /// A 90/10 split against an "all to v1" check, as the flaky local test met it: the
    /// first attempt saw v2, three lucky ones followed. With the routing in place before the
    /// first request (local mode), that first failure is the routing's.
    #[tokio::test]
    async fn a_settled_exact_policy_fails_at_the_first_failure() {
        let outcomes = [false, true, true, true];
        let step = |a: Attempt| async move {
            if outcomes[a.number as usize - 1] {
                Ok(())
            } else {
                Err(format!("attempt {}", a.number))
            }
        };
        let err = until_stable(quick(1000).exact().settled(), step)
            .await
            .expect_err("the first failure is decisive");
        assert_eq!(err.attempts, 1);
        assert!(err.last_error.contains("nothing propagates"), "{err}");
        assert!(until_stable(quick(1000).exact(), step).await.is_ok());
        assert!(
            until_stable(quick(1000).settled(), step).await.is_ok(),
            "only exact checks"
        );
    }

    #[tokio::test]
    async fn needs_consecutive_passes_and_counts_attempts() {
        // fail, pass, fail, pass, pass, pass
        let script = [false, true, false, true, true, true];
        let stable = until_stable(quick(5_000), |a| {
            let ok = script[(a.number - 1) as usize];
            async move { if ok { Ok(()) } else { Err("no".into()) } }
        })
        .await
        .expect("stabilises");
        assert_eq!(
            stable,
            Stable {
                attempts: 6,
                failures: 2
            }
        );
    }

    #[tokio::test]
    async fn gives_up_with_the_last_error() {
        let err = until_stable(quick(20), |a| async move {
            Err(format!("attempt {} failed", a.number))
        })
        .await
        .expect_err("never passes");
        assert!(err.attempts >= 2);
        assert_eq!(err.last_error, format!("attempt {} failed", err.attempts));
        assert!(err.to_string().contains("3 consecutive passes needed"));
    }
}

//! The exact checks (every request to one subset, every or no request mirrored, the
//! shadow host, the mirror down) and what a check's outcome carries. Each is one
//! send-and-verify step retried until stable (see `retry`), and each failure says what was
//! expected and what was seen. The sampled checks are in `sampled`.

use std::time::Duration;

use super::Suite;
use super::traffic::{BATCH, lock};
use crate::mesh::{Identity, Mesh};
use crate::retry::{RetryError, Stable};

/// Requests per attempt of an exact routing check ("every request to v1"). Its three
/// passes in a row see 75 requests, so a mesh that leaks 10% elsewhere passes them with
/// probability 0.9^75 < 4e-4 (with 10 per attempt it was 0.9^30, 4%: a 90/10 canary passed
/// an "all to v1" check one run in 25).
const EXACT_BATCH: usize = 25;

/// The latency bound with the mirror down: the median may grow to this multiple of the
/// baseline median plus [`LATENCY_SLACK`]. Mirroring is fire-and-forget, so a correct proxy
/// stays near 1x; the slack absorbs scheduler noise on a busy 2-core runner.
const LATENCY_FACTOR: u32 = 3;
const LATENCY_SLACK: Duration = Duration::from_millis(20);

/// How a check went when it passed.
#[derive(Debug, Clone)]
pub struct Passed {
    /// Attempts it took.
    pub stable: Stable,
    /// What it verified.
    pub note: String,
    /// Behaviour observed, compared across upgrades.
    pub observed: Vec<(String, String)>,
}

impl Passed {
    /// Records a behaviour the check observed.
    pub(super) fn observing(mut self, what: &str, value: impl Into<String>) -> Passed {
        self.observed.push((what.to_owned(), value.into()));
        self
    }
}

pub(super) fn passed(stable: Stable, note: String) -> Passed {
    Passed {
        stable,
        note,
        observed: Vec::new(),
    }
}

/// Why a check failed, and how many attempts it made first.
#[derive(Debug, Clone, Default)]
pub struct CheckFailure {
    /// Attempts made (0 when it failed before the first).
    pub attempts: u32,
    /// What was expected and what was seen.
    pub message: String,
    /// The cause in one clause, for the run's verdict, when the check can say it shorter
    /// than its message.
    pub cause: Option<String>,
    /// What it observed of the behaviour it checks (kept in the report, drawn as the
    /// journey that happened).
    pub observed: Vec<(String, String)>,
}

impl From<String> for CheckFailure {
    fn from(message: String) -> Self {
        CheckFailure {
            message,
            ..CheckFailure::default()
        }
    }
}

impl From<RetryError> for CheckFailure {
    fn from(e: RetryError) -> Self {
        CheckFailure {
            attempts: e.attempts,
            message: e.to_string(),
            ..CheckFailure::default()
        }
    }
}

impl<M: Mesh> Suite<M> {
    /// `routing::anonymous_served_by_v1` and `routing::tester_served_by_v2`. A failure keeps
    /// what happened: the workload that served the last wrong request, the route that
    /// matched it (where the mode can read it), and how many of the requests were mirrored.
    pub async fn served_by(
        &self,
        identity: Identity,
        subset: &str,
        name: &str,
    ) -> Result<Passed, CheckFailure> {
        let expected = &self.workloads_of(subset)?;
        let identity = &identity;
        // Every tag sent, and the last request served by the wrong workload.
        let sent = &std::sync::Mutex::new(Vec::<String>::new());
        let wrong = &std::sync::Mutex::new(None::<(String, String)>);
        // Every request to one subset: a failure after a pass is the routing, not its
        // propagation.
        let stable = self
            .retry_with(self.policy.exact(), |a| async move {
                let tags: Vec<String> = (0..EXACT_BATCH)
                    .map(|i| self.tag(name, a, &i.to_string()))
                    .collect();
                lock(sent).extend(tags.iter().cloned());
                for (reply, tag) in self.send_all(identity, &tags).await?.iter().zip(&tags) {
                    if let Err(e) = self.expect_served(reply, expected, tag, identity) {
                        let served = reply
                            .workload
                            .clone()
                            .unwrap_or_else(|| "an unknown workload".into());
                        *lock(wrong) = Some((tag.clone(), served));
                        return Err(e);
                    }
                }
                Ok(())
            })
            .await;
        let stable = match stable {
            Ok(stable) => stable,
            Err(e) => {
                let wrong = lock(wrong).take();
                let sent = std::mem::take(&mut *lock(sent));
                return Err(self.served_by_failure(e, identity, wrong, &sent).await);
            }
        };
        Ok(passed(
            stable,
            format!(
                "{EXACT_BATCH} requests per attempt served by {}",
                expected.join(" or ")
            ),
        )
        .observing("served by", expected.join(",")))
    }

    /// The failure of a routing check, with what happened to the requests: who served the
    /// last wrong one, through which route, and how many of all were mirrored.
    async fn served_by_failure(
        &self,
        e: RetryError,
        identity: &Identity,
        wrong: Option<(String, String)>,
        sent: &[String],
    ) -> CheckFailure {
        let who = match identity {
            Identity::Anonymous => "anonymous".to_owned(),
            Identity::User(user) => user.clone(),
        };
        let mut failure = CheckFailure::from(e);
        let mirrored = self.mesh.mirror_records().observe(sent).found.len();
        failure
            .observed
            .push(("mirrored".into(), format!("{mirrored} of {}", sent.len())));
        let Some((tag, served)) = wrong else {
            return failure;
        };
        let route = match self.mesh.matched_route(&tag, &self.spec.host).await {
            Ok(Some(route)) => {
                failure.observed.push(("route".into(), route.clone()));
                format!(" through route \"{route}\"")
            }
            Ok(None) => " through a route without a name".to_owned(),
            Err(why) => {
                failure
                    .message
                    .push_str(&format!("; the route that matched cannot be read: {why}"));
                String::new()
            }
        };
        failure.cause = Some(format!("{who} requests were served by {served}{route}"));
        failure.observed.push(("served by".into(), served));
        failure
    }

    /// `mirror::<identity>_requests_mirrored_with_<headers>`: every tagged request shows up
    /// in the mirror's log, carrying the headers the expectations name.
    pub async fn mirrored(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let stable = self
            .retry(|a| async move {
                let tags: Vec<String> = (0..BATCH)
                    .map(|n| self.tag(name, a, &n.to_string()))
                    .collect();
                self.send_all(identity, &tags).await?;
                let seen = self.wait_for_tags(&tags).await;
                let missing: Vec<&String> = tags.iter().filter(|t| !seen.contains(t)).collect();
                if let Some(first) = missing.first() {
                    let reached = tags.len() - missing.len();
                    return Err(format!(
                        "{reached} of {} {who} requests mirrored ({:.0}%), expected 100%; {} never reached the mirror (first: {first}); {}{}",
                        tags.len(),
                        reached as f64 * 100.0 / tags.len() as f64,
                        missing.len(),
                        seen.describe(),
                        self.trail(first, identity)
                    ));
                }
                self.expect_headers(i, seen.found.values())
            })
            .await?;
        let sees = self.sees(i);
        let mut done = passed(
            stable,
            format!("{BATCH} tagged {who} requests per attempt, each logged by the mirror{sees}"),
        );
        for (header, value) in &self.spec.identities[i].mirror_sees {
            done = done.observing(&format!("{header} seen by the mirror"), value.as_str());
        }
        Ok(done)
    }

    /// `mirror::<identity>_requests_not_mirrored`: absence, proved with a barrier that does
    /// not depend on the routing under test: after the batch, one request goes straight to
    /// the mirror ([`Mesh::send_to_mirror`]); once its log shows it, anything the batch
    /// caused would show too.
    pub async fn not_mirrored(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let stable = self
            .retry(|a| async move {
                let tags: Vec<String> = (0..BATCH)
                    .map(|n| self.tag(name, a, &n.to_string()))
                    .collect();
                self.send_all(identity, &tags).await?;
                self.barrier(name, a).await?;
                let leaked: Vec<String> = self
                    .mesh
                    .mirror_records()
                    .observe(&tags)
                    .found
                    .into_keys()
                    .collect();
                if !leaked.is_empty() {
                    return Err(format!(
                        "{} {who} requests were mirrored: {leaked:?}",
                        leaked.len()
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(passed(
            stable,
            format!(
                "{BATCH} {who} requests per attempt, none mirrored before the barrier (sent straight to the mirror) arrived"
            ),
        ))
    }

    /// `mirror::shadow_host_matches_istio_version`, on requests of the mirrored identity
    /// `i` (a sampled one sends enough that one is mirrored but once in a thousand).
    pub async fn shadow_host(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let rule = self.mesh.shadow_rule();
        let expected = rule.hostname(&self.spec.host);
        let (expected, rule) = (&expected, &rule);
        let identity = &self.spec.identity(i);
        let stable = self
            .retry(|a| async move {
                let tags: Vec<String> = (0..self.until_one_mirrored(i))
                    .map(|n| self.tag(name, a, &n.to_string()))
                    .collect();
                self.send_all(identity, &tags).await?;
                let seen = self.wait_for_any(&tags).await;
                let Some(record) = seen.found.values().next() else {
                    return Err(format!(
                        "none of {} requests reached the mirror; {}",
                        tags.len(),
                        seen.describe()
                    ));
                };
                let got = record.host().to_owned();
                if &got != expected {
                    return Err(format!(
                        "the mirror saw host `{got}`, expected `{expected}` by {rule}"
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(passed(
            stable,
            format!("mirror saw host `{expected}`, as expected by {rule}"),
        )
        .observing("shadow host", expected.as_str()))
    }

    /// `mirror::primary_unaffected_when_mirror_down`, for the mirrored identity `i`.
    pub async fn primary_unaffected(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let mut expected = Vec::new();
        for (subset, _) in &self.spec.identities[i].served_by {
            expected.extend(self.workloads_of(subset)?);
        }
        let user = self.spec.identity(i);
        let baseline = self.median_latency(&user, name, "base", &expected).await?;
        let went_down = self
            .mesh
            .set_mirror_running(false)
            .await
            .map_err(|e| e.to_string())?;
        let down = self
            .retry(|a| {
                let (user, expected) = (user.clone(), expected.clone());
                async move {
                    let median = self.median_latency(&user, name, &format!("down{}", a.number), &expected).await?;
                    let bound = baseline * LATENCY_FACTOR + LATENCY_SLACK;
                    if median > bound {
                        return Err(format!(
                            "median latency {median:?} with the mirror down exceeds {bound:?} ({LATENCY_FACTOR}x the baseline {baseline:?} + {LATENCY_SLACK:?})"
                        ));
                    }
                    Ok(())
                }
            })
            .await;
        let restored = self.restore_mirror(name, i).await;
        let stable = down?;
        let restored = restored?;
        Ok(passed(
            stable,
            format!(
                "{went_down}; then 200 from {} at baseline latency (median {baseline:.1?}); restored: {restored}",
                expected.join(" or ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests;

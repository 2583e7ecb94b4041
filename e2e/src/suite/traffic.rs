//! What the checks send and how they wait: tagged requests, batches with bounded
//! concurrency, barriers straight to the mirror, and the retry that says when it retries.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use tokio::time::Instant;

use super::Suite;
use crate::istio::VirtualService;
use crate::mesh::{Call, Identity, Mesh, Reply};
use crate::mirror_log::Observed;
use crate::retry::{Attempt, RetryError, Stable, until_stable};

/// Requests per batch of the routing and mirror checks.
pub(super) const BATCH: usize = 10;

/// How often a retrying check says so, at most.
const RETRY_NOTICE: Duration = Duration::from_secs(2);

impl<M: Mesh> Suite<M> {
    /// Retries `step` until stable, and says on stderr while it retries: the first failure
    /// at once, then at most every [`RETRY_NOTICE`], with the attempt count and the last
    /// failure, so a check that is failing is visible before its patience runs out.
    pub(super) async fn retry<'a, F, Fut>(&'a self, step: F) -> Result<Stable, RetryError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>> + 'a,
    {
        self.retry_with(self.policy, step).await
    }

    /// [`Suite::retry`] under `policy`.
    pub(super) async fn retry_with<'a, F, Fut>(
        &'a self,
        policy: crate::retry::RetryPolicy,
        mut step: F,
    ) -> Result<Stable, RetryError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>> + 'a,
    {
        let check = self.current_check();
        let last_notice = std::sync::Mutex::new(None::<Instant>);
        let last_notice = &last_notice;
        until_stable(policy, |a| {
            let attempt = step(a);
            let check = check.clone();
            async move {
                let started = std::time::Instant::now();
                let outcome = attempt.await;
                self.note_attempt(started, outcome.is_ok());
                if let Err(e) = &outcome {
                    let mut last = last_notice.lock().unwrap_or_else(|e| e.into_inner());
                    if last.is_none_or(|t| t.elapsed() >= RETRY_NOTICE) {
                        *last = Some(Instant::now());
                        // The run id stands once, in the run's header: tags lose its prefix.
                        let e = e.replace(&super::tag_prefix(&self.run_id), "");
                        eprintln!("  {check}: attempt {} failed, retrying: {e}", a.number);
                    }
                }
                outcome
            }
        })
        .await
    }

    /// The tag of one request: unique across runs, checks, attempts and requests.
    pub(super) fn tag(&self, check: &str, attempt: Attempt, request: &str) -> String {
        let short = check.rsplit("::").next().unwrap_or(check);
        format!(
            "{}{short}/{}/{request}",
            super::tag_prefix(&self.run_id),
            attempt.number
        )
    }

    pub(super) async fn send(&self, identity: &Identity, tag: &str) -> Result<Reply, String> {
        let reply = self
            .mesh
            .send(&Call {
                identity: identity.clone(),
                tag: tag.to_owned(),
            })
            .await
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!(
                "request {tag}: status {} (expected 200)",
                reply.status
            ));
        }
        Ok(reply)
    }

    pub(super) fn expect_served(
        &self,
        reply: &Reply,
        expected: &[String],
        tag: &str,
        identity: &Identity,
    ) -> Result<(), String> {
        match &reply.workload {
            Some(w) if expected.contains(w) => Ok(()),
            other => Err(format!(
                "served by {}, expected {}{}",
                other.as_deref().unwrap_or("an unknown workload"),
                expected.join(" or "),
                self.trail(tag, identity)
            )),
        }
    }

    /// What the mode saw of request `tag` on its way, for a failure message; and when a
    /// logged-in request reached a workload without `end-user`, says so plainly: the classic
    /// reason header-based routing "does not work" is an app that does not forward it.
    pub(super) fn trail(&self, tag: &str, identity: &Identity) -> String {
        let Some(trail) = self.mesh.request_trail(tag) else {
            return String::new();
        };
        // Only the hop under test counts: productpage itself never receives `end-user`.
        let lost = matches!(identity, Identity::User(_))
            && trail
                .split("; ")
                .any(|seen| seen.starts_with(&self.spec.host) && seen.ends_with("end-user=-"));
        format!(
            "{}; what the workloads saw of {tag}: {trail}",
            if lost {
                format!(
                    "; the `end-user: {}` header never arrived: the productpage in use does not forward it",
                    match identity {
                        Identity::User(user) => user.as_str(),
                        Identity::Anonymous => "",
                    }
                )
            } else {
                String::new()
            }
        )
    }

    /// The Deployments behind a subset of the host under test.
    pub(super) fn workloads_of(&self, subset: &str) -> Result<Vec<String>, String> {
        let topo = self.mesh.topology();
        let names: Vec<String> = topo
            .destination_workloads(&self.spec.host, Some(subset))
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        if names.is_empty() {
            return Err(format!(
                "the manifests define no workload for subset `{subset}` of `{}` (a DestinationRule subset and a Deployment with its labels)",
                self.spec.host
            ));
        }
        Ok(names)
    }

    /// The mesh VirtualService for the host under test, as the manifests define it.
    pub(super) fn routing_under_test(&self) -> Result<VirtualService, String> {
        let topo = self.mesh.topology();
        topo.virtual_services
            .iter()
            .map(|t| &t.object)
            .find(|vs| {
                crate::envoy::config::applies_to_mesh(vs)
                    && vs
                        .spec
                        .hosts
                        .iter()
                        .any(|h| topo.fqdn(h) == topo.fqdn(&self.spec.host))
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the manifests have no VirtualService for host `{}`",
                    self.spec.host
                )
            })
    }

    pub(super) async fn apply(&self, vs: &VirtualService) -> Result<(), String> {
        self.mesh
            .apply_virtual_service(vs)
            .await
            .map_err(|e| e.to_string())
    }

    /// A request straight to the mirror, bypassing the routing under test, and a wait until
    /// its log shows it: everything sent before has been logged by then.
    pub(super) async fn barrier(&self, check: &str, a: Attempt) -> Result<(), String> {
        let barrier = self.tag(check, a, "barrier");
        self.mesh
            .send_to_mirror(&barrier)
            .await
            .map_err(|e| e.to_string())?;
        let seen = self.wait_for_tags(std::slice::from_ref(&barrier)).await;
        if !seen.contains(&barrier) {
            return Err(format!(
                "the barrier request {barrier}, sent straight to the mirror, never showed in its log, so what was not mirrored cannot be told; {}",
                seen.describe()
            ));
        }
        Ok(())
    }

    /// Requests of identity `i` to send so that one is mirrored but once in a thousand
    /// (1 when all are): `(1 - p)^n < 1e-3`.
    pub(super) fn until_one_mirrored(&self, i: usize) -> usize {
        let p = self.spec.identities[i].mirrored / 100.0;
        if p >= 1.0 {
            return 1;
        }
        ((1e-3f64).ln() / (1.0 - p).ln()).ceil().max(1.0) as usize
    }

    /// Waits until any of the tags appears in the mirror's log, as long as the mode's log
    /// takes.
    pub(super) async fn wait_for_any(&self, tags: &[String]) -> Observed {
        let until = Instant::now() + self.mesh.log_latency();
        self.mesh
            .mirror_records()
            .wait_for_some(tags, 1, until)
            .await
    }

    /// The headers identity `i`'s mirrored requests must carry, in words.
    pub(super) fn sees(&self, i: usize) -> String {
        self.spec.identities[i]
            .mirror_sees
            .iter()
            .map(|(h, v)| format!(" with {h}: {v}"))
            .collect()
    }

    /// Every mirrored request carries identity `i`'s expected headers.
    pub(super) fn expect_headers<'r>(
        &self,
        i: usize,
        records: impl Iterator<Item = &'r crate::mirror_log::MirroredRequest>,
    ) -> Result<(), String> {
        let wants = &self.spec.identities[i].mirror_sees;
        let wrong: Vec<String> = records
            .filter(|r| wants.iter().any(|(h, v)| r.header(h) != Some(v.as_str())))
            .map(|r| {
                format!(
                    "{} had {}",
                    r.header("user-agent").unwrap_or("?"),
                    wants
                        .iter()
                        .map(|(h, _)| format!("{h} {:?}", r.header(h)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "mirrored requests without{}: {wrong:?}",
                self.sees(i).replacen(" with", "", 1)
            ))
        }
    }

    /// Waits for the tags to appear in the mirror's log, as long as the mode's log takes
    /// ([`Mesh::log_latency`]), waking on each new record. The wait is not cut short by the
    /// retry's deadline: an attempt whose requests all passed always gets to read the log.
    pub(super) async fn wait_for_tags(&self, tags: &[String]) -> Observed {
        let until = Instant::now() + self.mesh.log_latency();
        self.mesh.mirror_records().wait_for(tags, until).await
    }

    /// Sends one request per tag, at most [`Suite::concurrency`] at a time, and returns the
    /// replies in tag order; any failed request fails the batch.
    pub(super) async fn send_all(
        &self,
        identity: &Identity,
        tags: &[String],
    ) -> Result<Vec<Reply>, String> {
        futures_util::stream::iter(tags)
            .map(|tag| self.send(identity, tag))
            .buffered(self.concurrency.max(1))
            .try_collect()
            .await
    }

    pub(super) async fn median_latency(
        &self,
        who: &Identity,
        check: &str,
        phase: &str,
        expected: &[String],
    ) -> Result<Duration, String> {
        let mut latencies = Vec::with_capacity(BATCH * 2);
        for i in 0..BATCH * 2 {
            let tag = format!(
                "{}{}/{phase}/{i}",
                super::tag_prefix(&self.run_id),
                check.rsplit("::").next().unwrap_or(check)
            );
            let reply = self.send(who, &tag).await?;
            self.expect_served(&reply, expected, &tag, who)?;
            latencies.push(reply.latency);
        }
        latencies.sort();
        Ok(latencies[latencies.len() / 2])
    }

    /// Starts the mirror again and waits until identity `i`'s traffic reaches it (probes of
    /// requests until one is mirrored, three in a row), so later checks start from the
    /// state the manifests describe. Returns what starting it did and the probes, in words.
    pub(super) async fn restore_mirror(&self, check: &str, i: usize) -> Result<String, String> {
        let came_back = self
            .mesh
            .set_mirror_running(true)
            .await
            .map_err(|e| e.to_string())?;
        let user = self.spec.identity(i);
        self.retry(|a| {
            let user = user.clone();
            async move {
                let tags: Vec<String> = (0..self.until_one_mirrored(i))
                    .map(|n| self.tag(check, a, &format!("restore{n}")))
                    .collect();
                self.send_all(&user, &tags).await?;
                let seen = self.wait_for_any(&tags).await;
                if seen.found.is_empty() {
                    return Err(format!(
                        "after restoring, none of {} requests ({}) reached the mirror; {}",
                        tags.len(),
                        tags.first().map_or("-", |t| t.as_str()),
                        seen.describe()
                    ));
                }
                Ok(())
            }
        })
        .await
        .map(|stable| {
            let probes = if stable.failures == 0 {
                format!("{} probes reached it", stable.attempts)
            } else {
                format!(
                    "of {} probes {} missed it, then {} reached it in a row",
                    stable.attempts,
                    stable.failures,
                    stable.attempts - stable.failures
                )
            };
            format!("{came_back}; {probes}")
        })
        .map_err(|e| format!("restore: {e}"))
    }
}

/// A lock of the check's own bookkeeping (never held across an await).
pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! The named checks. Each is one send-and-verify step retried until stable (see `retry`),
//! and each failure says what was expected and what was seen.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use tokio::time::Instant;

use super::{Suite, sampling};
use crate::istio::{HttpMatchRequest, Percent, StringMatch, VirtualService};
use crate::mesh::{Call, Identity, Mesh, Reply};
use crate::mirror_log::Observed;
use crate::retry::{Attempt, RetryError, Stable, until_stable};

/// How often a retrying check says so, at most.
const RETRY_NOTICE: Duration = Duration::from_secs(2);

/// Requests per batch of the routing and mirror checks.
const BATCH: usize = 10;

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
    fn observing(mut self, what: &str, value: impl Into<String>) -> Passed {
        self.observed.push((what.to_owned(), value.into()));
        self
    }
}

fn passed(stable: Stable, note: String) -> Passed {
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

    /// `routing::<identity>_served_by_<subset>_<percent>_...`: a weighted split, sampled in
    /// batches sized for its smallest share so a correct proxy fails less than once in a
    /// thousand; every share within its tolerance (Istio's, see [`sampling::tolerance`]).
    pub async fn split(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let shares = &self.spec.identities[i].served_by;
        let mut by_subset = Vec::new();
        for (subset, percent) in shares {
            by_subset.push((subset.clone(), *percent, self.workloads_of(subset)?));
        }
        let by_subset = &by_subset;
        let n = shares
            .iter()
            .map(|(_, p)| sampling::batch_for(*p, sampling::tolerance(*p)))
            .max()
            .unwrap_or(sampling::BATCH);
        let stable = self
            .retry(|a| async move {
                let tags: Vec<String> = (0..n).map(|k| self.tag(name, a, &k.to_string())).collect();
                let replies = self.send_all(identity, &tags).await?;
                let mut counts = vec![0u32; by_subset.len()];
                for (reply, tag) in replies.iter().zip(&tags) {
                    let served = reply.workload.as_deref().unwrap_or("");
                    match by_subset.iter().position(|(_, _, w)| w.iter().any(|x| x == served)) {
                        Some(k) => counts[k] += 1,
                        None => {
                            return Err(format!(
                                "{tag} was served by {}, which no expected subset selects{}",
                                if served.is_empty() { "an unknown workload" } else { served },
                                self.trail(tag, identity)
                            ));
                        }
                    }
                }
                for ((subset, percent, _), count) in by_subset.iter().zip(&counts) {
                    let tolerance = sampling::tolerance(*percent);
                    if !sampling::within_tolerance(*count, n, *percent, tolerance) {
                        return Err(format!(
                            "{count} of {n} {who} requests served by {subset} ({:.1}%), expected {percent}% ± {tolerance} points",
                            f64::from(*count) * 100.0 / f64::from(n)
                        ));
                    }
                }
                Ok(())
            })
            .await?;
        let words = by_subset
            .iter()
            .map(|(s, p, _)| format!("{s} {p}% ± {}", sampling::tolerance(*p)))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(passed(
            stable,
            format!("{n} {who} requests per batch, split {words} points"),
        )
        .observing("split", words))
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

    /// `mirror::<identity>_requests_mirrored_<p>_percent`: a sampled mirror. Batches sized
    /// so a correct proxy fails less than once in a thousand ([`sampling::batch_for`]);
    /// after each batch a barrier straight to the mirror says the log has caught up; the
    /// mirrored share must be within Istio's tolerance, and each mirrored request carries
    /// the headers.
    pub async fn mirrored_sample(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let percent = self.spec.identities[i].mirrored;
        let tolerance = sampling::tolerance(percent);
        let n = sampling::batch_for(percent, tolerance);
        let stable = self
            .retry(|a| async move {
                let tags: Vec<String> = (0..n).map(|k| self.tag(name, a, &k.to_string())).collect();
                self.send_all(identity, &tags).await?;
                self.barrier(name, a).await?;
                let seen = self.mesh.mirror_records().observe(&tags);
                let mirrored = seen.found.len() as u32;
                if !sampling::within_tolerance(mirrored, n, percent, tolerance) {
                    return Err(format!(
                        "{mirrored} of {n} {who} requests mirrored ({:.1}%), expected {percent}% ± {tolerance} points",
                        f64::from(mirrored) * 100.0 / f64::from(n)
                    ));
                }
                self.expect_headers(i, seen.found.values())
            })
            .await?;
        Ok(passed(
            stable,
            format!(
                "{n} {who} requests per batch, {percent}% ± {tolerance} points mirrored{}",
                self.sees(i)
            ),
        )
        .observing("mirrored share", format!("{percent}% ± {tolerance}")))
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
        let (came_back, restore_attempts) = restored?;
        Ok(passed(
            stable,
            format!(
                "with the mirror stopped: 200 from {}; baseline median {baseline:?}; mirror down in {went_down:.1?}, back in {came_back:.1?}, receiving again after {restore_attempts} attempts",
                expected.join(" or ")
            ),
        ))
    }

    /// `mirror::percentage_within_tolerance`: a 50% variant of the routing, sampled in
    /// batches of [`sampling::BATCH`]; the original routing is restored afterwards.
    pub async fn percentage(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let original = self.routing_under_test()?;
        let barrier_prefix = format!("{}barrier/", super::tag_prefix(&self.run_id));
        let variant = percentage_variant(&original, sampling::PERCENT, &barrier_prefix)?;
        self.apply(&variant).await?;
        let user = self.spec.identity(i);
        let sampled = self
            .retry(|a| {
                let (user, barrier_prefix) = (user.clone(), barrier_prefix.clone());
                async move {
                    let tags: Vec<String> = (0..sampling::BATCH)
                        .map(|i| self.tag(name, a, &i.to_string()))
                        .collect();
                    self.send_all(&user, &tags).await?;
                    let barrier = format!("{barrier_prefix}{}", a.number);
                    self.send(&user, &barrier).await?;
                    let seen = self.wait_for_tags(std::slice::from_ref(&barrier)).await;
                    if !seen.contains(&barrier) {
                        return Err(format!(
                            "the barrier request {barrier} never reached the mirror; {}",
                            seen.describe()
                        ));
                    }
                    let mirrored = self.mesh.mirror_records().observe(&tags).found.len() as u32;
                    if !sampling::within_tolerance(
                        mirrored,
                        sampling::BATCH,
                        sampling::PERCENT,
                        sampling::TOLERANCE,
                    ) {
                        return Err(format!(
                            "{mirrored} of {} requests mirrored ({:.1}%), expected {}% ± {} points",
                            sampling::BATCH,
                            f64::from(mirrored) * 100.0 / f64::from(sampling::BATCH),
                            sampling::PERCENT,
                            sampling::TOLERANCE
                        ));
                    }
                    Ok(())
                }
            })
            .await;
        let restored: Result<(Duration, u32), String> = async {
            self.apply(&original).await?;
            self.restore_mirror(name, i).await
        }
        .await;
        let stable = sampled?;
        let (_, restore_attempts) = restored?;
        Ok(passed(
            stable,
            format!(
                "{} requests per batch at {}%, within ±{} points; original routing restored after {restore_attempts} attempts",
                sampling::BATCH,
                sampling::PERCENT,
                sampling::TOLERANCE
            ),
        ))
    }

    // --- helpers -------------------------------------------------------------------------

    /// Retries `step` until stable, and says on stderr while it retries: the first failure
    /// at once, then at most every [`RETRY_NOTICE`], with the attempt count and the last
    /// failure, so a check that is failing is visible before its patience runs out.
    async fn retry<'a, F, Fut>(&'a self, step: F) -> Result<Stable, RetryError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>> + 'a,
    {
        self.retry_with(self.policy, step).await
    }

    /// [`Suite::retry`] under `policy`.
    async fn retry_with<'a, F, Fut>(
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
    fn tag(&self, check: &str, attempt: Attempt, request: &str) -> String {
        let short = check.rsplit("::").next().unwrap_or(check);
        format!(
            "{}{short}/{}/{request}",
            super::tag_prefix(&self.run_id),
            attempt.number
        )
    }

    async fn send(&self, identity: &Identity, tag: &str) -> Result<Reply, String> {
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

    fn expect_served(
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
    fn trail(&self, tag: &str, identity: &Identity) -> String {
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
    fn workloads_of(&self, subset: &str) -> Result<Vec<String>, String> {
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
    fn routing_under_test(&self) -> Result<VirtualService, String> {
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

    async fn apply(&self, vs: &VirtualService) -> Result<(), String> {
        self.mesh
            .apply_virtual_service(vs)
            .await
            .map_err(|e| e.to_string())
    }

    /// A request straight to the mirror, bypassing the routing under test, and a wait until
    /// its log shows it: everything sent before has been logged by then.
    async fn barrier(&self, check: &str, a: Attempt) -> Result<(), String> {
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
    fn until_one_mirrored(&self, i: usize) -> usize {
        let p = self.spec.identities[i].mirrored / 100.0;
        if p >= 1.0 {
            return 1;
        }
        ((1e-3f64).ln() / (1.0 - p).ln()).ceil().max(1.0) as usize
    }

    /// Waits until any of the tags appears in the mirror's log, as long as the mode's log
    /// takes.
    async fn wait_for_any(&self, tags: &[String]) -> Observed {
        let until = Instant::now() + self.mesh.log_latency();
        self.mesh
            .mirror_records()
            .wait_for_some(tags, 1, until)
            .await
    }

    /// The headers identity `i`'s mirrored requests must carry, in words.
    fn sees(&self, i: usize) -> String {
        self.spec.identities[i]
            .mirror_sees
            .iter()
            .map(|(h, v)| format!(" with {h}: {v}"))
            .collect()
    }

    /// Every mirrored request carries identity `i`'s expected headers.
    fn expect_headers<'r>(
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
    async fn wait_for_tags(&self, tags: &[String]) -> Observed {
        let until = Instant::now() + self.mesh.log_latency();
        self.mesh.mirror_records().wait_for(tags, until).await
    }

    /// Sends one request per tag, at most [`Suite::concurrency`] at a time, and returns the
    /// replies in tag order; any failed request fails the batch.
    async fn send_all(&self, identity: &Identity, tags: &[String]) -> Result<Vec<Reply>, String> {
        futures_util::stream::iter(tags)
            .map(|tag| self.send(identity, tag))
            .buffered(self.concurrency.max(1))
            .try_collect()
            .await
    }

    async fn median_latency(
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

    /// Starts the mirror again and waits until tester traffic reaches it, so later checks
    /// start from the state the manifests describe.
    /// Returns how long the mirror took to come up and the attempts until it received
    /// traffic again, for the check's message.
    async fn restore_mirror(&self, check: &str, i: usize) -> Result<(Duration, u32), String> {
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
        .map(|stable| (came_back, stable.attempts))
        .map_err(|e| format!("restore: {e}"))
    }
}

/// A lock of the check's own bookkeeping (never held across an await).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The original routing with every mirror at `percent`, and a first route that sends
/// requests whose user-agent starts with `barrier_prefix` like the first mirrored route but
/// mirrors all of them: the barrier that tells when a batch's shadows have arrived.
pub fn percentage_variant(
    original: &VirtualService,
    percent: f64,
    barrier_prefix: &str,
) -> Result<VirtualService, String> {
    let mut variant = original.clone();
    let mut barrier = None;
    for route in &mut variant.spec.http {
        if route.mirror.is_none() && route.mirrors.is_none() {
            continue;
        }
        if barrier.is_none() {
            let mut b = route.clone();
            b.name = Some("mirror-e2e-barrier".into());
            b.matches = vec![HttpMatchRequest {
                headers: Some(
                    [(
                        "user-agent".to_owned(),
                        StringMatch {
                            prefix: Some(barrier_prefix.to_owned()),
                            ..Default::default()
                        },
                    )]
                    .into(),
                ),
                ..Default::default()
            }];
            b.mirror_percentage = Some(Percent { value: 100.0 });
            b.mirror_percent = None;
            b.mirror_percent_snake = None;
            for m in b.mirrors.iter_mut().flatten() {
                m.percentage = Some(Percent { value: 100.0 });
            }
            barrier = Some(b);
        }
        if route.mirror.is_some() {
            route.mirror_percentage = Some(Percent { value: percent });
            route.mirror_percent = None;
            route.mirror_percent_snake = None;
        }
        for m in route.mirrors.iter_mut().flatten() {
            m.percentage = Some(Percent { value: percent });
        }
    }
    let barrier = barrier
        .ok_or("the routing under test mirrors nothing, so there is no percentage to vary")?;
    variant.spec.http.insert(0, barrier);
    Ok(variant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestSet;
    use crate::mesh::{Call, MeshError};
    use crate::mirror_log::{MirrorRecords, MirroredRequest};
    use crate::report::RunReport;
    use crate::report::live::LiveReport;
    use crate::retry::RetryPolicy;
    use crate::suite::{Spec, Suite, tag_prefix};
    use crate::topology::Topology;
    use crate::version::{IstioVersion, ShadowRule};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A mesh whose replies take `latency` and whose mirror logs a tester request
    /// `log_delay` after it was answered, as a pod's log reaches the API later.
    struct SlowMesh {
        topology: Topology,
        records: Arc<MirrorRecords>,
        latency: Duration,
        log_delay: Duration,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        /// The mode's shadow rule, when it has one of its own.
        shadow_rule: Option<ShadowRule>,
        /// The Host the mirror logs.
        mirror_host: &'static str,
    }

    const MANIFESTS: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: reviews, image: 'r:1', ports: [{containerPort: 9080}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v2, labels: {version: v2}}]}
";

    fn slow_mesh(latency: Duration, log_delay: Duration) -> SlowMesh {
        let (topology, errors) =
            Topology::from_manifests(&ManifestSet::from_str("m.yaml", MANIFESTS));
        assert!(errors.is_empty(), "{errors:?}");
        SlowMesh {
            topology,
            records: Arc::new(MirrorRecords::new(&tag_prefix("run"))),
            latency,
            log_delay,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            shadow_rule: None,
            mirror_host: "reviews",
        }
    }

    /// The suite over `mesh` for run `run`, retrying for `limit`.
    fn suite_of(mesh: SlowMesh, limit: Duration) -> Suite<SlowMesh> {
        Suite::new(mesh, Spec::default(), RetryPolicy::istio(limit), "run")
    }

    impl Mesh for SlowMesh {
        fn istio_version(&self) -> IstioVersion {
            "1.31.1".parse().expect("version")
        }
        fn shadow_rule(&self) -> ShadowRule {
            self.shadow_rule
                .clone()
                .unwrap_or(ShadowRule::VersionDefault {
                    version: self.istio_version(),
                    why: "test".into(),
                })
        }
        fn topology(&self) -> &Topology {
            &self.topology
        }
        fn log_latency(&self) -> Duration {
            Duration::from_secs(5)
        }
        async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Identity::User(user) = &call.identity {
                let (records, delay) = (self.records.clone(), self.log_delay);
                let record = MirroredRequest {
                    path: "/reviews/0".into(),
                    hostname: "reviews".into(),
                    headers: [
                        ("user-agent".to_owned(), call.tag.clone()),
                        ("end-user".to_owned(), user.clone()),
                        ("host".to_owned(), format!("{}:9080", self.mirror_host)),
                    ]
                    .into(),
                    timestamp: None,
                };
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    records.add(vec![record]);
                });
            }
            Ok(Reply {
                status: 200,
                workload: Some("reviews-v2".into()),
                pod: None,
                latency: self.latency,
            })
        }
        fn mirror_records(&self) -> &MirrorRecords {
            &self.records
        }
        async fn apply_virtual_service(&self, _: &VirtualService) -> Result<(), MeshError> {
            Ok(())
        }
        async fn send_to_mirror(&self, _: &str) -> Result<(), MeshError> {
            Ok(())
        }

        async fn set_mirror_running(&self, _: bool) -> Result<Duration, MeshError> {
            Ok(Duration::ZERO)
        }
    }

    #[tokio::test]
    async fn an_attempt_whose_requests_passed_always_gets_its_log_wait() {
        // The retry's limit runs out while the first attempt's shadows are still on their
        // way: the attempt still reads the log for as long as the mode's log takes.
        let mesh = slow_mesh(Duration::ZERO, Duration::from_millis(150));
        let suite = suite_of(mesh, Duration::from_millis(50));
        let passed = suite
            .mirrored(1, "mirror::tester_requests_mirrored_with_end_user")
            .await
            .expect("passes although the limit ran out during the log wait");
        assert_eq!(passed.stable.attempts, 3);
    }

    #[tokio::test]
    async fn a_batch_has_at_most_the_configured_requests_in_flight() {
        for concurrency in [1, 4] {
            let mesh = slow_mesh(Duration::from_millis(5), Duration::ZERO);
            let suite = suite_of(mesh, Duration::from_secs(5)).with_concurrency(concurrency);
            suite
                .served_by(
                    Identity::User("tester".into()),
                    "v2",
                    "routing::tester_served_by_v2",
                )
                .await
                .expect("passes");
            assert_eq!(
                suite.mesh.most_in_flight.load(Ordering::SeqCst),
                concurrency
            );
        }
    }

    #[tokio::test]
    async fn the_shadow_host_is_expected_by_istiods_setting_and_the_check_says_so() {
        // A 1.31 istiod installed with the 1.27 compatibility profile keeps `-shadow`.
        let mut mesh = slow_mesh(Duration::ZERO, Duration::ZERO);
        mesh.mirror_host = "reviews-shadow";
        mesh.shadow_rule = Some(ShadowRule::for_istiod(
            mesh.istio_version(),
            Ok(Some("false")),
        ));
        let suite = suite_of(mesh, Duration::from_secs(5));
        let passed = suite
            .shadow_host(1, "mirror::shadow_host_matches_istio_version")
            .await
            .expect("the suffix istiod's environment keeps is expected");
        assert_eq!(
            passed.note,
            "mirror saw host `reviews-shadow`, as expected by istiod's DISABLE_SHADOW_HOST_SUFFIX=false on Istio 1.31.1"
        );

        // Without that setting the version's default applies, and a failure names it.
        let mut mesh = slow_mesh(Duration::ZERO, Duration::ZERO);
        mesh.mirror_host = "reviews-shadow";
        let suite = suite_of(mesh, Duration::from_millis(200));
        let failed = suite
            .shadow_host(1, "mirror::shadow_host_matches_istio_version")
            .await
            .expect_err("1.31's default drops the suffix");
        assert!(
            failed.message.contains(
                "the mirror saw host `reviews-shadow`, expected `reviews` by Istio 1.31.1's default"
            ),
            "{}",
            failed.message
        );
    }

    #[test]
    fn each_finished_check_reaches_the_live_report_the_run_handed_over() {
        // The run hands its suite a handle (no global): a second run's report in the same
        // process sees none of this run's checks.
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dirs = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (live, other) = (LiveReport::default(), LiveReport::default());
        live.start(dirs.0.path(), &RunReport::default());
        other.start(dirs.1.path(), &RunReport::default());
        let suite = Arc::new(suite_of(
            slow_mesh(Duration::ZERO, Duration::ZERO),
            Duration::from_secs(5),
        ));
        let results = Arc::new(std::sync::Mutex::new(Vec::new()));
        let trials = crate::suite::trials(suite, runtime.handle().clone(), results, &live);
        let args = crate::suite::harness_arguments(&[
            "--exact".to_owned(),
            "mirror::tester_requests_mirrored_with_end_user".to_owned(),
        ]);
        let conclusion = libtest_mimic::run(&args, trials);
        assert_eq!(conclusion.num_passed, 1);
        let names: Vec<String> = live.checks().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["mirror::tester_requests_mirrored_with_end_user"]);
        assert!(other.checks().is_empty());
        let written = live.write_stopped("interrupted (Ctrl-C)").expect("written");
        assert_eq!(written, dirs.0.path());
    }

    #[test]
    fn variant_sets_percentages_and_prepends_a_full_barrier() {
        let original: VirtualService = serde_yaml::from_str(
            "
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - match: [{headers: {end-user: {exact: tester}}}]
      route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: mirror}
      mirror_percent: 100
    - route: [{destination: {host: reviews, subset: v1}}]
",
        )
        .expect("fixture parses");
        let v = percentage_variant(&original, 50.0, "bar/").expect("has a mirror");
        assert_eq!(v.spec.http.len(), 3);
        let barrier = &v.spec.http[0];
        assert_eq!(barrier.mirror_percentage, Some(Percent { value: 100.0 }));
        assert_eq!(
            barrier.matches[0]
                .headers
                .as_ref()
                .and_then(|h| h.get("user-agent"))
                .and_then(|m| m.prefix.as_deref()),
            Some("bar/")
        );
        assert_eq!(barrier.route, original.spec.http[0].route);
        let sampled = &v.spec.http[1];
        assert_eq!(sampled.mirror_percentage, Some(Percent { value: 50.0 }));
        assert_eq!(
            sampled.mirror_percent_snake, None,
            "the deprecated field would be overridden anyway; drop it"
        );
        assert_eq!(v.spec.http[2], original.spec.http[1]);
    }

    #[test]
    fn variant_of_routing_without_mirror_is_an_error() {
        let original: VirtualService =
            serde_yaml::from_str("spec: {http: [{route: [{destination: {host: reviews}}]}]}")
                .expect("fixture parses");
        assert!(percentage_variant(&original, 50.0, "b/").is_err());
    }
}

//! The mirroring suite: one implementation of the named checks for every mode, run as a
//! libtest-mimic harness so filters, `--list` and `--exact` work as with `cargo test`.

mod checks;
pub mod prerequisites;
pub mod sampling;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Handle;

pub use checks::{CheckFailure, percentage_variant};

use crate::mesh::{Identity, Mesh};
use crate::report::CheckResult;
use crate::report::live::LiveReport;
use crate::retry::RetryPolicy;

/// The behaviour under test, in the product's words: requests from `user` go to
/// `user_subset` of `host` and are mirrored; everyone else goes to `anonymous_subset`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The service whose routing is tested.
    pub host: String,
    /// The logged-in user whose traffic is mirrored.
    pub user: String,
    /// Subset that serves anonymous traffic.
    pub anonymous_subset: String,
    /// Subset that serves the user's traffic.
    pub user_subset: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            host: "reviews".into(),
            user: "tester".into(),
            anonymous_subset: "v1".into(),
            user_subset: "v2".into(),
        }
    }
}

/// The checks, by trial name, in the order they run. Checks that change the mesh (stopping
/// the mirror, a routing variant) come last and restore what they changed.
pub const CHECKS: &[&str] = &[
    "routing::anonymous_served_by_v1",
    "routing::tester_served_by_v2",
    "mirror::tester_requests_mirrored_with_end_user",
    "mirror::anonymous_requests_not_mirrored",
    "mirror::shadow_host_matches_istio_version",
    "mirror::primary_unaffected_when_mirror_down",
    "mirror::percentage_within_tolerance",
];

/// What a check expects, in the product's words (the README's table).
pub fn expectation(check: &str) -> &'static str {
    match check {
        "routing::anonymous_served_by_v1" => {
            "anonymous requests are served by the workload behind subset v1"
        }
        "routing::tester_served_by_v2" => "`end-user: tester` requests are served by subset v2",
        "mirror::tester_requests_mirrored_with_end_user" => {
            "every tagged tester request shows up in the mirror's log with `end-user: tester`"
        }
        "mirror::anonymous_requests_not_mirrored" => "no anonymous request is mirrored",
        "mirror::shadow_host_matches_istio_version" => {
            "the mirror sees `reviews-shadow` up to Istio 1.27 and `reviews` from 1.28, unless istiod's `DISABLE_SHADOW_HOST_SUFFIX` says otherwise"
        }
        "mirror::primary_unaffected_when_mirror_down" => {
            "with the mirror stopped, tester requests still get 200 from v2 at baseline latency"
        }
        "mirror::percentage_within_tolerance" => "a 50% variant mirrors 50% ± 10 points",
        _ => "(no description)",
    }
}

/// Where the evidence of a check's failure shows first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Which route and upstream served a request, its status and latency: the proxies.
    Routing,
    /// What the mirror received: its log.
    Mirror,
}

/// Where check `check` fails visibly. The mirror-down check fails on what the tester gets
/// (status, workload, latency), so the proxies show it, not the mirror's log.
pub fn evidence(check: &str) -> Evidence {
    match check {
        "routing::anonymous_served_by_v1"
        | "routing::tester_served_by_v2"
        | "mirror::primary_unaffected_when_mirror_down" => Evidence::Routing,
        _ => Evidence::Mirror,
    }
}

/// One attempt of a check in time: seconds from the check's start, seconds taken, passed.
pub type AttemptSpan = (f64, f64, bool);

/// A mesh, the behaviour expected of it, and how patient to be.
pub struct Suite<M> {
    /// The mode's mesh.
    pub mesh: M,
    /// The behaviour under test.
    pub spec: Spec,
    /// Retry policy for every check.
    pub policy: RetryPolicy,
    /// The run id, part of every request tag.
    pub run_id: String,
    /// Requests of one batch in flight at once.
    pub concurrency: usize,
    /// The check running now, for retry notices.
    current: Mutex<String>,
    /// When the check running now started, and its attempts so far (for the timeline).
    attempts: Mutex<(Option<Instant>, Vec<AttemptSpan>)>,
}

/// Requests of one batch in flight at once, unless `--concurrency` says otherwise: a batch
/// of 300 through productpage one by one takes 6 to 12 s on a 2-core runner.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The prefix of every request tag of a run (the tag travels in `user-agent`): what the
/// mirror's log readers keep.
pub fn tag_prefix(run_id: &str) -> String {
    format!("mirror-e2e/{run_id}/")
}

impl<M: Mesh> Suite<M> {
    /// A suite over `mesh`.
    pub fn new(mesh: M, spec: Spec, policy: RetryPolicy, run_id: &str) -> Suite<M> {
        Suite {
            mesh,
            spec,
            policy,
            run_id: run_id.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
            current: Mutex::default(),
            attempts: Mutex::default(),
        }
    }

    /// Notes one attempt of the running check: when it started, how long, whether it passed.
    pub(crate) fn note_attempt(&self, started: Instant, passed: bool) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let origin = *attempts.0.get_or_insert(started);
        let offset = started.saturating_duration_since(origin).as_secs_f64();
        attempts
            .1
            .push((offset, started.elapsed().as_secs_f64(), passed));
    }

    /// The attempts of the check that just ran.
    fn take_attempts(&self) -> Vec<AttemptSpan> {
        std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|e| e.into_inner())).1
    }

    /// The report's record of check `name`, which ran from `start` with `outcome`. Request
    /// tags lose the run's prefix (`mirror-e2e/<run-id>/`): the report names the run once.
    fn result_of(
        &self,
        name: &str,
        outcome: Result<checks::Passed, CheckFailure>,
        start: Instant,
    ) -> CheckResult {
        let timeline = self.take_attempts();
        let prefix = tag_prefix(&self.run_id);
        let untagged = |text: &str| text.replace(&prefix, "");
        let (passed, attempts, retries, message, observed, cause) = match outcome {
            Ok(p) => (
                true,
                p.stable.attempts,
                p.stable.failures,
                p.note,
                p.observed,
                None,
            ),
            // A check that failed outside its retry (a baseline, a restore) still made the
            // attempts its timeline holds.
            Err(e) => (
                false,
                e.attempts
                    .max(u32::try_from(timeline.len()).unwrap_or(u32::MAX)),
                0,
                e.message,
                e.observed,
                e.cause,
            ),
        };
        CheckResult {
            name: name.to_owned(),
            passed,
            duration: start.elapsed(),
            attempts,
            retries,
            message: untagged(&message),
            observed: observed
                .into_iter()
                .map(|(k, v)| (k, untagged(&v)))
                .collect(),
            timeline,
            cause: cause.map(|c| untagged(&c)),
            blocked_by: None,
        }
    }

    /// The check running now.
    pub fn current_check(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The same suite with at most `concurrency` requests of a batch in flight.
    pub fn with_concurrency(mut self, concurrency: usize) -> Suite<M> {
        self.concurrency = concurrency;
        self
    }

    /// Runs one check by name.
    pub async fn run_check(&self, name: &str) -> Result<checks::Passed, CheckFailure> {
        name.clone_into(&mut self.current.lock().unwrap_or_else(|e| e.into_inner()));
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner()) =
            (Some(Instant::now()), Vec::new());
        let user = Identity::User(self.spec.user.clone());
        match name {
            "routing::anonymous_served_by_v1" => {
                self.served_by(
                    Identity::Anonymous,
                    &self.spec.anonymous_subset.clone(),
                    name,
                )
                .await
            }
            "routing::tester_served_by_v2" => {
                self.served_by(user, &self.spec.user_subset.clone(), name)
                    .await
            }
            "mirror::tester_requests_mirrored_with_end_user" => self.tester_mirrored(name).await,
            "mirror::anonymous_requests_not_mirrored" => self.anonymous_not_mirrored(name).await,
            "mirror::shadow_host_matches_istio_version" => self.shadow_host(name).await,
            "mirror::primary_unaffected_when_mirror_down" => self.primary_unaffected(name).await,
            "mirror::percentage_within_tolerance" => self.percentage(name).await,
            other => Err(format!("no check named {other}").into()),
        }
    }
}

/// The harness arguments a run gets: the user's, but always one thread, because the checks
/// share one mesh and some of them change it.
pub fn harness_arguments(args: &[String]) -> Arguments {
    let mut args =
        Arguments::from_iter(std::iter::once("mirror-e2e".to_owned()).chain(args.iter().cloned()));
    args.test_threads = Some(1);
    // One line per check comes from the summary at the end; the harness shows a dot per
    // check while they run (unless the user asks for a format).
    if args.format.is_none() {
        args.quiet = true;
    }
    args
}

/// The checks the harness arguments select, as libtest does: the filter is a substring of
/// the name (the whole name with `--exact`), and `--skip` removes matches; `--ignored`
/// selects none (no check is ignored).
pub fn selected(args: &Arguments) -> Vec<&'static str> {
    CHECKS
        .iter()
        .copied()
        .filter(|name| match &args.filter {
            None => true,
            Some(f) if args.exact => name == f,
            Some(f) => name.contains(f.as_str()),
        })
        .filter(|name| {
            !args.skip.iter().any(|s| {
                if args.exact {
                    name == s
                } else {
                    name.contains(s.as_str())
                }
            })
        })
        .filter(|_| !args.ignored)
        .collect()
}

/// The checks the harness arguments leave out, and how they select, when they leave some
/// out: `(["mirror::..."], Some("filter `routing::`"))`. A report names both, so a partial
/// run never reads as a complete one.
pub fn left_out(args: &Arguments) -> (Vec<String>, Option<String>) {
    let chosen = selected(args);
    let not_run: Vec<String> = CHECKS
        .iter()
        .filter(|c| !chosen.contains(c))
        .map(|c| (*c).to_owned())
        .collect();
    if not_run.is_empty() {
        return (not_run, None);
    }
    let mut how = Vec::new();
    if let Some(f) = &args.filter {
        how.push(format!(
            "{} `{f}`",
            if args.exact { "--exact" } else { "filter" }
        ));
    }
    for s in &args.skip {
        how.push(format!("--skip `{s}`"));
    }
    if args.ignored {
        how.push("--ignored".to_owned());
    }
    (not_run, Some(how.join(", ")))
}

/// The trials, without a mesh: enough for `--list`.
pub fn listing() -> Vec<Trial> {
    CHECKS
        .iter()
        .map(|name| Trial::test(*name, || Ok(())))
        .collect()
}

/// The trials over a running suite; each records its [`CheckResult`] into `results` and
/// reports it to the run's `live` report as it finishes.
pub fn trials<M: Mesh + Send + Sync + 'static>(
    suite: Arc<Suite<M>>,
    runtime: Handle,
    results: Arc<Mutex<Vec<CheckResult>>>,
    live: &LiveReport,
) -> Vec<Trial> {
    CHECKS
        .iter()
        .map(|name| {
            let (suite, runtime, results, live) = (
                suite.clone(),
                runtime.clone(),
                results.clone(),
                live.clone(),
            );
            Trial::test(*name, move || {
                let start = Instant::now();
                let blocked = prerequisites::blocked_by(
                    name,
                    &results.lock().unwrap_or_else(|e| e.into_inner()),
                );
                let result = match blocked {
                    Some(root) => CheckResult::blocked(name, &root),
                    None => {
                        let outcome = runtime.block_on(suite.run_check(name));
                        suite.result_of(name, outcome, start)
                    }
                };
                let (passed, message) = (result.passed, result.message.clone());
                live.check_done(&result);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(result);
                if passed {
                    Ok(())
                } else {
                    Err(Failed::from(message))
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod selection_tests {
    use super::*;

    fn args(a: &[&str]) -> Arguments {
        harness_arguments(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn filters_select_as_libtest_does() {
        assert_eq!(selected(&args(&[])).len(), CHECKS.len());
        assert_eq!(selected(&args(&["mirror::"])).len(), 5);
        assert_eq!(
            selected(&args(&["--exact", "routing::tester_served_by_v2"])),
            ["routing::tester_served_by_v2"]
        );
        assert!(selected(&args(&["nosuchcheck"])).is_empty());
        assert!(selected(&args(&["--exact", "routing::nope"])).is_empty());
        assert!(selected(&args(&["--ignored"])).is_empty());
        assert_eq!(
            selected(&args(&["routing::", "--skip", "v2"])),
            ["routing::anonymous_served_by_v1"]
        );
    }

    #[test]
    fn a_selection_that_leaves_checks_out_says_which_and_how() {
        assert_eq!(left_out(&args(&[])), (Vec::<String>::new(), None));
        let (not_run, how) = left_out(&args(&["routing::"]));
        assert_eq!(not_run, &CHECKS[2..]);
        assert_eq!(how.as_deref(), Some("filter `routing::`"));
        let (not_run, how) = left_out(&args(&["--skip", "mirror::"]));
        assert_eq!(not_run.len(), 5);
        assert_eq!(how.as_deref(), Some("--skip `mirror::`"));
        let (_, how) = left_out(&args(&["--exact", "routing::tester_served_by_v2"]));
        assert_eq!(
            how.as_deref(),
            Some("--exact `routing::tester_served_by_v2`")
        );
    }
}

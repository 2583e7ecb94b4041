//! The mirroring suite: one implementation of the named checks for every mode, run as a
//! libtest-mimic harness so filters, `--list` and `--exact` work as with `cargo test`.

mod checks;
pub mod prerequisites;
#[cfg(test)]
mod report_tests;
mod sampled;
mod selection;
mod spec;
mod traffic;

use std::sync::Mutex;
use std::time::Instant;

pub use checks::CheckFailure;
pub use sampled::percentage_variant;
pub use selection::{harness_arguments, left_out, listing, selected, trials};
pub use spec::{Check, CheckKind, Spec, tutorial_checks};

use crate::mesh::Mesh;
use crate::report::CheckResult;
use crate::retry::RetryPolicy;
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
        check: &Check,
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
            name: check.name.clone(),
            expected: self.spec.expects(check),
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

    /// Runs one check.
    pub async fn run_check(&self, check: &Check) -> Result<checks::Passed, CheckFailure> {
        let name = check.name.as_str();
        name.clone_into(&mut self.current.lock().unwrap_or_else(|e| e.into_inner()));
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner()) =
            (Some(Instant::now()), Vec::new());
        match check.kind {
            CheckKind::ServedBy(i) => {
                let subset = self.spec.identities[i]
                    .single_subset()
                    .unwrap_or_default()
                    .to_owned();
                self.served_by(self.spec.identity(i), &subset, name).await
            }
            CheckKind::Split(i) => self.split(i, name).await,
            CheckKind::Mirrored(i) => self.mirrored(i, name).await,
            CheckKind::MirroredSample(i) => self.mirrored_sample(i, name).await,
            CheckKind::NotMirrored(i) => self.not_mirrored(i, name).await,
            CheckKind::ShadowHost(i) => self.shadow_host(i, name).await,
            CheckKind::PrimaryUnaffected(i) => self.primary_unaffected(i, name).await,
            CheckKind::Percentage(i) => self.percentage(i, name).await,
        }
    }
}

#[cfg(test)]
mod selection_tests {
    use libtest_mimic::Arguments;

    use super::*;
    use crate::expectations::Expectations;

    fn args(a: &[&str]) -> Arguments {
        harness_arguments(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    const TUTORIAL: [&str; 7] = [
        "routing::anonymous_served_by_v1",
        "routing::tester_served_by_v2",
        "mirror::tester_requests_mirrored_with_end_user",
        "mirror::anonymous_requests_not_mirrored",
        "mirror::shadow_host_matches_istio_version",
        "mirror::primary_unaffected_when_mirror_down",
        "mirror::percentage_within_tolerance",
    ];

    #[test]
    fn the_tutorials_expectations_give_todays_seven_checks_in_order() {
        assert_eq!(Spec::default().check_names(), TUTORIAL);
        let shipped = Expectations::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../manifests/expectations.yaml"),
        )
        .expect("the shipped expectations");
        assert_eq!(Spec::from_expectations(&shipped).check_names(), TUTORIAL);
    }

    #[test]
    fn a_users_scenario_gives_checks_named_after_it() {
        let text = "service: ratings\nmirror: shadow\nidentities:\n  anonymous:\n    served_by: {v1: 90, v2: 10}\n    mirrored: 0\n  jason:\n    served_by: {v2: 100}\n    mirrored: 10\n    mirror_sees: {end-user: jason}\n";
        let e = Expectations::parse(std::path::Path::new("e.yaml"), text).expect("parses");
        let spec = Spec::from_expectations(&e);
        let checks = spec.checks();
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "routing::anonymous_served_by_v1_90_v2_10",
                "routing::jason_served_by_v2",
                "mirror::jason_requests_mirrored_10_percent",
                "mirror::anonymous_requests_not_mirrored",
                "mirror::shadow_host_matches_istio_version",
                "mirror::primary_unaffected_when_mirror_down",
                "mirror::percentage_within_tolerance",
            ]
        );
        assert_eq!(checks[0].kind, CheckKind::Split(0));
        assert_eq!(checks[2].kind, CheckKind::MirroredSample(1));
        assert_eq!(checks[2].needs, ["routing::jason_served_by_v2"]);
        assert!(checks[3].needs.is_empty(), "absence needs no routing");
        assert_eq!(
            spec.expectation("mirror::jason_requests_mirrored_10_percent"),
            "10% of the jason requests show up in the mirror's log with `end-user: jason`: 1700 requests per batch; 10%: accepts 115..=210 of 1700 (6.76%..12.35%); a correct mesh fails 1 batch in 1353, one at 5% or 15% passes 1 batch in 1009"
        );
    }

    #[test]
    fn nobody_mirrored_means_no_mirror_wide_checks() {
        let text = "service: reviews\nmirror: mirror\nidentities:\n  anonymous:\n    served_by: {v1: 100}\n    mirrored: 0\n";
        let e = Expectations::parse(std::path::Path::new("e.yaml"), text).expect("parses");
        assert_eq!(
            Spec::from_expectations(&e).check_names(),
            [
                "routing::anonymous_served_by_v1",
                "mirror::anonymous_requests_not_mirrored"
            ]
        );
    }

    #[test]
    fn filters_select_as_libtest_does() {
        let spec = &Spec::default();
        assert_eq!(selected(&args(&[]), spec).len(), TUTORIAL.len());
        assert_eq!(selected(&args(&["mirror::"]), spec).len(), 5);
        assert_eq!(
            selected(&args(&["--exact", "routing::tester_served_by_v2"]), spec),
            ["routing::tester_served_by_v2"]
        );
        assert!(selected(&args(&["nosuchcheck"]), spec).is_empty());
        assert!(selected(&args(&["--exact", "routing::nope"]), spec).is_empty());
        assert!(selected(&args(&["--ignored"]), spec).is_empty());
        assert_eq!(
            selected(&args(&["routing::", "--skip", "v2"]), spec),
            ["routing::anonymous_served_by_v1"]
        );
    }

    #[test]
    fn a_selection_that_leaves_checks_out_says_which_and_how() {
        let spec = &Spec::default();
        assert_eq!(left_out(&args(&[]), spec), (Vec::<String>::new(), None));
        let (not_run, how) = left_out(&args(&["routing::"]), spec);
        assert_eq!(not_run, &TUTORIAL[2..]);
        assert_eq!(how.as_deref(), Some("filter `routing::`"));
        let (not_run, how) = left_out(&args(&["--skip", "mirror::"]), spec);
        assert_eq!(not_run.len(), 5);
        assert_eq!(how.as_deref(), Some("--skip `mirror::`"));
        let (_, how) = left_out(&args(&["--exact", "routing::tester_served_by_v2"]), spec);
        assert_eq!(
            how.as_deref(),
            Some("--exact `routing::tester_served_by_v2`")
        );
    }
}

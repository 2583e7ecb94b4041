//! The mirroring suite: one implementation of the named checks for every mode, run as a
//! libtest-mimic harness so filters, `--list` and `--exact` work as with `cargo test`.

mod checks;
pub mod prerequisites;
mod sampled;
mod traffic;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Handle;

pub use checks::CheckFailure;
pub use sampled::percentage_variant;

use crate::expectations::{ANONYMOUS, Expectations, ExpectationsError, IdentityExpectation};
use crate::mesh::{Identity, Mesh};
use crate::report::CheckResult;
use crate::report::live::LiveReport;
use crate::retry::RetryPolicy;
use crate::sampling;

/// The behaviour under test, from the expectations file (`expectations`): the Service
/// whose routing is tested, the mirror, and what each identity's requests must get. The
/// checks and their names are derived from it ([`Spec::checks`]).
#[derive(Debug, Clone)]
pub struct Spec {
    /// The service whose routing is tested.
    pub host: String,
    /// The Service that receives the shadow traffic.
    pub mirror: String,
    /// The identities, in the file's order.
    pub identities: Vec<IdentityExpectation>,
    /// Lint's warnings on the expectations against the routing (`intent`,
    /// `unexercised-rule`): a run prints them in its summary and keeps them in its report.
    pub warnings: Vec<String>,
}

/// The tutorial's expectations: what `manifests/expectations.yaml` ships.
impl Default for Spec {
    fn default() -> Self {
        let identity =
            |name: &str, subset: &str, mirrored: f64, sees: &[(&str, &str)]| IdentityExpectation {
                name: name.into(),
                served_by: vec![(subset.into(), 100.0)],
                mirrored,
                mirror_sees: sees
                    .iter()
                    .map(|(h, v)| ((*h).to_owned(), (*v).to_owned()))
                    .collect(),
                line: 0,
            };
        Spec {
            host: "reviews".into(),
            mirror: "mirror".into(),
            identities: vec![
                identity(ANONYMOUS, "v1", 0.0, &[]),
                identity("tester", "v2", 100.0, &[("end-user", "tester")]),
            ],
            warnings: Vec::new(),
        }
    }
}

/// What a check does, over which identity (an index into [`Spec::identities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Every request served by the one subset the identity expects.
    ServedBy(usize),
    /// Requests split over subsets, each share within tolerance (sampled).
    Split(usize),
    /// Every request mirrored, carrying the headers the identity expects.
    Mirrored(usize),
    /// A share of the requests mirrored, within tolerance (sampled), each mirrored one
    /// carrying the headers.
    MirroredSample(usize),
    /// No request mirrored, proved with a barrier straight to the mirror.
    NotMirrored(usize),
    /// The mirror's Host header, as the Istio version (or istiod's setting) makes it.
    ShadowHost(usize),
    /// With the mirror down, the identity is still served, at baseline latency.
    PrimaryUnaffected(usize),
    /// A 50% variant of the routing mirrors 50% ± 10 points.
    Percentage(usize),
}

/// One check of a run: its name, what it does, and the checks it needs to have passed.
#[derive(Debug, Clone)]
pub struct Check {
    /// The trial name, e.g. `routing::tester_served_by_v2`.
    pub name: String,
    /// What it does.
    pub kind: CheckKind,
    /// The checks it needs to have passed, when they ran in the same run.
    pub needs: Vec<String>,
}

impl Spec {
    /// The behaviour under test for a run of `manifests`: the `expectations` file given,
    /// else `expectations.yaml` in the manifests directory, else the tutorial's; checked
    /// against the manifests (their Services and subsets) before anything starts.
    pub fn for_manifests(
        manifests: &std::path::Path,
        expectations: Option<&std::path::Path>,
    ) -> Result<Spec, ExpectationsError> {
        let beside = manifests.join(crate::expectations::FILE_NAME);
        let path = match expectations {
            Some(path) => path.to_owned(),
            None if beside.is_file() => beside,
            None => return Ok(Spec::default()),
        };
        let expectations = Expectations::load(&path)?;
        let mut spec = Spec::from_expectations(&expectations);
        // Unreadable manifests are the run's to report; the expectations are checked
        // against what can be read.
        if let Ok(set) = crate::manifest::ManifestSet::load(&[manifests.to_owned()]) {
            let (topology, _) = crate::topology::Topology::from_manifests(&set);
            expectations.check(&topology)?;
            spec.warnings = crate::lint::lint_expectations(&set, &path)
                .iter()
                .filter(|f| f.severity == crate::lint::Severity::Warning)
                .map(ToString::to_string)
                .collect();
        }
        Ok(spec)
    }

    /// The behaviour a user's expectations file states.
    pub fn from_expectations(e: &Expectations) -> Spec {
        Spec {
            host: e.service.clone(),
            mirror: e.mirror.clone(),
            identities: e.identities.clone(),
            warnings: Vec::new(),
        }
    }

    /// The identity whose mirrored requests the mirror-wide checks (shadow host, mirror
    /// down, percentage variant) use: the first mirrored in full, else the first mirrored
    /// at all.
    pub fn mirrored_identity(&self) -> Option<usize> {
        let full = self.identities.iter().position(|i| i.mirrored >= 100.0);
        full.or_else(|| self.identities.iter().position(|i| i.mirrored > 0.0))
    }

    /// What check `name` of this spec verifies, in the report's words (empty for a name
    /// it does not derive).
    pub fn expectation(&self, name: &str) -> String {
        self.checks()
            .iter()
            .find(|c| c.name == name)
            .map(|c| self.expects(c))
            .unwrap_or_default()
    }

    /// The mesh identity of identity `i`.
    pub fn identity(&self, i: usize) -> Identity {
        match self.identities[i].user() {
            Some(user) => Identity::User(user.to_owned()),
            None => Identity::Anonymous,
        }
    }

    /// The checks, in the order they run: every identity's routing, then its mirroring,
    /// then the checks that change the mesh (stopping the mirror, a routing variant), which
    /// restore what they changed. Names derive from the expectations, so a user's file
    /// gives checks named after the user's scenario; the tutorial's give today's seven.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let routing_name = |i: usize| -> String {
            let id = &self.identities[i];
            match id.single_subset() {
                Some(subset) => format!("routing::{}_served_by_{}", slug(&id.name), slug(subset)),
                None => format!(
                    "routing::{}_served_by_{}",
                    slug(&id.name),
                    id.served_by
                        .iter()
                        .map(|(s, p)| format!("{}_{}", slug(s), number_slug(*p)))
                        .collect::<Vec<_>>()
                        .join("_")
                ),
            }
        };
        let mirror_name = |i: usize| -> String {
            let id = &self.identities[i];
            let who = slug(&id.name);
            if id.mirrored == 0.0 {
                format!("mirror::{who}_requests_not_mirrored")
            } else if id.mirrored < 100.0 {
                format!(
                    "mirror::{who}_requests_mirrored_{}_percent",
                    number_slug(id.mirrored)
                )
            } else if id.mirror_sees.is_empty() {
                format!("mirror::{who}_requests_mirrored")
            } else {
                format!(
                    "mirror::{who}_requests_mirrored_with_{}",
                    id.mirror_sees
                        .iter()
                        .map(|(h, _)| slug(h))
                        .collect::<Vec<_>>()
                        .join("_and_")
                )
            }
        };
        for (i, id) in self.identities.iter().enumerate() {
            let kind = if id.single_subset().is_some() {
                CheckKind::ServedBy(i)
            } else {
                CheckKind::Split(i)
            };
            out.push(Check {
                name: routing_name(i),
                kind,
                needs: Vec::new(),
            });
        }
        // Mirrored identities first: their checks are what the absence checks' readers
        // compare with, as in the tutorial's order.
        let mut order: Vec<usize> = (0..self.identities.len()).collect();
        order.sort_by_key(|&i| self.identities[i].mirrored == 0.0);
        for i in order {
            let id = &self.identities[i];
            let (kind, needs) = if id.mirrored == 0.0 {
                // The barrier goes straight to the mirror: nothing the routing does.
                (CheckKind::NotMirrored(i), Vec::new())
            } else if id.mirrored < 100.0 {
                (CheckKind::MirroredSample(i), vec![routing_name(i)])
            } else {
                (CheckKind::Mirrored(i), vec![routing_name(i)])
            };
            out.push(Check {
                name: mirror_name(i),
                kind,
                needs,
            });
        }
        if let Some(m) = self.mirrored_identity() {
            let mirrored = vec![mirror_name(m)];
            out.push(Check {
                name: "mirror::shadow_host_matches_istio_version".into(),
                kind: CheckKind::ShadowHost(m),
                needs: mirrored.clone(),
            });
            out.push(Check {
                name: "mirror::primary_unaffected_when_mirror_down".into(),
                kind: CheckKind::PrimaryUnaffected(m),
                needs: vec![routing_name(m), mirror_name(m)],
            });
            out.push(Check {
                name: "mirror::percentage_within_tolerance".into(),
                kind: CheckKind::Percentage(m),
                needs: mirrored,
            });
        }
        out
    }

    /// The check's names, in order.
    pub fn check_names(&self) -> Vec<String> {
        self.checks().into_iter().map(|c| c.name).collect()
    }

    /// What check `check` expects, in the product's words (docs/expectations.md's table).
    fn expects(&self, check: &Check) -> String {
        let who = |i: usize| -> String {
            match self.identities[i].user() {
                Some(user) => format!("`end-user: {user}`"),
                None => "anonymous".to_owned(),
            }
        };
        let sees = |i: usize| -> String {
            self.identities[i]
                .mirror_sees
                .iter()
                .map(|(h, v)| format!(" with `{h}: {v}`"))
                .collect::<Vec<_>>()
                .join(" and")
        };
        match check.kind {
            CheckKind::ServedBy(i) => match self.identities[i].user() {
                Some(_) => format!(
                    "{} requests are served by subset {}",
                    who(i),
                    self.identities[i].single_subset().unwrap_or("?")
                ),
                None => format!(
                    "anonymous requests are served by the workload behind subset {}",
                    self.identities[i].single_subset().unwrap_or("?")
                ),
            },
            CheckKind::Split(i) => format!(
                "{} requests are split {}: {}",
                who(i),
                self.identities[i]
                    .served_by
                    .iter()
                    .map(|(s, p)| format!("{s} {p}%"))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan_words(
                    &self.identities[i]
                        .served_by
                        .iter()
                        .map(|(_, p)| *p)
                        .collect::<Vec<_>>()
                )
            ),
            CheckKind::Mirrored(i) => format!(
                "every tagged {} request shows up in the mirror's log{}",
                self.identities[i].name,
                sees(i)
            ),
            CheckKind::MirroredSample(i) => {
                let p = self.identities[i].mirrored;
                format!(
                    "{p}% of the {} requests show up in the mirror's log{}: {}",
                    self.identities[i].name,
                    sees(i),
                    plan_words(&[p])
                )
            }
            CheckKind::NotMirrored(i) => {
                format!("no {} request is mirrored", self.identities[i].name)
            }
            CheckKind::ShadowHost(_) => format!(
                "the mirror sees `{host}-shadow` up to Istio 1.27 and `{host}` from 1.28, unless istiod's `DISABLE_SHADOW_HOST_SUFFIX` says otherwise",
                host = self.host
            ),
            CheckKind::PrimaryUnaffected(i) => format!(
                "with the mirror stopped, {} requests still get 200 from {} at baseline latency",
                self.identities[i].name,
                self.identities[i]
                    .served_by
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            CheckKind::Percentage(_) => format!(
                "a {}% variant of the routing mirrors {}% of the requests: {}",
                sampling::PERCENT,
                sampling::PERCENT,
                plan_words(&[sampling::PERCENT])
            ),
        }
    }
}

/// A sampled check's plan in a reader's words: the batch, each share's acceptance region
/// and both error rates.
fn plan_words(shares: &[f64]) -> String {
    match sampling::plan(shares) {
        Ok(plan) => {
            let regions: Vec<String> = plan
                .iter()
                .filter(|a| a.low != a.high)
                .map(ToString::to_string)
                .collect();
            format!(
                "{} requests per batch; {}",
                plan.first().map_or(0, |a| a.batch),
                regions.join("; ")
            )
        }
        Err(e) => e.to_string(),
    }
}

/// A name part: lowercase letters and digits, anything else `_`.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A percentage as a name part: `10`, `12p5`.
fn number_slug(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}").replace('.', "p")
    }
}

/// The tutorial's check names, in order (`--list` and docs without an expectations file).
pub fn tutorial_checks() -> Vec<String> {
    Spec::default().check_names()
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
pub fn selected(args: &Arguments, spec: &Spec) -> Vec<String> {
    spec.check_names()
        .into_iter()
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
pub fn left_out(args: &Arguments, spec: &Spec) -> (Vec<String>, Option<String>) {
    let chosen = selected(args, spec);
    let not_run: Vec<String> = spec
        .check_names()
        .into_iter()
        .filter(|c| !chosen.contains(c))
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
pub fn listing(spec: &Spec) -> Vec<Trial> {
    spec.check_names()
        .into_iter()
        .map(|name| Trial::test(name, || Ok(())))
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
    suite
        .spec
        .checks()
        .into_iter()
        .map(|check| {
            let (suite, runtime, results, live) = (
                suite.clone(),
                runtime.clone(),
                results.clone(),
                live.clone(),
            );
            Trial::test(check.name.clone(), move || {
                let start = Instant::now();
                let name = check.name.as_str();
                let blocked = prerequisites::blocked_by(
                    &check.needs,
                    &results.lock().unwrap_or_else(|e| e.into_inner()),
                );
                let result = match blocked {
                    Some(root) => CheckResult::blocked(name, &root, &suite.spec.expects(&check)),
                    None => {
                        let outcome = runtime.block_on(suite.run_check(&check));
                        suite.result_of(&check, outcome, start)
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

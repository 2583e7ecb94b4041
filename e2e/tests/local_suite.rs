//! The suite on a real Envoy: it passes on the project's manifests, and each broken variant
//! of the routing makes the check that guards against it fail.
//!
//! Needs Envoy: `cargo xtask test` provides it through ENVOY_BIN; a plain `cargo test` without
//! it fails here with the instructions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::local::LocalOptions;
use e2e::report::RunReport;
use e2e::report::live::LiveReport;
use e2e::run::{RunOutcome, new_run_id, run_local};
use e2e::suite::{Spec, harness_arguments};

fn envoy() -> PathBuf {
    match std::env::var_os(ENVOY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ENVOY_BIN_ENV} is not set: {HOW_TO_GET_ENVOY}"),
    }
}

fn project_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Runs the suite (or the checks `harness` selects) with a short patience.
fn run(
    manifests: &Path,
    istio: &str,
    harness: &[&str],
    patience: Duration,
) -> (RunOutcome, tempfile::TempDir) {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let opts = options(manifests, istio, patience, &artifacts);
    let outcome = run_with(&opts, harness).expect("mesh starts");
    (outcome, artifacts)
}

/// Local options for a run of `manifests` into `artifacts`.
fn options(
    manifests: &Path,
    istio: &str,
    patience: Duration,
    artifacts: &tempfile::TempDir,
) -> LocalOptions {
    LocalOptions {
        manifests: manifests.to_owned(),
        istio: istio.parse().expect("version"),
        envoy: envoy(),
        artifacts: artifacts.path().join("run"),
        patience,
        mirror_host: "mirror".into(),
        host: "reviews".into(),
        run_id: new_run_id(),
        concurrency: e2e::suite::DEFAULT_CONCURRENCY,
        allow_lint_errors: false,
        workloads: Vec::new(),
        run_started: std::time::Instant::now(),
    }
}

/// Runs the suite (or the checks `harness` selects) with `opts`.
fn run_with(opts: &LocalOptions, harness: &[&str]) -> Result<RunOutcome, e2e::run::RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let args: Vec<String> = harness.iter().map(|s| (*s).to_owned()).collect();
    let mut args = harness_arguments(&args);
    // The inner harness writes straight to stdout, past cargo's capture; keep it as evidence.
    std::fs::create_dir_all(&opts.artifacts).expect("artifacts dir");
    args.logfile = Some(opts.artifacts.join("harness.log").display().to_string());
    // As `mirror-e2e local` does: the expectations beside the manifests, else the tutorial's.
    let spec = Spec::for_manifests(&opts.manifests, None).expect("expectations");
    run_local(&runtime, opts, spec, &args, &LiveReport::default())
}

fn failed(report: &RunReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect()
}

#[test]
fn project_manifests_pass_every_check() {
    let (outcome, _dir) = run(&project_manifests(), "1.31.1", &[], Duration::from_secs(30));
    let report = &outcome.report;
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.checks.len(), 7, "{}", report.summary());
    for file in [
        "summary.txt",
        "junit.xml",
        "envoy-bootstrap.json",
        "envoy-config-dump.json",
        "envoy-access.log",
        "workloads/mirror.log",
    ] {
        assert!(
            outcome.artifacts.join(file).is_file(),
            "missing artifact {file}"
        );
    }
}

#[test]
fn shadow_suffix_is_seen_when_emulating_istio_1_27() {
    let (outcome, _dir) = run(
        &project_manifests(),
        "1.27.3",
        &["--exact", "mirror::shadow_host_matches_istio_version"],
        Duration::from_secs(30),
    );
    assert!(outcome.report.passed(), "{}", outcome.report.summary());
    let log = std::fs::read_to_string(outcome.artifacts.join("workloads/mirror.log"))
        .expect("mirror log");
    assert!(
        log.contains("\"hostname\": \"reviews-shadow\""),
        "Envoy appended no -shadow: {log}"
    );
}

/// A copy of the project's manifests with one edit to the VirtualService under test.
fn mutated(from: &str, to: &str) -> tempfile::TempDir {
    mutated_file("routing/virtual-service.yaml", from, to)
}

/// A copy of the project's manifests with `from` replaced by `to` in `file`.
fn mutated_file(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&project_manifests(), dir.path());
    let vs = dir.path().join(file);
    let text = std::fs::read_to_string(&vs).expect("virtual service");
    assert!(
        text.contains(from),
        "the mutation must change something: `{from}` not in {}",
        vs.display()
    );
    std::fs::write(&vs, text.replace(from, to)).expect("write mutation");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Runs one check on mutated manifests and asserts that it, and the run, fail.
fn assert_mutation_fails(from: &str, to: &str, check: &str, reason: &str) {
    let manifests = mutated(from, to);
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", check],
        Duration::from_secs(2),
    );
    assert_eq!(
        failed(&outcome.report),
        [check],
        "{}",
        outcome.report.summary()
    );
    assert!(
        outcome.conclusion.has_failed(),
        "the run must exit non-zero"
    );
    let message = &outcome.report.checks[0].message;
    assert!(
        message.contains(reason),
        "failure should say `{reason}`: {message}"
    );
}

#[test]
fn routing_tester_to_v1_fails_the_v2_check() {
    assert_mutation_fails(
        "subset: v2",
        "subset: v1",
        "routing::tester_served_by_v2",
        "served by reviews-v1, expected reviews-v2",
    );
}

#[test]
fn dropping_the_mirror_fails_the_mirror_check() {
    assert_mutation_fails(
        "      mirror:\n        host: mirror\n      mirrorPercentage:\n        value: 100.0\n",
        "",
        "mirror::tester_requests_mirrored_with_end_user",
        "never reached the mirror",
    );
}

#[test]
fn matching_capitalised_tester_fails_routing() {
    assert_mutation_fails(
        "exact: tester",
        "exact: Tester",
        "routing::tester_served_by_v2",
        "expected reviews-v2",
    );
}

#[test]
fn a_broken_tester_route_fails_the_whole_run_in_one_patience_naming_the_cause_and_route() {
    // The default local patience: the four mirror checks that need the tester route are
    // blocked, not retried.
    let manifests = mutated("exact: tester", "exact: Tester");
    let started = std::time::Instant::now();
    let (outcome, _dir) = run(manifests.path(), "1.31.1", &[], Duration::from_secs(5));
    let took = started.elapsed();
    let report = &outcome.report;
    assert!(
        took <= Duration::from_secs(7),
        "took {took:?}\n{}",
        report.summary()
    );
    assert_eq!(
        report.verdict(),
        (
            false,
            "routing::tester_served_by_v2 — tester requests were served by reviews-v1 through route \"default-to-v1\"; 4 checks blocked".to_owned()
        ),
        "{}",
        report.summary()
    );
    assert_eq!(report.exit(), e2e::exit::Exit::CheckFailed);
    let tester = &report.checks[1];
    assert_eq!(tester.observed["served by"], "reviews-v1");
    assert_eq!(tester.observed["route"], "default-to-v1");
    assert!(
        tester.observed["mirrored"].starts_with("0 of "),
        "nothing mirrored: {:?}",
        tester.observed
    );
    // One run tag in the header, none in the messages.
    assert!(
        !tester.message.contains(&report.run_id),
        "{}",
        tester.message
    );
    for blocked in &report.checks[2..] {
        if blocked.name == "mirror::anonymous_requests_not_mirrored" {
            // Its barrier goes straight to the mirror: it needs no tester route, and runs.
            assert!(blocked.passed, "{}", report.summary());
            continue;
        }
        assert_eq!(
            blocked.blocked_by.as_deref(),
            Some("routing::tester_served_by_v2"),
            "{}",
            report.summary()
        );
        assert!(
            blocked.timeline.is_empty(),
            "spent no patience: {blocked:?}"
        );
    }
}

#[test]
fn a_filter_that_leaves_the_tester_route_out_runs_the_mirror_checks_normally() {
    let (outcome, _dir) = run(
        &project_manifests(),
        "1.31.1",
        &["--exact", "mirror::shadow_host_matches_istio_version"],
        Duration::from_secs(30),
    );
    let report = &outcome.report;
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.checks[0].blocked_by, None);
    assert_eq!(
        report.verdict().1,
        "1 check passed; 1 of 7 checks run (--exact `mirror::shadow_host_matches_istio_version`); 6 not run"
    );
}

/// A mutation lint refuses: the run stops before anything starts, naming the finding with
/// its file and line, and still writes its report. Returns options that allow lint errors,
/// so the caller can show the run then fails as on a cluster (issue 16: local mode must not
/// pass what a cluster fails).
fn refused_by_lint_then_run_allowed(
    from: &str,
    to: &str,
    finding: &str,
) -> (LocalOptions, tempfile::TempDir, tempfile::TempDir) {
    let manifests = mutated(from, to);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(manifests.path(), "1.31.1", Duration::from_secs(2), &dir);
    let err = run_with(&opts, &[])
        .err()
        .expect("a lint error stops the run")
        .to_string();
    assert!(
        err.contains("virtual-service.yaml:") && err.contains(finding),
        "{err}"
    );
    let report = std::fs::read_to_string(opts.artifacts.join("summary.txt")).expect("a report");
    assert!(
        report.contains("stopped before its checks finished"),
        "{report}"
    );
    opts.allow_lint_errors = true;
    (opts, manifests, dir)
}

/// Runs the mirror check with `opts` and asserts that it, and the run, fail because nothing
/// reached the mirror.
fn assert_nothing_mirrored(opts: &LocalOptions) {
    let outcome = run_with(
        opts,
        &["--exact", "mirror::tester_requests_mirrored_with_end_user"],
    )
    .expect("runs");
    assert!(
        outcome.conclusion.has_failed(),
        "{}",
        outcome.report.summary()
    );
    assert!(
        outcome.report.checks[0]
            .message
            .contains("never reached the mirror"),
        "{}",
        outcome.report.summary()
    );
}

#[test]
fn mirroring_to_a_host_without_workload_stops_the_run_and_fails_the_mirror_check_when_allowed() {
    let (opts, _manifests, _dir) = refused_by_lint_then_run_allowed(
        "host: mirror",
        "host: ghost",
        "host `ghost` names no Service",
    );
    assert_nothing_mirrored(&opts);
}

#[test]
fn mirror_percentage_zero_fails_the_mirror_check() {
    assert_mutation_fails(
        "value: 100.0",
        "value: 0",
        "mirror::tester_requests_mirrored_with_end_user",
        "never reached the mirror",
    );
}

#[test]
fn two_runs_side_by_side_do_not_interfere_and_leave_no_envoy() {
    let runs: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                run(
                    &project_manifests(),
                    "1.31.1",
                    &["mirror::"],
                    Duration::from_secs(30),
                )
            })
        })
        .collect();
    for handle in runs {
        let (outcome, _dir) = handle.join().expect("run thread");
        assert!(outcome.report.passed(), "{}", outcome.report.summary());
        let admin = std::fs::read_to_string(outcome.artifacts.join("envoy-admin-address.txt"))
            .expect("admin address");
        assert!(
            std::net::TcpStream::connect(admin.trim()).is_err(),
            "Envoy's admin port {admin} still accepts connections after the run"
        );
    }
}

#[test]
fn upgrading_across_1_28_reports_the_shadow_host_as_an_intended_behaviour_change() {
    use e2e::compare::{Verdict, compare};
    let (before, _d1) = run(&project_manifests(), "1.27.9", &[], Duration::from_secs(30));
    let (after, _d2) = run(
        &project_manifests(),
        "1.28.10",
        &[],
        Duration::from_secs(30),
    );
    assert!(before.report.passed(), "{}", before.report.summary());
    assert!(after.report.passed(), "{}", after.report.summary());
    let comparison = compare(&before.report, &after.report);
    assert!(!comparison.failed(), "{}", comparison.render());
    let shadow = comparison
        .checks
        .iter()
        .find(|(name, _)| name == "mirror::shadow_host_matches_istio_version")
        .map(|(_, v)| v.clone());
    match shadow {
        Some(Verdict::Intended(why)) => assert!(
            why.contains("shadow host `reviews-shadow` -> `reviews`"),
            "{why}"
        ),
        other => panic!(
            "expected an intended behaviour change, got {other:?}\n{}",
            comparison.render()
        ),
    }
    let same = comparison
        .checks
        .iter()
        .filter(|(_, v)| *v == Verdict::Same)
        .count();
    assert_eq!(same, 6, "{}", comparison.render());
}

/// A `--workload` program of the tests, as `NAME=COMMAND`.
fn test_workload(name: &str, args: &str) -> e2e::workload::WorkloadCommand {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/productpage.py");
    format!("{name}=python3 {} {{port}} {args}", script.display())
        .parse()
        .expect("workload syntax")
}

#[test]
fn a_real_productpage_program_runs_the_whole_path_through_its_sidecar() {
    // Ingress -> the Python productpage -> HTTP_PROXY (its sidecar) -> reviews and mirror.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(
        &project_manifests(),
        "1.31.1",
        Duration::from_secs(10),
        &dir,
    );
    opts.workloads = vec![test_workload("productpage-v1", "")];
    let outcome = run_with(&opts, &[]).expect("runs");
    assert!(outcome.report.passed(), "{}", outcome.report.summary());
    let log = std::fs::read_to_string(opts.artifacts.join("workloads/productpage-v1.log"))
        .expect("the program's output is its log");
    assert!(log.contains("GET /productpage"), "{log}");
}

#[test]
fn a_productpage_that_drops_end_user_fails_routing_and_mirroring_saying_the_header_never_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(&project_manifests(), "1.31.1", Duration::from_secs(2), &dir);
    opts.workloads = vec![test_workload("productpage-v1", "--drop-end-user")];
    let outcome = run_with(&opts, &["--exact", "routing::tester_served_by_v2"]).expect("runs");
    let message = &outcome.report.checks[0].message;
    assert!(
        !outcome.report.passed()
            && message.contains("served by reviews-v1")
            && message.contains("the `end-user: tester` header never arrived"),
        "{}",
        outcome.report.summary()
    );
    let outcome = run_with(
        &opts,
        &["--exact", "mirror::tester_requests_mirrored_with_end_user"],
    )
    .expect("runs");
    let message = &outcome.report.checks[0].message;
    assert!(
        message.contains("never reached the mirror") && message.contains("header never arrived"),
        "{}",
        outcome.report.summary()
    );
}

#[test]
fn a_workload_that_is_not_a_deployment_stops_the_run_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(&project_manifests(), "1.31.1", Duration::from_secs(2), &dir);
    opts.workloads = vec![test_workload("productpage", "")];
    let err = run_with(&opts, &[]).err().expect("an error").to_string();
    assert!(
        err.contains("no Deployment productpage in the manifests")
            && err.contains("productpage-v1"),
        "{err}"
    );
}

#[test]
fn a_gateway_that_does_not_route_productpage_fails_naming_the_gateway_routes() {
    let manifests = mutated_file(
        "bookinfo-gateway.yaml",
        "exact: /productpage",
        "exact: /products",
    );
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", "routing::anonymous_served_by_v1"],
        Duration::from_secs(2),
    );
    let message = &outcome.report.checks[0].message;
    assert!(
        !outcome.report.passed()
            && message.contains("the ingress gateway answered 404 for GET /productpage")
            && message.contains("\"path\":\"/products\""),
        "{}",
        outcome.report.summary()
    );
}

/// The tester route's destination, as the project's VirtualService spells it.
const TESTER_DESTINATION: &str = "            host: reviews\n            subset: v2\n";

#[test]
fn a_route_to_a_port_the_service_does_not_expose_is_refused_by_lint_and_gets_503_as_on_a_cluster() {
    // istiod builds clusters only for the Service's ports: outbound|8080|v2|reviews... does not
    // exist, so Envoy answers 503 (NC, cluster_not_found) and productpage shows no reviews.
    let (opts, _manifests, _dir) = refused_by_lint_then_run_allowed(
        TESTER_DESTINATION,
        "            host: reviews\n            subset: v2\n            port:\n              number: 8080\n",
        "host:port not found: \"reviews:8080\" (Service reviews exposes 9080)",
    );
    let outcome = run_with(&opts, &["--exact", "routing::tester_served_by_v2"]).expect("runs");
    assert!(
        outcome.conclusion.has_failed(),
        "{}",
        outcome.report.summary()
    );
    let message = &outcome.report.checks[0].message;
    assert!(
        message.contains("expected reviews-v2"),
        "{}",
        outcome.report.summary()
    );
    let access = std::fs::read_to_string(opts.artifacts.join("envoy-access.log"))
        .expect("Envoy's access log");
    assert!(
        access
            .lines()
            .any(|l| l.contains("GET reviews:9080/reviews/0") && l.contains(" 503 NC ")),
        "no 503 NC (cluster_not_found) for reviews in Envoy's access log:\n{access}"
    );
}

#[test]
fn a_mirror_to_a_port_the_service_does_not_expose_is_refused_by_lint_and_mirrors_nothing() {
    let (opts, _manifests, _dir) = refused_by_lint_then_run_allowed(
        "      mirror:\n        host: mirror\n",
        "      mirror:\n        host: mirror\n        port:\n          number: 8080\n",
        "host:port not found: \"mirror:8080\" (Service mirror exposes 9080)",
    );
    assert_nothing_mirrored(&opts);
}

#[test]
fn a_mirror_percentage_istio_rejects_stops_the_run_even_when_lint_errors_are_allowed() {
    let (opts, _manifests, _dir) =
        refused_by_lint_then_run_allowed("value: 100.0", "value: 150", "150 is outside 0..100");
    // Istio's webhook (pkg/config/validation/virtualservice.go, validateHTTPRoute) refuses
    // the object: a cluster never gets to run the checks.
    let err = run_with(&opts, &[])
        .err()
        .expect("the run stops at apply, as on a cluster")
        .to_string();
    assert!(
        err.contains("virtual-service.yaml:")
            && err.contains(
                "VirtualService reviews: admission webhook \"validation.istio.io\" denied the request: configuration is invalid: mirror_percentage must have a max value of 100 (it has 150.000000)"
            ),
        "{err}"
    );
}

#[test]
fn a_catch_all_route_before_the_tester_route_is_an_unreachable_rule_warning_and_fails_routing() {
    let catch_all = "    - name: default-to-v1\n      route:\n        - destination:\n            host: reviews\n            subset: v1\n";
    let vs = std::fs::read_to_string(project_manifests().join("routing/virtual-service.yaml"))
        .expect("virtual service");
    let tester_route = vs
        .split_once("  http:\n")
        .and_then(|(_, routes)| routes.strip_suffix(catch_all))
        .expect("the tester route, then the catch-all");
    let manifests = mutated(
        &format!("{tester_route}{catch_all}"),
        &format!("{catch_all}{tester_route}"),
    );
    let warnings: Vec<String> = e2e::lint::lint_paths(&[manifests.path().to_owned()])
        .expect("lints")
        .iter()
        .map(ToString::to_string)
        .filter(|f| f.contains("[unreachable-rule]"))
        .collect();
    assert!(
        warnings.len() == 1
            && warnings[0].contains(
                "warning[unreachable-rule]: VirtualService reviews: spec.http[1]: IST0130: VirtualService rule \"tester-to-v2-mirrored\" not used (route without matches defined before)."
            ),
        "{warnings:#?}"
    );
    // A warning does not stop the run; the report carries it, and routing fails.
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", "routing::tester_served_by_v2"],
        Duration::from_secs(2),
    );
    assert!(
        outcome.conclusion.has_failed(),
        "{}",
        outcome.report.summary()
    );
    assert!(
        outcome
            .report
            .notes
            .iter()
            .any(|n| n.contains("[unreachable-rule]") && n.contains("tester-to-v2-mirrored")),
        "{:?}",
        outcome.report.notes
    );
}

/// The project's manifests with the VirtualService changed (`from` -> `to`) and the
/// expectations beside them replaced by `expectations`: a user's own scenario.
fn scenario(from: &str, to: &str, expectations: &str) -> tempfile::TempDir {
    let dir = mutated(from, to);
    std::fs::write(dir.path().join("expectations.yaml"), expectations).expect("expectations");
    dir
}

/// The tutorial's expectations with `tester`'s mirrored share and `anonymous`'s split.
fn expectations(anonymous_served_by: &str, tester_mirrored: &str) -> String {
    format!(
        "service: reviews\nmirror: mirror\nidentities:\n  anonymous:\n    served_by: {anonymous_served_by}\n    mirrored: 0\n  tester:\n    served_by: {{v2: 100}}\n    mirrored: {tester_mirrored}\n    mirror_sees: {{end-user: tester}}\n"
    )
}

const TEN_PERCENT: (&str, &str) = ("value: 100.0", "value: 10.0");

#[test]
fn a_ten_percent_mirror_passes_when_the_expectations_say_ten_percent() {
    let manifests = scenario(
        TEN_PERCENT.0,
        TEN_PERCENT.1,
        &expectations("{v1: 100}", "10"),
    );
    let (outcome, _dir) = run(manifests.path(), "1.31.1", &[], Duration::from_secs(30));
    let report = &outcome.report;
    assert!(report.passed(), "{}", report.summary());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"mirror::tester_requests_mirrored_10_percent"),
        "a check named after the scenario: {names:?}"
    );
    assert_eq!(names.len(), 7, "{names:?}");
}

#[test]
fn a_ten_percent_mirror_fails_when_the_expectations_say_all_naming_both_fractions() {
    let manifests = scenario(
        TEN_PERCENT.0,
        TEN_PERCENT.1,
        &expectations("{v1: 100}", "100"),
    );
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", "mirror::tester_requests_mirrored_with_end_user"],
        Duration::from_secs(5),
    );
    let report = &outcome.report;
    assert_eq!(
        failed(report),
        ["mirror::tester_requests_mirrored_with_end_user"]
    );
    let message = &report.checks[0].message;
    assert!(
        message.contains("tester requests mirrored (") && message.contains("%), expected 100%"),
        "names the measured and the expected fraction: {message}"
    );
}

const NINETY_TEN: (&str, &str) = (
    "            subset: v1\n",
    "            subset: v1\n          weight: 90\n        - destination:\n            host: reviews\n            subset: v2\n          weight: 10\n",
);

#[test]
fn a_ninety_ten_canary_passes_when_the_expectations_say_so() {
    let manifests = scenario(
        NINETY_TEN.0,
        NINETY_TEN.1,
        &expectations("{v1: 90, v2: 10}", "100"),
    );
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["routing::"],
        Duration::from_secs(30),
    );
    let report = &outcome.report;
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(
        report.checks[0].name,
        "routing::anonymous_served_by_v1_90_v2_10"
    );
}

#[test]
fn a_ninety_ten_canary_fails_when_the_expectations_say_all_to_v1() {
    let manifests = scenario(
        NINETY_TEN.0,
        NINETY_TEN.1,
        &expectations("{v1: 100}", "100"),
    );
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", "routing::anonymous_served_by_v1"],
        Duration::from_secs(5),
    );
    let report = &outcome.report;
    assert_eq!(failed(report), ["routing::anonymous_served_by_v1"]);
    assert!(
        report.checks[0].message.contains("reviews-v2"),
        "a request served by v2 is named: {}",
        report.checks[0].message
    );
}

//! The sampled checks on a real Envoy: a split or a mirrored share passes when the routing
//! does what the expectations say, and fails when it does something else, including the
//! wrong meshes a new team's trial saw pass (a 95/5 split served 100/0, a 5% mirror that
//! mirrors 0.1%), and what was measured is what the report shows.
//!
//! Needs Envoy: `cargo xtask test` provides it through ENVOY_BIN.

mod support;

use std::time::Duration;

use support::*;

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
    let sampled = report
        .checks
        .iter()
        .find(|c| c.name == "mirror::tester_requests_mirrored_10_percent")
        .expect("ran");
    let share = &sampled.observed["mirrored share"];
    assert!(
        share.ends_with(" of 1700)") && !share.contains('±'),
        "the share it measured, not the tolerance: {share}"
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

const NINETY_FIVE_FIVE: (&str, &str) = (
    "            subset: v1\n",
    "            subset: v1\n          weight: 95\n        - destination:\n            host: reviews\n            subset: v2\n          weight: 5\n",
);

/// The observation `what` of the report's only check.
fn observed<'r>(report: &'r e2e::report::RunReport, what: &str) -> &'r str {
    report.checks[0]
        .observed
        .get(what)
        .map_or("(none)", String::as_str)
}

#[test]
fn a_95_5_split_served_100_0_fails_and_shows_what_was_served() {
    // The trial's green check: the routing sends everything to v1.
    let manifests = with_expectations(&expectations("{v1: 95, v2: 5}", "100"));
    let check = "routing::anonymous_served_by_v1_95_v2_5";
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", check],
        Duration::from_secs(5),
    );
    let report = &outcome.report;
    assert_eq!(failed(report), [check], "{}", report.summary());
    assert_eq!(observed(report, "split"), "v1 100% (3650), v2 0% (0)");
    let message = &report.checks[0].message;
    assert!(
        message.contains("served by v1 (100%), expected 95%, accepting 3425..=3527 of 3650"),
        "{message}"
    );
    assert!(
        report.summary_md().contains("v1 100% (3650), v2 0% (0)"),
        "the summary shows what was served: {}",
        report.summary_md()
    );
    // Lint's intent warning reaches the run: the summary prints it, the report keeps it.
    let intent = "warning[intent]: expectations say anonymous -> v1 95%, v2 5%, but VirtualService reviews (http[1]) sends anonymous requests to v1";
    assert!(
        report.notes.iter().any(|n| n.contains(intent)),
        "{:#?}",
        report.notes
    );
    assert!(report.summary().contains(intent), "{}", report.summary());
}

#[test]
fn a_95_5_split_passes_and_reports_the_split_it_measured() {
    let manifests = scenario(
        NINETY_FIVE_FIVE.0,
        NINETY_FIVE_FIVE.1,
        &expectations("{v1: 95, v2: 5}", "100"),
    );
    let check = "routing::anonymous_served_by_v1_95_v2_5";
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", check],
        Duration::from_secs(30),
    );
    let report = &outcome.report;
    assert!(report.passed(), "{}", report.summary());
    let split = observed(report, "split");
    assert!(
        split.starts_with("v1 9") && split.contains(", v2 ") && !split.contains('±'),
        "the measured split, not the tolerance: {split}"
    );
    assert_eq!(
        report.checks[0].attempts, 1,
        "one batch decides in local mode"
    );
}

#[test]
fn a_5_percent_mirror_that_mirrors_a_tenth_of_a_percent_fails() {
    let manifests = scenario(TEN_PERCENT.0, "value: 0.1", &expectations("{v1: 100}", "5"));
    let check = "mirror::tester_requests_mirrored_5_percent";
    let (outcome, _dir) = run(
        manifests.path(),
        "1.31.1",
        &["--exact", check],
        Duration::from_secs(5),
    );
    let report = &outcome.report;
    assert_eq!(failed(report), [check], "{}", report.summary());
    let share = observed(report, "mirrored share");
    assert!(share.ends_with(" of 3650)"), "{share}");
    assert!(
        report.checks[0]
            .message
            .contains("expected 5%, accepting 123..=225 of 3650"),
        "{}",
        report.checks[0].message
    );
}

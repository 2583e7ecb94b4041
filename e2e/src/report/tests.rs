//! The report's texts: summary, Markdown, JUnit, JSON and the HTML page with its pictures.

use super::*;

/// A run of the tutorial's checks: two passed, one failed.
pub(crate) fn report() -> RunReport {
    RunReport {
        run_id: "r1".into(),
        mode: "local".into(),
        istio: "1.31.1".into(),
        phases: vec![("start envoy".into(), Duration::from_millis(70))],
        checks: vec![
            CheckResult {
                name: "routing::tester_served_by_v2".into(),
                passed: true,
                duration: Duration::from_millis(12),
                attempts: 4,
                retries: 1,
                message: "ok".into(),
                ..CheckResult::default()
            },
            CheckResult {
                name: "mirror::tester_requests_mirrored_with_end_user".into(),
                expected: "every tagged tester request shows up in the mirror's log with `end-user: tester`".into(),
                passed: false,
                duration: Duration::from_secs(2),
                attempts: 9,
                message: "3 of 10 tester requests never reached the mirror".into(),
                ..CheckResult::default()
            },
        ],
        notes: vec![],
        ..RunReport::default()
    }
}

#[test]
fn durations_are_seconds_in_report_json() {
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&report()).expect("json")).expect("parse");
    assert_eq!(json["checks"][0]["duration"], 0.012);
    assert_eq!(json["phases"][0], serde_json::json!(["start envoy", 0.07]));
}

#[test]
fn a_run_that_stopped_early_says_why_everywhere() {
    let mut r = report();
    r.checks.clear();
    r.error = Some("envoy exited at startup: bad bootstrap".into());
    assert!(!r.passed());
    let s = r.summary();
    assert!(
        s.contains("(none ran)") && s.contains("stopped before its checks finished: envoy exited"),
        "{s}"
    );
    let xml = r.junit();
    assert!(
        xml.contains("errors=\"1\"") && xml.contains("envoy exited at startup"),
        "{xml}"
    );
    r.checks.push(CheckResult {
        name: "mirror::x".into(),
        ..CheckResult::default()
    });
    assert!(
        r.summary()
            .contains("FAIL mirror::x (0.000s, failed before its first attempt)")
    );
}

#[test]
fn summary_names_checks_attempts_phases_and_ends_with_the_verdict() {
    let s = report().summary();
    assert!(
        s.contains(
            "PASS routing::tester_served_by_v2 (0.012s, 4 attempts: 1 failed, then 3 passed in a row)"
        ),
        "{s}"
    );
    assert!(
        s.contains(
            "FAIL mirror::tester_requests_mirrored_with_end_user (2.000s, failed after 9 attempts)"
        ),
        "{s}"
    );
    assert!(s.contains("start envoy"), "{s}");
    assert!(
        s.trim_end().ends_with(
            "FAIL: mirror::tester_requests_mirrored_with_end_user — 3 of 10 tester requests never reached the mirror"
        ),
        "{s}"
    );
    assert!(!report().passed());
    let mut clean = report();
    clean.checks.truncate(1);
    clean.checks[0].retries = 0;
    clean.checks[0].attempts = 3;
    assert!(
        clean
            .summary()
            .contains("(0.012s, 3 passing attempts in a row)"),
        "passes in a row are not retries: {}",
        clean.summary()
    );
}

#[test]
fn every_way_a_run_ends_has_its_class() {
    let mut r = report();
    assert_eq!(r.exit(), Exit::CheckFailed);
    r.checks.remove(1);
    assert_eq!(r.exit(), Exit::Passed);
    r.error = Some("envoy exited at startup".into());
    assert_eq!(r.exit(), Exit::Environment, "unless it says otherwise");
    r.stopped_as = Some(Exit::CheckFailed);
    assert_eq!(r.exit(), Exit::CheckFailed);
    let live = live::LiveReport::default();
    let dir = tempfile::tempdir().expect("dir");
    live.start(dir.path(), &report());
    live.write_stopped("interrupted (Ctrl-C)").expect("written");
    let back = RunReport::read(dir.path()).expect("read");
    assert_eq!(back.exit(), Exit::Interrupted);
    assert!(back.summary_md().contains("exit 130 (interrupted)"));
}

#[test]
fn report_json_round_trips_through_a_run_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("20261125-1");
    std::fs::create_dir_all(&run).expect("mkdir");
    let mut r = report();
    r.checks[0]
        .observed
        .insert("served by".into(), "reviews-v2".into());
    r.write(&run).expect("written");
    let back = RunReport::read(dir.path()).expect("found one level down");
    assert_eq!(back.checks[0].observed["served by"], "reviews-v2");
    assert_eq!(back.phases, r.phases);
}

#[test]
fn junit_has_one_case_per_check_with_the_failure_message() {
    let xml = report().junit();
    assert!(
        xml.contains("tests=\"2\"") && xml.contains("failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("classname=\"mirror\""), "{xml}");
    assert!(
        xml.contains("3 of 10 tester requests never reached the mirror"),
        "{xml}"
    );
    assert!(xml.contains("name=\"attempts\" value=\"4\""), "{xml}");
}

#[test]
fn summary_md_has_the_verdict_the_checks_and_what_to_open_for_a_failure() {
    let md = report().summary_md();
    assert!(
        md.starts_with("### mirror-e2e local: **FAIL**: mirror::tester_requests_mirrored_with_end_user — 3 of 10 tester requests never reached the mirror\n"),
        "{md}"
    );
    assert!(
        md.contains("| ✅ PASS | `routing::tester_served_by_v2` | 4 attempts: 1 failed, then 3 passed in a row | 0.012s | ok |"),
        "{md}"
    );
    assert!(
        md.contains("#### ❌ `mirror::tester_requests_mirrored_with_end_user`"),
        "{md}"
    );
    assert!(
        md.contains("- expected: every tagged tester request shows up in the mirror's log"),
        "{md}"
    );
    assert!(md.contains("- open first: `workloads/mirror.log"), "{md}");
    let mut passing = report();
    passing.checks.remove(1);
    assert!(passing.summary_md().contains("**PASS**: 1 check passed"));
}

#[test]
fn a_report_read_back_describes_its_checks_in_its_own_expectations_words() {
    // A run with a user's expectations file, its report read back later (the upgrade
    // walk's comparison): its words, not the tutorial's.
    let mut r = report();
    r.checks[1].expected = "every tagged jason request shows up in the mirror's log".into();
    let back: RunReport =
        serde_json::from_str(&serde_json::to_string(&r).expect("json")).expect("reads back");
    let md = back.summary_md();
    assert!(
        md.contains("- expected: every tagged jason request shows up in the mirror's log\n"),
        "{md}"
    );
    assert!(
        html::render(&back).contains("every tagged jason request shows up in the mirror"),
        "the page too"
    );
}

#[test]
fn report_html_is_self_contained_with_rows_a_timeline_and_the_journeys() {
    let mut r = report();
    r.phases.push(("checks".into(), Duration::from_secs(3)));
    r.checks[0].timeline = vec![(0.0, 0.004, false), (0.005, 0.003, true)];
    r.checks[0]
        .observed
        .insert("served by".into(), "reviews-v2".into());
    let page = html::render(&r);
    assert_eq!(page.matches("<tr class=check>").count(), 2, "{page}");
    assert!(page.contains("<svg id=timeline") && page.contains("<svg id=journey"));
    assert!(
        page.contains("fill='#cf222e'><title>attempt at +0.000s"),
        "a failed attempt is red"
    );
    assert!(
        page.contains(">reviews-v2</text>"),
        "the tester's request as observed"
    );
    for external in ["<script", "src=", "href=", "@import", "url(http"] {
        assert!(!page.contains(external), "self-contained: found {external}");
    }
    assert!(page.contains(
        "FAIL</span>: mirror::tester_requests_mirrored_with_end_user — 3 of 10 tester requests"
    ));
}

#[test]
fn a_run_stopped_before_its_checks_draws_no_journey() {
    let mut r = report();
    r.checks.clear();
    r.error = Some("the manifests under test have 1 lint error".into());
    r.stopped_as = Some(Exit::CheckFailed);
    let page = html::render(&r);
    assert!(!page.contains("<svg id=journey"), "{page}");
    assert!(page.contains("exit 1 ("), "{page}");
}

//! The report of runs the suite made: a failure that blocked the checks after it, and a
//! run a filter narrowed. Here rather than beside the report, whose tests need no suite.

use super::{Spec, harness_arguments, left_out, tutorial_checks};
use crate::exit::Exit;
use crate::report::tests::report;
use crate::report::{CheckResult, RunReport, html};

/// The `Tester` mutation's report: the tester's route failed, five mirror checks blocked.
fn blocked_report() -> RunReport {
    let mut checks = vec![
        CheckResult {
            name: "routing::anonymous_served_by_v1".into(),
            passed: true,
            attempts: 3,
            observed: [("served by".to_owned(), "reviews-v1".to_owned())].into(),
            ..CheckResult::default()
        },
        CheckResult {
            name: "routing::tester_served_by_v2".into(),
            attempts: 14,
            message: "served by reviews-v1, expected reviews-v2 (after 14 attempts over 5s; 3 consecutive passes needed)".into(),
            cause: Some("tester requests were served by reviews-v1 through route \"default-to-v1\"".into()),
            observed: [
                ("served by".to_owned(), "reviews-v1".to_owned()),
                ("route".to_owned(), "default-to-v1".to_owned()),
                ("mirrored".to_owned(), "0 of 140".to_owned()),
            ]
            .into(),
            ..CheckResult::default()
        },
    ];
    let spec = Spec::default();
    for name in &tutorial_checks()[2..] {
        checks.push(CheckResult::blocked(
            name,
            "routing::tester_served_by_v2",
            &spec.expectation(name),
        ));
    }
    RunReport {
        run_id: "r1".into(),
        mode: "local".into(),
        istio: "1.31.1".into(),
        checks,
        ..RunReport::default()
    }
}

#[test]
fn the_verdict_names_the_cause_and_the_route_and_counts_what_it_blocked() {
    let r = blocked_report();
    assert_eq!(
        r.verdict(),
        (
            false,
            "routing::tester_served_by_v2 — tester requests were served by reviews-v1 through route \"default-to-v1\"; 5 checks blocked".to_owned()
        )
    );
    assert_eq!(r.exit(), Exit::CheckFailed);
    let s = r.summary();
    assert!(
        s.contains("BLOCKED mirror::percentage_within_tolerance (0.000s, not run (blocked))"),
        "{s}"
    );
    assert!(
        s.contains("blocked by routing::tester_served_by_v2: would have verified that a 50% variant of the routing mirrors 50% of the requests: 1050 requests per batch; 50%: accepts 470..=580 of 1050 (44.76%..55.24%)"),
        "{s}"
    );
    let md = r.summary_md();
    assert!(md.contains("exit 1 (a check failed"), "{md}");
    assert!(md.contains("- observed route: `default-to-v1`"), "{md}");
    assert!(
        md.contains("- open first: `envoy-access.log (which route"),
        "the routing failure's evidence: {md}"
    );
    assert!(
        !md.contains("#### ❌ `mirror::"),
        "a blocked check is not a failure of its own: {md}"
    );
    let xml = r.junit();
    assert!(
        xml.contains("failures=\"1\"") && xml.contains("skipped=\"5\""),
        "{xml}"
    );
}

#[test]
fn a_partial_run_says_so_in_the_verdict_and_lists_the_rest_as_skipped() {
    let mut r = report();
    r.checks.truncate(1);
    let (not_run, selection) = left_out(
        &harness_arguments(&["routing::".to_owned()]),
        &Spec::default(),
    );
    r.checks.push(CheckResult {
        name: "routing::anonymous_served_by_v1".into(),
        passed: true,
        attempts: 3,
        ..CheckResult::default()
    });
    (r.not_run, r.selection) = (not_run, selection);
    assert_eq!(
        r.verdict(),
        (
            true,
            "2 checks passed; 2 of 7 checks run (filter `routing::`); 5 not run".to_owned()
        )
    );
    assert!(r.summary_md().contains("| ➖ NOT RUN | `mirror::percentage_within_tolerance` | - | - | not selected (filter `routing::`) |"));
    let xml = r.junit();
    assert!(
        xml.contains("tests=\"7\"") && xml.contains("skipped=\"5\""),
        "{xml}"
    );
    assert!(
        xml.contains("not run: not selected (filter `routing::`)"),
        "{xml}"
    );
}

#[test]
fn report_html_draws_the_journey_that_happened_in_red() {
    let page = html::render(&blocked_report());
    let journey = &page[page.find("<svg id=journey").expect("a journey")..];
    assert!(
        journey.contains("stroke='#cf222e'/><text x='665' y='41' text-anchor='middle' fill='#cf222e'>reviews-v1</text>"),
        "the tester's request reached reviews-v1, in red: {journey}"
    );
    assert!(journey.contains(">route default-to-v1</text>"), "{journey}");
    assert!(
        journey.contains("fill='#cf222e'>nothing mirrored (0 of 140 requests)</text>"),
        "{journey}"
    );
    assert!(
        journey.contains("fill='#1f2328'>reviews-v1</text>"),
        "the anonymous request as expected: {journey}"
    );
    // Markdown code spans of the messages render as code.
    assert!(
        page.contains("the mirror sees <code>reviews-shadow</code> up to"),
        "{page}"
    );
}

#[test]
fn the_journeys_labels_fit_its_width_on_a_failing_run() {
    let mut r = blocked_report();
    let routing = r
        .checks
        .iter_mut()
        .find(|c| c.name == "routing::tester_served_by_v2")
        .expect("the routing check");
    routing.observed.insert(
        "route".into(),
        "a-very-long-route-name-that-teams-do-write-for-their-canaries".into(),
    );
    routing.observed.insert(
        "served by".into(),
        "reviews-v1-canary-with-a-long-name".into(),
    );
    // The anonymous row passed; the tester's mirror label is the longest one there is.
    for (name, what, value) in [
        (
            "mirror::tester_requests_mirrored_with_end_user",
            "end-user seen by the mirror",
            "tester",
        ),
        (
            "mirror::shadow_host_matches_istio_version",
            "shadow host",
            "reviews-shadow",
        ),
    ] {
        r.checks.retain(|c| c.name != name);
        r.checks.push(CheckResult {
            name: name.into(),
            passed: true,
            observed: [(what.to_owned(), value.to_owned())].into(),
            ..CheckResult::default()
        });
    }
    let page = html::render(&r);
    assert!(page.contains(">mirror: end-user tester, host reviews-shadow</text>"));
    let journey = &page[page.find("<svg id=journey").expect("a journey")..];
    let journey = &journey[..journey.find("</svg>").expect("closed")];
    let attr = |tag: &str, name: &str| -> f64 {
        let from = tag.find(&format!("{name}='")).expect(name) + name.len() + 2;
        tag[from..from + tag[from..].find('\'').expect("quote")]
            .parse()
            .expect("a number")
    };
    let width = attr(journey, "width");
    for text in journey.split("<text ").skip(1) {
        let (tag, rest) = text.split_once('>').expect("a tag");
        let content = rest.split("</text>").next().unwrap_or_default();
        let px = if tag.contains("font-size='11'") {
            11.0
        } else {
            12.0
        };
        // Wider than any sans-serif average glyph: 0.6 em.
        let extent = content.chars().count() as f64 * px * 0.6;
        let x = attr(tag, "x");
        let (left, right) = if tag.contains("text-anchor='middle'") {
            (x - extent / 2.0, x + extent / 2.0)
        } else {
            (x, x + extent)
        };
        assert!(
            left >= 0.0 && right <= width,
            "`{content}` spans {left}..{right} of a {width} px picture"
        );
    }
    for rect in journey.split("<rect ").skip(1) {
        let (x, w) = (attr(rect, "x"), attr(rect, "width"));
        assert!(x + w <= width, "a box ends at {} of {width}", x + w);
    }
}

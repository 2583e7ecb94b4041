use super::*;
use crate::report::CheckResult;

/// A check in a fixture: name, passed, observations.
type Fixture<'a> = (&'a str, bool, &'a [(&'a str, &'a str)]);

fn run(istio: &str, checks: &[Fixture<'_>]) -> RunReport {
    RunReport {
        istio: istio.into(),
        checks: checks
            .iter()
            .map(|(name, passed, observed)| CheckResult {
                name: (*name).into(),
                passed: *passed,
                message: if *passed { "ok".into() } else { "broke".into() },
                observed: observed
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                ..CheckResult::default()
            })
            .collect(),
        ..RunReport::default()
    }
}

const SHADOW: &str = "mirror::shadow_host_matches_istio_version";

#[test]
fn the_shadow_suffix_change_across_1_28_is_intended() {
    let before = run(
        "1.27.7",
        &[(SHADOW, true, &[("shadow host", "reviews-shadow")])],
    );
    let after = run("1.31.1", &[(SHADOW, true, &[("shadow host", "reviews")])]);
    let c = compare(&before, &after);
    assert!(!c.failed(), "{}", c.render());
    assert!(
        matches!(&c.checks[0].1, Verdict::Intended(why) if why.contains("`reviews-shadow` -> `reviews`") && why.contains("1.28"))
    );
    assert!(
        c.render()
            .contains("0 same, 1 intended behaviour change, 0 unexplained"),
        "{}",
        c.render()
    );
}

#[test]
fn sampled_shares_that_both_passed_are_the_same_behaviour() {
    const SPLIT_CHECK: &str = "routing::anonymous_served_by_v1_90_v2_10";
    let before = run(
        "1.30.5",
        &[(
            SPLIT_CHECK,
            true,
            &[("split", "v1 90.1% (1532), v2 9.9% (168)")],
        )],
    );
    let after = run(
        "1.31.1",
        &[(
            SPLIT_CHECK,
            true,
            &[("split", "v1 89.6% (1523), v2 10.4% (177)")],
        )],
    );
    let c = compare(&before, &after);
    assert_eq!(c.checks[0].1, Verdict::Same, "{}", c.render());
    // A sampled check that stops passing is still a regression.
    let failing = run(
        "1.31.1",
        &[(
            SPLIT_CHECK,
            false,
            &[("split", "v1 100% (1700), v2 0% (0)")],
        )],
    );
    assert!(compare(&before, &failing).failed());
}

#[test]
fn the_same_change_without_crossing_1_28_is_unexplained() {
    let before = run(
        "1.30.5",
        &[(SHADOW, true, &[("shadow host", "reviews-shadow")])],
    );
    let after = run("1.31.1", &[(SHADOW, true, &[("shadow host", "reviews")])]);
    let c = compare(&before, &after);
    assert!(c.failed());
    assert!(matches!(&c.checks[0].1, Verdict::Unexplained(why) if why.contains("shadow host")));
}

#[test]
fn any_other_observation_change_fails() {
    let before = run(
        "1.27.7",
        &[(
            "routing::tester_served_by_v2",
            true,
            &[("served by", "reviews-v2")],
        )],
    );
    let after = run(
        "1.31.1",
        &[(
            "routing::tester_served_by_v2",
            true,
            &[("served by", "reviews-v3")],
        )],
    );
    assert!(compare(&before, &after).failed());
}

#[test]
fn outcome_changes_fail_and_unchanged_runs_pass() {
    let before = run(
        "1.30.5",
        &[("a", true, &[]), ("b", false, &[]), ("c", true, &[])],
    );
    let after = run(
        "1.31.1",
        &[("a", false, &[]), ("b", true, &[]), ("d", true, &[])],
    );
    let c = compare(&before, &after);
    let verdicts: Vec<&Verdict> = c.checks.iter().map(|(_, v)| v).collect();
    assert!(matches!(verdicts[0], Verdict::Regression(_)));
    assert!(matches!(verdicts[1], Verdict::Unexplained(_)));
    assert!(matches!(verdicts[2], Verdict::Unexplained(why) if why.contains("did not run")));
    assert!(matches!(verdicts[3], Verdict::Unexplained(why) if why.contains("new after")));
    let same = compare(&before, &before.clone());
    assert!(!same.failed(), "{}", same.render());
}

#[test]
fn a_column_played_by_another_istiod_says_so_in_its_header() {
    let check = [("routing::anonymous_served_by_v1", true, &[][..])];
    let played = |version: &str, label: &str| RunReport {
        version_label: Some(label.to_owned()),
        ..run(version, &check)
    };
    let w = walk(vec![
        played(
            "1.27.9",
            "1.27.9 played by istiod 1.30@9739e10 + 1.27 profile",
        ),
        played("1.31.1", "1.31.1 played by istiod 1.31.0 (eed52eb)"),
    ]);
    let text = w.render();
    // The header, wrapped over its first lines, holds every word of both labels; the
    // hop's note keeps the plain versions.
    let header: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("routing::"))
        .collect();
    assert_eq!(
        header,
        [
            "check                            1.27.9 played by  1.31.1 played by",
            "                                 istiod            istiod 1.31.0",
            "                                 1.30@9739e10 +    (eed52eb)",
            "                                 1.27 profile",
        ],
        "{text}"
    );
    assert!(
            w.markdown().starts_with(
                "| check | 1.27.9 played by istiod 1.30@9739e10 + 1.27 profile | 1.31.1 played by istiod 1.31.0 (eed52eb) |"
            ),
            "{}",
            w.markdown()
        );
    let report = &w.runs[0];
    assert!(
        report.summary().lines().next().is_some_and(
            |l| l.ends_with("mode, Istio 1.27.9 played by istiod 1.30@9739e10 + 1.27 profile)")
        ),
        "{}",
        report.summary()
    );
}

#[test]
fn a_walk_reads_as_a_version_by_check_table_with_the_change_where_it_happened() {
    let old = [(
        "mirror::shadow_host_matches_istio_version",
        true,
        &[("shadow host", "reviews-shadow")][..],
    )];
    let new = [(
        "mirror::shadow_host_matches_istio_version",
        true,
        &[("shadow host", "reviews")][..],
    )];
    let w = walk(vec![
        run("1.27.7", &old),
        run("1.28.4", &new),
        run("1.29.8", &new),
    ]);
    assert!(!w.failed());
    let text = w.render();
    let header = text.lines().next().expect("header");
    assert!(
        header.contains("1.27.7") && header.contains("1.29.8"),
        "{text}"
    );
    let row = text.lines().nth(1).expect("row");
    assert!(
        row.contains("PASS [1]") && row.trim_end().ends_with("PASS"),
        "{text}"
    );
    assert!(text.contains("[1] 1.27.7 -> 1.28.4, mirror::shadow_host_matches_istio_version: shadow host `reviews-shadow` -> `reviews` (intended:"), "{text}");
    assert!(
        text.contains("2 hops: 1 intended behaviour change, 0 unexplained"),
        "{text}"
    );
    assert!(
        w.markdown()
            .contains("| `mirror::shadow_host_matches_istio_version` | PASS | PASS [1] | PASS |"),
        "{}",
        w.markdown()
    );
    // A rollback across the boundary is explained the same way.
    let back = walk(vec![run("1.28.4", &new), run("1.27.7", &old)]);
    assert!(!back.failed(), "{}", back.render());
}

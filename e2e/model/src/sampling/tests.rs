//! The sampling plan's numbers: both error rates for the shares teams write, and the
//! wrong meshes a new team's trial passed.

use super::*;

/// Probability that a mesh at `percent` lands inside `a`'s region over its batch.
fn passes_at(a: &Acceptance, percent: f64) -> f64 {
    let pmf = LnFactorial::up_to(a.batch).pmf(a.batch, percent / 100.0);
    pmf[a.low as usize..=a.high as usize].iter().sum()
}

fn only(shares: &[f64]) -> Acceptance {
    plan(shares).expect("plan").remove(0)
}

#[test]
fn the_binomial_terms_are_exact_on_a_hand_computed_case() {
    // n = 4, p = 1/2: 1, 4, 6, 4, 1 sixteenths.
    let pmf = LnFactorial::up_to(4).pmf(4, 0.5);
    for (got, want) in pmf.iter().zip([1.0, 4.0, 6.0, 4.0, 1.0]) {
        assert!((got - want / 16.0).abs() < 1e-12, "{pmf:?}");
    }
}

#[test]
fn the_shares_teams_write_keep_both_error_rates_under_one_in_a_thousand() {
    // (shares, batch, v's region) as the closing note quotes them.
    let cases: [(&[f64], u32, (u32, u32)); 5] = [
        (&[5.0], 3650, (123, 225)),
        (&[10.0], 1700, (115, 210)),
        (&[50.0], 1050, (470, 580)),
        (&[90.0, 10.0], 1700, (1490, 1585)),
        (&[95.0, 5.0], 3650, (3425, 3527)),
    ];
    for (shares, batch, (low, high)) in cases {
        let plan = plan(shares).expect("plan");
        for a in &plan {
            assert_eq!(a.batch, batch, "{shares:?}: {a}");
            assert!(a.false_fail < ERROR_RATE, "{a}");
            assert_eq!(a.false_pass.len(), 2, "{a}");
            for (wrong, p) in &a.false_pass {
                assert!(*p < ERROR_RATE, "{a}: a {wrong}% mesh passes with {p}");
                assert!((passes_at(a, *wrong) - p).abs() < 1e-12);
            }
        }
        assert_eq!((plan[0].low, plan[0].high), (low, high), "{}", plan[0]);
        // The smallest batch: 50 fewer requests cannot keep both rates.
        let table = LnFactorial::up_to(batch);
        assert!(
            shares
                .iter()
                .any(|&p| region(&table, batch - STEP, p, ERROR_RATE).is_none()),
            "{shares:?}: {} would do",
            batch - STEP
        );
    }
}

#[test]
fn a_split_of_two_shares_is_one_event() {
    let plan = plan(&[95.0, 5.0]).expect("plan");
    let (v1, v2) = (&plan[0], &plan[1]);
    assert_eq!(v1.low, v2.batch - v2.high, "{v1} / {v2}");
    assert_eq!(v1.high, v2.batch - v2.low, "{v1} / {v2}");
}

#[test]
fn a_95_5_split_served_100_0_fails() {
    // The trial's green check: v2's old ±5 points included 0.
    let plan = plan(&[95.0, 5.0]).expect("plan");
    let n = plan[0].batch;
    assert!(!plan[0].accepts(n), "v1 at 100%: {}", plan[0]);
    assert!(!plan[1].accepts(0), "v2 at 0%: {}", plan[1]);
}

#[test]
fn a_5_percent_mirror_that_mirrors_a_tenth_of_a_percent_fails() {
    let a = only(&[5.0]);
    assert!(passes_at(&a, 0.1) < 1e-12, "{a}");
    assert!(passes_at(&a, 0.0) == 0.0, "{a}");
}

#[test]
fn nothing_and_everything_always_fail() {
    for percent in [1.0, 2.0, 5.0, 10.0, 20.0, 33.3, 50.0, 80.0, 95.0, 99.0] {
        let a = only(&[percent]);
        assert!(!a.accepts(0), "{a}");
        assert!(!a.accepts(a.batch), "{a}");
        assert!(
            a.false_fail < ERROR_RATE && a.worst_false_pass() < ERROR_RATE,
            "{a}"
        );
    }
}

#[test]
fn istios_tolerance_is_kept_where_it_is_strict_enough() {
    assert_eq!(tolerance(50.0), 10.0);
    assert_eq!(tolerance(10.0), 5.0);
    assert_eq!(tolerance(90.0), 5.0);
    // Istio's ±5 would include 0 at 5% and 100 at 95%: half the share instead.
    assert_eq!(istio_tolerance(5.0), 5.0);
    assert_eq!(tolerance(5.0), 2.5);
    assert_eq!(tolerance(95.0), 2.5);
    assert_eq!(tolerance(0.0), 0.0);
    assert_eq!(tolerance(100.0), 0.0);
}

#[test]
fn exact_shares_in_a_split_accept_one_count() {
    let plan = plan(&[90.0, 10.0, 0.0]).expect("plan");
    let none = &plan[2];
    assert_eq!((none.low, none.high), (0, 0));
    assert!(!none.accepts(1));
}

#[test]
fn three_shares_share_the_false_fail_budget() {
    let plan = plan(&[50.0, 25.0, 25.0]).expect("plan");
    let total: f64 = plan.iter().map(|a| a.false_fail).sum();
    assert!(total < ERROR_RATE, "{plan:?}");
}

#[test]
fn a_share_too_fine_to_tell_apart_is_refused_with_the_numbers() {
    let err = plan(&[0.5]).expect_err("0.5% needs more than the cap");
    assert_eq!(
        err.to_string(),
        "a share of 0.5% cannot be told from 0.25% or 0.75% with at most 20000 requests per batch (both error rates under 1 in 1000); use a share of at least 1% (or 0)"
    );
    assert!(plan(&[1.0]).is_ok());
    assert_eq!(
        plan(&[120.0]).expect_err("not a share"),
        SamplingError::OutOfRange { percent: 120.0 }
    );
}

#[test]
fn the_region_reads_as_counts_and_percentages() {
    let a = only(&[5.0]);
    assert_eq!(a.region(), "123..=225 of 3650 (3.37%..6.16%)");
    assert_eq!(
        a.to_string(),
        "5%: accepts 123..=225 of 3650 (3.37%..6.16%); a correct mesh fails 1 batch in 1292, one at 2.5% or 7.5% passes 1 batch in 1074"
    );
    assert_eq!(percent_of(1, 3), "33.33%");
    assert_eq!(percent_of(50, 100), "50%");
}

//! How many requests a percentage check needs so that a correct proxy rarely fails it.
//!
//! Envoy samples each request independently, so the number mirrored out of `n` at rate `p`
//! is Binomial(n, p). The check fails a correct proxy when the observed share is more than
//! `tolerance` points from `p`. With n = 300, p = 0.5 and ±10 points that probability is
//! P(|X - 150| > 30) = 2·P(X ≥ 181) ≈ 5.3e-4, under the 1e-3 the suite promises per batch
//! (and the retry needs several such batches in a row only to pass, never to fail).

/// Requests per batch of the 50% check.
pub const BATCH: u32 = 300;
/// The mirrored share the variant configures, in percent.
pub const PERCENT: f64 = 50.0;
/// Allowed distance from [`PERCENT`], in percentage points (Istio's own test uses ±10 at 50%).
pub const TOLERANCE: f64 = 10.0;

/// The tolerance a share of `percent` is checked with, in percentage points: Istio's own
/// mirroring test allows exact 0% and 100%, ±10 points at 50% and ±5 at 10%; shares nearer
/// an end get the tighter one.
pub fn tolerance(percent: f64) -> f64 {
    if percent <= 0.0 || percent >= 100.0 {
        0.0
    } else if percent <= 20.0 || percent >= 80.0 {
        5.0
    } else {
        10.0
    }
}

/// The smallest batch (a multiple of 50) over which a correct proxy at `percent` falls
/// outside `tolerance` less than once in a thousand batches.
pub fn batch_for(percent: f64, tolerance: f64) -> u32 {
    if tolerance == 0.0 {
        return 10;
    }
    (1..=100)
        .map(|k| k * 50)
        .find(|&n| false_failure_probability(n, percent, tolerance) < 1e-3)
        .unwrap_or(5000)
}

/// Whether `mirrored` of `sent` is within tolerance of `percent`.
pub fn within_tolerance(mirrored: u32, sent: u32, percent: f64, tolerance: f64) -> bool {
    let observed = f64::from(mirrored) * 100.0 / f64::from(sent);
    (observed - percent).abs() <= tolerance
}

/// Probability that a correct proxy mirroring at `percent` falls outside `tolerance` over
/// `n` requests: the exact binomial tail, summed in log space.
pub fn false_failure_probability(n: u32, percent: f64, tolerance: f64) -> f64 {
    let p = percent / 100.0;
    let ln_choose = |k: u32| -> f64 { ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k) };
    (0..=n)
        .filter(|&k| !within_tolerance(k, n, percent, tolerance))
        .map(|k| (ln_choose(k) + f64::from(k) * p.ln() + f64::from(n - k) * (1.0 - p).ln()).exp())
        .sum()
}

fn ln_factorial(n: u32) -> f64 {
    (2..=n).map(|i| f64::from(i).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_keeps_false_failures_under_one_in_a_thousand() {
        let p = false_failure_probability(BATCH, PERCENT, TOLERANCE);
        assert!(p < 1e-3, "false failure probability {p}");
        // And the batch is not needlessly large: 200 requests would not be enough.
        assert!(false_failure_probability(200, PERCENT, TOLERANCE) > 1e-3);
    }

    #[test]
    fn tail_matches_a_hand_computed_case() {
        // n = 4, p = 0.5, ±25 points: only k = 0 and k = 4 fall outside: 2/16.
        assert!((false_failure_probability(4, 50.0, 25.0) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn a_sampled_share_gets_istios_tolerance_and_a_batch_that_keeps_false_failures_rare() {
        assert_eq!(tolerance(50.0), 10.0);
        assert_eq!(tolerance(10.0), 5.0);
        assert_eq!(tolerance(90.0), 5.0);
        assert_eq!(tolerance(100.0), 0.0);
        assert_eq!(batch_for(PERCENT, TOLERANCE), BATCH);
        let n = batch_for(10.0, 5.0);
        assert!(false_failure_probability(n, 10.0, 5.0) < 1e-3);
        assert!(
            false_failure_probability(n - 50, 10.0, 5.0) >= 1e-3,
            "{n} is the smallest"
        );
    }

    #[test]
    fn tolerance_edges() {
        assert!(within_tolerance(180, 300, 50.0, 10.0));
        assert!(!within_tolerance(181, 300, 50.0, 10.0));
        assert!(!within_tolerance(0, 300, 50.0, 10.0));
    }
}

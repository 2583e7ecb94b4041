//! How many requests a sampled check sends and which counts it accepts, so that a correct
//! mesh rarely fails it and a wrong one rarely passes it.
//!
//! Envoy routes and mirrors each request independently, so the count of `n` requests that
//! land somewhere at rate `p` is Binomial(n, p). For an expected share `p` the check is
//! designed against two wrong meshes, the share off by the tolerance either way
//! ([`tolerance`]); "nothing" and "everything" are farther still. A batch size and an
//! acceptance region `[low, high]` (counts, inclusive) are chosen so that, per batch:
//!
//! - a correct mesh falls outside the region less than once in a thousand
//!   ([`ERROR_RATE`]);
//! - each wrong mesh falls inside it less than once in a thousand.
//!
//! The region is the widest the second rule allows, and the batch the smallest multiple of
//! 50 for which the first then holds. Where the routing is settled before the first
//! request (local mode) one batch decides. In a cluster a batch that fails may be
//! propagation, so the check retries until three pass in a row: a wrong mesh passes three in
//! a row with probability below 1e-9, however many attempts the patience allows.

use std::fmt;

/// The bound on both error rates of one batch.
pub const ERROR_RATE: f64 = 1e-3;

/// The most requests one batch may send; a share that needs more is refused when the
/// expectations are read ([`SamplingError::TooFine`]).
pub const MAX_BATCH: u32 = 20_000;

/// Batches are multiples of this, so the numbers in reports stay readable.
const STEP: u32 = 50;

/// The mirrored share of `mirror::percentage_within_tolerance`'s variant, in percent.
pub const PERCENT: f64 = 50.0;

/// Istio's own tolerance for a share, in percentage points: its mirroring test allows
/// exact 0% and 100%, ±10 points at 50% and ±5 at 10%; shares nearer an end get the
/// tighter one.
pub fn istio_tolerance(percent: f64) -> f64 {
    if percent <= 0.0 || percent >= 100.0 {
        0.0
    } else if percent <= 20.0 || percent >= 80.0 {
        5.0
    } else {
        10.0
    }
}

/// The tolerance a share is checked with, in percentage points: Istio's, but never more
/// than half the share (or half of what it leaves). Istio's ±5 at 5% would accept a mesh
/// that sends nothing; at half the share, 5% is told from 2.5% and 7.5%, so 0% and 0.1%
/// fail.
pub fn tolerance(percent: f64) -> f64 {
    istio_tolerance(percent)
        .min(percent / 2.0)
        .min((100.0 - percent) / 2.0)
}

/// Why a share cannot be checked by sampling.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// Not a share.
    #[error("{percent}% is not a share between 0 and 100")]
    OutOfRange {
        /// The share.
        percent: f64,
    },
    /// Telling the share from its wrong neighbours takes more than [`MAX_BATCH`] requests.
    #[error(
        "a share of {percent}% cannot be told from {low}% or {high}% with at most {MAX_BATCH} requests per batch (both error rates under 1 in 1000); use a share of at least 1% (or 0)"
    )]
    TooFine {
        /// The share.
        percent: f64,
        /// The wrong share below.
        low: f64,
        /// The wrong share above.
        high: f64,
    },
}

/// What a sampled check accepts for one expected share, and how well that separates a
/// correct mesh from a wrong one.
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    /// The expected share, in percent.
    pub percent: f64,
    /// Requests per batch.
    pub batch: u32,
    /// Fewest requests that may land, inclusive.
    pub low: u32,
    /// Most requests that may land, inclusive.
    pub high: u32,
    /// Probability that a correct mesh falls outside `[low, high]` in one batch.
    pub false_fail: f64,
    /// The wrong shares it is designed against (percent), and the probability that each
    /// falls inside `[low, high]` in one batch.
    pub false_pass: Vec<(f64, f64)>,
}

impl Acceptance {
    /// Whether `count` of the batch landing is what a correct mesh produces.
    pub fn accepts(&self, count: u32) -> bool {
        (self.low..=self.high).contains(&count)
    }

    /// The region as a reader checks it: `123..=225 of 3650 (3.37%..6.16%)`.
    pub fn region(&self) -> String {
        if self.low == self.high {
            return format!("exactly {} of {}", self.low, self.batch);
        }
        format!(
            "{}..={} of {} ({}..{})",
            self.low,
            self.high,
            self.batch,
            percent_of(self.low, self.batch),
            percent_of(self.high, self.batch)
        )
    }

    /// The worst false-pass probability over the wrong shares.
    pub fn worst_false_pass(&self) -> f64 {
        self.false_pass.iter().map(|(_, p)| *p).fold(0.0, f64::max)
    }
}

impl fmt::Display for Acceptance {
    /// `5%: accepts 123..=225 of 3650 (3.37%..6.16%); a correct mesh fails 1 batch in
    /// 1292, one at 2.5% or 7.5% passes 1 in 1075`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}%: accepts {}; a correct mesh fails {}",
            self.percent,
            self.region(),
            one_in(self.false_fail)
        )?;
        if !self.false_pass.is_empty() {
            let wrong: Vec<String> = self
                .false_pass
                .iter()
                .map(|(q, _)| format!("{q}%"))
                .collect();
            write!(
                f,
                ", one at {} passes {}",
                wrong.join(" or "),
                one_in(self.worst_false_pass())
            )?;
        }
        Ok(())
    }
}

/// A per-batch probability in a reader's words: `1 batch in 1292`.
fn one_in(p: f64) -> String {
    if p <= 0.0 {
        "never".to_owned()
    } else if p < 1e-6 {
        "less than 1 batch in a million".to_owned()
    } else {
        format!("1 batch in {}", (1.0 / p).floor())
    }
}

/// `count` of `n` in percent, as reports print it: `5.2%`.
pub fn percent_of(count: u32, n: u32) -> String {
    if n == 0 {
        return "-".to_owned();
    }
    let p = f64::from(count) * 100.0 / f64::from(n);
    let rounded = format!("{p:.2}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}%")
}

/// One batch and an acceptance region per share, for shares counted over the same requests
/// (a split's subsets, or one mirrored share). The batch is the smallest that serves them
/// all. A correct mesh's false-fail budget is shared: two shares that add up to 100 fail
/// together or not at all, so each keeps the whole budget; from three on it is divided.
pub fn plan(shares: &[f64]) -> Result<Vec<Acceptance>, SamplingError> {
    if let Some(&percent) = shares.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(SamplingError::OutOfRange { percent });
    }
    let sampled = shares.iter().filter(|p| **p > 0.0 && **p < 100.0).count();
    let budget = if sampled <= 2 {
        ERROR_RATE
    } else {
        ERROR_RATE / sampled as f64
    };
    let table = LnFactorial::up_to(MAX_BATCH);
    let fits = |n: u32| -> Option<Vec<Acceptance>> {
        shares
            .iter()
            .map(|&p| region(&table, n, p, budget))
            .collect()
    };
    // Start below the normal approximation of the hardest share, then step up: the first
    // batch that fits is (within the approximation's reach) the smallest.
    let start = shares
        .iter()
        .map(|&p| normal_estimate(p))
        .fold(0.0, f64::max);
    let start = ((start * 0.6) as u32 / STEP * STEP).max(STEP);
    let mut n = start.min(MAX_BATCH);
    while n <= MAX_BATCH {
        if let Some(plan) = fits(n) {
            return Ok(plan);
        }
        n += STEP;
    }
    let percent = shares
        .iter()
        .copied()
        .filter(|&p| region(&table, MAX_BATCH, p, budget).is_none())
        .fold(f64::NAN, f64::min);
    let t = tolerance(percent);
    Err(SamplingError::TooFine {
        percent,
        low: percent - t,
        high: percent + t,
    })
}

/// The requests the normal approximation says share `p` needs (0 for an exact share).
fn normal_estimate(percent: f64) -> f64 {
    let t = tolerance(percent) / 100.0;
    if t == 0.0 {
        return 0.0;
    }
    let p = percent / 100.0;
    let sd = |q: f64| (q * (1.0 - q)).sqrt();
    // z for one-sided 1e-3 tails.
    let z = 3.09;
    let spread = z * sd(p) + z * sd(p - t).max(sd(p + t));
    (spread / t).powi(2)
}

/// The acceptance region of share `percent` over `n` requests, if one keeps the false fail
/// under `budget` and each false pass under [`ERROR_RATE`].
fn region(table: &LnFactorial, n: u32, percent: f64, budget: f64) -> Option<Acceptance> {
    let exact = |count: u32| Acceptance {
        percent,
        batch: n,
        low: count,
        high: count,
        false_fail: 0.0,
        false_pass: Vec::new(),
    };
    if percent <= 0.0 {
        return Some(exact(0));
    }
    if percent >= 100.0 {
        return Some(exact(n));
    }
    let t = tolerance(percent);
    let (below, above) = (percent - t, percent + t);
    let pmf_below = table.pmf(n, below / 100.0);
    let pmf_above = table.pmf(n, above / 100.0);
    // The lowest count a mesh at `below` reaches less than once in a thousand, and the
    // highest one at `above` stays under as rarely.
    let mut low = n + 1;
    let mut tail = 0.0;
    for k in (0..=n).rev() {
        tail += pmf_below[k as usize];
        if tail >= ERROR_RATE {
            low = k + 1;
            break;
        }
    }
    let mut high = 0;
    let mut head = 0.0;
    let mut found = false;
    for k in 0..=n {
        head += pmf_above[k as usize];
        if head >= ERROR_RATE {
            high = k.checked_sub(1)?;
            found = true;
            break;
        }
    }
    if !found {
        high = n;
    }
    // Nothing and everything fail whatever the numbers say.
    let (low, high) = (low.max(1), high.min(n - 1));
    if low > high {
        return None;
    }
    let pmf = table.pmf(n, percent / 100.0);
    let outside = |pmf: &[f64]| -> f64 {
        pmf[..low as usize].iter().sum::<f64>() + pmf[high as usize + 1..].iter().sum::<f64>()
    };
    let inside = |pmf: &[f64]| -> f64 { pmf[low as usize..=high as usize].iter().sum() };
    let false_fail = outside(&pmf);
    if false_fail >= budget {
        return None;
    }
    Some(Acceptance {
        percent,
        batch: n,
        low,
        high,
        false_fail,
        false_pass: vec![(below, inside(&pmf_below)), (above, inside(&pmf_above))],
    })
}

/// `ln k!` for every `k` up to a bound, so binomial terms cost an addition and an `exp`.
struct LnFactorial(Vec<f64>);

impl LnFactorial {
    fn up_to(n: u32) -> LnFactorial {
        let mut table = Vec::with_capacity(n as usize + 1);
        let mut sum = 0.0;
        table.push(0.0);
        for i in 1..=n {
            sum += f64::from(i).ln();
            table.push(sum);
        }
        LnFactorial(table)
    }

    /// The Binomial(n, p) probabilities of `0..=n`.
    fn pmf(&self, n: u32, p: f64) -> Vec<f64> {
        let f = &self.0;
        let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
        (0..=n)
            .map(|k| {
                let (k, rest) = (k as usize, (n - k) as usize);
                (f[n as usize] - f[k] - f[rest] + k as f64 * ln_p + rest as f64 * ln_q).exp()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

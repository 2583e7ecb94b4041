//! Comparing two runs check by check: the Istio upgrade regression check.
//!
//! An outcome that changes (pass to fail, fail to pass, a check missing) fails the
//! comparison. A behaviour a check observed that changes is an intended behaviour change
//! when [`KNOWN_CHANGES`] explains it for the versions crossed, and fails the comparison
//! otherwise.

use std::fmt::Write as _;

use crate::report::{RunReport, plural};
use crate::version::IstioVersion;

/// A behaviour change Istio made on purpose, at a version boundary.
#[derive(Debug, Clone, Copy)]
pub struct KnownChange {
    /// The check that observes it.
    pub check: &'static str,
    /// The observation that changes.
    pub observation: &'static str,
    /// The first version with the new behaviour.
    pub since: (u32, u32),
    /// Why it changed.
    pub explanation: &'static str,
}

/// The behaviour changes this project knows to be intended.
pub const KNOWN_CHANGES: &[KnownChange] = &[KnownChange {
    check: "mirror::shadow_host_matches_istio_version",
    observation: "shadow host",
    since: (1, 28),
    explanation: "Istio 1.28 turned off Envoy's -shadow host suffix by default (pilot DISABLE_SHADOW_HOST_SUFFIX, istio/istio#57708): mirrored requests keep the original host",
}];

/// How one check compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same outcome, same observations.
    Same,
    /// An observation changed, as a known change explains.
    Intended(String),
    /// Passed before, fails after.
    Regression(String),
    /// Any other difference.
    Unexplained(String),
}

/// The comparison of two runs.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Version before.
    pub from: String,
    /// Version after.
    pub to: String,
    /// One verdict per check, in the order of the first run.
    pub checks: Vec<(String, Verdict)>,
}

impl Comparison {
    /// Whether anything changed that is not intended.
    pub fn failed(&self) -> bool {
        self.checks
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Regression(_) | Verdict::Unexplained(_)))
    }

    /// The text of `comparison.txt`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "upgrade {} -> {}: {} checks compared\n",
            self.from,
            self.to,
            self.checks.len()
        );
        let (mut same, mut intended, mut bad) = (0, 0, 0);
        for (name, verdict) in &self.checks {
            let line = match verdict {
                Verdict::Same => {
                    same += 1;
                    format!("  same        {name}")
                }
                Verdict::Intended(why) => {
                    intended += 1;
                    format!("  BEHAVIOUR   {name}: {why}")
                }
                Verdict::Regression(why) => {
                    bad += 1;
                    format!("  REGRESSION  {name}: {why}")
                }
                Verdict::Unexplained(why) => {
                    bad += 1;
                    format!("  CHANGED     {name}: {why}")
                }
            };
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(
            s,
            "{same} same, {}, {}",
            plural(
                intended,
                "intended behaviour change",
                "intended behaviour changes"
            ),
            plural(
                bad,
                "unexplained change or regression",
                "unexplained changes or regressions"
            )
        );
        s
    }
}

/// Compares `after` with `before`.
pub fn compare(before: &RunReport, after: &RunReport) -> Comparison {
    let from: Option<IstioVersion> = before.istio.parse().ok();
    let to: Option<IstioVersion> = after.istio.parse().ok();
    let crosses = |since: (u32, u32)| match (from, to) {
        (Some(f), Some(t)) => (f.major, f.minor) < since && since <= (t.major, t.minor),
        _ => false,
    };
    let mut checks = Vec::new();
    for b in &before.checks {
        let Some(a) = after.checks.iter().find(|a| a.name == b.name) else {
            checks.push((
                b.name.clone(),
                Verdict::Unexplained("did not run after the upgrade".into()),
            ));
            continue;
        };
        let verdict = match (b.passed, a.passed) {
            (true, false) => {
                Verdict::Regression(format!("passed before, fails after: {}", a.message))
            }
            (false, true) => {
                Verdict::Unexplained(format!("failed before ({}), passes after", b.message))
            }
            (false, false) => Verdict::Same,
            (true, true) => {
                let mut changes = Vec::new();
                let keys = b
                    .observed
                    .keys()
                    .chain(a.observed.keys().filter(|k| !b.observed.contains_key(*k)));
                for key in keys {
                    let (old, new) = (b.observed.get(key), a.observed.get(key));
                    if old == new {
                        continue;
                    }
                    let what = format!(
                        "{key} `{}` -> `{}`",
                        old.map_or("(none)", String::as_str),
                        new.map_or("(none)", String::as_str)
                    );
                    let known = KNOWN_CHANGES
                        .iter()
                        .find(|k| k.check == b.name && k.observation == key && crosses(k.since));
                    changes.push(match known {
                        Some(k) => Ok(format!("{what} (intended: {})", k.explanation)),
                        None => Err(what),
                    });
                }
                if let Some(Err(what)) = changes.iter().find(|c| c.is_err()) {
                    Verdict::Unexplained(format!("behaviour changed: {what}"))
                } else if changes.is_empty() {
                    Verdict::Same
                } else {
                    let all: Vec<String> = changes.into_iter().filter_map(Result::ok).collect();
                    Verdict::Intended(all.join("; "))
                }
            }
        };
        checks.push((b.name.clone(), verdict));
    }
    for a in after
        .checks
        .iter()
        .filter(|a| !before.checks.iter().any(|b| b.name == a.name))
    {
        checks.push((
            a.name.clone(),
            Verdict::Unexplained("new after the upgrade".into()),
        ));
    }
    Comparison {
        from: before.istio.clone(),
        to: after.istio.clone(),
        checks,
    }
}

#[cfg(test)]
mod tests {
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
}

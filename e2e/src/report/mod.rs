//! The run's report: per-check outcomes with timings and attempts, phase timings, a JUnit
//! file for CI, and a short summary a person reads first.

pub mod html;
mod junit;
pub mod live;
mod summary;

pub use summary::append_step_summary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// Errors writing the report.
#[derive(Debug, thiserror::Error)]
#[error("cannot write report {path}: {message}")]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// The observation of a weighted split: the share each subset served (`v1 94.8% (3461),
/// v2 5.2% (189)`).
pub const SPLIT: &str = "split";

/// The observation of a sampled mirror: the share mirrored (`5.1% (187 of 3650)`).
pub const MIRRORED_SHARE: &str = "mirrored share";

/// Observations measured over a sample: they differ from run to run by chance, so a
/// comparison of two runs holds them to their check's outcome, not to their value.
pub const SAMPLED_OBSERVATIONS: [&str; 2] = [SPLIT, MIRRORED_SHARE];

/// One check's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckResult {
    /// Full trial name, e.g. `mirror::tester_requests_mirrored_with_end_user`.
    pub name: String,
    /// What it verifies, in the words of the run's expectations: a report read back later
    /// (the upgrade walk's comparison) describes each check as the run that made it did.
    #[serde(default)]
    pub expected: String,
    /// Whether it passed.
    pub passed: bool,
    /// Wall time (seconds in report.json).
    #[serde(with = "seconds")]
    pub duration: Duration,
    /// Attempts the retry made (0 when the check failed before its first attempt).
    pub attempts: u32,
    /// Attempts that failed before a pass (real retries, not the passes in a row).
    #[serde(default)]
    pub retries: u32,
    /// What it verified, or why it failed.
    pub message: String,
    /// Behaviour it observed when it passed (e.g. `shadow host` -> `reviews`), compared
    /// across an upgrade.
    #[serde(default)]
    pub observed: BTreeMap<String, String>,
    /// Its attempts in time: seconds from the check's start, seconds taken, passed.
    #[serde(default)]
    pub timeline: Vec<(f64, f64, bool)>,
    /// Why it failed in one clause, for the run's verdict (e.g. `tester requests were
    /// served by reviews-v1 through route "default-to-v1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The failed check that kept this one from running: its prerequisite, or what blocked
    /// that (the root cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
}

impl CheckResult {
    /// Its attempts in words: passes in a row are not retries, real retries are marked.
    pub fn attempts_text(&self) -> String {
        match (self.passed, &self.blocked_by, self.attempts, self.retries) {
            (_, Some(_), _, _) => "not run (blocked)".to_owned(),
            (true, None, 1, 0) => "1 passing attempt".to_owned(),
            (true, None, n, 0) => format!("{n} passing attempts in a row"),
            (true, None, n, r) => format!(
                "{n} attempts: {} failed, then {} passed in a row",
                r,
                n.saturating_sub(r)
            ),
            (false, None, 0, _) => "failed before its first attempt".to_owned(),
            (false, None, n, _) => {
                format!("failed after {}", plural(n as usize, "attempt", "attempts"))
            }
        }
    }

    /// What it verifies, in the words of the expectations it ran with (a report read back
    /// from an older version may not say).
    pub fn expectation(&self) -> &str {
        if self.expected.is_empty() {
            "(not recorded)"
        } else {
            &self.expected
        }
    }

    /// Its status word: PASS, FAIL, or BLOCKED (not run: a prerequisite failed).
    pub fn status(&self) -> &'static str {
        match (self.passed, &self.blocked_by) {
            (true, _) => "PASS",
            (false, Some(_)) => "BLOCKED",
            (false, None) => "FAIL",
        }
    }

    /// Check `name`, not run because `root` failed: it says what it would have verified.
    pub fn blocked(name: &str, root: &str, expected: &str) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            expected: expected.to_owned(),
            passed: false,
            message: format!("blocked by {root}: would have verified that {expected}"),
            blocked_by: Some(root.to_owned()),
            ..CheckResult::default()
        }
    }
}

/// Everything the run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// "local" or "cluster".
    pub mode: String,
    /// Istio version run or emulated.
    pub istio: String,
    /// What ran, where something other than the release itself played it (a kwok cluster's
    /// istiod: `1.27.9 played by istiod 1.30@9739e10 + 1.27 profile`); the headers show it
    /// in place of `istio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_label: Option<String>,
    /// Phases and how long each took, in order (seconds in report.json).
    #[serde(with = "phase_seconds")]
    pub phases: Vec<(String, Duration)>,
    /// Checks in the order they ran.
    pub checks: Vec<CheckResult>,
    /// Notes worth reading (e.g. lint findings on the manifests under test).
    pub notes: Vec<String>,
    /// The error that ended the run before its checks finished (it then failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The class of that error (an environment failure unless it says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_as: Option<Exit>,
    /// The checks the harness arguments left out, in suite order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
    /// How the checks were selected when not all were, e.g. "filter `routing::`".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
}

/// `Duration` as seconds (a float) in JSON, as people and `jq` read it.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Phases as `[[name, seconds], ...]`.
mod phase_seconds {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        phases: &[(String, Duration)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(phases.len()))?;
        for (name, d) in phases {
            seq.serialize_element(&(name, d.as_secs_f64()))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Duration)>, D::Error> {
        Vec::<(String, f64)>::deserialize(d)?
            .into_iter()
            .map(|(name, secs)| {
                Duration::try_from_secs_f64(secs)
                    .map(|d| (name, d))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// `1 error`, `2 errors`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl RunReport {
    /// The run's Istio as its headers name it: what ran ([`RunReport::version_label`]),
    /// else the version.
    pub fn istio_label(&self) -> &str {
        self.version_label.as_deref().unwrap_or(&self.istio)
    }

    /// Whether the run got through and every check that ran passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }

    /// The class the run ended in, and so its exit code.
    pub fn exit(&self) -> Exit {
        match (&self.error, self.stopped_as) {
            (_, Some(class)) => class,
            (Some(_), None) => Exit::Environment,
            (None, None) if self.checks.is_empty() => Exit::CheckFailed,
            (None, None) if self.passed() => Exit::Passed,
            (None, None) => Exit::CheckFailed,
        }
    }

    /// The failed checks that are causes: those that ran and failed (not the blocked ones).
    fn causes(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| !c.passed && c.blocked_by.is_none())
    }

    /// "2 of 7 checks run (filter `routing::`); 5 not run" when a selection left checks out.
    pub fn partial(&self) -> Option<String> {
        if self.not_run.is_empty() {
            return None;
        }
        let ran = self.checks.len();
        Some(format!(
            "{ran} of {} checks run{}; {} not run",
            ran + self.not_run.len(),
            self.selection
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            self.not_run.len()
        ))
    }

    /// Reads the `report.json` a run wrote into `dir` (or into the one run directory below it).
    pub fn read(dir: &Path) -> Result<RunReport, ReportError> {
        let direct = dir.join("report.json");
        let path = if direct.is_file() {
            direct
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| ReportError {
                    path: dir.to_owned(),
                    message: e.to_string(),
                })?
                .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
                .filter(|p| p.is_file())
                .collect();
            match found.len() {
                1 => found.remove(0),
                n => {
                    return Err(ReportError {
                        path: dir.to_owned(),
                        message: format!(
                            "expected one report.json here or one level down, found {n}"
                        ),
                    });
                }
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| ReportError {
            path,
            message: e.to_string(),
        })
    }

    /// Writes `summary.txt`, `junit.xml` and `report.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        for (file, text) in [
            ("summary.txt", self.summary()),
            ("summary.md", self.summary_md()),
            ("report.html", html::render(self)),
            ("junit.xml", self.junit()),
            ("report.json", json),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|e| ReportError {
                path,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;

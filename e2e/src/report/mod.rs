//! The run's report: per-check outcomes with timings and attempts, phase timings, a JUnit
//! file for CI, and a short summary a person reads first.

pub mod html;
pub mod live;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
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

/// Text safe in a Markdown table cell: one line, pipes escaped.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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

/// Appends Markdown to the CI job's summary page when `GITHUB_STEP_SUMMARY` names one
/// (GitHub Actions shows it on the job's page); does nothing elsewhere.
pub fn append_step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    use std::io::Write as _;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{markdown}"));
    if let Err(e) = written {
        eprintln!(
            "warning: cannot append to GITHUB_STEP_SUMMARY {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

/// A failure message's first clause, for the verdict line: the retry's totals and the
/// workloads' trail stay in the check's own row.
fn reason(message: &str) -> String {
    let first = message.split(" (after ").next().unwrap_or(message);
    first.split("; ").next().unwrap_or(first).to_owned()
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

    /// The text of `summary.txt`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mirror-e2e run {} ({} mode, Istio {})",
            self.run_id,
            self.mode,
            self.istio_label()
        );
        let _ = writeln!(s, "\nphases:");
        for (name, d) in &self.phases {
            let _ = writeln!(s, "  {name:<28} {:>9.3}s", d.as_secs_f64());
        }
        let _ = writeln!(s, "\nchecks:");
        if self.checks.is_empty() {
            let _ = writeln!(s, "  (none ran)");
        }
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {} {} ({:.3}s, {})",
                c.status(),
                c.name,
                c.duration.as_secs_f64(),
                c.attempts_text()
            );
            let _ = writeln!(s, "       {}", c.message);
        }
        for name in &self.not_run {
            let _ = writeln!(s, "  NOT RUN {name}");
        }
        for note in &self.notes {
            let _ = writeln!(s, "\nnote: {note}");
        }
        let (passed, verdict) = self.verdict();
        let _ = writeln!(s, "\n{}: {verdict}", if passed { "PASS" } else { "FAIL" });
        s
    }

    /// The verdict in one line, and whether it is a pass: the first line a reader sees in
    /// `summary.md` and `report.html`, the last of `summary.txt`. A failure names its cause
    /// first (the check that failed and why), then what that cause blocked.
    pub fn verdict(&self) -> (bool, String) {
        let causes: Vec<&CheckResult> = self.causes().collect();
        let blocked = self
            .checks
            .iter()
            .filter(|c| c.blocked_by.is_some())
            .count();
        let (passed, mut text) = match (&self.error, causes.first()) {
            (Some(e), _) => (
                false,
                format!("the run stopped before its checks finished: {e}"),
            ),
            (None, _) if self.checks.is_empty() => (false, "no check ran".to_owned()),
            (None, None) => (
                true,
                format!("{} passed", plural(self.checks.len(), "check", "checks")),
            ),
            (None, Some(first)) => {
                let mut text = format!(
                    "{} — {}",
                    first.name,
                    first
                        .cause
                        .clone()
                        .unwrap_or_else(|| reason(&first.message))
                );
                if causes.len() > 1 {
                    let _ = write!(
                        text,
                        "; {} failed too",
                        plural(causes.len() - 1, "other check", "other checks")
                    );
                }
                (false, text)
            }
        };
        if blocked > 0 {
            let _ = write!(text, "; {} blocked", plural(blocked, "check", "checks"));
        }
        if let Some(partial) = self.partial() {
            let _ = write!(text, "; {partial}");
        }
        (passed, text)
    }

    /// The evidence file to open first for a failed check, in this run's directory: where
    /// its cause shows (a blocked check's is its root cause's).
    fn first_evidence(&self, check: &CheckResult) -> String {
        let root = check.blocked_by.as_deref().unwrap_or(&check.name);
        let file = match (self.mode.as_str(), evidence(root)) {
            ("local", Evidence::Routing) => {
                "envoy-access.log (which route and upstream served each tag, with its end-user)"
            }
            ("local", Evidence::Mirror) => "workloads/mirror.log (what the mirror received)",
            (_, Evidence::Routing) => {
                "diagnostics/productpage-routes.json (productpage's sidecar routes), then evidence/"
            }
            (_, Evidence::Mirror) => "evidence/logs/ (the mirror's log and sidecars)",
        };
        match &check.blocked_by {
            Some(root) => format!("{file}, for {root}, which blocked it"),
            None => file.to_owned(),
        }
    }

    /// The text of `summary.md`: the verdict in one line, the checks, the phases, and for
    /// each failure what was expected, what was seen, and the evidence to open first.
    pub fn summary_md(&self) -> String {
        let mut s = String::new();
        let verdict = match self.verdict() {
            (true, text) => format!("**PASS**: {text}"),
            (false, text) => format!("**FAIL**: {text}"),
        };
        let exit = self.exit();
        let _ = writeln!(
            s,
            "### mirror-e2e {}: {verdict}\n\n{} mode, Istio {}, run `{}`; exit {} ({})\n",
            self.mode,
            self.mode,
            self.istio_label(),
            self.run_id,
            exit.code(),
            exit.meaning()
        );
        if !self.checks.is_empty() || !self.not_run.is_empty() {
            let _ = writeln!(
                s,
                "| | check | attempts | time | what was seen |\n|---|---|---|---|---|"
            );
            for c in &self.checks {
                let _ = writeln!(
                    s,
                    "| {} {} | `{}` | {} | {:.3}s | {} |",
                    match c.status() {
                        "PASS" => "✅",
                        "FAIL" => "❌",
                        _ => "⏸️",
                    },
                    c.status(),
                    c.name,
                    c.attempts_text(),
                    c.duration.as_secs_f64(),
                    markdown_cell(&c.message)
                );
            }
            for name in &self.not_run {
                let _ = writeln!(
                    s,
                    "| ➖ NOT RUN | `{name}` | - | - | not selected{} |",
                    self.selection
                        .as_deref()
                        .map(|s| format!(" ({})", markdown_cell(s)))
                        .unwrap_or_default()
                );
            }
        }
        if !self.phases.is_empty() {
            let _ = writeln!(s, "\n| phase | time |\n|---|---|");
            for (name, d) in &self.phases {
                let _ = writeln!(s, "| {name} | {:.3}s |", d.as_secs_f64());
            }
        }
        for c in self.causes() {
            let _ = writeln!(
                s,
                "\n#### ❌ `{}`\n\n- expected: {}\n- seen: {}",
                c.name,
                c.expectation(),
                markdown_cell(&c.message),
            );
            for (what, value) in &c.observed {
                let _ = writeln!(s, "- observed {what}: `{}`", markdown_cell(value));
            }
            let _ = writeln!(s, "- open first: `{}`", self.first_evidence(c));
        }
        let blocked: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.blocked_by.is_some())
            .map(|c| format!("`{}`", c.name))
            .collect();
        if let Some(root) = self.checks.iter().find_map(|c| c.blocked_by.as_ref()) {
            let _ = writeln!(
                s,
                "\n#### ⏸️ blocked by `{root}`\n\n{}: not run, since what they verify needs it",
                blocked.join(", ")
            );
        }
        for note in &self.notes {
            let _ = writeln!(s, "\n> note: {}", markdown_cell(note));
        }
        s
    }

    /// The JUnit XML report: a case per check; a blocked check and one the selection left
    /// out are skipped cases saying why, so a partial run does not look complete.
    pub fn junit(&self) -> String {
        let mut report = quick_junit::Report::new("mirror-e2e");
        let mut suite = TestSuite::new(format!("mirror-e2e-{}", self.mode));
        suite.add_property(Property::new("run-id", self.run_id.as_str()));
        suite.add_property(Property::new("istio", self.istio.as_str()));
        for (name, d) in &self.phases {
            suite.add_property(Property::new(
                format!("phase.{name}"),
                format!("{:.3}s", d.as_secs_f64()),
            ));
        }
        let case = |name: &str, status: TestCaseStatus| {
            let (class, name) = name.rsplit_once("::").unwrap_or(("", name));
            let mut case = TestCase::new(name, status);
            case.set_classname(class);
            case
        };
        for c in &self.checks {
            let status = match (c.passed, &c.blocked_by) {
                (true, _) => TestCaseStatus::success(),
                (false, Some(_)) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(c.message.as_str());
                    s
                }
                (false, None) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(c.message.as_str());
                    s
                }
            };
            let mut case = case(&c.name, status);
            case.set_time(c.duration);
            case.add_property(Property::new("attempts", c.attempts.to_string()));
            if c.passed {
                case.set_system_out(c.message.as_str());
            }
            suite.add_test_case(case);
        }
        for name in &self.not_run {
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!(
                "not run: not selected{}",
                self.selection
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
            suite.add_test_case(case(name, status));
        }
        if let Some(error) = &self.error {
            // A run that stopped early is a failure CI must see, not an empty suite.
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error.as_str());
            let mut case = TestCase::new("run", status);
            case.set_classname("mirror-e2e");
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
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

/// Where the evidence of a check's failure shows first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// Which route and upstream served a request, its status and latency: the proxies.
    Routing,
    /// What the mirror received: its log.
    Mirror,
}

/// Where check `check` fails visibly. The mirror-down check fails on what the tester gets
/// (status, workload, latency), so the proxies show it, not the mirror's log.
fn evidence(check: &str) -> Evidence {
    if check.starts_with("routing::") || check == "mirror::primary_unaffected_when_mirror_down" {
        Evidence::Routing
    } else {
        Evidence::Mirror
    }
}

#[cfg(test)]
mod tests;

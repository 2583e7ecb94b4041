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

/// Errors writing the report.
#[derive(Debug, thiserror::Error)]
#[error("cannot write report {path}: {message}")]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// One check's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckResult {
    /// Full trial name, e.g. `mirror::tester_requests_mirrored_with_end_user`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Wall time (seconds in report.json).
    #[serde(with = "seconds")]
    pub duration: Duration,
    /// Attempts the retry made (0 when the check failed before its first attempt).
    pub attempts: u32,
    /// What it verified, or why it failed.
    pub message: String,
    /// Behaviour it observed when it passed (e.g. `shadow host` -> `reviews`), compared
    /// across an upgrade.
    #[serde(default)]
    pub observed: BTreeMap<String, String>,
    /// Its attempts in time: seconds from the check's start, seconds taken, passed.
    #[serde(default)]
    pub timeline: Vec<(f64, f64, bool)>,
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

/// `1 error`, `2 errors`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl RunReport {
    /// Whether the run got through and every check that ran passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }

    /// The text of `summary.txt`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        let _ = writeln!(
            s,
            "mirror-e2e run {} ({} mode, Istio {})",
            self.run_id, self.mode, self.istio
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
            let verdict = if c.passed { "PASS" } else { "FAIL" };
            let retried = match c.attempts {
                0 if !c.passed => ", failed before its first attempt".to_owned(),
                0 | 1 => String::new(),
                n => format!(", {n} attempts"),
            };
            let _ = writeln!(
                s,
                "  {verdict} {} ({:.3}s{retried})",
                c.name,
                c.duration.as_secs_f64()
            );
            let _ = writeln!(s, "       {}", c.message);
        }
        for note in &self.notes {
            let _ = writeln!(s, "\nnote: {note}");
        }
        if let Some(error) = &self.error {
            let _ = writeln!(s, "\nthe run stopped before its checks finished: {error}");
        }
        let _ = writeln!(
            s,
            "\n{} passed, {failed} failed",
            self.checks.len() - failed
        );
        s
    }

    /// The verdict in a few words, and whether it is a pass: the first line a reader sees in
    /// `summary.md` and `report.html`.
    pub fn verdict(&self) -> (bool, String) {
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        match (&self.error, failed) {
            (Some(e), _) => (
                false,
                format!("the run stopped before its checks finished: {e}"),
            ),
            (None, 0) if self.checks.is_empty() => (false, "no check ran".to_owned()),
            (None, 0) => (
                true,
                format!("{} passed", plural(self.checks.len(), "check", "checks")),
            ),
            (None, n) => (false, format!("{n} of {} checks failed", self.checks.len())),
        }
    }

    /// The evidence file to open first for a failed check, in this run's directory.
    fn first_evidence(&self, check: &str) -> &'static str {
        match (self.mode.as_str(), check.starts_with("routing::")) {
            ("local", true) => {
                "envoy-access.log (which upstream served each tag, with its end-user)"
            }
            ("local", false) => "workloads/mirror.log (what the mirror received)",
            (_, true) => {
                "diagnostics/productpage-routes.json (productpage's sidecar routes), then evidence/"
            }
            (_, false) => "evidence/logs/ (the mirror's log and sidecars)",
        }
    }

    /// The text of `summary.md`: the verdict in one line, the checks, the phases, and for
    /// each failure what was expected, what was seen, and the evidence to open first.
    pub fn summary_md(&self) -> String {
        let mut s = String::new();
        let failed: Vec<&CheckResult> = self.checks.iter().filter(|c| !c.passed).collect();
        let verdict = match self.verdict() {
            (true, text) => format!("**PASS**: {text}"),
            (false, text) => format!("**FAIL**: {text}"),
        };
        let _ = writeln!(
            s,
            "### mirror-e2e {}: {verdict}\n\n{} mode, Istio {}, run `{}`\n",
            self.mode, self.mode, self.istio, self.run_id
        );
        if !self.checks.is_empty() {
            let _ = writeln!(
                s,
                "| | check | attempts | time | what was seen |\n|---|---|---|---|---|"
            );
            for c in &self.checks {
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {} | {:.3}s | {} |",
                    if c.passed { "✅ PASS" } else { "❌ FAIL" },
                    c.name,
                    if c.attempts == 0 {
                        "-".to_owned()
                    } else {
                        c.attempts.to_string()
                    },
                    c.duration.as_secs_f64(),
                    markdown_cell(&c.message)
                );
            }
        }
        if !self.phases.is_empty() {
            let _ = writeln!(s, "\n| phase | time |\n|---|---|");
            for (name, d) in &self.phases {
                let _ = writeln!(s, "| {name} | {:.3}s |", d.as_secs_f64());
            }
        }
        for c in &failed {
            let _ = writeln!(
                s,
                "\n#### ❌ `{}`\n\n- expected: {}\n- seen: {}\n- open first: `{}`",
                c.name,
                crate::suite::expectation(&c.name),
                markdown_cell(&c.message),
                self.first_evidence(&c.name)
            );
        }
        for note in &self.notes {
            let _ = writeln!(s, "\n> note: {}", markdown_cell(note));
        }
        s
    }

    /// The JUnit XML report.
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
        for c in &self.checks {
            let status = if c.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.message.as_str());
                s
            };
            let (class, name) = c.name.rsplit_once("::").unwrap_or(("", &c.name));
            let mut case = TestCase::new(name, status);
            case.set_classname(class).set_time(c.duration);
            case.add_property(Property::new("attempts", c.attempts.to_string()));
            if c.passed {
                case.set_system_out(c.message.as_str());
            }
            suite.add_test_case(case);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
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
                    message: "ok".into(),
                    ..CheckResult::default()
                },
                CheckResult {
                    name: "mirror::tester_requests_mirrored_with_end_user".into(),
                    passed: false,
                    duration: Duration::from_secs(2),
                    attempts: 9,
                    message: "3 of 10 tester requests never reached the mirror".into(),
                    ..CheckResult::default()
                },
            ],
            notes: vec![],
            error: None,
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
            s.contains("(none ran)")
                && s.contains("stopped before its checks finished: envoy exited"),
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
    fn summary_names_checks_attempts_phases_and_the_count_line() {
        let s = report().summary();
        assert!(
            s.contains("PASS routing::tester_served_by_v2 (0.012s, 4 attempts)"),
            "{s}"
        );
        assert!(
            s.contains("FAIL mirror::tester_requests_mirrored_with_end_user"),
            "{s}"
        );
        assert!(s.contains("start envoy"), "{s}");
        assert!(s.trim_end().ends_with("1 passed, 1 failed"), "{s}");
        assert!(!report().passed());
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
            md.starts_with("### mirror-e2e local: **FAIL**: 1 of 2 checks failed"),
            "{md}"
        );
        assert!(
            md.contains("| ✅ PASS | `routing::tester_served_by_v2` | 4 | 0.012s | ok |"),
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
        assert!(page.contains("FAIL</span>: 1 of 2 checks failed"));
    }
}

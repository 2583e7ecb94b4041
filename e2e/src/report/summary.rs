//! What a person reads first: `summary.txt`, `summary.md` (also appended to the CI job's
//! summary page), the verdict line with the cause first, and which evidence to open first.

use std::fmt::Write as _;

use super::{CheckResult, RunReport, plural};

/// Text safe in a Markdown table cell: one line, pipes escaped.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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

impl RunReport {
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
    pub(super) fn first_evidence(&self, check: &CheckResult) -> String {
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

//! The table of what both tools said, case by case (`target/analyze/analyze.md`).

use super::cases::AnalyzeCase;

use super::pairing::{Message, PairedRow, Pairing};

/// What both tools said about one case.
pub struct CaseOutcome {
    pub case: AnalyzeCase,
    pub rows: Vec<PairedRow>,
}

impl CaseOutcome {
    /// The analyze messages lint misses, when they count (a mirroring case).
    pub fn gaps(&self) -> Vec<&Message> {
        if !self.case.mirroring() {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Pairing::Missed(_)))
            .filter_map(|r| r.analyze.as_ref())
            .collect()
    }
}

/// The comparison as Markdown: a row per analyze message or lone lint finding, then why lint
/// is silent where it is.
pub fn table(outcomes: &[CaseOutcome]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', "<br>");
    let mut out = String::from(
        "| case | istioctl analyze | cargo xtask lint | verdict |\n|---|---|---|---|\n",
    );
    let mut reasons: Vec<(String, &'static str)> = Vec::new();
    for outcome in outcomes {
        let mut name = format!(
            "{}{}",
            outcome.case.name,
            if outcome.case.mirroring() {
                " (mirroring)"
            } else {
                ""
            }
        );
        if outcome.rows.is_empty() {
            out.push_str(&format!("| {name} | nothing | nothing | agree |\n"));
            continue;
        }
        for row in &outcome.rows {
            let analyze = row.analyze.as_ref().map_or_else(
                || "nothing".to_owned(),
                |m| {
                    let mut at: Vec<String> = m.object().into_iter().collect();
                    at.extend(m.line().map(|l| format!("line {l}")));
                    let at = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", at.join(", "))
                    };
                    format!("`{}` {}: {}{at}", m.code, m.level, m.message)
                },
            );
            let lint = row.lint.as_ref().map_or_else(
                || "nothing".to_owned(),
                |f| {
                    format!(
                        "`{}` {} (line {}): {}",
                        f.code, f.severity, f.line, f.message
                    )
                },
            );
            let verdict = match &row.verdict {
                Pairing::Covered => "lint covers".to_owned(),
                Pairing::Explained(why) => {
                    let code = row.analyze.as_ref().map_or("", |m| m.code.as_str());
                    if !reasons.iter().any(|(c, _)| c == code) {
                        reasons.push((code.to_owned(), why));
                    }
                    format!("not linted: {code} below")
                }
                Pairing::Missed(Some(rule)) => format!("**missed** (no `{rule}` on the object)"),
                Pairing::Missed(None) => "**missed** (no entry in COVERAGE)".to_owned(),
                Pairing::LintOnly => "lint only".to_owned(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&name),
                cell(&analyze),
                cell(&lint),
                verdict
            ));
            // The case names its first row only.
            name.clear();
        }
    }
    if !reasons.is_empty() {
        out.push_str("\nWhere lint is silent:\n\n");
        for (code, why) in reasons {
            out.push_str(&format!("- {code}: {why}.\n"));
        }
    }
    out
}

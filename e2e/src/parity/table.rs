//! The outcome of each variant, what `mirror-e2e parity` prints for one version's run
//! ([`run_summary`]), and the table of variants by Istio version that `mirror-e2e
//! parity-table` prints ([`merged_table`]).

use serde::{Deserialize, Serialize};

use crate::version::IstioVersion;

/// What a variant came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// istiod's routes and the translation's agree.
    Same,
    /// They differ; each line one difference.
    Differs(Vec<String>),
    /// Local mode refuses the variant by name (what it says), as it would before a run.
    Refused {
        /// Its words.
        local: String,
    },
    /// The API server refused the variant (its CRD schema; Istio's validating webhook is
    /// not running here), with what the translation did with it.
    Rejected {
        /// The server's words.
        server: String,
        /// What local mode does with it.
        local: String,
    },
}

impl Outcome {
    /// The table's cell.
    pub fn cell(&self) -> String {
        match self {
            Outcome::Same => "same".into(),
            Outcome::Differs(what) => format!("differs ({})", what.join("; ")),
            Outcome::Refused { local } => format!("refused by local mode: {local}"),
            Outcome::Rejected { server, local } => format!(
                "rejected by the API (webhook not running here): {server}; local mode: {local}"
            ),
        }
    }
}

/// One version's run, as `mirror-e2e parity` writes it (`parity.json`) for merging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionResult {
    /// The Istio version the translation emulated.
    pub version: String,
    /// Its column's header when something other than the release played it on the
    /// cluster's side (e.g. `1.27.9 played by istiod 1.30@9739e10 + 1.27 profile`).
    pub version_label: Option<String>,
    /// Each variant's outcome, in the order run.
    pub rows: Vec<Row>,
    /// How long the comparison took.
    pub seconds: f64,
}

/// One variant's outcome in a [`VersionResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The variant's name.
    pub variant: String,
    /// What it came to.
    pub outcome: Outcome,
}

impl VersionResult {
    /// The result of a run of `version` from [`run`]'s rows.
    pub fn new(
        version: &IstioVersion,
        version_label: Option<String>,
        rows: Vec<(String, Outcome)>,
        seconds: f64,
    ) -> VersionResult {
        VersionResult {
            version: version.to_string(),
            version_label,
            rows: rows
                .into_iter()
                .map(|(variant, outcome)| Row { variant, outcome })
                .collect(),
            seconds,
        }
    }

    /// Its column's header: what ran, when that was said (so a column played by a newer
    /// istiod with a compatibility profile says so in the header), else the version.
    pub fn column(&self) -> String {
        self.version_label
            .clone()
            .unwrap_or_else(|| self.version.clone())
    }

    /// Whether any variant differs.
    pub fn differs(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Differs(_)))
    }
}

/// What `mirror-e2e parity` prints for one version's run: a line with the counts, then one
/// line per variant that is not the same. Not the table: `cargo xtask parity` prints the
/// table of every version once, at the end (`mirror-e2e parity-table`); a one-column table
/// per version before it showed every outcome twice. The run's own table is in its
/// `parity.md`.
pub fn run_summary(result: &VersionResult) -> String {
    let count = |f: fn(&Outcome) -> bool| result.rows.iter().filter(|r| f(&r.outcome)).count();
    let counts = [
        (count(|o| matches!(o, Outcome::Same)), "same"),
        (count(|o| matches!(o, Outcome::Differs(_))), "differ"),
        (
            count(|o| matches!(o, Outcome::Refused { .. })),
            "refused by local mode",
        ),
        (
            count(|o| matches!(o, Outcome::Rejected { .. })),
            "rejected by the API",
        ),
    ];
    let counts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let mut out = format!(
        "parity {}: {} variants in {:.1}s: {}\n",
        result.column(),
        result.rows.len(),
        result.seconds,
        counts.join(", ")
    );
    for row in result.rows.iter().filter(|r| r.outcome != Outcome::Same) {
        out.push_str(&format!("  {}: {}\n", row.variant, row.outcome.cell()));
    }
    out
}

/// The table `variant × version → outcome`, as docs/parity.md shows it: a column per result in
/// the order given, a row per variant in the order first met; a variant a version did not
/// run (a corpus changed between runs) says so rather than leaving a gap.
pub fn merged_table(results: &[VersionResult]) -> String {
    let mut variants: Vec<&str> = Vec::new();
    for row in results.iter().flat_map(|r| &r.rows) {
        if !variants.contains(&row.variant.as_str()) {
            variants.push(&row.variant);
        }
    }
    let escape = |s: String| s.replace('|', "\\|");
    let mut out = String::from("| variant |");
    for result in results {
        out.push_str(&format!(" {} |", escape(result.column())));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(results.len()));
    out.push('\n');
    for variant in variants {
        out.push_str(&format!("| {variant} |"));
        for result in results {
            let cell = result
                .rows
                .iter()
                .find(|r| r.variant == variant)
                .map_or_else(|| "not run".to_owned(), |r| r.outcome.cell());
            out.push_str(&format!(" {} |", escape(cell)));
        }
        out.push('\n');
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    fn result(version: &str, label: Option<&str>, rows: &[(&str, Outcome)]) -> VersionResult {
        VersionResult {
            version: version.to_owned(),
            version_label: label.map(str::to_owned),
            rows: rows
                .iter()
                .map(|(variant, outcome)| Row {
                    variant: (*variant).to_owned(),
                    outcome: outcome.clone(),
                })
                .collect(),
            seconds: 4.2,
        }
    }

    #[test]
    fn the_table_has_a_row_per_variant() {
        let one = result(
            "1.31.1",
            None,
            &[
                ("shipped", Outcome::Same),
                ("x", Outcome::Differs(vec!["a|b".into()])),
            ],
        );
        let table = merged_table(&[one]);
        assert!(
            table.starts_with("| variant | 1.31.1 |\n|---|---|\n"),
            "{table}"
        );
        assert!(table.contains("| shipped | same |"));
        assert!(table.contains("| x | differs (a\\|b) |"));
    }

    #[test]
    fn versions_merge_into_columns_that_say_what_played_them() {
        let results = [
            result(
                "1.31.1",
                Some("1.31.1 played by istiod 1.31.0 (eed52eb)"),
                &[("shipped", Outcome::Same), ("mirror-100", Outcome::Same)],
            ),
            result(
                "1.27.9",
                Some("1.27.9 played by istiod 1.30@9739e10 + 1.27 profile"),
                &[
                    ("shipped", Outcome::Same),
                    ("mirror-100", Outcome::Differs(vec!["9080: d".into()])),
                    ("only-here", Outcome::Same),
                ],
            ),
        ];
        assert_eq!(
            merged_table(&results),
            "| variant | 1.31.1 played by istiod 1.31.0 (eed52eb) | 1.27.9 played by istiod 1.30@9739e10 + 1.27 profile |\n\
             |---|---|---|\n\
             | shipped | same | same |\n\
             | mirror-100 | same | differs (9080: d) |\n\
             | only-here | not run | same |\n"
        );
        assert!(!results[0].differs());
        assert!(results[1].differs());
    }

    #[test]
    fn a_parity_run_prints_the_table_once() {
        let one = result(
            "1.31.1",
            None,
            &[
                ("shipped", Outcome::Same),
                ("x", Outcome::Differs(vec!["9080: d".into()])),
                (
                    "y",
                    Outcome::Refused {
                        local: "timeout".into(),
                    },
                ),
            ],
        );
        // `cargo xtask parity --istio 1.31.1`'s stdout: `mirror-e2e parity`'s summary, then
        // `mirror-e2e parity-table`'s table of the one version.
        let stdout = format!(
            "{}{}",
            run_summary(&one),
            merged_table(std::slice::from_ref(&one))
        );
        assert_eq!(stdout.matches("| variant |").count(), 1, "{stdout}");
        assert_eq!(stdout.matches("| shipped |").count(), 1, "{stdout}");
        // What differs still shows as the version finishes, before the table.
        assert_eq!(
            run_summary(&one),
            "parity 1.31.1: 3 variants in 4.2s: 1 same, 1 differ, 1 refused by local mode\n  \
             x: differs (9080: d)\n  \
             y: refused by local mode: timeout\n"
        );
    }

    #[test]
    fn a_result_file_reads_back_as_written() {
        let rows = vec![
            ("shipped".to_owned(), Outcome::Same),
            ("x".to_owned(), Outcome::Differs(vec!["one".into()])),
            (
                "y".to_owned(),
                Outcome::Rejected {
                    server: "no".into(),
                    local: "translated it".into(),
                },
            ),
        ];
        let version: IstioVersion = "1.27.9".parse().expect("version");
        let written = VersionResult::new(
            &version,
            Some("1.27.9 played by istiod 1.30@9739e10 + 1.27 profile".into()),
            rows,
            3.5,
        );
        let text = serde_json::to_string_pretty(&written).expect("serialised");
        let read: VersionResult = serde_json::from_str(&text).expect("read back");
        assert_eq!(read, written);
        assert_eq!(
            read.column(),
            "1.27.9 played by istiod 1.30@9739e10 + 1.27 profile"
        );
    }
}

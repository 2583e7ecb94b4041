//! Comparing two runs check by check: the Istio upgrade regression check.
//!
//! An outcome that changes (pass to fail, fail to pass, a check missing) fails the
//! comparison. A behaviour a check observed that changes is an intended behaviour change
//! when [`KNOWN_CHANGES`] explains it for the versions crossed, and fails the comparison
//! otherwise.

use std::fmt::Write as _;

use crate::report::{RunReport, SAMPLED_OBSERVATIONS, plural};
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

/// An upgrade walk: the runs in order and the comparison of each with the one before.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The runs, FROM first.
    pub runs: Vec<RunReport>,
    /// `hops[i]` compares `runs[i + 1]` with `runs[i]`.
    pub hops: Vec<Comparison>,
}

/// Compares every run of a walk with the one before it.
pub fn walk(runs: Vec<RunReport>) -> Walk {
    let hops = runs.windows(2).map(|w| compare(&w[0], &w[1])).collect();
    Walk { runs, hops }
}

impl Walk {
    /// Whether any hop changed something that is not intended.
    pub fn failed(&self) -> bool {
        self.hops.iter().any(Comparison::failed)
    }

    /// Rows of the version-by-check table: the check, then one cell per run; a cell whose
    /// hop changed something carries a note number.
    fn rows(&self) -> (Vec<(String, Vec<String>)>, Vec<String>) {
        let mut notes = Vec::new();
        let names: Vec<String> = self
            .runs
            .first()
            .map(|r| r.checks.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let rows = names
            .iter()
            .map(|name| {
                let cells = self
                    .runs
                    .iter()
                    .enumerate()
                    .map(|(i, run)| {
                        let mut cell = match run.checks.iter().find(|c| &c.name == name) {
                            Some(c) if c.passed => "PASS".to_owned(),
                            Some(_) => "FAIL".to_owned(),
                            None => "-".to_owned(),
                        };
                        let verdict = i
                            .checked_sub(1)
                            .and_then(|h| self.hops.get(h))
                            .and_then(|hop| hop.checks.iter().find(|(n, _)| n == name))
                            .map(|(_, v)| v);
                        let note = match verdict {
                            Some(Verdict::Intended(why)) => Some(why.clone()),
                            Some(Verdict::Regression(why)) => Some(format!("REGRESSION: {why}")),
                            Some(Verdict::Unexplained(why)) => Some(format!("CHANGED: {why}")),
                            _ => None,
                        };
                        if let Some(note) = note {
                            notes.push(format!(
                                "[{}] {} -> {}, {name}: {note}",
                                notes.len() + 1,
                                self.runs[i - 1].istio,
                                run.istio
                            ));
                            cell.push_str(&format!(" [{}]", notes.len()));
                        }
                        cell
                    })
                    .collect();
                (name.clone(), cells)
            })
            .collect();
        (rows, notes)
    }

    fn totals(&self) -> String {
        let count = |f: fn(&Verdict) -> bool| {
            self.hops
                .iter()
                .flat_map(|h| h.checks.iter())
                .filter(|(_, v)| f(v))
                .count()
        };
        format!(
            "{}: {}, {}",
            plural(self.hops.len(), "hop", "hops"),
            plural(
                count(|v| matches!(v, Verdict::Intended(_))),
                "intended behaviour change",
                "intended behaviour changes"
            ),
            plural(
                count(|v| matches!(v, Verdict::Regression(_) | Verdict::Unexplained(_))),
                "unexplained change or regression",
                "unexplained changes or regressions"
            )
        )
    }

    /// The text of `comparison.txt`: the version-by-check table, its notes, each hop.
    pub fn render(&self) -> String {
        let mut s = self.table();
        s.push('\n');
        for hop in &self.hops {
            s.push_str(&hop.render());
        }
        let _ = writeln!(s, "{}", self.totals());
        s
    }

    /// The version-by-check table with its notes and the totals, without each hop's
    /// check-by-check detail: what a terminal shows (comparison.txt has the rest).
    pub fn summary(&self) -> String {
        format!("{}{}\n", self.table(), self.totals())
    }

    /// The version-by-check table and the notes of its changed cells. A column's header is
    /// its run's [`RunReport::istio_label`], wrapped to the column: what ran, in the header
    /// itself (`1.27.9 played by istiod 1.30@9739e10 + 1.27 profile` on kwok).
    fn table(&self) -> String {
        let (rows, notes) = self.rows();
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
        let headers: Vec<Vec<String>> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let cells = rows.iter().map(|(_, c)| c[i].len()).max().unwrap_or(0);
                wrap(r.istio_label(), cells.max(HEADER_WIDTH))
            })
            .collect();
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(i, lines)| {
                let cells = rows.iter().map(|(_, c)| c[i].len()).max().unwrap_or(0);
                lines.iter().map(String::len).max().unwrap_or(0).max(cells)
            })
            .collect();
        let mut s = String::new();
        let depth = headers.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..depth {
            let _ = write!(s, "{:<width$}", if line == 0 { "check" } else { "" });
            for (lines, w) in headers.iter().zip(&widths) {
                let text = lines.get(line).map_or("", String::as_str);
                let _ = write!(s, "  {text:<w$}");
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
        }
        for (name, cells) in &rows {
            let _ = write!(s, "{name:<width$}");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(s, "  {c:<w$}");
            }
            s.push('\n');
        }
        for note in &notes {
            let _ = writeln!(s, "{note}");
        }
        s
    }

    /// The table in Markdown, for `summary.md` and a CI job's summary.
    pub fn markdown(&self) -> String {
        let (rows, notes) = self.rows();
        let mut s = format!(
            "| check | {} |\n|---|{}\n",
            self.runs
                .iter()
                .map(|r| r.istio_label().replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(self.runs.len())
        );
        for (name, cells) in &rows {
            let _ = writeln!(s, "| `{name}` | {} |", cells.join(" | "));
        }
        s.push('\n');
        for note in &notes {
            let _ = writeln!(s, "- {note}");
        }
        let _ = writeln!(s, "\n{}", self.totals());
        s
    }
}

/// How wide a version column's header may be before it wraps onto the next line.
const HEADER_WIDTH: usize = 16;

/// `text` in lines of at most `width` characters, broken between words (a longer word
/// gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// Compares `after` with `before`.
pub fn compare(before: &RunReport, after: &RunReport) -> Comparison {
    let from: Option<IstioVersion> = before.istio.parse().ok();
    let to: Option<IstioVersion> = after.istio.parse().ok();
    // A known change explains a hop across its boundary, upwards or (a rollback) downwards.
    let crosses = |since: (u32, u32)| match (from, to) {
        (Some(f), Some(t)) => {
            let (f, t) = ((f.major, f.minor), (t.major, t.minor));
            f.min(t) < since && since <= f.max(t)
        }
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
                    // Both passed their acceptance region: the counts differ by chance.
                    if old == new || SAMPLED_OBSERVATIONS.contains(&key.as_str()) {
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
mod tests;

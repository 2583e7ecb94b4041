//! `cargo xtask analyze`: Istio's own offline analyzer beside the project's lint.
//!
//! `istioctl analyze --use-kube=false -o json` (the pinned 1.31 build,
//! `binaries::ISTIOD_1_31`) and `mirror-e2e lint --format json` read the same inputs: the
//! shipped manifests, each case of lint's corpus (`e2e/tests/fixtures/lint/`: `base.yaml` plus
//! the case) and the tutorial fixture. Each analyze message is paired with a lint finding
//! through [`COVERAGE`] (analyze's code and message -> lint's rule, or why lint says nothing),
//! and the table goes to `target/analyze/analyze.md` and stdout. The command fails when, in
//! a mirroring case ([`MIRRORING`]), analyze finds something lint does not.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::cluster::kwok::binaries::ISTIOD_1_31;
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths};

/// Where lint's corpus lives, relative to the project root.
const CORPUS: &str = "e2e/tests/fixtures/lint";
/// The tutorial the project started from, kept with its defects (a lint fixture).
const TUTORIAL: &str = "e2e/tests/fixtures/tutorial-mirroring.yaml";

/// The cases in which lint must find at least what analyze finds: the routing under test,
/// and the corpus cases of the mirror's own defects (issue 18's list). A gap in another case
/// is shown in the table but does not fail the command.
const MIRRORING: &[&str] = &[
    "manifests",
    "unknown-subset",
    "unknown-host",
    "bad-percentage",
    "mirror-and-mirrors",
];

/// What lint says where analyze says something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Lint's rule of this code reports it, on the same object.
    Rule(&'static str),
    /// Lint does not report it, for the reason given.
    Not(&'static str),
}

/// One kind of analyze message: its code, text it contains ("" for any), and lint's answer.
pub struct Entry {
    pub code: &'static str,
    pub text: &'static str,
    pub coverage: Coverage,
}

const fn entry(code: &'static str, text: &'static str, coverage: Coverage) -> Entry {
    Entry {
        code,
        text,
        coverage,
    }
}

/// Analyze's messages (codes and templates from istio/istio
/// `pkg/config/analysis/msg/messages.yaml`) and lint's rule for each; the first entry whose
/// code matches and whose text the message contains wins.
///
/// Offline, istioctl reads no Services, Pods, Namespaces, Nodes or Secrets from the files
/// (`kuberesource.DefaultExcludedSchemas`; istio/istio#17686), so the analyzers that need
/// them are skipped: the host, mirror host and host:port IST0101, IST0173 and IST0174 only
/// come from `istioctl analyze` against a cluster. They are here for when it is run so.
pub const COVERAGE: &[Entry] = &[
    // virtualservice.DestinationHostAnalyzer (needs Services): "Referenced %s not found: %q".
    entry(
        "IST0101",
        "Referenced host not found",
        Coverage::Rule("unknown-host"),
    ),
    entry(
        "IST0101",
        "Referenced mirror host not found",
        Coverage::Rule("unknown-host"),
    ),
    entry(
        "IST0101",
        "Referenced host:port not found",
        Coverage::Rule("unknown-port"),
    ),
    // virtualservice.DestinationRuleAnalyzer (VirtualServices and DestinationRules only).
    entry(
        "IST0101",
        "Referenced host+subset in destinationrule not found",
        Coverage::Rule("unknown-subset"),
    ),
    entry(
        "IST0101",
        "Referenced mirror+subset in destinationrule not found",
        Coverage::Rule("unknown-subset"),
    ),
    // schema.ValidationAnalyzer: the webhook's validation (`validateHTTPRoute`,
    // `validateHTTPMirrors`, `validateHTTPRouteConflict`), one message per error.
    entry(
        "IST0106",
        "Schema validation error: mirror_percentage must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: mirror percentage must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: mirror_percent must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: HTTP route cannot contain both mirror and mirrors",
        Coverage::Rule("mirror-and-mirrors"),
    ),
    entry(
        "IST0133",
        "Schema validation warning: using deprecated setting \"mirrorPercent\"",
        Coverage::Rule("deprecated-field"),
    ),
    // The same validation's `analyzeUnreachableHTTPRules`.
    entry("IST0130", "", Coverage::Rule("unreachable-rule")),
    entry(
        "IST0131",
        " of prefix ",
        Coverage::Not(
            "a URI prefix that an earlier rule's prefix covers (with its method, authority, headers and port); lint checks exact duplicates only, which is what a mirroring rule after a header match meets",
        ),
    ),
    entry("IST0131", "", Coverage::Rule("ineffective-match")),
    // destinationrule.SubsetSelectPodAnalyzer (needs Services and Pods).
    entry("IST0173", "", Coverage::Rule("subset-selects-nothing")),
    entry("IST0174", "", Coverage::Rule("unknown-host")),
    // virtualservice.ConflictingMeshGatewayHostsAnalyzer: "The VirtualServices %s associated
    // with mesh gateway define the same host %s which can lead to undefined behavior."
    entry("IST0109", "", Coverage::Rule("conflicting-hosts")),
];

/// Lint's answer to an analyze message, `None` when [`COVERAGE`] has no entry for it.
pub fn coverage(m: &Message) -> Option<Coverage> {
    COVERAGE
        .iter()
        .find(|e| e.code == m.code && m.message.contains(e.text))
        .map(|e| e.coverage)
}

/// One message of `istioctl analyze -o json`: `diag.Message.Unstructured` in istio/istio
/// `pkg/config/analysis/diag/message.go` (also `documentationUrl`, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub code: String,
    /// `Error`, `Warning` or `Info`.
    pub level: String,
    pub message: String,
    /// `<Kind> <namespace>/<name>` (`kube.Origin.FriendlyName`), when about an object.
    pub origin: Option<String>,
    /// `<file>:<line>`, when read from a file.
    pub reference: Option<String>,
}

impl Message {
    /// The object as lint names it: `VirtualService reviews` for `VirtualService default/reviews`.
    pub fn object(&self) -> Option<String> {
        let (kind, name) = self.origin.as_deref()?.split_once(' ')?;
        let name = name.rsplit('/').next().unwrap_or(name);
        Some(format!("{kind} {name}"))
    }

    /// The line of the reference (Istio puts the field's line there when it knows it).
    pub fn line(&self) -> Option<u64> {
        self.reference.as_deref()?.rsplit(':').next()?.parse().ok()
    }
}

/// A file istioctl could not read: it says so on stderr ("Error(s) adding files: ...") and
/// analyzes the rest; kept as a message of code [`PARSE`] so the table shows it.
pub const PARSE: &str = "parse";

/// The messages of one `istioctl analyze -o json` run: the JSON array on stdout (Go's
/// `json.MarshalIndent` of the messages; `[]` when there are none), plus a [`PARSE`] message
/// for files it could not read.
pub fn parse_analyze(stdout: &str, stderr: &str) -> anyhow::Result<Vec<Message>> {
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("istioctl's output is no JSON: {}", stdout.trim()))?;
    let items = match json {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => bail!("istioctl's output is no array of messages: {other}"),
    };
    let text = |item: &Value, key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut messages = items
        .iter()
        .map(|item| {
            Ok(Message {
                code: text(item, "code").context("a message without a code")?,
                level: text(item, "level").unwrap_or_default(),
                message: text(item, "message").unwrap_or_default(),
                origin: text(item, "origin"),
                reference: text(item, "reference"),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some((_, errors)) = stderr.split_once("Error(s) adding files: ") {
        messages.push(Message {
            code: PARSE.into(),
            level: "Error".into(),
            message: errors.trim().to_owned(),
            origin: None,
            reference: None,
        });
    }
    Ok(messages)
}

/// One finding of `mirror-e2e lint --format json` (the e2e crate's `lint::Finding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: u64,
    pub severity: String,
    pub code: String,
    /// `<Kind> <name>: <path>: <what>` for a finding about an object.
    pub message: String,
}

impl Finding {
    fn is_about(&self, object: &str) -> bool {
        self.message
            .strip_prefix(object)
            .is_some_and(|rest| rest.starts_with(':'))
    }
}

/// The findings of one `mirror-e2e lint --format json` run.
pub fn parse_lint(stdout: &str) -> anyhow::Result<Vec<Finding>> {
    let json: Value = serde_json::from_str(stdout.trim()).context("lint's output is no JSON")?;
    let items = json.as_array().context("lint's output is no array")?;
    items
        .iter()
        .map(|item| {
            let text = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("a lint finding without {key}"))
            };
            Ok(Finding {
                file: text("file")?,
                line: item.get("line").and_then(Value::as_u64).unwrap_or(0),
                severity: text("severity")?,
                code: text("code")?,
                message: text("message")?,
            })
        })
        .collect()
}

/// How an analyze message (or a lint finding alone) came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Lint reports it (the finding beside it).
    Covered,
    /// Lint is silent, for a reason [`COVERAGE`] gives.
    Explained(&'static str),
    /// Lint is silent and should not be: no finding of `rule` on the object, or (`None`) no
    /// entry in [`COVERAGE`] at all.
    Missed(Option<&'static str>),
    /// A lint finding no analyze message pairs with.
    LintOnly,
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub analyze: Option<Message>,
    pub lint: Option<Finding>,
    pub verdict: Verdict,
}

/// Pairs each analyze message with a lint finding of its rule on its object, each finding
/// used once (lint must find at least as many as analyze), the closest by [`affinity`]; the
/// findings left are lint's own.
pub fn compare(messages: &[Message], findings: &[Finding]) -> Vec<Row> {
    let mut used = vec![false; findings.len()];
    let mut rows = Vec::new();
    for m in messages {
        let rule = match coverage(m) {
            Some(Coverage::Rule(rule)) => rule,
            Some(Coverage::Not(why)) => {
                rows.push(Row {
                    analyze: Some(m.clone()),
                    lint: None,
                    verdict: Verdict::Explained(why),
                });
                continue;
            }
            None => {
                rows.push(Row {
                    analyze: Some(m.clone()),
                    lint: None,
                    verdict: Verdict::Missed(None),
                });
                continue;
            }
        };
        let object = m.object();
        let mut best: Option<(usize, usize)> = None;
        for (i, f) in findings.iter().enumerate() {
            let candidate =
                !used[i] && f.code == rule && object.as_deref().is_none_or(|o| f.is_about(o));
            if candidate && best.is_none_or(|(_, score)| affinity(m, f) > score) {
                best = Some((i, affinity(m, f)));
            }
        }
        rows.push(match best {
            Some((i, _)) => {
                used[i] = true;
                Row {
                    analyze: Some(m.clone()),
                    lint: Some(findings[i].clone()),
                    verdict: Verdict::Covered,
                }
            }
            None => Row {
                analyze: Some(m.clone()),
                lint: None,
                verdict: Verdict::Missed(Some(rule)),
            },
        });
    }
    for (f, _) in findings.iter().zip(&used).filter(|(_, used)| !**used) {
        rows.push(Row {
            analyze: None,
            lint: Some(f.clone()),
            verdict: Verdict::LintOnly,
        });
    }
    rows
}

/// How closely a finding fits a message of its rule: the line, when both give the field's,
/// and the values the message names (its quoted parts, its numbers) that the finding names
/// too, numbers by value (`150.000000` is `150`). Only orders the pairing of a message among
/// several findings of one rule on one object; whether lint covers it does not depend on it.
pub fn affinity(m: &Message, f: &Finding) -> usize {
    fn tokens(text: &str) -> impl Iterator<Item = &str> {
        text.split(|c: char| c.is_whitespace() || "\"`'(),:+[]{}".contains(c))
            .filter(|t| !t.is_empty())
    }
    let quoted = m.message.split('"').skip(1).step_by(2).flat_map(tokens);
    let numbers = tokens(&m.message).filter(|t| t.parse::<f64>().is_ok());
    let theirs: Vec<&str> = tokens(&f.message).collect();
    let named = |v: &str| {
        theirs.iter().any(|t| {
            *t == v || matches!((t.parse::<f64>(), v.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
        })
    };
    quoted.chain(numbers).filter(|v| named(v)).count() + usize::from(m.line() == Some(f.line))
}

/// One input both tools read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// `manifests`, a corpus case's file stem, or the tutorial's.
    pub name: String,
    /// What lint is given (relative to the project root).
    pub lint: Vec<PathBuf>,
    /// What istioctl is given: the same manifests as files (lint skips `expectations.yaml`
    /// in a directory; istioctl would fail to parse it, as it is no Kubernetes object).
    pub analyze: Vec<PathBuf>,
}

impl Case {
    pub fn mirroring(&self) -> bool {
        MIRRORING.contains(&self.name.as_str())
    }
}

/// The shipped manifests, every corpus case with `base.yaml`, and the tutorial, from `root`.
pub fn cases(root: &Path) -> anyhow::Result<Vec<Case>> {
    let mut shipped = yaml_files(root, Path::new("manifests"))?;
    shipped.retain(|p| p.file_name().is_none_or(|n| n != "expectations.yaml"));
    let mut cases = vec![Case {
        name: "manifests".into(),
        lint: vec!["manifests".into()],
        analyze: shipped,
    }];
    let base = Path::new(CORPUS).join("base.yaml");
    for file in yaml_files(root, Path::new(CORPUS))? {
        if file == base {
            continue;
        }
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let paths = vec![base.clone(), file];
        cases.push(Case {
            name,
            lint: paths.clone(),
            analyze: paths,
        });
    }
    cases.push(Case {
        name: "tutorial-mirroring".into(),
        lint: vec![TUTORIAL.into()],
        analyze: vec![TUTORIAL.into()],
    });
    Ok(cases)
}

/// The user's manifests (`--manifests`) as the one case, counted as a mirroring case (its
/// gaps fail the run), read before anything runs so a typo names the flag.
fn user_case(dir: &Path) -> anyhow::Result<Case> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("--manifests {}", dir.display()))?;
    let mut files = if dir.is_dir() {
        yaml_files(&dir, Path::new(""))?
            .into_iter()
            .map(|f| dir.join(f))
            .collect()
    } else {
        vec![dir.clone()]
    };
    files.retain(|p| p.file_name().is_none_or(|n| n != "expectations.yaml"));
    Ok(Case {
        name: "manifests".into(),
        lint: vec![dir],
        analyze: files,
    })
}

/// The `.yaml`/`.yml` files under `dir` (relative to `root`), sorted, as relative paths.
fn yaml_files(root: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root.join(dir))
        .with_context(|| format!("read {}", root.join(dir).display()))?;
    for entry in entries {
        let path = dir.join(entry?.file_name());
        if root.join(&path).is_dir() {
            out.extend(yaml_files(root, &path)?);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What both tools said about one case.
pub struct Outcome {
    pub case: Case,
    pub rows: Vec<Row>,
}

impl Outcome {
    /// The analyze messages lint misses, when they count (a mirroring case).
    pub fn gaps(&self) -> Vec<&Message> {
        if !self.case.mirroring() {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Missed(_)))
            .filter_map(|r| r.analyze.as_ref())
            .collect()
    }
}

/// The comparison as Markdown: a row per analyze message or lone lint finding, then why lint
/// is silent where it is.
pub fn table(outcomes: &[Outcome]) -> String {
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
                Verdict::Covered => "lint covers".to_owned(),
                Verdict::Explained(why) => {
                    let code = row.analyze.as_ref().map_or("", |m| m.code.as_str());
                    if !reasons.iter().any(|(c, _)| c == code) {
                        reasons.push((code.to_owned(), why));
                    }
                    format!("not linted: {code} below")
                }
                Verdict::Missed(Some(rule)) => format!("**missed** (no `{rule}` on the object)"),
                Verdict::Missed(None) => "**missed** (no entry in COVERAGE)".to_owned(),
                Verdict::LintOnly => "lint only".to_owned(),
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

impl flags::Analyze {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let istioctl = ISTIOD_1_31
            .ensure(sh, &interrupt)
            .context("build istioctl")?
            .join("istioctl");
        let runner = Runner::build(sh, &interrupt)?;
        let root = paths::project_root();
        let mut outcomes = Vec::new();
        let cases = match &self.manifests {
            Some(dir) => vec![user_case(dir)?],
            None => cases(&root)?,
        };
        for case in cases {
            interrupt.check()?;
            let messages = analyze(sh, &istioctl, &case.analyze)
                .with_context(|| format!("istioctl analyze, case {}", case.name))?;
            interrupt.check()?;
            let findings = lint(sh, &runner.bin, &case.lint)
                .with_context(|| format!("lint, case {}", case.name))?;
            let rows = compare(&messages, &findings);
            outcomes.push(Outcome { case, rows });
        }
        let table = table(&outcomes);
        let out = root.join("target/analyze");
        std::fs::create_dir_all(&out).context("create target/analyze")?;
        std::fs::write(out.join("analyze.md"), &table).context("write analyze.md")?;
        println!("{table}");
        eprintln!("the table is also in target/analyze/analyze.md");
        let gaps: Vec<String> = outcomes
            .iter()
            .flat_map(|o| {
                o.gaps()
                    .into_iter()
                    .map(|m| format!("{}: {} {}", o.case.name, m.code, m.message))
            })
            .collect();
        if !gaps.is_empty() {
            bail!(
                "in a mirroring case istioctl analyze finds what lint does not (add the rule to lint, or an entry to COVERAGE in xtask/src/analyze.rs saying why not):\n  {}",
                gaps.join("\n  ")
            );
        }
        Ok(())
    }
}

/// `istioctl analyze --use-kube=false -o json` on the files: files only, no cluster. It exits
/// 0 with `-o json` whatever it finds (only its log format sets the exit code), but a
/// non-zero exit with a JSON array on stdout is a finding too, not a failure.
fn analyze(sh: &Shell, istioctl: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<Message>> {
    let output = cmd!(sh, "{istioctl} analyze --use-kube=false -o json {files...}")
        .ignore_status()
        .output()
        .context("run istioctl")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse_analyze(&stdout, &stderr)
        .with_context(|| format!("istioctl exited with {}: {}", output.status, stderr.trim()))
}

/// `mirror-e2e lint --format json`: exit 1 only says it found errors; 2 is a failure.
fn lint(sh: &Shell, bin: &Path, paths: &[PathBuf]) -> anyhow::Result<Vec<Finding>> {
    let output = cmd!(sh, "{bin} lint --format json {paths...}")
        .ignore_status()
        .output()
        .context("run mirror-e2e lint")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!(
            "mirror-e2e lint exited with {}: {}",
            output.status,
            stderr.trim()
        );
    }
    parse_lint(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// istioctl's JSON as `formatting.Print` writes it (`json.MarshalIndent(ms, "", "\t")`,
    /// keys sorted as Go sorts a map's): istioctl 1.31-dev on the unknown-subset case.
    const ANALYZE_JSON: &str = r#"[
	{
		"code": "IST0101",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Referenced host+subset in destinationrule not found: \"reviews+v3\"",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/unknown-subset.yaml:10"
	},
	{
		"code": "IST0101",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Referenced mirror+subset in destinationrule not found: \"reviews+v9\"",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/unknown-subset.yaml:11"
	}
]
"#;

    const LINT_JSON: &str = r#"[
  {
    "file": "e2e/tests/fixtures/lint/unknown-subset.yaml",
    "line": 10,
    "severity": "error",
    "code": "unknown-subset",
    "message": "VirtualService reviews: spec.http[0].route[0].destination.subset: subset `v3` of host `reviews` is defined by no DestinationRule (defined: v1, v2)"
  },
  {
    "file": "e2e/tests/fixtures/lint/unknown-subset.yaml",
    "line": 11,
    "severity": "error",
    "code": "unknown-subset",
    "message": "VirtualService reviews: spec.http[0].mirror.subset: subset `v9` of host `reviews` is defined by no DestinationRule (defined: v1, v2)"
  }
]
"#;

    /// istioctl 1.31-dev on the bad-percentage case: sorted by text, every reference the
    /// document's first line (the validation knows no field).
    const PERCENTAGE_JSON: &str = r#"[
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror percentage must have a min value of 0 (it has -1.000000)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror_percent must have a max value of 100 (it has 101)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror_percentage must have a max value of 100 (it has 150.000000)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0133",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0133/?ref=istioctl-analyze",
		"level": "Warning",
		"message": "Schema validation warning: using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	}
]"#;

    const PERCENTAGE_LINT_JSON: &str = r#"[
  {"file": "b.yaml", "line": 13, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[0].mirrorPercentage.value: 150 is outside 0..100"},
  {"file": "b.yaml", "line": 17, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[1].mirrors[0].percentage.value: -1 is outside 0..100"},
  {"file": "b.yaml", "line": 22, "severity": "warning", "code": "deprecated-field",
   "message": "VirtualService reviews: spec.http[2].mirrorPercent: deprecated: use mirrorPercentage: {value: <0..100>}"},
  {"file": "b.yaml", "line": 22, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[2].mirrorPercent: 101 is outside 0..100"}
]"#;

    fn message(code: &str, text: &str, origin: &str) -> Message {
        Message {
            code: code.into(),
            level: "Error".into(),
            message: text.into(),
            origin: Some(origin.into()),
            reference: None,
        }
    }

    fn finding(code: &str, text: &str) -> Finding {
        Finding {
            file: "t.yaml".into(),
            line: 1,
            severity: "error".into(),
            code: code.into(),
            message: text.into(),
        }
    }

    #[test]
    fn istioctls_json_reads_as_messages_with_object_and_line() {
        let messages = parse_analyze(ANALYZE_JSON, "").expect("parses");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].code, "IST0101");
        assert_eq!(messages[0].level, "Error");
        assert_eq!(
            messages[0].message,
            "Referenced host+subset in destinationrule not found: \"reviews+v3\""
        );
        assert_eq!(
            messages[0].object().as_deref(),
            Some("VirtualService reviews")
        );
        assert_eq!(messages[0].line(), Some(10));
        // Nothing found: Go prints `[]` (an empty non-nil slice); `null` reads the same.
        assert!(parse_analyze("[]\n", "").expect("parses").is_empty());
        assert!(parse_analyze("null\n", "").expect("parses").is_empty());
        assert!(parse_analyze("Analyzers found issues", "").is_err());
    }

    #[test]
    fn a_file_istioctl_cannot_read_is_a_parse_message() {
        let stderr = "Error(s) adding files: errors parsing content \"x.yaml\": error processing x.yaml[0]: unable to parse resource with no group, version and kind\n";
        let messages = parse_analyze("[]", stderr).expect("parses");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].code, PARSE);
        assert!(
            messages[0].message.starts_with("errors parsing content"),
            "{messages:?}"
        );
        // Its success line on stderr is no message.
        let ok = "\u{2714} No validation issues found when analyzing namespace: default.\n";
        assert!(parse_analyze("[]", ok).expect("parses").is_empty());
    }

    #[test]
    fn lints_json_reads_as_findings() {
        let findings = parse_lint(LINT_JSON).expect("parses");
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[1].code, "unknown-subset");
        assert_eq!(findings[1].line, 11);
        assert!(findings[1].is_about("VirtualService reviews"));
        assert!(!findings[1].is_about("VirtualService review"));
        assert!(parse_lint("lint: 2 errors").is_err());
    }

    #[test]
    fn each_code_maps_to_lints_rule_or_a_reason() {
        let cases = [
            (
                "IST0101",
                "Referenced mirror host not found: \"ghost\"",
                Some(Coverage::Rule("unknown-host")),
            ),
            (
                "IST0101",
                "Referenced host:port not found: \"mirror:9081\"",
                Some(Coverage::Rule("unknown-port")),
            ),
            (
                "IST0106",
                "Schema validation error: mirror percentage must have a min value of 0 (it has -1.000000)",
                Some(Coverage::Rule("percentage-range")),
            ),
            (
                "IST0106",
                "Schema validation error: HTTP route cannot contain both mirror and mirrors",
                Some(Coverage::Rule("mirror-and-mirrors")),
            ),
            (
                "IST0130",
                "VirtualService rule #1 not used (route without matches defined before).",
                Some(Coverage::Rule("unreachable-rule")),
            ),
            (
                "IST0131",
                "VirtualService rule \"mirrored\" match \"tester-again\" is not used (duplicate/overlapping match in rule \"tester\").",
                Some(Coverage::Rule("ineffective-match")),
            ),
            (
                "IST0131",
                "VirtualService rule #1 match #0 of prefix /api is not used (duplicate/overlapping match in rule #0 of prefix /a on #0).",
                COVERAGE
                    .iter()
                    .find(|e| e.text == " of prefix ")
                    .map(|e| e.coverage),
            ),
            // Another validation error has no rule of lint's: it would be missed.
            (
                "IST0106",
                "Schema validation error: total destination weight = 0",
                None,
            ),
            ("IST9999", "something new", None),
        ];
        for (code, text, expected) in cases {
            let m = message(code, text, "VirtualService default/reviews");
            assert_eq!(coverage(&m), expected, "{code} {text}");
        }
        // Every rule named is one of lint's (e2e/model/src/lint/).
        let lint_source: String = ["mod.rs", "routing.rs", "workloads.rs", "precedence.rs"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(paths::project_root().join("e2e/model/src/lint").join(f))
                    .expect("lint source")
            })
            .collect();
        for e in COVERAGE {
            if let Coverage::Rule(rule) = e.coverage {
                assert!(
                    lint_source.contains(&format!("\"{rule}\"")),
                    "{}: lint has no rule {rule}",
                    e.code
                );
            }
        }
    }

    #[test]
    fn lint_covers_the_unknown_subset_case_pairing_each_subset_with_its_finding() {
        let rows = compare(
            &parse_analyze(ANALYZE_JSON, "").expect("analyze"),
            &parse_lint(LINT_JSON).expect("lint"),
        );
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert!(
            rows.iter().all(|r| r.verdict == Verdict::Covered),
            "{rows:#?}"
        );
        assert!(rows[0].lint.as_ref().is_some_and(|f| f.line == 10));
        assert!(rows[1].lint.as_ref().is_some_and(|f| f.line == 11));
    }

    #[test]
    fn percentages_pair_by_the_value_they_name_not_by_order() {
        let rows = compare(
            &parse_analyze(PERCENTAGE_JSON, "").expect("analyze"),
            &parse_lint(PERCENTAGE_LINT_JSON).expect("lint"),
        );
        let pairs: Vec<(&str, u64)> = rows
            .iter()
            .map(|r| {
                assert_eq!(r.verdict, Verdict::Covered, "{r:#?}");
                let m = r.analyze.as_ref().expect("a message");
                let tail = m.message.rsplit(' ').next().unwrap_or_default();
                (tail, r.lint.as_ref().expect("a finding").line)
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("-1.000000)", 17),
                ("101)", 22),
                ("150.000000)", 13),
                ("instead", 22)
            ]
        );
    }

    #[test]
    fn a_finding_pairs_once_and_only_on_its_object() {
        let twice = [
            message(
                "IST0101",
                "Referenced host not found: \"a\"",
                "VirtualService default/reviews",
            ),
            message(
                "IST0101",
                "Referenced host not found: \"b\"",
                "VirtualService default/reviews",
            ),
        ];
        let one = [finding(
            "unknown-host",
            "VirtualService reviews: spec.http[0].route[0].destination.host: host `a` names no Service in the manifests",
        )];
        let rows = compare(&twice, &one);
        assert_eq!(rows[0].verdict, Verdict::Covered);
        assert_eq!(rows[1].verdict, Verdict::Missed(Some("unknown-host")));
        // Another object's finding does not count.
        let other = [finding(
            "unknown-host",
            "VirtualService ratings: spec.http[0].route[0].destination.host: host `a` names no Service in the manifests",
        )];
        let rows = compare(&twice[..1], &other);
        assert_eq!(rows[0].verdict, Verdict::Missed(Some("unknown-host")));
        assert_eq!(rows[1].verdict, Verdict::LintOnly);
        // A code COVERAGE does not know is missed, not ignored.
        let rows = compare(&[message("IST9999", "new", "Gateway default/g")], &[]);
        assert_eq!(rows[0].verdict, Verdict::Missed(None));
        // The offline subset message pairs with lint's finding where lint has one.
        let rows = compare(
            &[message(
                "IST0173",
                "The Subset v7 defined in the DestinationRule does not select any pods.",
                "DestinationRule default/mirror",
            )],
            &[finding(
                "subset-selects-nothing",
                "DestinationRule mirror: spec.subsets[0].labels: subset `v7` of `mirror` selects no Deployment's pods (version=v7)",
            )],
        );
        assert_eq!(rows[0].verdict, Verdict::Covered);
    }

    #[test]
    fn only_a_mirroring_cases_misses_fail_the_command() {
        let missed = || Row {
            analyze: Some(message("IST9999", "new", "Gateway default/g")),
            lint: None,
            verdict: Verdict::Missed(None),
        };
        let case = |name: &str| Case {
            name: name.into(),
            lint: Vec::new(),
            analyze: Vec::new(),
        };
        let mirroring = Outcome {
            case: case("unknown-host"),
            rows: vec![missed()],
        };
        let other = Outcome {
            case: case("subset-selects-nothing"),
            rows: vec![missed()],
        };
        assert_eq!(mirroring.gaps().len(), 1);
        assert!(other.gaps().is_empty());
        let md = table(&[mirroring, other]);
        assert!(
            md.contains("| unknown-host (mirroring) | `IST9999` Error: new (Gateway g) | nothing | **missed** (no entry in COVERAGE) |"),
            "{md}"
        );
    }

    #[test]
    fn the_table_names_a_case_once_and_says_why_lint_is_silent() {
        let mut messages = parse_analyze(ANALYZE_JSON, "").expect("analyze");
        messages.push(Message {
            level: "Info".into(),
            ..message(
                "IST0131",
                "VirtualService rule #1 match #0 of prefix /a/b is not used (duplicate/overlapping match in rule #0 of prefix /a on #0).",
                "VirtualService default/reviews",
            )
        });
        let case = |name: &str| Case {
            name: name.into(),
            lint: Vec::new(),
            analyze: Vec::new(),
        };
        let outcome = Outcome {
            case: case("unknown-subset"),
            rows: compare(&messages, &parse_lint(LINT_JSON).expect("lint")),
        };
        let nothing = Outcome {
            case: case("quiet"),
            rows: Vec::new(),
        };
        let md = table(&[outcome, nothing]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| case | istioctl analyze | cargo xtask lint | verdict |"
        );
        assert!(lines[2].starts_with("| unknown-subset (mirroring) | `IST0101` Error: Referenced host+subset in destinationrule not found: \"reviews+v3\" (VirtualService reviews, line 10) | `unknown-subset` error (line 10): VirtualService reviews: spec.http[0].route[0].destination.subset:"), "{md}");
        assert!(lines[2].ends_with(" | lint covers |"), "{md}");
        assert!(lines[3].starts_with("|  | `IST0101`"), "{md}");
        assert!(lines[4].starts_with("|  | `IST0131` Info: "), "{md}");
        assert!(
            lines[4].ends_with("| nothing | not linted: IST0131 below |"),
            "{md}"
        );
        assert_eq!(lines[5], "| quiet | nothing | nothing | agree |");
        assert!(
            md.contains("\n- IST0131: a URI prefix that an earlier rule's prefix covers"),
            "{md}"
        );
    }

    #[test]
    fn the_cases_are_the_manifests_the_corpus_and_the_tutorial() {
        let root = paths::project_root();
        let cases = cases(&root).expect("cases");
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"manifests"));
        assert_eq!(names.last(), Some(&"tutorial-mirroring"));
        // Every mirroring case exists.
        for name in MIRRORING {
            assert!(names.contains(name), "{name} is no case: {names:?}");
        }
        // istioctl gets the manifests lint loads: no expectations file, but every object.
        let shipped = &cases[0].analyze;
        assert!(
            shipped.iter().all(|p| !p.ends_with("expectations.yaml")),
            "{shipped:?}"
        );
        assert!(shipped.contains(&PathBuf::from("manifests/routing/virtual-service.yaml")));
        // A corpus case is base.yaml with the case, for both tools.
        let subset = cases
            .iter()
            .find(|c| c.name == "unknown-subset")
            .expect("case");
        assert_eq!(subset.lint, subset.analyze);
        assert_eq!(
            subset.lint,
            [
                PathBuf::from(CORPUS).join("base.yaml"),
                PathBuf::from(CORPUS).join("unknown-subset.yaml")
            ]
        );
    }
}

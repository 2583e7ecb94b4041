//! Both tools' output read (`parse_analyze`, `parse_lint`) and paired: each analyze message
//! with a lint finding of its rule on its object (`compare`, `affinity`).

use anyhow::{Context, bail};
use serde_json::Value;

use super::coverage::{COVERAGE, Coverage};

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

/// One finding of `mirror-e2e lint --format json` (the e2e crate's `lint::LintFinding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    pub file: String,
    pub line: u64,
    pub severity: String,
    pub code: String,
    /// `<Kind> <name>: <path>: <what>` for a finding about an object.
    pub message: String,
}

impl LintFinding {
    pub(super) fn is_about(&self, object: &str) -> bool {
        self.message
            .strip_prefix(object)
            .is_some_and(|rest| rest.starts_with(':'))
    }
}

/// The findings of one `mirror-e2e lint --format json` run.
pub fn parse_lint(stdout: &str) -> anyhow::Result<Vec<LintFinding>> {
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
            Ok(LintFinding {
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
pub enum Pairing {
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
pub struct PairedRow {
    pub analyze: Option<Message>,
    pub lint: Option<LintFinding>,
    pub verdict: Pairing,
}

/// Pairs each analyze message with a lint finding of its rule on its object, each finding
/// used once (lint must find at least as many as analyze), the closest by [`affinity`]; the
/// findings left are lint's own.
pub fn compare(messages: &[Message], findings: &[LintFinding]) -> Vec<PairedRow> {
    let mut used = vec![false; findings.len()];
    let mut rows = Vec::new();
    for m in messages {
        let rule = match coverage(m) {
            Some(Coverage::Rule(rule)) => rule,
            Some(Coverage::Not(why)) => {
                rows.push(PairedRow {
                    analyze: Some(m.clone()),
                    lint: None,
                    verdict: Pairing::Explained(why),
                });
                continue;
            }
            None => {
                rows.push(PairedRow {
                    analyze: Some(m.clone()),
                    lint: None,
                    verdict: Pairing::Missed(None),
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
                PairedRow {
                    analyze: Some(m.clone()),
                    lint: Some(findings[i].clone()),
                    verdict: Pairing::Covered,
                }
            }
            None => PairedRow {
                analyze: Some(m.clone()),
                lint: None,
                verdict: Pairing::Missed(Some(rule)),
            },
        });
    }
    for (f, _) in findings.iter().zip(&used).filter(|(_, used)| !**used) {
        rows.push(PairedRow {
            analyze: None,
            lint: Some(f.clone()),
            verdict: Pairing::LintOnly,
        });
    }
    rows
}

/// How closely a finding fits a message of its rule: the line, when both give the field's,
/// and the values the message names (its quoted parts, its numbers) that the finding names
/// too, numbers by value (`150.000000` is `150`). Only orders the pairing of a message among
/// several findings of one rule on one object; whether lint covers it does not depend on it.
pub fn affinity(m: &Message, f: &LintFinding) -> usize {
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

/// Lint's answer to an analyze message, `None` when [`COVERAGE`] has no entry for it.
pub fn coverage(m: &Message) -> Option<Coverage> {
    COVERAGE
        .iter()
        .find(|e| e.code == m.code && m.message.contains(e.text))
        .map(|e| e.coverage)
}

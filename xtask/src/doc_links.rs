//! The documentation holds together: every relative link and `#anchor` in README.md,
//! ARCHITECTURE.md and docs/*.md resolves, and no tracked file refers to something outside
//! the repository that a user cannot open (private notes, a sibling checkout, a path on the
//! machine it was written on). A step of `cargo xtask test`.
//!
//! Anchors are matched against the heading slugs GitHub generates ([`slug`]), so a link
//! that works here works on GitHub. No Markdown crate: the subset the docs use (ATX
//! headings, fenced code, inline and reference links, `src`/`href` attributes) is a few
//! dozen lines, and a parser would be the largest dependency of xtask.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// The Markdown files whose links are checked, relative to the project root: the two at
/// the top and every page under docs/.
pub fn markdown_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let docs = root.join("docs");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&docs)
        .with_context(|| format!("read {}", docs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    pages.sort();
    files.extend(pages);
    Ok(files)
}

/// The whole check on the checkout at `root`: links of [`markdown_files`], and
/// [`outside_references`] in every tracked text file. Every problem is listed, not only the
/// first.
pub fn check(sh: &Shell, root: &Path) -> anyhow::Result<()> {
    let docs: Vec<(PathBuf, String)> = markdown_files(root)?
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root.join(&p))
                .with_context(|| format!("read {}", p.display()))?;
            Ok((p, text))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut problems = dead_links(root, &docs);
    let _dir = sh.push_dir(root);
    let listed = cmd!(sh, "git ls-files -z")
        .quiet()
        .read()
        .context("list the tracked files (git ls-files)")?;
    for file in listed.split('\0').filter(|f| !f.is_empty()) {
        if SELF.contains(&file) {
            continue;
        }
        // Binary files (the report's pictures) and files removed but not yet committed
        // hold no reference to check.
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        problems.extend(outside_references(Path::new(file), &text));
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the documentation has {} problem{}:\n  {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n  ")
    )
}

/// This module's files, which name the markers they look for.
const SELF: [&str; 2] = ["xtask/src/doc_links.rs", "xtask/src/doc_links/tests.rs"];

/// Names of things outside the repository that a reference must not point at: notes kept
/// beside a checkout, a sibling directory, the machine's own paths. A user can open none
/// of them; name the upstream file at a tag, or a page of this repository, instead.
const OUTSIDE: [&str; 6] = [
    "field-notes",
    "field_notes",
    "style-examples",
    "style_examples",
    "../shared/",
    "/work/",
];

/// Every reference in `text` (the tracked file `file`) to something outside the
/// repository, as `file:line: what`.
pub fn outside_references(file: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        for marker in OUTSIDE {
            if lower.contains(marker) {
                found.push(format!(
                    "{}:{}: refers to `{marker}`, which is outside the repository: name what a user can open (an upstream file at a tag, a page of docs/)",
                    file.display(),
                    i + 1
                ));
            }
        }
        // A `reference/` directory at the start of a path (not `.../docs/reference/...` of
        // a URL): the notes' reference material, outside the repository.
        let starts = lower.match_indices("reference/").any(|(at, _)| {
            lower[..at]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || "(`'\"[".contains(c))
        });
        if starts {
            found.push(format!(
                "{}:{}: refers to `reference/`, which is outside the repository: name what a user can open",
                file.display(),
                i + 1
            ));
        }
    }
    found
}

/// Every relative link of `docs` (path relative to `root`, text) that does not resolve, as
/// `file:line: why`: a file that does not exist or is outside `root`, or an anchor no
/// heading of the target has.
pub fn dead_links(root: &Path, docs: &[(PathBuf, String)]) -> Vec<String> {
    let mut anchors: HashMap<PathBuf, Vec<String>> = docs
        .iter()
        .map(|(p, text)| (normal(p), anchors(text)))
        .collect();
    let mut problems = Vec::new();
    for (file, text) in docs {
        for (line, target) in links(text) {
            let at = format!("{}:{line}", file.display());
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                normal(file)
            } else {
                normal(&file.parent().unwrap_or(Path::new("")).join(path))
            };
            if resolved.starts_with("..") {
                problems.push(format!("{at}: `{target}` points outside the repository"));
                continue;
            }
            if !path.is_empty() && !root.join(&resolved).exists() {
                problems.push(format!(
                    "{at}: dead link `{target}`: no file {}",
                    resolved.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            // A Markdown file outside the checked set still has headings to match.
            let known = anchors.entry(resolved.clone()).or_insert_with(|| {
                self::anchors(&std::fs::read_to_string(root.join(&resolved)).unwrap_or_default())
            });
            if !known.iter().any(|a| a == anchor) {
                problems.push(format!(
                    "{at}: dead anchor `#{anchor}`: no heading of {} has that slug",
                    resolved.display()
                ));
            }
        }
    }
    problems
}

/// `path` without `.` and with `..` applied, still relative (a leading `..` stays: it is
/// outside the root).
fn normal(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fence: Option<&str> = None;
    text.lines().enumerate().filter_map(move |(i, line)| {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => {
                fence = Some(m);
                None
            }
            (Some(open), Some(m)) if open == m => {
                fence = None;
                None
            }
            (Some(_), _) => None,
            (None, None) => Some((i + 1, line)),
        }
    })
}

/// What a code span (`` `...` ``) leaves of itself in `line`.
#[derive(Clone, Copy, PartialEq)]
enum CodeSpans {
    /// Its text, without the backticks: a heading's slug keeps it.
    Text,
    /// Nothing: a link written inside one is an example, not a link.
    Nothing,
}

/// `line` with its code spans reduced to what `keep` says; an unclosed backtick stays as
/// written.
fn without_code(line: &str, keep: CodeSpans) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let ticks = rest[open..].chars().take_while(|&c| c == '`').count();
        let after = &rest[open + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(close) => {
                if keep == CodeSpans::Text {
                    out.push_str(&after[..close]);
                }
                rest = &after[close + ticks..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The relative link targets of `text` with their line: `[text](target)`, `![alt](target)`,
/// `[id]: target`, `src="..."` and `href="..."`. URLs with a scheme are left out (this check
/// makes no request), and so is what code spans and fenced blocks hold.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in prose(text) {
        let line = without_code(line, CodeSpans::Nothing);
        let mut targets: Vec<String> = Vec::new();
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let mut depth = 0usize;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 0 => return true,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    false
                })
                .map_or(after.len(), |(i, _)| i);
            let target = after[..end].trim();
            // `<target>` and a title after the target: `(file.md "title")`.
            let target = target
                .strip_prefix('<')
                .and_then(|t| t.split_once('>'))
                .map_or_else(
                    || target.split_whitespace().next().unwrap_or(""),
                    |(t, _)| t,
                );
            targets.push(target.to_owned());
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some((_, def)) = trimmed.split_once("]:")
            && let Some(target) = def.split_whitespace().next()
        {
            targets.push(target.trim_matches(['<', '>']).to_owned());
        }
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in line.match_indices(attribute) {
                let value = &line[at + attribute.len()..];
                targets.push(value.split('"').next().unwrap_or("").to_owned());
            }
        }
        found.extend(
            targets
                .into_iter()
                .filter(|t| !t.is_empty() && !has_scheme(t))
                .map(|t| (n, t)),
        );
    }
    found
}

/// Whether a link target is a URL (`https:`, `mailto:`), not a path.
fn has_scheme(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !scheme.contains('/')
    })
}

/// The anchors a page has: each ATX heading's [`slug`] (a repeated one with `-1`, `-2`, ...
/// as GitHub numbers them), and explicit `id="..."`/`name="..."` anchors.
pub fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line) in prose(text) {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        let heading = (1..=6).contains(&hashes)
            && line.len() - trimmed.len() <= 3
            && trimmed[hashes..].starts_with([' ', '\t']);
        if heading {
            let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
            let base = slug(title);
            let n = seen.entry(base.clone()).or_insert(0);
            out.push(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for attribute in ["id=\"", "name=\""] {
            for (at, _) in line.match_indices(attribute) {
                let value = &line[at + attribute.len()..];
                out.push(value.split('"').next().unwrap_or("").to_owned());
            }
        }
    }
    out
}

/// The anchor GitHub gives a heading: its text as rendered (code spans' backticks, emphasis
/// marks and link targets gone), lower-cased, every character but letters, digits, `-`,
/// `_` and spaces dropped, spaces made `-`. "Cluster mode without Docker: `--cluster kwok`"
/// is `cluster-mode-without-docker---cluster-kwok`.
pub fn slug(heading: &str) -> String {
    let text = without_code(heading, CodeSpans::Text);
    // `[text](target)` renders as its text.
    let mut rendered = String::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        rendered.push_str(&rest[..open]);
        rendered.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    rendered
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;

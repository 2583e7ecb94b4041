//! Offline analysis of manifests: catches broken routing before a cluster exists.
//!
//! Each rule reads the [`Topology`] (and the raw documents for positions) and reports
//! [`Finding`]s that name the file, the line and the YAML path of the field.

mod http_routes;
mod intent;
pub mod local_support;
mod precedence;
mod routing;
mod unknown_fields;
mod workloads;

use std::fmt;
use std::path::PathBuf;

use crate::manifest::{Document, ManifestError, ManifestSet, YamlPath};
use crate::topology::Topology;

pub use intent::lint_expectations;
pub use unknown_fields::unknown_fields;

/// The code of a field the kind's schema does not declare (local mode refuses it).
pub const UNKNOWN_FIELD: &str = "unknown-field";

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Works on a cluster; local mode cannot run it (`local-unsupported`).
    Note,
    /// Works, but should change.
    Warning,
    /// Breaks the routing or the deployment.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem, at one place (`mirror-e2e lint --format json` prints these fields).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Finding {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// Error or warning.
    pub severity: Severity,
    /// Stable rule code, e.g. `unknown-field`.
    pub code: &'static str,
    /// What is wrong, naming the object and the YAML path.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}[{}]: {}",
            self.file.display(),
            self.line,
            self.severity,
            self.code,
            self.message
        )
    }
}

/// Collects findings for one manifest set.
pub(crate) struct Report<'a> {
    set: &'a ManifestSet,
    findings: Vec<Finding>,
}

impl Report<'_> {
    /// Adds a finding about the field at `path` of document `doc` (an index into the set).
    pub(crate) fn at(
        &mut self,
        doc: usize,
        path: &YamlPath,
        severity: Severity,
        code: &'static str,
        message: impl fmt::Display,
    ) {
        let d: &Document = &self.set.documents[doc];
        self.findings.push(Finding {
            file: d.file.clone(),
            line: d.line_of(path),
            severity,
            code,
            message: format!("{} {}: {path}: {message}", d.kind(), d.name()),
        });
    }
}

/// Analyzes a manifest set; findings come sorted by file and line.
pub fn lint(set: &ManifestSet) -> Vec<Finding> {
    let mut report = Report {
        set,
        findings: Vec::new(),
    };
    for err in &set.syntax_errors {
        if let ManifestError::Syntax {
            path,
            line,
            message,
        } = err
        {
            report.findings.push(Finding {
                file: path.clone(),
                line: *line,
                severity: Severity::Error,
                code: "syntax",
                message: message.clone(),
            });
        }
    }
    for (index, doc) in set.documents.iter().enumerate() {
        for path in unknown_fields(doc.kind(), &doc.value).unwrap_or_default() {
            report.at(
                index,
                &path,
                Severity::Error,
                UNKNOWN_FIELD,
                "unknown field (the API server would prune it silently)",
            );
        }
    }
    let (topology, type_errors) = Topology::from_manifests(set);
    for err in type_errors {
        report.at(
            err.document,
            &YamlPath::default(),
            Severity::Error,
            "invalid-value",
            err.message,
        );
    }
    routing::check(&topology, &mut report);
    http_routes::check(&topology, &mut report);
    workloads::check(&topology, &mut report);
    precedence::check(&topology, &mut report);
    local_support::check(&topology, &mut report);
    let mut findings = report.findings;
    findings.sort();
    findings.dedup();
    findings
}

/// Loads the paths and analyzes them, with the expectations beside them (each directory's
/// `expectations.yaml`).
pub fn lint_paths(paths: &[PathBuf]) -> Result<Vec<Finding>, ManifestError> {
    lint_with_expectations(paths, None)
}

/// [`lint_paths`] with the expectations of `expectations` instead of those beside the
/// manifests (a run's `--expectations FILE`).
pub fn lint_with_expectations(
    paths: &[PathBuf],
    expectations: Option<&std::path::Path>,
) -> Result<Vec<Finding>, ManifestError> {
    let set = ManifestSet::load(paths)?;
    let mut findings = lint(&set);
    let files: Vec<PathBuf> = match expectations {
        Some(file) => vec![file.to_owned()],
        None => paths
            .iter()
            .map(|p| p.join(crate::expectations::FILE_NAME))
            .filter(|f| f.is_file())
            .collect(),
    };
    for file in files {
        findings.extend(lint_expectations(&set, &file));
    }
    findings.sort();
    findings.dedup();
    Ok(findings)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Findings of a rule code for inline YAML.
    pub fn findings(yaml: &str, code: &str) -> Vec<String> {
        lint(&ManifestSet::from_str("t.yaml", yaml))
            .into_iter()
            .filter(|f| f.code == code)
            .map(|f| f.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::findings;
    use super::*;

    #[test]
    fn syntax_errors_are_findings_with_a_line() {
        let found = findings("kind: Service\nmetadata: {name: [x\n", "syntax");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("t.yaml:"), "{found:?}");
    }

    #[test]
    fn unknown_field_finding_names_line_and_path() {
        let found = findings(
            "kind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  htp: []\n",
            "unknown-field",
        );
        assert_eq!(
            found,
            [
                "t.yaml:5: error[unknown-field]: VirtualService r: spec.htp: unknown field (the API server would prune it silently)"
            ]
        );
    }

    #[test]
    fn wrongly_typed_value_is_an_error() {
        let found = findings(
            "kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: high}]}\n",
            "invalid-value",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("Service s"), "{found:?}");
    }

    #[test]
    fn the_projects_manifests_have_no_errors() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
        let start = std::time::Instant::now();
        let found = lint_paths(&[dir]).expect("manifests load");
        let errors: Vec<_> = found
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn bookinfo_keeps_upstreams_security_settings() {
        // Upstream's samples/bookinfo/platform/kube/bookinfo.yaml forces no user: the
        // reviews image runs as 1001 and writes to a group-0 directory, so a forced
        // runAsUser: 1000 breaks it.
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/bookinfo.yaml");
        let set = ManifestSet::load(&[path]).expect("bookinfo loads");
        let forced: Vec<String> = set
            .of_kind("Deployment")
            .filter(|d| {
                d.value
                    .pointer("/spec/template/spec/containers")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c.pointer("/securityContext/runAsUser").is_some())
                    || d.value
                        .pointer("/spec/template/spec/securityContext/runAsUser")
                        .is_some()
            })
            .map(|d| d.name().to_owned())
            .collect();
        assert!(forced.is_empty(), "runAsUser forced on {forced:?}");
    }

    #[test]
    fn every_corpus_case_finds_the_rules_its_header_names() {
        // e2e/tests/fixtures/lint/: base.yaml plus one case each, also what `cargo xtask
        // analyze` gives istioctl analyze. A case's `# lint:` line lists its findings' codes.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lint");
        let base = dir.join("base.yaml");
        let alone = lint_paths(std::slice::from_ref(&base)).expect("base loads");
        assert!(alone.is_empty(), "{alone:#?}");
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("corpus")
            .map(|e| e.expect("entry").path())
            .filter(|p| p != &base)
            .collect();
        cases.sort();
        assert!(cases.len() >= 8, "{cases:?}");
        for case in cases {
            let text = std::fs::read_to_string(&case).expect("read case");
            let header = text
                .lines()
                .find_map(|l| l.strip_prefix("# lint: "))
                .unwrap_or_else(|| panic!("{}: no `# lint:` line", case.display()));
            let mut expected: Vec<&str> = header.split(", ").collect();
            expected.sort_unstable();
            let found = lint_paths(&[base.clone(), case.clone()]).expect("case loads");
            let mut codes: Vec<&str> = found.iter().map(|f| f.code).collect();
            codes.sort_unstable();
            assert_eq!(codes, expected, "{}: {found:#?}", case.display());
        }
    }

    #[test]
    fn json_findings_carry_every_field_and_a_lowercase_severity() {
        let found = lint(&ManifestSet::from_str(
            "t.yaml",
            "kind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  htp: []\n",
        ));
        let json = serde_json::to_value(&found).expect("serializes");
        assert_eq!(
            json[0],
            serde_json::json!({
                "file": "t.yaml",
                "line": 5,
                "severity": "error",
                "code": "unknown-field",
                "message": "VirtualService r: spec.htp: unknown field (the API server would prune it silently)",
            })
        );
    }

    #[test]
    fn the_tutorial_manifests_show_its_known_defects() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tutorial-mirroring.yaml");
        let found: Vec<String> = lint_paths(&[path])
            .expect("fixture loads")
            .iter()
            .map(ToString::to_string)
            .collect();
        let has = |needle: &str| found.iter().any(|f| f.contains(needle));
        assert!(
            has("warning[deprecated-field]: VirtualService reviews: spec.http[0].mirror_percent"),
            "{found:#?}"
        );
        assert!(
            has("[unpinned-image]: Deployment mirror: spec.template.spec.containers[0].image"),
            "{found:#?}"
        );
    }
}

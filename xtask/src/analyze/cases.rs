//! The inputs both tools read: the shipped manifests, each case of lint's corpus with its
//! `base.yaml`, the tutorial fixture, or the user's own manifests.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where lint's corpus lives, relative to the project root.
pub(super) const CORPUS: &str = "e2e/tests/fixtures/lint";
/// The tutorial the project started from, kept with its defects (a lint fixture).
pub(super) const TUTORIAL: &str = "e2e/tests/fixtures/tutorial-mirroring.yaml";

/// The cases in which lint must find at least what analyze finds: the routing under test,
/// and the corpus cases of the mirror's own defects (issue 18's list). A gap in another case
/// is shown in the table but does not fail the command.
pub(super) const MIRRORING: &[&str] = &[
    "manifests",
    "unknown-subset",
    "unknown-host",
    "bad-percentage",
    "mirror-and-mirrors",
];

/// One input both tools read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzeCase {
    /// `manifests`, a corpus case's file stem, or the tutorial's.
    pub name: String,
    /// What lint is given (relative to the project root).
    pub lint: Vec<PathBuf>,
    /// What istioctl is given: the same manifests as files (lint skips `expectations.yaml`
    /// in a directory; istioctl would fail to parse it, as it is no Kubernetes object).
    pub analyze: Vec<PathBuf>,
}

impl AnalyzeCase {
    pub fn mirroring(&self) -> bool {
        MIRRORING.contains(&self.name.as_str())
    }
}

/// The shipped manifests, every corpus case with `base.yaml`, and the tutorial, from `root`.
pub fn cases(root: &Path) -> anyhow::Result<Vec<AnalyzeCase>> {
    let mut shipped = yaml_files(root, Path::new("manifests"))?;
    shipped.retain(|p| p.file_name().is_none_or(|n| n != "expectations.yaml"));
    let mut cases = vec![AnalyzeCase {
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
        cases.push(AnalyzeCase {
            name,
            lint: paths.clone(),
            analyze: paths,
        });
    }
    cases.push(AnalyzeCase {
        name: "tutorial-mirroring".into(),
        lint: vec![TUTORIAL.into()],
        analyze: vec![TUTORIAL.into()],
    });
    Ok(cases)
}

/// The user's manifests (`--manifests`) as the one case, counted as a mirroring case (its
/// gaps fail the run), read before anything runs so a typo names the flag.
pub(super) fn user_case(dir: &Path) -> anyhow::Result<AnalyzeCase> {
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
    Ok(AnalyzeCase {
        name: "manifests".into(),
        lint: vec![dir],
        analyze: files,
    })
}

/// The `.yaml`/`.yml` files under `dir` (relative to `root`), sorted, as relative paths.
pub(super) fn yaml_files(root: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root.join(dir))
        .with_context(|| format!("read {}", root.join(dir).display()))?;
    for entry in entries {
        let path = dir.join(entry?.file_name());
        if root.join(&path).is_dir() {
            // A subdirectory with expectations of its own is another manifest set, as
            // mirror-e2e's `ManifestSet::load` reads it: analyzed when named, not with its parent.
            if !root.join(&path).join("expectations.yaml").is_file() {
                out.extend(yaml_files(root, &path)?);
            }
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

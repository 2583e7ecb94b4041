//! Where runs keep their evidence: `MIRROR_E2E_ARTIFACTS_ROOT` (the suite reads it too),
//! else `target/e2e/`, and the pruning of old runs before a new one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mirror_e2e_contract::run_id::is_run_id;

use crate::{flags, paths};

/// How many runs the artifacts root keeps, unless `MIRROR_E2E_KEEP_RUNS` says otherwise.
const KEEP_RUNS: usize = 20;

/// Removes all but the newest `MIRROR_E2E_KEEP_RUNS` (default [`KEEP_RUNS`]) run
/// directories of the artifacts root before a run, and says so when it removes any: kept
/// failures would otherwise fill the disk. Only directories named as runs and walks are
/// (`<run-id>`, `upgrade-<run-id>`) count; anything else there is left alone.
pub(super) fn prune_old_runs(root: &Path) -> anyhow::Result<()> {
    let keep = match std::env::var("MIRROR_E2E_KEEP_RUNS") {
        Ok(n) => n
            .parse()
            .map_err(|_| flags::Usage(format!("MIRROR_E2E_KEEP_RUNS={n}: not a number of runs")))?,
        Err(_) => KEEP_RUNS,
    };
    let removed = old_runs(root, keep);
    for dir in &removed {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    if !removed.is_empty() {
        eprintln!(
            "{}: removed {} old run {}, keeping the newest {keep} (MIRROR_E2E_KEEP_RUNS sets how many)",
            root.display(),
            removed.len(),
            if removed.len() == 1 {
                "directory"
            } else {
                "directories"
            }
        );
    }
    Ok(())
}

/// The run directories of `root` beyond the newest `keep`, oldest first. Run ids start with
/// their UTC time, so their names sort by age.
fn old_runs(root: &Path, keep: usize) -> Vec<PathBuf> {
    let mut runs: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("upgrade-").unwrap_or(&name).to_owned();
            is_run_id(&id).then(|| (id, e.path()))
        })
        .collect();
    runs.sort();
    let old = runs.len().saturating_sub(keep);
    runs.into_iter().take(old).map(|(_, p)| p).collect()
}

/// Where xtask keeps runs: `MIRROR_E2E_ARTIFACTS_ROOT` (the suite reads it too), else
/// `target/e2e/` in the project.
pub fn artifacts_root() -> PathBuf {
    std::env::var_os(mirror_e2e_contract::env::ARTIFACTS_ROOT)
        .map_or_else(|| paths::project_root().join("target/e2e"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_runs_are_kept_and_nothing_else_is_touched() {
        let root = tempfile::tempdir().expect("dir");
        for name in [
            "20261125-193314-a3f0",
            "upgrade-20261126-080000-0001",
            "20261127-075204-a6a7",
            "test-run",
            "notes",
        ] {
            std::fs::create_dir_all(root.path().join(name)).expect("mkdir");
        }
        let old: Vec<String> = old_runs(root.path(), 1)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            old,
            ["20261125-193314-a3f0", "upgrade-20261126-080000-0001"]
        );
        assert!(old_runs(root.path(), 20).is_empty());
    }
}

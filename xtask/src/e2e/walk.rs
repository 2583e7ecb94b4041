//! An upgrade walk: the suite on the first release, then per hop an install in place and
//! the suite again; each run's output to its `suite.log` with one verdict line on the
//! terminal (`walk_run`), and the runs compared hop by hop (`mirror-e2e compare`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use mirror_e2e_contract::args::{CompareArgs, RunnerCommand};
use xshell::Shell;

use crate::interrupt::is_interrupted;
use crate::runner::Runner;
use crate::{flags, versions};

impl flags::E2e {
    /// Removes a passing walk's directory unless `--keep`; a failing one is kept, and the
    /// message says what it holds.
    pub(super) fn finish_walk(
        &self,
        root: &Path,
        walked: anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if walked.is_ok() && !self.keep {
            let _ = std::fs::remove_dir_all(root);
            eprintln!("artifacts: removed (the walk passed; --keep keeps them)");
        } else if root.exists() {
            eprintln!("artifacts: {} ({})", root.display(), walk_contents(root));
        }
        walked
    }
}

/// What a walk's directory holds, as its last message says: the comparison only when it
/// was written (a walk that stopped on its first run compares nothing).
fn walk_contents(root: &Path) -> String {
    let runs = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0);
    let runs = format!(
        "{runs} run {}, each `<i>-<version>/<run-id>/`",
        if runs == 1 {
            "directory"
        } else {
            "directories"
        }
    );
    if root.join("comparison.txt").is_file() {
        format!("comparison.txt and comparison.md: the version-by-check table; {runs}")
    } else {
        format!("no comparison: fewer than two runs finished; {runs}")
    }
}

/// One run of a walk: the suite's output goes to `<dir>/suite.log`, and the terminal gets
/// one line, the version and the run's verdict (the last line of its summary.txt).
pub(super) fn walk_run(
    sh: &Shell,
    runner: &Runner,
    nsenter: &[String],
    args: &[String],
    dir: &Path,
    istio: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let log = dir.join("suite.log");
    let quiet = Runner {
        bin: runner.bin.clone(),
        interrupt: runner.interrupt.clone(),
        output: crate::interrupt::Output::Log {
            path: log.clone(),
            what: format!("the suite on Istio {istio}"),
        },
    };
    let ran = if nsenter.is_empty() {
        quiet.run(sh, args)
    } else {
        quiet.inside(nsenter).run(sh, args)
    };
    if !is_interrupted_result(&ran) {
        let verdict = run_verdict(dir)
            .unwrap_or_else(|| format!("no report (its output: {})", log.display()));
        eprintln!("  Istio {istio}: {verdict}");
    }
    ran
}

fn is_interrupted_result(r: &anyhow::Result<()>) -> bool {
    r.as_ref().err().is_some_and(is_interrupted)
}

/// The verdict line of the run under `dir` (`<dir>/<run-id>/summary.txt`'s last line).
fn run_verdict(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| std::fs::read_to_string(e.path().join("summary.txt")).ok())?
        .lines()
        .last()
        .map(str::to_owned)
}

/// Where run `i` of a walk keeps its report: `<root>/<i>-<version>`.
pub(super) fn walk_dirs(root: &Path, path: &[&versions::IstioRelease]) -> Vec<PathBuf> {
    path.iter()
        .enumerate()
        .map(|(i, r)| root.join(format!("{}-{}", i + 1, r.version)))
        .collect()
}

/// An upgrade walk: the suite on `path[0]`, then for every hop: install `path[i]` in place
/// and run the suite again. A hop whose install or suite fails stops the walk, naming the
/// hop; the runs made so far are compared either way (`compare` gets how many ran), so the
/// table shows where it broke. An interruption stops everything at once.
pub fn walk(
    path: &[&versions::IstioRelease],
    mut run: impl FnMut(usize) -> anyhow::Result<()>,
    mut install: impl FnMut(usize) -> anyhow::Result<()>,
    compare: impl FnOnce(usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let hops = path.len().saturating_sub(1);
    let hop_name = |i: usize| {
        format!(
            "hop {i} of {hops}, {} -> {} ({})",
            path[i - 1].version,
            path[i].version,
            versions::hop_kind(path[i - 1], path[i]).describe()
        )
    };
    // Runs made so far: the first always counts, even when it failed.
    let mut ran = 1;
    let mut failed =
        run(0).with_context(|| format!("the suite failed on {}, before the walk", path[0].version));
    if failed.is_ok() {
        for (i, release) in path.iter().enumerate().skip(1) {
            eprintln!("{}", hop_name(i));
            let hop = install(i)
                .with_context(|| format!("install Istio {} in place", release.version))
                .and_then(|()| {
                    ran = i + 1;
                    run(i).with_context(|| format!("the suite failed on {}", release.version))
                });
            if let Err(e) = hop {
                failed = Err(e.context(hop_name(i)));
                break;
            }
        }
    }
    if let Err(e) = &failed
        && is_interrupted(e)
    {
        return failed;
    }
    let compared = if ran >= 2 { compare(ran) } else { Ok(()) };
    failed?;
    compared
}

/// `mirror-e2e compare` of a walk's runs into `<root>/comparison.txt`: named on the terminal
/// only when it stays (`--keep`, or a failed comparison keeps the walk; `finish_walk` names
/// what a kept walk holds).
pub(super) fn compare_runs(
    sh: &Shell,
    runner: &Runner,
    root: &Path,
    dirs: &[PathBuf],
    keep: bool,
) -> anyhow::Result<()> {
    let compare = RunnerCommand::Compare(CompareArgs {
        runs: dirs.to_vec(),
        out: Some(root.join("comparison.txt")),
        transient: !keep,
    });
    runner.run(sh, &compare.to_args()).with_context(|| {
        format!(
            "the runs differ beyond intended behaviour changes (see {})",
            root.join("comparison.txt").display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_walks_directory_message_names_only_what_it_holds() {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("1-1.30.5/20261125-193314-a3f0")).expect("mkdir");
        let said = walk_contents(root.path());
        assert!(
            said.starts_with("no comparison: fewer than two runs finished; 1 run directory"),
            "{said}"
        );
        std::fs::write(root.path().join("comparison.txt"), "table").expect("write");
        std::fs::create_dir_all(root.path().join("2-1.31.1/20261125-193320-b1c2")).expect("mkdir");
        let said = walk_contents(root.path());
        assert!(
            said.starts_with("comparison.txt and comparison.md")
                && said.ends_with("2 run directories, each `<i>-<version>/<run-id>/`"),
            "{said}"
        );
    }
}

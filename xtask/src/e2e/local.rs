//! `cargo xtask e2e --local`: the suite on a local Envoy (`mirror-e2e local`), once or as
//! an upgrade walk, each version emulated in turn.

use std::path::Path;

use anyhow::Context;
use mirror_e2e_contract::args::{LocalArgs, RunnerCommand};
use mirror_e2e_contract::new_run_id;
use xshell::Shell;

use super::artifacts::artifacts_root;
use super::walk::{compare_runs, walk, walk_dirs, walk_run};
use crate::progress::Stopwatch;
use crate::runner::Runner;
use crate::{flags, provision, versions};

impl flags::E2e {
    pub(super) fn run_local(
        &self,
        sh: &Shell,
        runner: &Runner,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        self.local_suite(sh, runner, release.version, None, clock)
    }

    /// One local run of the suite emulating `istio`; with `artifacts_root`, kept there.
    fn local_suite(
        &self,
        sh: &Shell,
        runner: &Runner,
        istio: &str,
        artifacts_root: Option<&Path>,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        runner.interrupt.check()?;
        let envoy = provision::envoy(sh, &runner.interrupt).context("provision envoy")?;
        let mut suite = self.suite_args(clock);
        if let Some(root) = artifacts_root {
            // Every run of a walk keeps its report for the comparison.
            suite.artifacts_root = Some(root.to_owned());
            suite.keep = true;
        }
        let args = RunnerCommand::Local(Box::new(LocalArgs {
            istio: Some(istio.to_owned()),
            envoy: Some(envoy),
            workload: self.workload_args()?,
            suite,
        }))
        .to_args();
        match artifacts_root {
            Some(root) => walk_run(sh, runner, &[], &args, root, istio),
            None => runner.run(sh, &args),
        }
    }

    pub(super) fn run_local_upgrade(
        &self,
        sh: &Shell,
        runner: &Runner,
        spec: &str,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let path = versions::upgrade_path(spec)?;
        let root = artifacts_root().join(format!("upgrade-{}", new_run_id()));
        let dirs = walk_dirs(&root, &path);
        let walked = walk(
            &path,
            |i| self.local_suite(sh, runner, path[i].version, Some(&dirs[i]), clock),
            // Local mode emulates each version; there is nothing to install.
            |_| Ok(()),
            |ran| compare_runs(sh, runner, &root, &dirs[..ran], self.keep),
        );
        self.finish_walk(&root, walked)
    }
}

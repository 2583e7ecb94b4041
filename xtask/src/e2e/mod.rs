//! `cargo xtask e2e`: provisions what the suite needs and runs it.
//!
//! Every mode first builds the `mirror-e2e` runner (cargo's progress shows), then runs it
//! directly. Local mode: Envoy from the tool cache, then `mirror-e2e local`. Cluster mode on
//! kind: Docker check, pinned tools, `kind create cluster` (retried, never over a cluster
//! the run did not create), every node Ready, `istioctl install`, then `mirror-e2e
//! cluster`; on failure kind's logs and productpage's sidecar routes join the run's
//! evidence; the cluster is deleted unless kept. On an existing cluster: a namespace of the
//! run's own, deleted at the end; nothing else is created or changed. Ctrl-C stops every
//! phase at once (see `interrupt`).

//!
//! One module per mode: `local`, `kind`, `kwok` (an existing cluster is
//! `cluster::existing`); `walk` is an upgrade walk's runs and comparison, `artifacts` where
//! runs keep their evidence.

mod artifacts;
mod kind;
mod kwok;
mod local;
mod walk;

use std::time::Duration;

use anyhow::Context;
use mirror_e2e_contract::args::{LintArgs, LintFormat, RunnerCommand, SuiteArgs, WorkloadArgs};
use xshell::Shell;

pub use artifacts::artifacts_root;
use artifacts::prune_old_runs;

use crate::cluster::keep;
use crate::flags::ClusterKind;
use crate::interrupt::Interrupt;
use crate::progress::Stopwatch;
use crate::runner::{Reported, Runner};
use crate::{flags, paths};

/// Cluster mode's patience when `--patience` and `MIRROR_E2E_PATIENCE` say nothing (the
/// suite's own default on a cluster).
pub(super) const CLUSTER_PATIENCE: Duration = Duration::from_secs(300);

/// What every kind cluster this project creates is named after: `mirror-e2e-<run-id>`.
const CLUSTER_PREFIX: &str = "mirror-e2e";

/// The kind cluster of run `run_id`, unless the user named one: a name of the run's own, so
/// two runs on one host never create, reuse or delete each other's cluster.
pub(super) fn cluster_name(run_id: &str) -> String {
    format!("{CLUSTER_PREFIX}-{run_id}")
}

/// Phases timed before the suite, as the suite takes them.
pub(super) fn phase_args(phases: &[(String, f64)]) -> Vec<(String, Duration)> {
    phases
        .iter()
        .map(|(name, secs)| (name.clone(), Duration::from_secs_f64(*secs)))
        .collect()
}

impl flags::E2e {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // The run's one clock: xtask's phase lines and the suite's (`--elapsed`) count from
        // here, in one format.
        let clock = Stopwatch::start();
        self.validate()?;
        prune_old_runs(&artifacts_root())?;
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        self.run_validated(sh, &interrupt, clock)
    }

    /// The run, with Ctrl-C noted in `interrupt` (tests trigger it themselves), on `clock`:
    /// the run's, or that of a command that runs it among its steps (`cargo xtask test`).
    /// The flags are validated first, as for `cargo xtask e2e`.
    pub fn run_on(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        self.validate()?;
        self.run_validated(sh, interrupt, clock)
    }

    /// The run of flags `validate` accepted: it alone says which combinations run.
    fn run_validated(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        if self.local {
            let runner = Runner::build(sh, interrupt)?;
            return match &self.istio_upgrade {
                Some(spec) => self.run_local_upgrade(sh, &runner, spec, clock),
                None => self.run_local(sh, &runner, clock),
            };
        }
        self.preflight(sh, interrupt)?;
        match (self.cluster, &self.istio_upgrade) {
            (ClusterKind::Kind, Some(spec)) => self.run_kind_upgrade(sh, interrupt, spec, clock),
            (ClusterKind::Kind, None) => self.run_kind(sh, interrupt, clock),
            // `validate` refuses --istio-upgrade on someone else's cluster.
            (ClusterKind::Existing, _) => self.run_existing(sh, interrupt, clock),
            (ClusterKind::Kwok, None) => self.run_kwok(sh, interrupt, clock),
            (ClusterKind::Kwok, Some(spec)) => self.run_kwok_upgrade(sh, interrupt, spec, clock),
        }
    }

    /// What can be checked offline, before any provider acts: the manifests read and
    /// parse, lint finds no error (unless `--allow-lint-errors`), the expectations read and
    /// name what the manifests have. A cluster created for input that was wrong would be
    /// kept or deleted for nothing (local mode checks the same before it starts anything).
    pub(super) fn preflight(&self, sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<()> {
        let runner = Runner::build(sh, interrupt)?;
        let lint = RunnerCommand::Lint(LintArgs {
            paths: vec![self.manifests_dir()],
            format: LintFormat::Text,
            expectations: self.expectations.as_deref().map(paths::from_invocation),
        });
        match runner.run(sh, &lint.to_args()) {
            Ok(()) => Ok(()),
            // Lint errors only (exit 1): the run was told to go on.
            Err(e)
                if self.allow_lint_errors
                    && e.downcast_ref::<Reported>().is_some_and(|r| r.code == 1) =>
            {
                eprintln!("lint found errors; running anyway (--allow-lint-errors)");
                Ok(())
            }
            Err(e) => Err(e.context("check the manifests and expectations before any cluster")),
        }
    }

    /// What the user asked for a cluster the run created (`--keep`, `--on-failure`).
    pub(crate) fn keep_request(&self) -> keep::Request {
        keep::Request::from_flags(self.keep, self.on_failure)
    }

    /// `--workload` and where its commands run: the user's relative paths are from where
    /// they stand.
    pub(crate) fn workload_args(&self) -> anyhow::Result<WorkloadArgs> {
        let workload_dir = if self.workloads.is_empty() {
            None
        } else {
            Some(std::env::current_dir().context("the current directory")?)
        };
        Ok(WorkloadArgs {
            workloads: self.workloads.clone(),
            workload_dir,
        })
    }

    /// What every mode passes the suite: manifests, expectations, keep, patience,
    /// concurrency, the harness's arguments, and the run's clock as it reads now (built
    /// just before the suite starts).
    pub(crate) fn suite_args(&self, clock: Stopwatch) -> SuiteArgs {
        SuiteArgs {
            manifests: self.manifests_dir(),
            expectations: self.expectations.as_deref().map(paths::from_invocation),
            artifacts_root: None,
            keep: self.keep,
            allow_lint_errors: self.allow_lint_errors,
            concurrency: self.concurrency,
            patience: self.patience,
            elapsed: clock.elapsed(),
            harness: self.harness.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

//! `cargo xtask e2e --cluster kind`: Docker check, pinned tools, `kind create cluster`
//! (retried, never over a cluster the run did not create), every node Ready, `istioctl
//! install`, then `mirror-e2e cluster`; on failure kind's logs and productpage's sidecar
//! routes join the run's evidence; the cluster is kept or deleted by the one lifetime
//! (`KindProvider`). Also the upgrade walk on kind.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use mirror_e2e_contract::args::{ClusterArgs, KubeTarget, NodesReadyArgs, RunnerCommand};
use mirror_e2e_contract::new_run_id;
use xshell::Shell;

use super::artifacts::artifacts_root;
use super::walk::{compare_runs, walk, walk_dirs, walk_run};
use super::{cluster_name, phase_args};
use crate::cluster::lifetime::{Provider, with_cluster};
use crate::cluster::{Istioctl, Kind, docker_is_running, keep};
use crate::interrupt::Interrupt;
use crate::progress::Stopwatch;
use crate::runner::Runner;
use crate::{flags, paths, provision, versions};

impl flags::E2e {
    pub(super) fn run_kind(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let run_id = new_run_id();
        let artifacts = artifacts_root().join(&run_id);
        let runner = Runner::build(sh, interrupt)?;
        let (kind, plan) = self.kind_run(
            sh,
            interrupt,
            release.node_image.image,
            artifacts,
            &run_id,
            self.reuse.is_some(),
            clock,
        )?;
        let istioctl = self.istioctl(
            sh,
            interrupt,
            provision::ensure(sh, &provision::istioctl_asset(release.version)?, interrupt)?,
            &kind,
        );
        run_on_kind(
            &kind,
            &istioctl,
            &plan,
            || self.nodes_ready(sh, &runner, &kind),
            |phases| {
                let args = self.kind_suite_args(&kind, release, &run_id, phases, clock);
                runner.run(sh, &RunnerCommand::Cluster(Box::new(args)).to_args())
            },
        )
    }

    pub(super) fn run_kind_upgrade(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        spec: &str,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let path = versions::upgrade_path(spec)?;
        let node_image = versions::shared_node_image(&path)?;
        let run_id = new_run_id();
        let root = artifacts_root().join(format!("upgrade-{run_id}"));
        let dirs = walk_dirs(&root, &path);
        let runner = Runner::build(sh, interrupt)?;
        // A walk needs a cluster that starts on FROM: never a reused one.
        let (kind, plan) = self.kind_run(
            sh,
            interrupt,
            node_image.image,
            root.clone(),
            &run_id,
            false,
            clock,
        )?;
        let istioctls = path
            .iter()
            .map(|r| {
                Ok(self.istioctl(
                    sh,
                    interrupt,
                    provision::ensure(sh, &provision::istioctl_asset(r.version)?, interrupt)?,
                    &kind,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let suite = |phases: &[(String, f64)], i: usize| {
            let mut args = self.kind_suite_args(&kind, path[i], &run_id, phases, clock);
            // Every run's report stays for the comparison.
            args.suite.artifacts_root = Some(dirs[i].clone());
            args.suite.keep = true;
            args.restart_workloads = i > 0;
            let args = RunnerCommand::Cluster(Box::new(args)).to_args();
            walk_run(sh, &runner, &[], &args, &dirs[i], path[i].version)
        };
        let walked = run_on_kind(
            &kind,
            &istioctls[0],
            &plan,
            || self.nodes_ready(sh, &runner, &kind),
            |phases| {
                walk(
                    &path,
                    |i| suite(if i == 0 { phases } else { &[] }, i),
                    |i| istioctls[i].install(&plan.operator),
                    |ran| compare_runs(sh, &runner, &root, &dirs[..ran], self.keep),
                )
            },
        );
        self.finish_walk(&root, walked)
    }

    /// Checks Docker, provisions kind, and plans a run on the kind cluster: `--reuse NAME`,
    /// `--cluster-name NAME`, or the run's own `mirror-e2e-<run-id>`.
    #[allow(clippy::too_many_arguments)]
    fn kind_run<'a>(
        &self,
        sh: &'a Shell,
        interrupt: &Interrupt,
        node_image: &'static str,
        artifacts: PathBuf,
        run_id: &str,
        reuse: bool,
        clock: Stopwatch,
    ) -> anyhow::Result<(Kind<'a>, KindPlan)> {
        docker_is_running(sh, interrupt)?;
        let root = paths::project_root();
        let name = match (&self.reuse, &self.cluster_name) {
            (Some(name), _) if reuse => name.clone(),
            (_, Some(name)) => name.clone(),
            _ => cluster_name(run_id),
        };
        let kind = Kind::new(
            sh,
            provision::ensure(sh, &provision::kind_asset()?, interrupt)?,
            &name,
            root.join("target/kind").join(format!("{name}.kubeconfig")),
            interrupt,
        );
        let plan = KindPlan {
            config: root.join("manifests/kind/cluster.yaml"),
            operator: root.join("manifests/istio/operator.yaml"),
            node_image,
            reuse,
            keep: self.keep,
            keep_on_failure: keep::Request::from_flags(self.keep, self.on_failure).on_failure,
            artifacts,
            namespace: "test".into(),
            clock,
        };
        Ok((kind, plan))
    }

    /// istioctl pointed at the kind cluster's private kubeconfig.
    fn istioctl<'a>(
        &self,
        sh: &'a Shell,
        interrupt: &Interrupt,
        bin: PathBuf,
        kind: &Kind<'_>,
    ) -> Istioctl<'a> {
        Istioctl {
            sh,
            bin,
            kubeconfig: Some(kind.kubeconfig.clone()),
            context: None,
            hub: self.istio_hub.clone(),
            interrupt: interrupt.clone(),
        }
    }

    /// `mirror-e2e nodes-ready` on the new cluster: `kind create --wait` only warns.
    fn nodes_ready(&self, sh: &Shell, runner: &Runner, kind: &Kind<'_>) -> anyhow::Result<()> {
        let ready = RunnerCommand::NodesReady(NodesReadyArgs {
            target: KubeTarget {
                kubeconfig: Some(kind.kubeconfig.clone()),
                context: None,
            },
            patience: self.patience,
        });
        runner
            .run(sh, &ready.to_args())
            .context("wait for every node to be Ready")
    }

    /// `mirror-e2e cluster` arguments for a run of `release` on the kind cluster.
    fn kind_suite_args(
        &self,
        kind: &Kind<'_>,
        release: &versions::IstioRelease,
        run_id: &str,
        phases: &[(String, f64)],
        clock: Stopwatch,
    ) -> ClusterArgs {
        ClusterArgs {
            target: KubeTarget {
                kubeconfig: Some(kind.kubeconfig.clone()),
                context: None,
            },
            namespace: "test".into(),
            ingress: "http://127.0.0.1:30080".into(),
            bookinfo_hub: Some(
                self.bookinfo_hub
                    .as_deref()
                    .unwrap_or(release.bookinfo_hub)
                    .to_owned(),
            ),
            bookinfo_tag: Some(release.bookinfo_tag.into()),
            istio: Some(release.version.into()),
            run_id: Some(run_id.to_owned()),
            echo_hub: self.echo_hub.clone(),
            phases: phase_args(phases),
            suite: self.suite_args(clock),
            ..ClusterArgs::default()
        }
    }
}

/// What a kind run does besides running the suite.
pub struct KindPlan {
    pub config: PathBuf,
    pub operator: PathBuf,
    pub node_image: &'static str,
    pub reuse: bool,
    pub keep: bool,
    pub keep_on_failure: bool,
    pub artifacts: PathBuf,
    pub namespace: String,
    /// The run's clock.
    pub clock: Stopwatch,
}

/// A kind cluster in the run's hands, for the one lifetime (`lifetime::with_cluster`).
struct KindProvider<'k, 'a> {
    kind: &'k Kind<'a>,
    istioctl: &'k Istioctl<'a>,
    plan: &'k KindPlan,
    /// `--reuse` found the cluster: it is used as it is.
    reused: bool,
    /// When the create started, for the run's "create cluster" phase.
    create_started: Instant,
}

impl Provider for KindProvider<'_, '_> {
    fn describe(&self) -> String {
        format!("kind cluster {}", self.kind.name)
    }

    fn up(&mut self) -> anyhow::Result<()> {
        self.reused = self.plan.reuse && self.kind.exists()?;
        if self.reused {
            eprintln!(
                "reusing kind cluster {} (Istio as installed there)",
                self.kind.name
            );
            return Ok(());
        }
        self.create_started = Instant::now();
        self.plan
            .clock
            .step(&format!("create kind cluster {}", self.kind.name));
        // A failure that is not Ctrl-C: not this run's cluster, or kind gave up and
        // removed its attempt itself.
        let attempts = self.kind.create(&self.plan.config, self.plan.node_image)?;
        if attempts > 1 {
            eprintln!("kind cluster created after {attempts} attempts");
        }
        Ok(())
    }

    /// Only what this run's own `kind create` started is the run's: not a reused cluster,
    /// and not one a Ctrl-C before the create (or someone else's create) left in place.
    fn created_by_this_run(&self) -> bool {
        self.kind.started.get()
    }

    fn delete(&self) -> anyhow::Result<()> {
        self.kind.delete()
    }

    fn diagnose(&self) {
        collect_diagnostics(self.kind, self.istioctl, self.plan);
    }

    fn kept(&self) -> String {
        format!(
            "kept kind cluster {name}; kubeconfig {}; use it again with `cargo xtask e2e --reuse {name}`, delete it with `kind delete cluster --name {name}`",
            self.kind.kubeconfig.display(),
            name = self.kind.name,
        )
    }
}

/// Creates (or reuses) the cluster, waits for its nodes, installs Istio on a new one, runs
/// `suite`, collects diagnostics on failure, and deletes a cluster it created unless it is
/// to be kept. After Ctrl-C nothing new starts and no diagnostics are collected: a cluster
/// this run's own `kind create` started (even half-created) is deleted unless `--keep`;
/// nothing else ever is.
pub fn run_on_kind(
    kind: &Kind<'_>,
    istioctl: &Istioctl<'_>,
    plan: &KindPlan,
    nodes_ready: impl FnOnce() -> anyhow::Result<()>,
    suite: impl FnOnce(&[(String, f64)]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut provider = KindProvider {
        kind,
        istioctl,
        plan,
        reused: false,
        create_started: Instant::now(),
    };
    let request = keep::Request {
        keep: plan.keep,
        on_failure: plan.keep_on_failure,
    };
    with_cluster(&mut provider, request, &kind.interrupt, |p, tracker| {
        if p.reused {
            kind.write_kubeconfig()?;
            tracker.suite_starts();
            return suite(&[]);
        }
        let mut phases = Vec::new();
        nodes_ready()?;
        phases.push((
            "create cluster".to_owned(),
            p.create_started.elapsed().as_secs_f64(),
        ));
        let install = Instant::now();
        plan.clock.step("install istio");
        istioctl.install(&plan.operator)?;
        phases.push(("install istio".to_owned(), install.elapsed().as_secs_f64()));
        tracker.suite_starts();
        suite(&phases)
    })
}

fn collect_diagnostics(kind: &Kind<'_>, istioctl: &Istioctl<'_>, plan: &KindPlan) {
    let dir = plan.artifacts.join("diagnostics");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("diagnostics: create {}: {e}", dir.display());
        return;
    }
    if let Err(e) = kind.export_logs(&dir.join("kind-logs")) {
        eprintln!("diagnostics: {e:#}");
    }
    if let Err(e) =
        istioctl.productpage_routes(&plan.namespace, &dir.join("productpage-routes.json"))
    {
        eprintln!("diagnostics: {e:#}");
    }
    eprintln!("diagnostics: {}", dir.display());
}

#[cfg(test)]
mod tests;

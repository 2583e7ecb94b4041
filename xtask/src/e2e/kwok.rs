//! `cargo xtask e2e --cluster kwok`: the pinned control plane (built on first use), a
//! cluster created for the run (or `--reuse NAME`), prepared with Istio's objects, then
//! `mirror-e2e cluster --node` inside the cluster's namespaces, the suite playing the node's
//! data plane. Also the upgrade walk on kwok, with the real istiod of each version.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_e2e_contract::args::{
    ClusterArgs, DataPlaneArgs, KubeTarget, NodeArgs, ProxiesSyncedArgs, RunnerCommand,
};
use mirror_e2e_contract::new_run_id;
use xshell::Shell;

use super::artifacts::artifacts_root;
use super::walk::{compare_runs, walk, walk_dirs, walk_run};
use super::{CLUSTER_PATIENCE, cluster_name, phase_args};
use crate::cluster::kwok;
use crate::cluster::kwok::istiod::address;
use crate::cluster::lifetime::with_cluster;
use crate::interrupt::Interrupt;
use crate::progress::Stopwatch;
use crate::runner::Runner;
use crate::{flags, provision, versions};

impl flags::E2e {
    /// A run on a kwok cluster: the pinned control plane (built on first use), created for
    /// the run (or `--reuse NAME`), prepared with Istio's objects, then `mirror-e2e cluster`
    /// inside the cluster's namespaces, playing the node's data plane (`--node`). Only a
    /// cluster this run created is deleted, unless kept.
    pub(super) fn run_kwok(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let wanted = kwok::prepared::Prepared {
            istiod: self.istiod_mode().unwrap_or(flags::IstiodMode::Real),
            istio: release.version.to_owned(),
        };
        let reused = self.kwok_reused(&wanted)?;
        let run_id = new_run_id();
        let runner = Runner::build(sh, interrupt)?;
        let envoy = provision::envoy(sh, interrupt).context("provision envoy")?;
        let bins = kwok::Binaries::ensure(sh, interrupt).context("provision the control plane")?;
        let pilot_discovery = self.real_istiod(sh, interrupt, release)?;
        let chart_values = if pilot_discovery.is_some() {
            kwok::istiod::CHART_VALUES
        } else {
            &[]
        };
        let patience = self.kwok_patience();
        let how = match reused {
            Some(cluster) => {
                eprintln!(
                    "reusing kwok cluster {} (prepared for {})",
                    cluster.name,
                    wanted.describe()
                );
                kwok::KwokUp::Reuse(cluster)
            }
            None => {
                let name = match (&self.reuse, &self.cluster_name) {
                    (Some(name), _) | (_, Some(name)) => name.clone(),
                    _ => cluster_name(&run_id),
                };
                clock.step(&format!("create kwok cluster {name}"));
                kwok::KwokUp::create(name, &bins, interrupt, patience)
            }
        };
        let mut provider = kwok::KwokProvider::new(sh, how);
        with_cluster(
            &mut provider,
            self.keep_request(),
            interrupt,
            |p, tracker| {
                let cluster = p.cluster()?;
                let mut phases = Vec::new();
                if let Some(took) = p.created_in {
                    phases.push(("create cluster".to_owned(), took.as_secs_f64()));
                }
                if cluster.created_by_this_run {
                    let prepare = Instant::now();
                    clock.step("install Istio's CRDs and istiod's objects");
                    kwok::prepare(
                        sh,
                        cluster,
                        &runner,
                        &bins,
                        release,
                        &[""],
                        chart_values,
                        interrupt,
                        patience,
                    )?;
                    phases.push(("install istio".to_owned(), prepare.elapsed().as_secs_f64()));
                    wanted.record(&cluster.dir)?;
                }
                let istiod = match &pilot_discovery {
                    Some((pilot_discovery, source)) => {
                        let start = Instant::now();
                        clock.step(&format!("start {}", source.describe()));
                        let istiod = kwok::istiod::start(
                            sh,
                            cluster,
                            pilot_discovery,
                            &cluster.dir.join("istiod.yaml"),
                            interrupt,
                            Instant::now() + patience,
                        )?;
                        phases.push(("start istiod".to_owned(), start.elapsed().as_secs_f64()));
                        Some(istiod)
                    }
                    None => None,
                };
                let ingress = match istiod {
                    Some(_) => kwok::INGRESS_ISTIOD,
                    None => kwok::INGRESS,
                };
                let mut args = self.kwok_suite_args(cluster, ingress, release, &run_id, clock);
                args.data_plane = self.data_plane_args(cluster, &envoy)?;
                if let (Some(istiod), Some((_, source))) = (&istiod, &pilot_discovery) {
                    args.data_plane.istiod_xds = Some(address(istiod.xds)?);
                    args.data_plane.istiod_debug = Some(address(istiod.debug)?);
                    args.control_plane = Some(source.control_plane_note());
                    args.version_label = Some(kwok::version_label(release.version)?);
                }
                args.phases = phase_args(&phases);
                tracker.suite_starts();
                runner
                    .inside(&cluster.holder.nsenter_args())
                    .run(sh, &RunnerCommand::Cluster(Box::new(args)).to_args())
            },
        )
    }

    /// The cluster `--reuse` names, checked before anything is built or started: a mistyped
    /// name, or a cluster prepared for another mode or release, must not cost a cold build
    /// or a wait.
    fn kwok_reused(
        &self,
        wanted: &kwok::prepared::Prepared,
    ) -> anyhow::Result<Option<kwok::KwokCluster>> {
        let Some(name) = self.reuse.as_deref() else {
            return Ok(None);
        };
        let cluster = kwok::KwokCluster::reuse(name)?;
        let recorded = kwok::prepared::Prepared::read(&cluster.dir)?;
        kwok::prepared::check_reuse(name, recorded.as_ref(), wanted)?;
        Ok(Some(cluster))
    }

    /// With the real istiod (`--istiod real`, kwok's default): its binary, and what plays
    /// the release (for the report); `None` with the translation.
    fn real_istiod(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        release: &versions::IstioRelease,
    ) -> anyhow::Result<Option<(PathBuf, kwok::IstioSource)>> {
        if self.istiod_mode() != Some(flags::IstiodMode::Real) {
            return Ok(None);
        }
        Ok(Some((
            kwok::istiod::pilot_discovery(sh, interrupt, release.version)
                .context("--istiod real")?,
            kwok::istio_source(sh, release.version)?,
        )))
    }

    /// An upgrade walk on a kwok cluster with the real istiod of each version: the node's
    /// proxies run apart from the suite (`mirror-e2e node`) and stay for the whole walk, as a
    /// data plane stays while its control plane is upgraded. Each hop installs the next
    /// release's CRDs and istiod objects, replaces istiod with the next version's binary,
    /// waits until every proxy has reconnected and ACKed its configuration
    /// (`mirror-e2e proxies-synced`, from istiod's `/debug/syncz`), and runs the suite; the
    /// runs are compared hop by hop as on kind.
    pub(super) fn run_kwok_upgrade(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        spec: &str,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let path = versions::upgrade_path(spec)?;
        let run_id = new_run_id();
        let runner = Runner::build(sh, interrupt)?;
        let envoy = provision::envoy(sh, interrupt).context("provision envoy")?;
        let bins = kwok::Binaries::ensure(sh, interrupt).context("provision the control plane")?;
        let (istiods, sources) = walk_istiods(sh, interrupt, &path)?;
        let patience = self.kwok_patience();
        let root = artifacts_root().join(format!("upgrade-{run_id}"));
        let dirs = walk_dirs(&root, &path);
        let step = |what: &str| clock.step(what);
        let name = self
            .cluster_name
            .clone()
            .unwrap_or_else(|| cluster_name(&run_id));
        step(&format!("create kwok cluster {name}"));
        let how = kwok::KwokUp::create(name, &bins, interrupt, patience);
        let mut provider = kwok::KwokProvider::new(sh, how);
        let walked = with_cluster(
            &mut provider,
            self.keep_request(),
            interrupt,
            |p, tracker| {
                let cluster = p.cluster()?;
                let nsenter = cluster.holder.nsenter_args();
                let node_dir = cluster.dir.join("node");
                let mut istiod = kwok::istiod::Succession::default();
                let mut install = |i: usize| -> anyhow::Result<()> {
                    let release = path[i];
                    step(&format!(
                        "install Istio {}'s CRDs and istiod's objects; istiod: {}",
                        release.version,
                        sources[i].describe()
                    ));
                    let installed = istiod.install(
                        sh,
                        cluster,
                        &runner,
                        &bins,
                        release,
                        &istiods[i],
                        interrupt,
                        patience,
                    )?;
                    kwok::prepared::Prepared {
                        istiod: flags::IstiodMode::Real,
                        istio: release.version.to_owned(),
                    }
                    .record(&cluster.dir)?;
                    if i > 0 {
                        let synced = Instant::now();
                        await_proxies_synced(sh, &runner, &nsenter, &node_dir, patience)?;
                        step(&format!(
                            "istiod replaced: ready, and every proxy reconnected and ACKed, {:.1}s after the old one was stopped",
                            (installed.swap + synced.elapsed()).as_secs_f64()
                        ));
                    }
                    Ok(())
                };
                install(0)?;
                step("start the node's data plane (its proxies stay for the whole walk)");
                self.start_walk_data_plane(
                    cluster,
                    &runner,
                    &envoy,
                    path[0].version,
                    interrupt,
                    patience,
                )?;
                let suite = |i: usize| {
                    tracker.suite_starts();
                    let args = self.walk_suite_args(
                        cluster,
                        path[i],
                        &sources[i],
                        &run_id,
                        &dirs[i],
                        clock,
                    )?;
                    walk_run(sh, &runner, &nsenter, &args, &dirs[i], path[i].version)
                };
                let walked = walk(&path, suite, &mut install, |ran| {
                    compare_runs(sh, &runner, &root, &dirs[..ran], self.keep)
                });
                // The data plane's own verdict: a proxy that rejected istiod's configuration
                // at any hop makes it exit non-zero.
                let node_ended = cluster
                    .holder
                    .stop_child("mirror-e2e", Duration::from_secs(10))
                    .context("stop the node's data plane")?;
                walked?;
                if !node_ended.success() {
                    bail!(
                        "the node's data plane ended with {node_ended}; its log: {}",
                        cluster.log("mirror-e2e").display()
                    );
                }
                Ok(())
            },
        );
        self.finish_walk(&root, walked)
    }

    /// `mirror-e2e cluster` for run `release` of a walk on kwok: the node's proxies are the
    /// walk's (`--node-proxies`), and the run's report stays in `dir` for the comparison.
    fn walk_suite_args(
        &self,
        cluster: &kwok::KwokCluster,
        release: &versions::IstioRelease,
        source: &kwok::IstioSource,
        run_id: &str,
        dir: &Path,
        clock: Stopwatch,
    ) -> anyhow::Result<Vec<String>> {
        let mut args = self.kwok_suite_args(cluster, kwok::INGRESS_ISTIOD, release, run_id, clock);
        args.node_proxies = true;
        args.control_plane = Some(format!(
            "{} (they connected to the walk's first istiod and reconnected at each hop)",
            source.control_plane_note()
        ));
        args.version_label = Some(kwok::version_label(release.version)?);
        args.suite.artifacts_root = Some(dir.to_owned());
        args.suite.keep = true;
        Ok(RunnerCommand::Cluster(Box::new(args)).to_args())
    }

    /// The walk's node data plane (`mirror-e2e node`), started apart from the suite as a
    /// component of the cluster, and awaited until it says it is ready.
    fn start_walk_data_plane(
        &self,
        cluster: &kwok::KwokCluster,
        runner: &Runner,
        envoy: &Path,
        istio: &str,
        interrupt: &Interrupt,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let node_dir = cluster.dir.join("node");
        let mut data_plane = self.data_plane_args(cluster, envoy)?;
        data_plane.istiod_xds = Some(address(kwok::istiod::XDS)?);
        data_plane.istiod_debug = Some(address(kwok::istiod::DEBUG)?);
        let node = RunnerCommand::Node(Box::new(NodeArgs {
            target: KubeTarget {
                kubeconfig: Some(cluster.kubeconfig()),
                context: None,
            },
            namespace: "test".into(),
            ingress: kwok::INGRESS_ISTIOD.into(),
            istio: Some(istio.into()),
            dir: node_dir.clone(),
            patience: Some(patience),
            data_plane,
        }))
        .to_args();
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("create {}", node_dir.display()))?;
        cluster
            .holder
            .spawn_with(
                &cluster.log("mirror-e2e"),
                &runner.bin,
                &node,
                &[],
                None,
                kwok::Lifetime::Run,
            )
            .context("start the node's data plane")?;
        cluster.wait_for(
            "the node's data plane to start",
            Instant::now() + patience,
            interrupt,
            &["mirror-e2e"],
            || {
                node_dir
                    .join("ready")
                    .is_file()
                    .then_some(())
                    .ok_or_else(|| "not started yet".to_owned())
            },
        )?;
        Ok(())
    }

    /// Cluster mode's patience, for the cluster's start too.
    pub(super) fn kwok_patience(&self) -> Duration {
        self.patience.unwrap_or(CLUSTER_PATIENCE)
    }

    /// `mirror-e2e cluster` arguments every run on a kwok cluster starts with.
    fn kwok_suite_args(
        &self,
        cluster: &kwok::KwokCluster,
        ingress: &str,
        release: &versions::IstioRelease,
        run_id: &str,
        clock: Stopwatch,
    ) -> ClusterArgs {
        ClusterArgs {
            target: KubeTarget {
                kubeconfig: Some(cluster.kubeconfig()),
                context: None,
            },
            namespace: "test".into(),
            ingress: ingress.into(),
            istio: Some(release.version.into()),
            run_id: Some(run_id.to_owned()),
            echo_hub: self.echo_hub.clone(),
            suite: self.suite_args(clock),
            ..ClusterArgs::default()
        }
    }

    /// The kwok node's data plane as the run plays it: its pods' logs in the cluster's
    /// directory, the user's `--workload`s.
    fn data_plane_args(
        &self,
        cluster: &kwok::KwokCluster,
        envoy: &Path,
    ) -> anyhow::Result<DataPlaneArgs> {
        let workload = self.workload_args()?;
        Ok(DataPlaneArgs {
            node: Some(kwok::NODE_NAME.into()),
            envoy: Some(envoy.to_owned()),
            node_logs: Some(cluster.dir.join("pods")),
            workloads: workload.workloads,
            workload_dir: workload.workload_dir,
            ..DataPlaneArgs::default()
        })
    }
}

/// `mirror-e2e proxies-synced` inside the cluster: every proxy of the walk's data plane
/// reconnected to the new istiod and ACKed its configuration.
fn await_proxies_synced(
    sh: &Shell,
    runner: &Runner,
    nsenter: &[String],
    node_dir: &Path,
    patience: Duration,
) -> anyhow::Result<()> {
    let synced = RunnerCommand::ProxiesSynced(ProxiesSyncedArgs {
        istiod_debug: address(kwok::istiod::DEBUG)?,
        istiod_xds: address(kwok::istiod::XDS)?,
        node_dir: node_dir.to_owned(),
        patience: Some(patience),
    });
    runner
        .inside(nsenter)
        .run(sh, &synced.to_args())
        .context("wait for every proxy to reconnect to the new istiod")
}

/// Every hop's istiod, built before the cluster exists (no hop waits on a build), and what
/// plays each hop's release, read once (each read asks the go command).
fn walk_istiods(
    sh: &Shell,
    interrupt: &Interrupt,
    path: &[&versions::IstioRelease],
) -> anyhow::Result<(Vec<PathBuf>, Vec<kwok::IstioSource>)> {
    let istiods = path
        .iter()
        .map(|r| kwok::istiod::pilot_discovery(sh, interrupt, r.version))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("--istiod real")?;
    let sources = path
        .iter()
        .map(|r| kwok::istio_source(sh, r.version))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((istiods, sources))
}

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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::Shell;

use mirror_e2e_contract::args::{
    ClusterArgs, CompareArgs, DataPlaneArgs, KubeTarget, LintArgs, LintFormat, LocalArgs, NodeArgs,
    NodesReadyArgs, ProxiesSyncedArgs, RunnerCommand, SuiteArgs, WorkloadArgs,
};
use mirror_e2e_contract::{new_run_id, run_id::is_run_id};

use crate::cluster::lifetime::{Provider, with_cluster};
use crate::cluster::{Istioctl, Kind, docker_is_running, keep, kwok};
use crate::flags::ClusterKind;
use crate::interrupt::{Interrupt, is_interrupted};
use crate::progress::Stopwatch;
use crate::runner::{Reported, Runner};
use crate::{flags, paths, tools, versions};

/// Cluster mode's patience when `--patience` and `MIRROR_E2E_PATIENCE` say nothing (the
/// suite's own default on a cluster).
const CLUSTER_PATIENCE: Duration = Duration::from_secs(300);

/// What every kind cluster this project creates is named after: `mirror-e2e-<run-id>`.
const CLUSTER_PREFIX: &str = "mirror-e2e";

/// The kind cluster of run `run_id`, unless the user named one: a name of the run's own, so
/// two runs on one host never create, reuse or delete each other's cluster.
fn cluster_name(run_id: &str) -> String {
    format!("{CLUSTER_PREFIX}-{run_id}")
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
    fn preflight(&self, sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<()> {
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

    fn run_local(&self, sh: &Shell, runner: &Runner, clock: Stopwatch) -> anyhow::Result<()> {
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
        let envoy = tools::envoy(sh, &runner.interrupt).context("provision envoy")?;
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

    fn run_local_upgrade(
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

    /// Removes a passing walk's directory unless `--keep`; a failing one is kept, and the
    /// message says what it holds.
    fn finish_walk(&self, root: &Path, walked: anyhow::Result<()>) -> anyhow::Result<()> {
        if walked.is_ok() && !self.keep {
            let _ = std::fs::remove_dir_all(root);
            eprintln!("artifacts: removed (the walk passed; --keep keeps them)");
        } else if root.exists() {
            eprintln!("artifacts: {} ({})", root.display(), walk_contents(root));
        }
        walked
    }

    fn run_kind(&self, sh: &Shell, interrupt: &Interrupt, clock: Stopwatch) -> anyhow::Result<()> {
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
            tools::ensure(sh, &tools::istioctl_asset(release.version)?, interrupt)?,
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

    fn run_kind_upgrade(
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
                    tools::ensure(sh, &tools::istioctl_asset(r.version)?, interrupt)?,
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
            tools::ensure(sh, &tools::kind_asset()?, interrupt)?,
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

    /// A run on a kwok cluster: the pinned control plane (built on first use), created for
    /// the run (or `--reuse NAME`), prepared with Istio's objects, then `mirror-e2e cluster`
    /// inside the cluster's namespaces, playing the node's data plane (`--node`). Only a
    /// cluster this run created is deleted, unless kept.
    fn run_kwok(&self, sh: &Shell, interrupt: &Interrupt, clock: Stopwatch) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let wanted = kwok::prepared::Prepared {
            istiod: self.istiod_mode().unwrap_or(flags::IstiodMode::Real),
            istio: release.version.to_owned(),
        };
        // Before anything is built or started: a mistyped name, or a cluster prepared for
        // another mode or release, must not cost a cold build or a wait.
        let reused = match self.reuse.as_deref() {
            Some(name) => {
                let cluster = kwok::KwokCluster::reuse(name)?;
                let recorded = kwok::prepared::Prepared::read(&cluster.dir)?;
                kwok::prepared::check_reuse(name, recorded.as_ref(), &wanted)?;
                Some(cluster)
            }
            None => None,
        };
        let run_id = new_run_id();
        let runner = Runner::build(sh, interrupt)?;
        let envoy = tools::envoy(sh, interrupt).context("provision envoy")?;
        let bins = kwok::Binaries::ensure(sh, interrupt).context("provision the control plane")?;
        let real_istiod = self.istiod_mode() == Some(flags::IstiodMode::Real);
        // With the real istiod: its binary, and what plays the release (for the report).
        let pilot_discovery = if real_istiod {
            Some((
                kwok::istiod::pilot_discovery(sh, interrupt, release.version)
                    .context("--istiod real")?,
                kwok::istio_source(sh, release.version)?,
            ))
        } else {
            None
        };
        let chart_values = if real_istiod {
            kwok::istiod::CHART_VALUES
        } else {
            &[]
        };
        let patience = self.kwok_patience();
        let mut phases = Vec::new();
        let cluster = match reused {
            Some(cluster) => {
                eprintln!(
                    "reusing kwok cluster {} (prepared for {})",
                    cluster.name,
                    wanted.describe()
                );
                cluster
            }
            None => {
                let name = match (&self.reuse, &self.cluster_name) {
                    (Some(name), _) | (_, Some(name)) => name.clone(),
                    _ => cluster_name(&run_id),
                };
                let create = Instant::now();
                clock.step(&format!("create kwok cluster {name}"));
                let cluster = kwok::KwokCluster::create(sh, &name, &bins, interrupt, patience)?;
                phases.push(("create cluster".to_owned(), create.elapsed().as_secs_f64()));
                cluster
            }
        };
        let mut provider = kwok::KwokProvider { cluster, sh };
        with_cluster(
            &mut provider,
            self.keep_request(),
            interrupt,
            |p, tracker| {
                let cluster = &p.cluster;
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
                    args.version_label = Some(versions::version_label(release.version)?);
                }
                args.phases = phase_args(&phases);
                tracker.suite_starts();
                runner
                    .inside(&cluster.holder.nsenter_args())
                    .run(sh, &RunnerCommand::Cluster(Box::new(args)).to_args())
            },
        )
    }

    /// An upgrade walk on a kwok cluster with the real istiod of each version: the node's
    /// proxies run apart from the suite (`mirror-e2e node`) and stay for the whole walk, as a
    /// data plane stays while its control plane is upgraded. Each hop installs the next
    /// release's CRDs and istiod objects, replaces istiod with the next version's binary,
    /// waits until every proxy has reconnected and ACKed its configuration
    /// (`mirror-e2e proxies-synced`, from istiod's `/debug/syncz`), and runs the suite; the
    /// runs are compared hop by hop as on kind.
    fn run_kwok_upgrade(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        spec: &str,
        clock: Stopwatch,
    ) -> anyhow::Result<()> {
        let path = versions::upgrade_path(spec)?;
        let run_id = new_run_id();
        let runner = Runner::build(sh, interrupt)?;
        let envoy = tools::envoy(sh, interrupt).context("provision envoy")?;
        let bins = kwok::Binaries::ensure(sh, interrupt).context("provision the control plane")?;
        // Every hop's istiod is built before the cluster exists: no hop waits on a build.
        let istiods = path
            .iter()
            .map(|r| kwok::istiod::pilot_discovery(sh, interrupt, r.version))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--istiod real")?;
        let patience = self.kwok_patience();
        let root = artifacts_root().join(format!("upgrade-{run_id}"));
        let dirs = walk_dirs(&root, &path);
        // What plays each hop's release, read once (each read asks the go command).
        let sources = path
            .iter()
            .map(|r| kwok::istio_source(sh, r.version))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let step = |what: &str| clock.step(what);
        let name = self
            .cluster_name
            .clone()
            .unwrap_or_else(|| cluster_name(&run_id));
        step(&format!("create kwok cluster {name}"));
        let cluster = kwok::KwokCluster::create(sh, &name, &bins, interrupt, patience)?;
        let nsenter = cluster.holder.nsenter_args();
        let node_dir = cluster.dir.join("node");
        let mut provider = kwok::KwokProvider { cluster, sh };
        let walked = with_cluster(
            &mut provider,
            self.keep_request(),
            interrupt,
            |p, tracker| {
                let cluster = &p.cluster;
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
                        let synced_args = RunnerCommand::ProxiesSynced(ProxiesSyncedArgs {
                            istiod_debug: address(kwok::istiod::DEBUG)?,
                            istiod_xds: address(kwok::istiod::XDS)?,
                            node_dir: node_dir.clone(),
                            patience: Some(patience),
                        });
                        runner
                            .inside(&nsenter)
                            .run(sh, &synced_args.to_args())
                            .context("wait for every proxy to reconnect to the new istiod")?;
                        step(&format!(
                            "istiod replaced: ready, and every proxy reconnected and ACKed, {:.1}s after the old one was stopped",
                            (installed.swap + synced.elapsed()).as_secs_f64()
                        ));
                    }
                    Ok(())
                };
                install(0)?;
                step("start the node's data plane (its proxies stay for the whole walk)");
                let mut data_plane = self.data_plane_args(cluster, &envoy)?;
                data_plane.istiod_xds = Some(address(kwok::istiod::XDS)?);
                data_plane.istiod_debug = Some(address(kwok::istiod::DEBUG)?);
                let node = RunnerCommand::Node(Box::new(NodeArgs {
                    target: KubeTarget {
                        kubeconfig: Some(cluster.kubeconfig()),
                        context: None,
                    },
                    namespace: "test".into(),
                    ingress: kwok::INGRESS_ISTIOD.into(),
                    istio: Some(path[0].version.into()),
                    dir: node_dir.clone(),
                    patience: Some(patience),
                    data_plane,
                }))
                .to_args();
                std::fs::create_dir_all(&node_dir)
                    .with_context(|| format!("create {}", node_dir.display()))?;
                cluster
                    .holder
                    .spawn_with(&cluster.log("mirror-e2e"), &runner.bin, &node, &[], None)
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
                let suite = |i: usize| {
                    tracker.suite_starts();
                    let release = path[i];
                    let note = sources[i].control_plane_note();
                    let mut args = self.kwok_suite_args(
                        cluster,
                        kwok::INGRESS_ISTIOD,
                        release,
                        &run_id,
                        clock,
                    );
                    args.node_proxies = true;
                    args.control_plane = Some(format!(
                        "{note} (they connected to the walk's first istiod and reconnected at each hop)"
                    ));
                    args.version_label = Some(versions::version_label(release.version)?);
                    // Every run's report stays for the comparison.
                    args.suite.artifacts_root = Some(dirs[i].clone());
                    args.suite.keep = true;
                    let args = RunnerCommand::Cluster(Box::new(args)).to_args();
                    walk_run(sh, &runner, &nsenter, &args, &dirs[i], release.version)
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

    /// Cluster mode's patience, for the cluster's start too.
    fn kwok_patience(&self) -> Duration {
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

/// Phases timed before the suite, as the suite takes them.
fn phase_args(phases: &[(String, f64)]) -> Vec<(String, Duration)> {
    phases
        .iter()
        .map(|(name, secs)| (name.clone(), Duration::from_secs_f64(*secs)))
        .collect()
}

/// One of istiod's addresses on a kwok cluster, as the suite takes it.
fn address(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    text.parse()
        .with_context(|| format!("istiod's address {text}"))
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
fn walk_run(
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

/// How many runs the artifacts root keeps, unless `MIRROR_E2E_KEEP_RUNS` says otherwise.
const KEEP_RUNS: usize = 20;

/// Removes all but the newest `MIRROR_E2E_KEEP_RUNS` (default [`KEEP_RUNS`]) run
/// directories of the artifacts root before a run, and says so when it removes any: kept
/// failures would otherwise fill the disk. Only directories named as runs and walks are
/// (`<run-id>`, `upgrade-<run-id>`) count; anything else there is left alone.
fn prune_old_runs(root: &Path) -> anyhow::Result<()> {
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

/// Where run `i` of a walk keeps its report: `<root>/<i>-<version>`.
fn walk_dirs(root: &Path, path: &[&versions::IstioRelease]) -> Vec<PathBuf> {
    path.iter()
        .enumerate()
        .map(|(i, r)| root.join(format!("{}-{}", i + 1, r.version)))
        .collect()
}

/// Where xtask keeps runs: `MIRROR_E2E_ARTIFACTS_ROOT` (the suite reads it too), else
/// `target/e2e/` in the project.
pub fn artifacts_root() -> PathBuf {
    std::env::var_os(mirror_e2e_contract::env::ARTIFACTS_ROOT)
        .map_or_else(|| paths::project_root().join("target/e2e"), PathBuf::from)
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
fn compare_runs(
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
mod tests {
    use super::*;
    use crate::cluster::fakes::Fakes;
    use std::time::Duration;

    fn setup(f: &Fakes) -> (Kind<'_>, Istioctl<'_>, KindPlan, Runner) {
        let kubeconfig = f.dir.path().join("kubeconfig");
        let interrupt = Interrupt::default();
        (
            Kind::new(
                &f.sh,
                f.bin("kind"),
                "mirror-e2e",
                kubeconfig.clone(),
                &interrupt,
            ),
            Istioctl {
                sh: &f.sh,
                bin: f.bin("istioctl"),
                kubeconfig: Some(kubeconfig),
                context: None,
                hub: None,
                interrupt: interrupt.clone(),
            },
            KindPlan {
                config: "cluster.yaml".into(),
                operator: "operator.yaml".into(),
                node_image: "kindest/node:v1.36.1@sha256:ab",
                reuse: false,
                keep: false,
                keep_on_failure: false,
                artifacts: f.dir.path().join("artifacts"),
                namespace: "test".into(),
                clock: Stopwatch::start(),
            },
            Runner {
                bin: f.bin("mirror-e2e"),
                interrupt,
                output: crate::interrupt::Output::Relay,
            },
        )
    }

    /// The runner's node check and suite, as the real run passes them: `mirror-e2e
    /// nodes-ready` and `mirror-e2e cluster` (the fake logs them).
    fn nodes<'a>(f: &'a Fakes, runner: &'a Runner) -> impl FnOnce() -> anyhow::Result<()> + 'a {
        move || runner.run(&f.sh, &["nodes-ready".to_owned()])
    }

    fn suite<'a>(
        f: &'a Fakes,
        runner: &'a Runner,
    ) -> impl FnOnce(&[(String, f64)]) -> anyhow::Result<()> + 'a {
        move |_| runner.run(&f.sh, &["cluster".to_owned(), "--run-id".to_owned()])
    }

    fn short(calls: Vec<String>) -> Vec<String> {
        calls
            .iter()
            .map(|c| {
                c.split(" --")
                    .next()
                    .unwrap_or("")
                    .split(" -f")
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_passing_run_creates_waits_installs_runs_and_deletes_in_that_order() {
        let f = Fakes::new();
        let (kind, istioctl, plan, runner) = setup(&f);
        let mut ran = false;
        run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |phases| {
            ran = phases
                .iter()
                .map(|(n, _)| n.as_str())
                .eq(["create cluster", "install istio"]);
            Ok(())
        })
        .expect("passes");
        assert!(ran, "the suite gets the create and install timings");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
                "kind delete cluster"
            ]
        );
    }

    #[test]
    fn nodes_that_never_get_ready_stop_the_run_before_istio() {
        let f = Fakes::new();
        let (kind, istioctl, plan, _) = setup(&f);
        let err = run_on_kind(
            &kind,
            &istioctl,
            &plan,
            || bail!("timed out after 300s waiting for every node to be Ready"),
            |_| panic!("the suite must not run"),
        )
        .expect_err("fails");
        assert!(
            format!("{err:#}").contains("every node to be Ready"),
            "{err:#}"
        );
        assert!(!f.calls().iter().any(|c| c.starts_with("istioctl install")));
        assert_eq!(
            f.calls().last().map(|c| &c[..19]),
            Some("kind delete cluster")
        );
    }

    #[test]
    fn istioctl_failing_collects_diagnostics_and_deletes_in_ci() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_ISTIOCTL_FAILS", "1");
        let (kind, istioctl, plan, runner) = setup(&f);
        let err = format!(
            "{:#}",
            run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| panic!(
                "the suite must not run"
            ))
            .expect_err("fails")
        );
        assert!(
            err.contains("install istio") && err.contains("Error: failed to install"),
            "{err}"
        );
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
                "kind export logs <dir>/artifacts/diagnostics/kind-logs",
                "istioctl proxy-config routes deploy/productpage-v1 -n test -o json",
                "kind delete cluster"
            ]
        );
        assert!(
            plan.artifacts
                .join("diagnostics/productpage-routes.json")
                .is_file()
        );
    }

    #[test]
    fn a_failure_before_the_suite_deletes_the_cluster_even_under_keep_and_keep_on_failure() {
        // Issue 24 §2: keeping is for inspecting a mesh that misbehaved; a cluster whose
        // Istio never installed has none. Its diagnostics are still collected first.
        let f = Fakes::new();
        f.sh.set_var("FAKE_ISTIOCTL_FAILS", "1");
        let (kind, istioctl, mut plan, runner) = setup(&f);
        plan.keep = true;
        plan.keep_on_failure = true;
        run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
            panic!("the suite must not run")
        })
        .expect_err("fails");
        let calls = short(f.calls());
        assert_eq!(
            calls.last().map(String::as_str),
            Some("kind delete cluster"),
            "{calls:?}"
        );
        assert!(
            calls.iter().any(|c| c.starts_with("kind export logs")),
            "{calls:?}"
        );
    }

    #[test]
    fn a_failed_run_keeps_the_cluster_when_asked() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_SUITE_FAILS", "1");
        let (kind, istioctl, mut plan, runner) = setup(&f);
        plan.keep_on_failure = true;
        run_on_kind(
            &kind,
            &istioctl,
            &plan,
            nodes(&f, &runner),
            suite(&f, &runner),
        )
        .expect_err("fails");
        f.assert_deleted_nothing();
    }

    #[test]
    fn a_cluster_kept_from_an_earlier_run_is_neither_used_nor_deleted_without_reuse() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let (kind, istioctl, plan, runner) = setup(&f);
        let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
            panic!("the suite must not run")
        })
        .expect_err("in the way");
        assert!(format!("{err:#}").contains("--reuse"), "{err:#}");
        assert_eq!(f.calls(), ["kind get clusters"]);
    }

    #[test]
    fn reuse_skips_creation_installation_and_deletion() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let (kind, istioctl, mut plan, runner) = setup(&f);
        plan.reuse = true;
        run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| Ok(())).expect("passes");
        assert_eq!(
            short(f.calls()),
            ["kind get clusters", "kind get kubeconfig"]
        );
    }

    #[test]
    fn reuse_without_a_cluster_creates_one() {
        let f = Fakes::new();
        let (kind, istioctl, mut plan, runner) = setup(&f);
        plan.reuse = true;
        run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| Ok(())).expect("passes");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
                "kind delete cluster"
            ]
        );
    }

    /// Runs a kind run whose `call` blocks until Ctrl-C, which comes as soon as it started.
    /// Returns the error, the calls made, and how long the run took.
    fn interrupted_during(call: &str, keep: bool) -> (anyhow::Error, Vec<String>, Duration) {
        let f = Fakes::new();
        let (kind, istioctl, mut plan, runner) = setup(&f);
        plan.keep = keep;
        plan.keep_on_failure = true;
        let watcher = f.interrupt_during(call, &kind.interrupt);
        let start = Instant::now();
        let err = run_on_kind(
            &kind,
            &istioctl,
            &plan,
            nodes(&f, &runner),
            suite(&f, &runner),
        )
        .expect_err("interrupted");
        let took = start.elapsed();
        watcher.join().expect("watcher");
        (err, short(f.calls()), took)
    }

    #[test]
    fn ctrl_c_in_each_phase_ends_the_child_starts_nothing_and_deletes_the_cluster() {
        let create = ["kind get clusters", "kind create cluster"];
        for (call, ran) in [
            ("kind create", &create[..]),
            (
                "mirror-e2e nodes-ready",
                &[
                    "kind get clusters",
                    "kind create cluster",
                    "mirror-e2e nodes-ready",
                ][..],
            ),
            (
                "istioctl install",
                &[
                    "kind get clusters",
                    "kind create cluster",
                    "mirror-e2e nodes-ready",
                    "istioctl install -y",
                ][..],
            ),
            (
                "mirror-e2e cluster",
                &[
                    "kind get clusters",
                    "kind create cluster",
                    "mirror-e2e nodes-ready",
                    "istioctl install -y",
                    "mirror-e2e cluster",
                ][..],
            ),
        ] {
            let (err, calls, took) = interrupted_during(call, false);
            assert!(is_interrupted(&err), "{call}: {err:#}");
            assert!(took < Duration::from_secs(5), "{call}: took {took:?}");
            let mut expected: Vec<&str> = ran.to_vec();
            // No diagnostics after Ctrl-C (they take minutes); even a half-created cluster
            // is this run's to delete; keep-on-failure does not apply to an interruption.
            expected.push("kind delete cluster");
            assert_eq!(calls, expected, "{call}");
        }
    }

    #[test]
    fn ctrl_c_before_the_create_deletes_no_cluster_that_was_there() {
        // Ctrl-C noted during the Docker check or a download, before `kind create`: the
        // cluster of the name (kept from an earlier run) was never looked at, is not this
        // run's, and must survive.
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let (kind, istioctl, plan, runner) = setup(&f);
        kind.interrupt.trigger();
        let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
            panic!("the suite must not run")
        })
        .expect_err("interrupted");
        assert!(is_interrupted(&err), "{err:#}");
        f.assert_deleted_nothing();
    }

    #[test]
    fn every_run_gets_a_kind_cluster_name_of_its_own() {
        let (a, b) = (cluster_name(&new_run_id()), cluster_name(&new_run_id()));
        assert_ne!(a, b, "two runs, two clusters");
        for name in [&a, &b] {
            assert!(name.starts_with("mirror-e2e-2"), "{name}");
            // kind's own rule for a name, and its length warning.
            assert!(name.len() <= 50, "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{name}"
            );
        }
        use clap::Parser;
        // A kept cluster's name is what --reuse takes back.
        let e2e = flags::E2e::parse(&["--reuse", &a]);
        assert_eq!(e2e.reuse.as_deref(), Some(a.as_str()));
        for bad in ["Mirror", "a_b", ""] {
            assert!(
                flags::Xtask::try_parse_from(["cargo xtask", "e2e", "--reuse", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ctrl_c_with_keep_keeps_the_cluster() {
        let (err, calls, _) = interrupted_during("mirror-e2e cluster", true);
        assert!(is_interrupted(&err));
        assert!(
            !calls.iter().any(|c| c.starts_with("kind delete")),
            "{calls:?}"
        );
    }

    /// A kind-mode walk over `spec` with the fake tools: one istioctl per release (each a
    /// copy of the fake, named `istioctl-<version>`), the suite as `mirror-e2e cluster
    /// --istio <version>`, the comparison as `mirror-e2e compare`.
    fn kind_walk(f: &Fakes, spec: &str) -> anyhow::Result<()> {
        let (kind, _, plan, runner) = setup(f);
        let path = versions::upgrade_path(spec).expect("walk");
        let istioctls: Vec<Istioctl<'_>> = path
            .iter()
            .map(|r| {
                let bin = f.dir.path().join(format!("istioctl-{}", r.version));
                std::fs::copy(f.bin("istioctl"), &bin).expect("copy fake");
                Istioctl {
                    sh: &f.sh,
                    bin,
                    kubeconfig: None,
                    context: None,
                    hub: None,
                    interrupt: kind.interrupt.clone(),
                }
            })
            .collect();
        run_on_kind(&kind, &istioctls[0], &plan, nodes(f, &runner), |_| {
            walk(
                &path,
                |i| {
                    let mut args = vec![
                        "cluster".to_owned(),
                        "--istio".into(),
                        path[i].version.into(),
                    ];
                    if i > 0 {
                        args.push("--restart-workloads".into());
                    }
                    runner.run(&f.sh, &args)
                },
                |i| istioctls[i].install(Path::new("operator.yaml")),
                |ran| runner.run(&f.sh, &["compare".to_owned(), format!("{ran} runs")]),
            )
        })
    }

    #[test]
    fn a_two_minor_walk_installs_restarts_runs_and_compares_hop_by_hop() {
        let f = Fakes::new();
        kind_walk(&f, "1.29.9..1.31.1").expect("passes");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl-1.29.9 install -y",
                "mirror-e2e cluster",
                "istioctl-1.30.5 install -y",
                "mirror-e2e cluster",
                "istioctl-1.31.1 install -y",
                "mirror-e2e cluster",
                "mirror-e2e compare 3 runs",
                "kind delete cluster"
            ]
        );
        let restarts = f
            .calls()
            .iter()
            .filter(|c| c.contains("--restart-workloads"))
            .count();
        assert_eq!(
            restarts, 2,
            "every run after an install restarts the workloads"
        );
    }

    #[test]
    fn a_failing_middle_hop_stops_the_walk_naming_the_hop() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_SUITE_FAILS_ON", "1.30.5");
        let err = format!("{:#}", kind_walk(&f, "1.29.9..1.31.1").expect_err("fails"));
        assert!(
            err.starts_with("hop 1 of 2, 1.29.9 -> 1.30.5 (upgrade): the suite failed on 1.30.5"),
            "{err}"
        );
        let calls = short(f.calls());
        assert!(
            !calls.iter().any(|c| c.starts_with("istioctl-1.31.1")),
            "{calls:?}"
        );
        assert!(
            calls.contains(&"mirror-e2e compare 2 runs".to_owned()),
            "the runs made are compared: {calls:?}"
        );
    }

    #[test]
    fn ctrl_c_during_the_first_run_of_a_walk_installs_nothing_more() {
        let f = Fakes::new();
        let (kind, istioctl, plan, runner) = setup(&f);
        let watcher = f.interrupt_during("mirror-e2e cluster", &kind.interrupt);
        let path = versions::upgrade_path("1.29.9..1.31.1").expect("walk");
        let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
            walk(
                &path,
                |_| runner.run(&f.sh, &["cluster".to_owned()]),
                |_| istioctl.install(Path::new("operator.yaml")),
                |_| runner.run(&f.sh, &["compare".to_owned()]),
            )
        })
        .expect_err("interrupted");
        watcher.join().expect("watcher");
        assert!(is_interrupted(&err), "{err:#}");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
                "mirror-e2e cluster",
                "kind delete cluster"
            ]
        );
    }

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

    #[test]
    fn default_manifests_are_the_projects_and_given_ones_are_from_where_you_stand() {
        let parse = |args: &[&str]| flags::E2e::parse(args).manifests_dir();
        assert_eq!(parse(&[]), paths::project_root().join("manifests"));
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(parse(&["--manifests", "mine"]), cwd.join("mine"));
    }

    #[test]
    fn flags_that_would_be_ignored_are_usage_errors() {
        let parse = |args: &[&str]| {
            flags::E2e::parse(args)
                .validate()
                .map_err(|e| e.to_string())
        };
        for flag in [
            &["--cluster", "existing"][..],
            &["--reuse", "mirror-e2e-kept"],
            &["--cluster-name", "mine"],
            &["--kubeconfig", "k"],
            &["--context", "c"],
            &["--ingress", "http://x"],
            &["--install-istio"],
            &["--allow-cluster-scoped"],
            &["--on-failure", "keep"],
        ] {
            let mut args = vec!["--local"];
            args.extend(flag);
            let err = parse(&args).expect_err("usage error");
            assert!(err.contains(flag[0]) && err.contains("--local"), "{err}");
        }
        let err = parse(&["--context", "c"]).expect_err("kind has no context");
        assert!(err.contains("--cluster existing"), "{err}");
        let err = parse(&["--allow-cluster-scoped"]).expect_err("kind owns its cluster");
        assert!(err.contains("--cluster existing"), "{err}");
        parse(&["--local", "--keep"]).expect("fine");
        parse(&["--cluster", "existing", "--context", "c"]).expect("fine");
    }

    #[test]
    fn istiod_is_a_flag_of_kwok_only_either_way() {
        let parse = |args: &[&str]| {
            flags::E2e::parse(args)
                .validate()
                .map_err(|e| e.to_string())
        };
        for mode in ["real", "translation"] {
            for other in [&["--local"][..], &[], &["--cluster", "existing"]] {
                let mut args = vec!["--istiod", mode];
                args.extend(other);
                let err = parse(&args).expect_err("usage error");
                assert!(
                    err.contains(&format!("--istiod {mode}")) && err.contains("--cluster kwok"),
                    "{args:?}: {err}"
                );
            }
            parse(&["--cluster", "kwok", "--istiod", mode]).expect("fine on kwok");
        }
        // Without the flag every mode is fine: it means nothing there.
        parse(&["--local"]).expect("fine");
        parse(&[]).expect("fine");
    }

    #[test]
    fn patience_is_seconds_parsed_at_the_flag_and_kwok_uses_what_the_suite_would() {
        use clap::Parser;
        let patience = |args: &[&str]| flags::E2e::parse(args).kwok_patience();
        // The suite reads 2.5 as two and a half seconds; so does the kwok cluster's start.
        assert_eq!(
            patience(&["--cluster", "kwok", "--patience", "2.5"]),
            Duration::from_millis(2500)
        );
        assert_eq!(patience(&["--cluster", "kwok"]), Duration::from_secs(300));
        // A value the suite would refuse is refused at the flag, naming it.
        for bad in ["soon", "0", "inf"] {
            let err = flags::Xtask::try_parse_from(["cargo xtask", "e2e", "--patience", bad])
                .err()
                .unwrap_or_else(|| panic!("--patience {bad} was accepted"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            let text = err.to_string();
            assert!(
                text.contains("--patience") && text.contains("is not a positive number of seconds"),
                "{text}"
            );
        }
        // The suite gets the value it would have parsed itself.
        let suite =
            flags::E2e::parse(&["--local", "--patience", "2.5"]).suite_args(Stopwatch::start());
        let args = RunnerCommand::Local(Box::new(LocalArgs {
            suite,
            ..LocalArgs::default()
        }))
        .to_args();
        let at = args
            .iter()
            .position(|a| a == "--patience")
            .expect("passed on");
        assert_eq!(args[at + 1], "2.500");
    }

    #[test]
    fn kwok_runs_the_real_istiod_unless_told_translation() {
        let mode = |args: &[&str]| flags::E2e::parse(args).istiod_mode();
        assert_eq!(mode(&["--cluster", "kwok"]), Some(flags::IstiodMode::Real));
        assert_eq!(
            mode(&["--cluster", "kwok", "--istiod", "translation"]),
            Some(flags::IstiodMode::Translation)
        );
        assert_eq!(
            mode(&["--cluster", "kwok", "--istiod", "real"]),
            Some(flags::IstiodMode::Real)
        );
        // Elsewhere no mode applies: the cluster's own istiod, or local mode's translation.
        for other in [&["--local"][..], &[], &["--cluster", "existing"]] {
            assert_eq!(mode(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_walk_on_an_existing_cluster_is_refused_with_validates_message_before_anything_runs() {
        // Ctrl-C noted already: had the run got past the flags, its first child (the
        // runner's build) would stop it as interrupted.
        let interrupt = Interrupt::default();
        interrupt.trigger();
        let sh = Shell::new().expect("shell");
        let err =
            flags::E2e::parse(&["--cluster", "existing", "--istio-upgrade", "1.30.5..1.31.1"])
                .run_on(&sh, &interrupt, Stopwatch::start())
                .expect_err("usage error");
        assert!(!is_interrupted(&err), "{err:#}");
        assert_eq!(
            err.to_string(),
            "--istio-upgrade needs a cluster of the run's own: use it with --local, --cluster kind or --cluster kwok"
        );
        assert!(err.is::<flags::Usage>(), "{err:#}");
    }

    #[test]
    fn a_walk_on_kwok_walks_real_istiods_on_a_cluster_of_its_own() {
        let parse = |args: &[&str]| {
            flags::E2e::parse(args)
                .validate()
                .map_err(|e| e.to_string())
        };
        let walk = ["--cluster", "kwok", "--istio-upgrade", "1.27.9..1.31.1"];
        parse(&walk).expect("the real istiod is kwok's default");
        let mut real = walk.to_vec();
        real.extend(["--istiod", "real"]);
        parse(&real).expect("fine");
        let mut translation = walk.to_vec();
        translation.extend(["--istiod", "translation"]);
        let err = parse(&translation).expect_err("the translation does not walk");
        assert!(err.contains("drop --istiod translation"), "{err}");
        let mut reused = walk.to_vec();
        reused.extend(["--reuse", "kept"]);
        let err = parse(&reused).expect_err("a reused cluster");
        assert!(err.contains("drop --reuse"), "{err}");
        let err = parse(&["--cluster", "existing", "--istio-upgrade", "1.30.5..1.31.1"])
            .expect_err("someone's cluster");
        assert!(
            err.contains("a cluster of the run's own") && !err.contains("--istiod"),
            "{err}"
        );
    }
}

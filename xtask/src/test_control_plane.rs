//! `cargo xtask test-control-plane`: cluster mode's code against a real Kubernetes control
//! plane, with no Docker.
//!
//! It builds (once, into the tool cache) and starts the pinned etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok as a kwok cluster, installs Istio's
//! CRDs from the pinned Istio module and istiod's Deployment, Service, ConfigMap and
//! ServiceAccount as Istio's chart renders them (helm), then runs the tests that need a
//! real API server: `e2e/tests/control_plane.rs` inside the cluster's network namespace,
//! and xtask's own provider tests (`cluster::kwok::real`). The cluster is deleted at the
//! end unless `--keep`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::cluster::kwok::{Binaries, KwokCluster, istio_source};
use crate::interrupt::{Interrupt, Output};
use crate::runner::{Runner, nested_cargo};
use crate::{flags, paths, versions};

/// The environment variable the control-plane tests read the kubeconfig from.
pub const KUBECONFIG_ENV: &str = "MIRROR_E2E_CONTROL_PLANE_KUBECONFIG";

impl flags::TestControlPlane {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let start = Instant::now();
        let step = |name: &str| eprintln!("[{:>7.1}s] {name}", start.elapsed().as_secs_f64());
        let patience = Duration::from_secs(self.patience);

        step("control-plane binaries (built from pinned Go modules on first use)");
        let bins = Binaries::ensure(sh, &interrupt)?;
        step("build mirror-e2e and the control-plane tests");
        let runner = Runner::build(sh, &interrupt)?;
        let cargo = |cmd| interrupt.run(nested_cargo(cmd), Output::Terminal);
        // The fast tier's clippy does not see code behind the feature.
        cargo(cmd!(
            sh,
            "cargo clippy --workspace --all-targets --features e2e/control-plane,xtask/control-plane -- -D warnings"
        ))
        .context("clippy on the control-plane tests")?;
        cargo(cmd!(
            sh,
            "cargo test --package e2e --features control-plane --test control_plane --no-run"
        ))
        .context("build the control-plane tests")?;
        cargo(cmd!(
            sh,
            "cargo test --package xtask --features control-plane --no-run"
        ))
        .context("build xtask's control-plane tests")?;

        step("create a kwok cluster");
        let name = format!("mirror-e2e-test-{}", std::process::id());
        let cluster = KwokCluster::create(sh, &name, &bins, &interrupt, patience)?;
        eprintln!(
            "cluster {name} is up: kubeconfig {} (use it inside the cluster's network namespace: nsenter {} kubectl ...)",
            cluster.kubeconfig().display(),
            cluster.holder.nsenter_args().join(" ")
        );
        let tested = (|| {
            step("install the node, Istio's CRDs and istiod's objects");
            prepare(sh, &cluster, &runner, &bins, &interrupt, patience)?;
            step("control-plane tests (e2e, inside the cluster's network namespace)");
            let enter = cluster.holder.nsenter_args();
            let kubeconfig = cluster.kubeconfig();
            let _env = sh.push_env(KUBECONFIG_ENV, &kubeconfig);
            let _patience = sh.push_env("MIRROR_E2E_PATIENCE", self.patience.to_string());
            // Built above: cargo needs no network inside the namespace.
            cargo(cmd!(
                sh,
                "nsenter {enter...} cargo test --offline --package e2e --features control-plane --test control_plane"
            ))
            .context("control-plane tests")?;
            step("kwok provider tests (xtask, real processes)");
            cargo(cmd!(
                sh,
                "cargo test --offline --package xtask --bin xtask --features control-plane -- cluster::kwok::real"
            ))
            .context("kwok provider tests")
        })();
        if self.keep {
            eprintln!(
                "kept the kwok cluster {name} (--keep); delete it by ending its holder: kill {}",
                cluster.holder.pid
            );
        } else {
            step("delete the kwok cluster");
            cluster.delete(sh).context("delete the kwok cluster")?;
        }
        tested?;
        step("done");
        Ok(())
    }
}

/// The node, Istio's CRDs and istiod's objects; then every node Ready.
pub fn prepare(
    sh: &Shell,
    cluster: &KwokCluster,
    runner: &Runner,
    bins: &Binaries,
    interrupt: &Interrupt,
    patience: Duration,
) -> anyhow::Result<()> {
    let release = versions::istio_release(None)?;
    let istio = istio_source(sh, release.version)?;
    eprintln!(
        "Istio {}: CRDs and istiod's chart from istio.io/istio {}, {}",
        release.version, istio.module.version, istio.module.provenance
    );
    let inside = runner.inside(&cluster.holder.nsenter_args());
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let patience_secs = patience.as_secs().to_string();
    let install = |files: &[PathBuf], only: &str| -> anyhow::Result<()> {
        let mut args = vec![
            "install".to_owned(),
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "--patience".into(),
            patience_secs.clone(),
        ];
        if !only.is_empty() {
            args.extend(["--only-kinds".to_owned(), only.to_owned()]);
        }
        args.extend(files.iter().map(|f| f.display().to_string()));
        inside.run(sh, &args)
    };
    install(
        &[paths::project_root().join("xtask/src/cluster/kwok/node.yaml")],
        "",
    )
    .context("install the kwok node")?;
    inside
        .run(
            sh,
            &[
                "nodes-ready".to_owned(),
                "--kubeconfig".into(),
                kubeconfig.clone(),
                "--patience".into(),
                patience_secs.clone(),
            ],
        )
        .context("wait for the kwok node")?;
    interrupt.check()?;
    install(std::slice::from_ref(&istio.crds), "").context("install Istio's CRDs")?;
    // Two control planes, as a cluster in the middle of a canary upgrade has: the default
    // revision and `canary` (the tests pick one with --revision).
    let rendered = cluster.dir.join("istiod.yaml");
    render_istiod(
        sh,
        bins,
        &istio.discovery_chart,
        release.version,
        "",
        &rendered,
    )?;
    let canary = cluster.dir.join("istiod-canary.yaml");
    render_istiod(
        sh,
        bins,
        &istio.discovery_chart,
        release.version,
        "canary",
        &canary,
    )?;
    let namespace = cluster.dir.join("istio-system.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
    )
    .with_context(|| format!("write {}", namespace.display()))?;
    install(
        &[namespace, rendered, canary],
        "Namespace,ServiceAccount,ConfigMap,Service,Deployment",
    )
    .context("install istiod's objects")
}

/// `helm template` of istiod's chart from the pinned Istio module, as Istio's Helm install
/// renders it for the release's images (`revision` "" is the default revision).
fn render_istiod(
    sh: &Shell,
    bins: &Binaries,
    chart: &Path,
    version: &str,
    revision: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let helm = &bins.helm;
    let tag = format!("global.tag={version}");
    let revision = format!("revision={revision}");
    let rendered = cmd!(
        sh,
        "{helm} template istiod {chart} --namespace istio-system --set global.hub=docker.io/istio --set {tag} --set {revision}"
    )
    .quiet()
    .read()
    .context("render istiod's chart with helm")?;
    std::fs::write(out, rendered).with_context(|| format!("write {}", out.display()))
}

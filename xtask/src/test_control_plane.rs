//! `cargo xtask test-control-plane`: cluster mode's code against a real Kubernetes control
//! plane, with no Docker.
//!
//! It builds (once, into the tool cache) and starts the pinned etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok as a kwok cluster, installs Istio's
//! CRDs from the pinned Istio module and istiod's Deployment, Service, ConfigMap and
//! ServiceAccount as Istio's chart renders them (helm), then runs the tests that need a
//! real API server: `e2e/tests/control_plane.rs` inside the cluster's network namespace,
//! and xtask's own provider tests (`cluster::kwok::real`, `xtask/tests/kwok_e2e.rs`,
//! `xtask/tests/kwok_lifecycle.rs`). The cluster is deleted at the
//! end unless `--keep` (`lifetime::with_cluster`: a failed delete is added to a failed
//! run's error, never in its place).

use std::time::Duration;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::cluster::keep;
use crate::cluster::kwok::{Binaries, KwokProvider, KwokUp, prepare};
use crate::cluster::lifetime::with_cluster;
use crate::interrupt::{Interrupt, Output};
use crate::runner::{Runner, nested_cargo};
use crate::{flags, versions};

/// The environment variable the control-plane tests read the kubeconfig from.
pub const KUBECONFIG_ENV: &str = mirror_e2e_contract::env::CONTROL_PLANE_KUBECONFIG;

impl flags::TestControlPlane {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let clock = crate::progress::Stopwatch::start();
        let step = |name: &str| clock.step(name);
        let patience = Duration::from_secs(self.patience);

        step("control-plane binaries (built from pinned Go modules on first use)");
        let bins = Binaries::ensure(sh, &interrupt)?;
        let envoy = crate::provision::envoy(sh, &interrupt).context("provision envoy")?;
        // The walk's Ctrl-C test runs two of them; a cold build is long, so it is done here,
        // before any bound of a test runs (later tiers reuse the cache).
        step("istiods (built from the pinned istio.io/istio modules on first use)");
        for build in crate::cluster::kwok::binaries::ISTIODS {
            build
                .ensure(sh, &interrupt)
                .with_context(|| format!("build istiod ({})", build.module))?;
        }
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
        // With --keep the cluster stays whatever the outcome: every step is a test.
        let request = keep::Request {
            keep: self.keep,
            on_failure: false,
        };
        let how = KwokUp::create(name.clone(), &bins, &interrupt, patience);
        let mut provider = KwokProvider::new(sh, how);
        with_cluster(&mut provider, request, &interrupt, |p, tracker| {
            tracker.suite_starts();
            let cluster = p.cluster()?;
            eprintln!(
                "cluster {name} is up; look at it with `{}`",
                crate::cluster::kwok::shell_line(&cluster.commands()[0].1)
            );
            step("install the node, Istio's CRDs and istiod's objects");
            prepare(
                sh,
                cluster,
                &runner,
                &bins,
                versions::istio_release(None)?,
                // Two control planes, as a cluster in the middle of a canary upgrade has:
                // the default revision and `canary` (the tests pick one with --revision).
                &["", "canary"],
                &[],
                &interrupt,
                patience,
            )?;
            step("control-plane tests (e2e, inside the cluster's network namespace)");
            let enter = cluster.holder.nsenter_args();
            let kubeconfig = cluster.kubeconfig();
            let _env = sh.push_env(KUBECONFIG_ENV, &kubeconfig);
            let _patience = sh.push_env(
                mirror_e2e_contract::env::PATIENCE,
                self.patience.to_string(),
            );
            let _envoy = sh.push_env(mirror_e2e_contract::env::ENVOY_BIN, &envoy);
            // Built above: cargo needs no network inside the namespace.
            cargo(cmd!(
                sh,
                "nsenter {enter...} cargo test --offline --package e2e --features control-plane --test control_plane"
            ))
            .context("control-plane tests")?;
            step("kwok provider tests (xtask, real processes)");
            cargo(cmd!(
                sh,
                "cargo test --offline --package xtask --features control-plane --bin xtask --test kwok_e2e --test kwok_lifecycle -- cluster::kwok::real ctrl_c_while_the_suite_runs reused_cluster reused_in_another_mode data_plane_that_never_starts"
            ))
            .context("kwok provider tests")
        })?;
        step("done");
        Ok(())
    }
}

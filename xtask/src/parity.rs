//! `cargo xtask parity`: the real istiod as the oracle for local mode's translation.
//!
//! One kwok cluster with the pinned istiod (as `e2e --cluster kwok --istiod real` starts
//! it), then `mirror-e2e parity` inside the cluster's namespaces: the shipped manifests and
//! the corpus in `e2e/tests/fixtures/parity/`, each compared route by route with the
//! translation (`e2e/src/parity.rs`). The cluster is deleted at the end unless `--keep`.

use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::Shell;

use crate::cluster::kwok::{self, Binaries, KwokCluster, prepare};
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths, versions};

impl flags::Parity {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let start = Instant::now();
        let step = |name: &str| eprintln!("[{:>7.1}s] {name}", start.elapsed().as_secs_f64());
        let patience = Duration::from_secs(self.patience);
        // The only Istio minor with a pinned istio.io/istio module (README, "Istio's module").
        let release = versions::istio_release(None)?;
        let bins = Binaries::ensure(sh, &interrupt)?;
        let pilot_discovery = kwok::istiod::pilot_discovery(sh, &interrupt, release.version)?;
        let envoy = crate::tools::envoy(sh, &interrupt).context("provision envoy")?;
        let runner = Runner::build(sh, &interrupt)?;
        let name = format!("mirror-e2e-parity-{}", std::process::id());
        step(&format!("create kwok cluster {name}"));
        let cluster = KwokCluster::create(sh, &name, &bins, &interrupt, patience)?;
        let outcome = (|| {
            step("install Istio's CRDs and istiod's objects");
            prepare(
                sh,
                &cluster,
                &runner,
                &bins,
                release,
                &[""],
                kwok::istiod::CHART_VALUES,
                &interrupt,
                patience,
            )?;
            step("start istiod");
            let istiod = kwok::istiod::start(
                sh,
                &cluster,
                &pilot_discovery,
                &cluster.dir.join("istiod.yaml"),
                &interrupt,
                Instant::now() + patience,
            )?;
            step("compare istiod's routes with the translation's");
            let compared = Instant::now();
            let root = paths::project_root();
            let out = root.join("target/parity");
            std::fs::create_dir_all(&out).context("create target/parity")?;
            let args: Vec<String> = vec![
                "parity".into(),
                "--kubeconfig".into(),
                cluster.kubeconfig().display().to_string(),
                "--istiod-xds".into(),
                istiod.xds.into(),
                "--istiod-debug".into(),
                istiod.debug.into(),
                "--envoy".into(),
                envoy.display().to_string(),
                "--istio".into(),
                release.version.into(),
                "--manifests".into(),
                root.join("manifests").display().to_string(),
                "--variants".into(),
                root.join("e2e/tests/fixtures/parity").display().to_string(),
                "--out".into(),
                out.display().to_string(),
                "--patience".into(),
                self.patience.to_string(),
            ];
            runner
                .inside(&cluster.holder.nsenter_args())
                .run(sh, &args)?;
            step(&format!(
                "compared in {:.1}s (the table is also in target/parity/parity.md)",
                compared.elapsed().as_secs_f64()
            ));
            anyhow::Ok(())
        })();
        if self.keep {
            eprintln!(
                "kept the kwok cluster {name} (--keep); delete it with `cargo xtask kwok delete {name}`"
            );
        } else {
            cluster.delete(sh).context("delete the kwok cluster")?;
        }
        outcome
    }
}

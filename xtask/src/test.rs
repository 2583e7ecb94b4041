//! `cargo xtask test`: the one test command, locally and in CI.

use std::time::Instant;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::{flags, tools};

impl flags::Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let start = Instant::now();
        let step = |name: &str| eprintln!("[{:>7.1}s] {name}", start.elapsed().as_secs_f64());

        step("format");
        cmd!(sh, "cargo fmt --all -- --check")
            .run()
            .context("formatting differs: run `cargo fmt --all`")?;

        step("clippy");
        cmd!(
            sh,
            "cargo clippy --workspace --all-targets --quiet -- -D warnings"
        )
        .run()
        .context("clippy")?;

        step("envoy");
        let envoy = tools::envoy(sh).context("provision envoy")?;
        let _env = sh.push_env("ENVOY_BIN", &envoy);

        step("tests");
        cmd!(sh, "cargo test --workspace --quiet")
            .run()
            .context("tests")?;

        step("local e2e");
        flags::E2e {
            local: true,
            manifests: "manifests".into(),
            istio: None,
            istio_upgrade: None,
            keep: false,
            patience: None,
            harness: Vec::new(),
            cluster: flags::ClusterKind::Kind,
            reuse: false,
            on_failure: None,
            kubeconfig: None,
            context: None,
            install_istio: false,
            ingress: String::new(),
        }
        .run(sh)
        .context("local e2e")?;
        Ok(())
    }
}

//! `cargo xtask e2e`: provisions what the suite needs and runs it.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{flags, paths, tools};

impl flags::E2e {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.local {
            self.run_local(sh)
        } else {
            self.run_cluster(sh)
        }
    }

    fn run_local(self, sh: &Shell) -> anyhow::Result<()> {
        let envoy = tools::envoy(sh).context("provision envoy")?;
        let manifests = paths::from_invocation(&self.manifests);
        let istio: Vec<String> = self
            .istio
            .iter()
            .flat_map(|v| ["--istio".to_owned(), v.clone()])
            .collect();
        let patience: Vec<String> = self
            .patience
            .iter()
            .flat_map(|p| ["--patience".to_owned(), p.clone()])
            .collect();
        let keep = self.keep.then_some("--keep");
        let harness = &self.harness;
        cmd!(
            sh,
            "cargo run --quiet --package e2e --bin mirror-e2e -- local --envoy {envoy} --manifests {manifests} {istio...} {patience...} {keep...} -- {harness...}"
        )
        .run()
        .context("local e2e run failed (see the report above)")
    }

    fn run_cluster(self, sh: &Shell) -> anyhow::Result<()> {
        docker_is_running(sh)?;
        bail!(
            "cluster mode is not built yet; `cargo xtask e2e --local` runs the same checks on a real Envoy"
        )
    }
}

/// kind needs a running Docker engine: say so before anything is created.
fn docker_is_running(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "docker --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        bail!(
            "cluster mode needs Docker for kind, and no `docker` command was found; install Docker, or run `cargo xtask e2e --local`"
        );
    }
    // `docker info` exits non-zero when no engine answers; a client alone is not enough.
    match cmd!(sh, "docker info")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
    {
        Ok(()) => Ok(()),
        Err(_) => bail!(
            "cluster mode needs a running Docker engine for kind, and `docker info` reached none; start Docker (or check DOCKER_HOST), or run `cargo xtask e2e --local`"
        ),
    }
}

//! `cargo xtask test`: the one test command, locally and in CI.

use std::time::Instant;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::interrupt::{Interrupt, Output};
use crate::runner::nested_cargo;
use crate::{flags, tools};

impl flags::Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let start = Instant::now();
        let step = |name: &str| eprintln!("[{:>7.1}s] {name}", start.elapsed().as_secs_f64());
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        // Compiling shows cargo's progress; only the tests' own output is kept short.
        let cargo = |cmd| interrupt.run(nested_cargo(cmd), Output::Terminal);

        step("format");
        cargo(cmd!(sh, "cargo fmt --all -- --check"))
            .context("formatting differs: run `cargo fmt --all`")?;

        step("clippy");
        cargo(cmd!(
            sh,
            "cargo clippy --workspace --all-targets -- -D warnings"
        ))
        .context("clippy")?;

        step("envoy");
        let envoy = tools::envoy(sh).context("provision envoy")?;
        let _env = sh.push_env("ENVOY_BIN", &envoy);

        step("build tests");
        cargo(cmd!(sh, "cargo test --workspace --no-run")).context("build the tests")?;
        step("tests");
        cargo(cmd!(sh, "cargo test --workspace --quiet")).context("tests")?;

        step("local e2e");
        let flags::Command::E2e(local) =
            <flags::Xtask as clap::Parser>::parse_from(["cargo xtask", "e2e", "--local"]).command
        else {
            unreachable!("parsed as the e2e command")
        };
        local.run_with(sh, &interrupt)?;

        step("local upgrade walk");
        let flags::Command::E2e(walk) = <flags::Xtask as clap::Parser>::parse_from([
            "cargo xtask",
            "e2e",
            "--local",
            "--istio-upgrade",
            "1.27.7..1.31.1",
        ])
        .command
        else {
            unreachable!("parsed as the e2e command")
        };
        walk.run_with(sh, &interrupt)?;
        Ok(())
    }
}

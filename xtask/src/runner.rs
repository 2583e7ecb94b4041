//! The `mirror-e2e` binary: built once per command with cargo's own progress visible, then
//! run directly, so xtask's child is the suite itself (Ctrl-C reaches it, xtask waits for it).
//!
//! `cargo xtask` runs under `cargo run`, which sets `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and
//! friends for xtask. A nested cargo that inherits them hands them to build scripts, whose
//! fingerprints then differ from a plain `cargo build` (ring's build script reruns on
//! `CARGO_MANIFEST_DIR`), so every switch between `cargo xtask` and plain cargo rebuilt for
//! a minute. The nested build gets the environment the user's shell had.

use std::path::PathBuf;

use anyhow::Context;
use xshell::{Cmd, Shell, cmd};

use crate::interrupt::{Failed, Interrupt, Output};
use crate::paths;

/// Variables `cargo run` sets for the program it runs (cargo's "Environment variables Cargo
/// sets for crates"); the user's own cargo settings (`CARGO_HOME`, `CARGO_TARGET_DIR`,
/// `CARGO_TERM_*`, ...) are not among them and pass through.
const SET_BY_CARGO_RUN: &[&str] = &[
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR",
];

/// Whether `name` is a variable `cargo run` set for xtask, which a nested cargo must not see.
pub fn set_by_cargo_run(name: &str) -> bool {
    SET_BY_CARGO_RUN.contains(&name) || name.starts_with("CARGO_PKG_")
}

/// A nested cargo command without what `cargo run` set for xtask.
pub fn nested_cargo(mut cmd: Cmd<'_>) -> Cmd<'_> {
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str().filter(|n| set_by_cargo_run(n)) {
            cmd = cmd.env_remove(name);
        }
    }
    cmd
}

/// Where `mirror-e2e` finds xtask's pid, to end itself when xtask dies (the contract's
/// name, which the runner reads).
pub const PARENT_PID_ENV: &str = mirror_e2e_contract::env::PARENT_PID;

/// The built suite binary.
pub struct Runner {
    pub bin: PathBuf,
    pub interrupt: Interrupt,
    /// The terminal for users; relayed in tests, so the harness captures it.
    pub output: Output,
}

impl Runner {
    /// Builds `mirror-e2e` (cargo shows its progress on a terminal) and returns it.
    pub fn build(sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<Runner> {
        interrupt
            .run(
                nested_cargo(cmd!(sh, "cargo build --package e2e --bin mirror-e2e")),
                Output::Terminal,
            )
            .context("build mirror-e2e")?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| paths::project_root().join("target"), PathBuf::from);
        let bin = target
            .join("debug")
            .join(format!("mirror-e2e{}", std::env::consts::EXE_SUFFIX));
        Ok(Runner {
            bin,
            interrupt: interrupt.clone(),
            output: Output::Terminal,
        })
    }

    /// Runs `mirror-e2e <args...>` on this terminal until it ends (or Ctrl-C ends it). A
    /// failure is [`Reported`]: the suite has said why itself. The suite gets xtask's pid in
    /// [`PARENT_PID_ENV`] and ends itself when xtask dies, even by `kill -9`.
    pub fn run(&self, sh: &Shell, args: &[String]) -> anyhow::Result<()> {
        let bin = &self.bin;
        self.finish(cmd!(sh, "{bin} {args...}"))
    }

    /// The runner inside a kwok cluster's namespaces, where its API server is reachable
    /// (`nsenter_args`: the kwok cluster's `Holder::nsenter_args`, which the caller holds).
    pub fn inside(&self, nsenter_args: &[String]) -> InNamespaces<'_> {
        InNamespaces {
            runner: self,
            nsenter_args: nsenter_args.to_vec(),
        }
    }

    fn finish(&self, cmd: Cmd<'_>) -> anyhow::Result<()> {
        let pid = std::process::id().to_string();
        self.interrupt
            .run(cmd.env(PARENT_PID_ENV, pid).quiet(), self.output.clone())
            .map_err(|e| match e.downcast::<Failed>() {
                Ok(failed) => Reported {
                    code: failed.status.code().unwrap_or(1),
                }
                .into(),
                Err(e) => e,
            })
    }
}

/// The suite binary, run through `nsenter` in a cluster's namespaces.
pub struct InNamespaces<'a> {
    runner: &'a Runner,
    nsenter_args: Vec<String>,
}

impl InNamespaces<'_> {
    /// Like [`Runner::run`], inside the namespaces.
    pub fn run(&self, sh: &Shell, args: &[String]) -> anyhow::Result<()> {
        let bin = &self.runner.bin;
        let enter = &self.nsenter_args;
        self.runner
            .finish(cmd!(sh, "nsenter {enter...} {bin} {args...}"))
    }
}

/// `mirror-e2e` failed and has printed why (its report, or its `error:` line): xtask adds
/// nothing but its own context, and exits with the same code.
#[derive(Debug)]
pub struct Reported {
    /// The suite's exit code.
    pub code: i32,
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mirror-e2e failed (exit {}; its output above says why)",
            self.code
        )
    }
}

impl std::error::Error for Reported {}

impl Reported {
    /// What to print for an error whose root is `Reported`: the contexts above it, if any.
    pub fn contexts(e: &anyhow::Error) -> Option<(String, i32)> {
        let reported = e.chain().find_map(|c| c.downcast_ref::<Reported>())?;
        let contexts = crate::failure::render(e.chain().take_while(|c| !c.is::<Reported>()));
        Some((contexts, reported.code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_cargo_run_sets_is_removed() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION",
            "CARGO",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }
}

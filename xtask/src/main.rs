//! xtask: the project's automation, run as `cargo xtask <command>`.
//!
//! It provisions what the suite needs (Envoy, later kind and Istio) and runs the `e2e`
//! crate's `mirror-e2e` binary; it holds no test logic itself. External programs run only
//! through xshell's `cmd!`. See ARCHITECTURE.md for the map.

// Every function stays under clippy's default 100 lines (issue 25).
#![warn(clippy::too_many_lines)]

mod analyze;
mod bench;
mod browser;
mod cluster;
mod doc_links;
mod download;
mod e2e;
mod failure;
mod flags;
mod interrupt;
mod lint;
mod parity;
mod paths;
mod poll;
mod progress;
mod provision;
mod runner;
mod test;
mod test_control_plane;
mod tools;
mod usage;
mod versions;
#[cfg(test)]
mod workflow_check;

use std::process::ExitCode;

use mirror_e2e_contract::exit::{CHECK_FAILED, ENVIRONMENT, INTERRUPTED, USAGE};
use xshell::Shell;

fn main() -> ExitCode {
    let flags = flags::parse();
    // A failure of xtask's own in `e2e` is the environment's (Docker, a download, kind,
    // istioctl); in the project's other commands it is plain failure.
    let own_failure = match flags.command {
        flags::Command::E2e(_) => ENVIRONMENT,
        _ => CHECK_FAILED,
    };
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e, own_failure);
            match runner::Reported::contexts(&e) {
                _ if code == INTERRUPTED => eprintln!(
                    "interrupted: stopped, and cleaned up what this run created (unless --keep)"
                ),
                // The suite said why already; only xtask's own context is news.
                Some((contexts, _)) if !contexts.is_empty() => eprintln!("error: {contexts}"),
                Some(_) => {}
                // One line of context chain; a backtrace helps nobody reading a failed command.
                // (The run's own error first, then what its cleanup added.)
                None => eprintln!("error: {}", failure::render(e.chain())),
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code of a failed command (`flags::EXIT_CODES`): interrupted 130, a usage error
/// 2, the suite's own code when the suite failed (1 for a failed check, 3 for its
/// environment), and `own_failure` for a failure of xtask's own.
fn exit_code(e: &anyhow::Error, own_failure: u8) -> u8 {
    if interrupt::is_interrupted(e) {
        return INTERRUPTED;
    }
    if e.chain().any(|c| c.is::<flags::Usage>()) {
        return USAGE;
    }
    match runner::Reported::contexts(e) {
        Some((_, code)) => u8::try_from(code).unwrap_or(CHECK_FAILED),
        None => own_failure,
    }
}

fn run(flags: flags::Xtask) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(paths::project_root());
    match flags.command {
        flags::Command::Test(cmd) => cmd.run(&sh),
        flags::Command::Lint(cmd) => cmd.run(&sh),
        flags::Command::E2e(cmd) => cmd.run(&sh),
        flags::Command::Tools(cmd) => cmd.run(&sh),
        flags::Command::Bench(cmd) => cmd.run(&sh),
        flags::Command::TestControlPlane(cmd) => cmd.run(&sh),
        flags::Command::Kwok(cmd) => cmd.run(&sh),
        flags::Command::Parity(cmd) => cmd.run(&sh),
        flags::Command::Analyze(cmd) => cmd.run(&sh),
        flags::Command::Versions(cmd) => {
            versions::run(&sh, cmd.check_latest, cluster::kwok::version_label)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_of_the_table_comes_from_its_failure() {
        use anyhow::Context as _;
        let suite = |code| {
            anyhow::Error::new(runner::Reported { code }).context("hop 1 of 2, 1.30.5 -> 1.31.1")
        };
        let usage = flags::E2e::parse(&["--local", "--reuse", "x"])
            .validate()
            .expect_err("usage");
        let version = versions::istio_release(Some("1.20.0")).expect_err("usage");
        let docker = Err::<(), _>(anyhow::anyhow!("no answer"))
            .context("docker is not running")
            .expect_err("environment");
        let interrupted = anyhow::Error::new(interrupt::Interrupted).context("kind create");
        for (e, code) in [
            (suite(1), 1),
            (suite(3), 3),
            (usage, 2),
            (version, 2),
            (docker, ENVIRONMENT),
            (interrupted, INTERRUPTED),
        ] {
            assert_eq!(exit_code(&e, ENVIRONMENT), code, "{e:#}");
        }
        // The table in --help has a row for each.
        for code in [0, 1, 2, 3, 130] {
            assert!(
                flags::EXIT_CODES.contains(&format!("\n  {code:<4} ")),
                "{code}"
            );
        }
    }
}

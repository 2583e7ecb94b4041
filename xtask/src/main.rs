//! xtask: the project's automation, run as `cargo xtask <command>`.
//!
//! It provisions what the suite needs (Envoy, later kind and Istio) and runs the `e2e`
//! crate's `mirror-e2e` binary; it holds no test logic itself. External programs run only
//! through xshell's `cmd!`. See ARCHITECTURE.md for the map.

mod bench;
mod browser;
mod cluster;
mod download;
mod e2e;
mod flags;
mod interrupt;
mod lint;
mod paths;
mod poll;
mod progress;
mod runner;
mod test;
mod test_control_plane;
mod tools;
mod versions;
#[cfg(test)]
mod workflow_check;

use std::process::ExitCode;

use clap::Parser;
use xshell::Shell;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if interrupt::is_interrupted(&e) => {
            eprintln!("interrupted: stopped, and cleaned up what this run created (unless --keep)");
            ExitCode::from(130)
        }
        Err(e) => match runner::Reported::contexts(&e) {
            // The suite said why already; only xtask's own context is news.
            Some((contexts, code)) => {
                if !contexts.is_empty() {
                    eprintln!("error: {contexts}");
                }
                ExitCode::from(u8::try_from(code).unwrap_or(1))
            }
            None => {
                // One line of context chain; a backtrace helps nobody reading a failed command.
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
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
        flags::Command::Versions(cmd) => cmd.run(&sh),
    }
}

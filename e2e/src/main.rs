//! `mirror-e2e`: the suite's command line. Users reach it through `cargo xtask`, which
//! provisions what it needs (Envoy, a cluster) and passes the paths in. The command line
//! itself is the contract's (`mirror_e2e_contract::args`, which xtask builds); each
//! subcommand's work is a module of `cli`.

// Every function stays under clippy's default 100 lines (issue 25).
#![warn(clippy::too_many_lines)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use mirror_e2e_contract::args::{RunnerCli, RunnerCommand};
use mirror_e2e_contract::{env, exit};

fn main() -> ExitCode {
    let runner = RunnerCli::parse();
    if let Some(parent) = std::env::var(env::PARENT_PID)
        .ok()
        .and_then(|p| p.parse().ok())
        && let Err(e) = e2e::parent::end_with_parent(parent)
    {
        // As after Ctrl-C: whoever started the run is gone, so nothing of it is wanted.
        eprintln!("interrupted: {e}");
        return ExitCode::from(exit::INTERRUPTED);
    }
    match runner.command {
        RunnerCommand::Lint(args) => cli::lint::lint(&args),
        RunnerCommand::Local(args) => cli::suite::local(*args),
        RunnerCommand::Cluster(args) => cli::suite::cluster(*args),
        RunnerCommand::Compare(args) => cli::compare::compare(&args),
        RunnerCommand::NodesReady(args) => cli::provision::nodes_ready(args),
        RunnerCommand::Install(args) => cli::provision::install(args),
        RunnerCommand::Parity(args) => cli::parity::parity(&args),
        RunnerCommand::Node(args) => cli::node::node(*args),
        RunnerCommand::ProxiesSynced(args) => cli::node::proxies_synced(&args),
        RunnerCommand::ParityTable(args) => {
            cli::parity::parity_table(&args.results, args.out.as_deref())
        }
        RunnerCommand::NoIstiod(target) => cli::provision::no_istiod(target),
    }
}

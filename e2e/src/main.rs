//! `mirror-e2e`: the suite's command line. Users reach it through `cargo xtask`, which
//! provisions what it needs (Envoy, a cluster) and passes the paths in.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::lint::{Severity, lint_paths};
use e2e::local::LocalOptions;
use e2e::run::{new_run_id, run_local};
use e2e::suite::{self, Spec, harness_arguments};
use e2e::version::{DEFAULT_ISTIO, IstioVersion};
use e2e::wait::{PATIENCE_ENV, parse_patience};

/// Proves Istio traffic mirroring works: offline analysis and the mirroring suite.
#[derive(Parser)]
#[command(name = "mirror-e2e", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze manifests offline; exit 1 when any error is found.
    Lint {
        /// Files or directories of YAML manifests.
        #[arg(default_value = "manifests")]
        paths: Vec<PathBuf>,
    },
    /// Run the suite on a real Envoy configured from the manifests (no Docker).
    Local(LocalArgs),
}

#[derive(Args)]
struct LocalArgs {
    /// Manifests directory holding the routing under test.
    #[arg(long, default_value = "manifests")]
    manifests: PathBuf,
    /// Istio version whose sidecar behaviour to emulate.
    #[arg(long, default_value = DEFAULT_ISTIO, value_parser = parse_version)]
    istio: IstioVersion,
    /// Envoy binary.
    #[arg(long, env = ENVOY_BIN_ENV)]
    envoy: Option<PathBuf>,
    /// Where runs keep their evidence; each run gets `<dir>/<run-id>/`.
    #[arg(long, env = "MIRROR_E2E_ARTIFACTS_ROOT", default_value = "target/e2e")]
    artifacts_root: PathBuf,
    /// Keep the run's artifacts even when every check passes.
    #[arg(long)]
    keep: bool,
    /// Seconds every wait and retry may take.
    #[arg(long, env = PATIENCE_ENV, default_value = "30", value_parser = parse_patience)]
    patience: Duration,
    /// Arguments for the test harness (filters, --list, --exact, ...), after `--`.
    #[arg(last = true)]
    harness: Vec<String>,
}

fn parse_version(text: &str) -> Result<IstioVersion, String> {
    text.parse()
        .map_err(|e: e2e::version::VersionError| e.to_string())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Lint { paths } => lint(&paths),
        Command::Local(args) => local(args),
    }
}

fn lint(paths: &[PathBuf]) -> ExitCode {
    match lint_paths(paths) {
        Ok(findings) => {
            for f in &findings {
                println!("{f}");
            }
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = findings.len() - errors;
            eprintln!("lint: {errors} errors, {warnings} warnings");
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn local(args: LocalArgs) -> ExitCode {
    let harness = harness_arguments(&args.harness);
    if harness.list {
        return libtest_mimic::run(&harness, suite::listing()).exit_code();
    }
    let Some(envoy) = args.envoy else {
        eprintln!("error: --envoy: no Envoy binary given: {HOW_TO_GET_ENVOY}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let run_id = new_run_id();
    let artifacts = args.artifacts_root.join(&run_id);
    let spec = Spec::default();
    let opts = LocalOptions {
        manifests: args.manifests,
        istio: args.istio,
        envoy,
        artifacts: artifacts.clone(),
        patience: args.patience,
        mirror_host: "mirror".into(),
        host: spec.host.clone(),
    };
    // Ctrl-C: Envoy dies with us (PR_SET_PDEATHSIG) and the workloads live in this process;
    // what is left is to say where the evidence is and exit non-zero.
    let interrupted_artifacts = artifacts.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: partial evidence kept in {}",
                interrupted_artifacts.display()
            );
            std::process::exit(130);
        }
    });
    match run_local(&runtime, &opts, spec, &run_id, &harness) {
        Ok(outcome) => {
            if outcome.report.passed() && !args.keep {
                let _ = std::fs::remove_dir_all(&outcome.artifacts);
                println!("\nartifacts: removed (all checks passed; --keep keeps them)");
            } else {
                println!("\nartifacts: {}", outcome.artifacts.display());
            }
            print!("\n{}", outcome.report.summary());
            outcome.conclusion.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            if artifacts.exists() {
                eprintln!("artifacts: {}", artifacts.display());
            }
            ExitCode::FAILURE
        }
    }
}

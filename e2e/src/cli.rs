//! What every `mirror-e2e` subcommand shares: a client for the cluster, the async
//! runtime, the stop signal, and the usage error of a value the contract carries as text
//! (an Istio version, a `--workload`), reported as clap reports its own.

pub(crate) mod compare;
pub(crate) mod lint;
pub(crate) mod node;
pub(crate) mod parity;
pub(crate) mod provision;
pub(crate) mod suite;

use std::path::PathBuf;

use clap::CommandFactory;
use e2e::version::{DEFAULT_ISTIO, IstioVersion};
use e2e::workload::WorkloadCommand;
use mirror_e2e_contract::args::RunnerCli;

/// Exits as clap does on a value it refuses (exit 2, usage shown): `flag` given `value`.
fn refuse(flag: &str, value: &str, why: impl std::fmt::Display) -> ! {
    RunnerCli::command()
        .error(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid value '{value}' for '{flag}': {why}"),
        )
        .exit()
}

/// `--istio`, or the newest pinned release when none is given.
pub(crate) fn istio_version(text: Option<&str>) -> IstioVersion {
    let text = text.unwrap_or(DEFAULT_ISTIO);
    text.parse()
        .unwrap_or_else(|e: e2e::version::VersionError| refuse("--istio <ISTIO>", text, e))
}

/// Each `--workload NAME=COMMAND`, run in `dir` (default: here).
pub(crate) fn workloads(texts: &[String], dir: Option<&PathBuf>) -> Vec<WorkloadCommand> {
    texts
        .iter()
        .map(|text| {
            let mut w: WorkloadCommand = text
                .parse()
                .unwrap_or_else(|e| refuse("--workload <NAME=COMMAND>", text, e));
            w.dir = Some(dir.cloned().unwrap_or_else(|| PathBuf::from(".")));
            w
        })
        .collect()
}

/// A client for the kubeconfig and context given, or the defaults; nothing is written to
/// any kubeconfig.
pub(crate) async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            // kube's own message quotes the path twice ('"/x"'); say it once.
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                let why = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), ToString::to_string);
                format!("cannot read kubeconfig {}: {why}", path.display())
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            None
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which is how xtask ends its child when Ctrl-C
/// reaches xtask alone.
pub(crate) async fn stop_requested() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            int = tokio::signal::ctrl_c() => int.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// A path as the user can open it from wherever they stand.
pub(crate) fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

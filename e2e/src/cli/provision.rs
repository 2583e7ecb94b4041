//! What a provider asks of the runner around a run: `install` (a provisioned cluster's
//! CRDs and objects), `no-istiod` (before installing Istio on someone's cluster) and
//! `nodes-ready`.

use std::process::ExitCode;
use std::time::Duration;

use e2e::exit::Exit;
use mirror_e2e_contract::args::{InstallArgs, KubeTarget, NodesReadyArgs};

use super::{client, runtime};

/// How long a provider's waits take unless told (`--patience`, `MIRROR_E2E_PATIENCE`).
const PATIENCE: Duration = Duration::from_secs(300);

pub(crate) fn install(args: InstallArgs) -> ExitCode {
    let InstallArgs {
        target: KubeTarget {
            kubeconfig,
            context,
        },
        namespace,
        patience,
        only_kinds,
        files,
    } = args;
    let (kubeconfig, namespace, patience) = (
        kubeconfig.as_deref(),
        namespace.as_str(),
        patience.unwrap_or(PATIENCE),
    );
    let mut set = match e2e::manifest::ManifestSet::load(&files) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !only_kinds.is_empty() {
        set.documents
            .retain(|d| only_kinds.iter().any(|k| k.as_str() == d.kind()));
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let started = std::time::Instant::now();
    let installed = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::install::install(&client, &set, namespace, patience)
            .await
            .map_err(|e| e.to_string())
    });
    match installed {
        Ok(done) => {
            eprintln!(
                "installed {} ({} established) in {:.1?}",
                e2e::report::plural(done.objects, "object", "objects"),
                e2e::report::plural(done.crds, "CRD", "CRDs"),
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

pub(crate) fn no_istiod(target: KubeTarget) -> ExitCode {
    let KubeTarget {
        kubeconfig,
        context,
    } = target;
    let kubeconfig = kubeconfig.as_deref();
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let checked = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::refuse_install_over_istio(&client)
            .await
            .map_err(|e| e.to_string())
    });
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

pub(crate) fn nodes_ready(args: NodesReadyArgs) -> ExitCode {
    let NodesReadyArgs {
        target: KubeTarget {
            kubeconfig,
            context,
        },
        patience,
    } = args;
    let (kubeconfig, patience) = (kubeconfig.as_deref(), patience.unwrap_or(PATIENCE));
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let waited = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::ready::nodes_ready(&client, patience)
            .await
            .map_err(|e| e.to_string())
    });
    match waited {
        Ok(took) => {
            eprintln!("every node is Ready (waited {took:.1?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

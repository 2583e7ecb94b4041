//! A kwok node's data plane: `cluster --node` starts it for a run, `mirror-e2e node` plays
//! it apart from the runs, `proxies-synced` waits for its proxies after istiod is replaced.

use std::process::ExitCode;
use std::time::Duration;

use e2e::cluster::node_agent::{NodeAgent, NodeOptions};
use e2e::exit::Exit;
use e2e::version::IstioVersion;
use mirror_e2e_contract::args::{DataPlaneArgs, NodeArgs, ProxiesSyncedArgs};

use super::{client, istio_version, runtime, stop_requested, workloads};
use e2e::workload::ProcessGroups;

/// Where a node's data plane serves: the run's namespace, its ingress, its patience.
pub(crate) struct NodeSite<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) ingress: &'a str,
    pub(crate) patience: Duration,
    /// The run's registry of user workloads' process groups (its Ctrl-C handler's).
    pub(crate) process_groups: &'a ProcessGroups,
}

/// `--node`: the node's data plane, for the site's namespace, its ingress where the site
/// says, its files in `dir`; `None` without `--node`.
pub(crate) fn start_node_agent(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    site: &NodeSite<'_>,
    args: &DataPlaneArgs,
    istio: IstioVersion,
    dir: &std::path::Path,
) -> Result<Option<NodeAgent>, String> {
    let (Some(node), Some(envoy)) = (&args.node, &args.envoy) else {
        return Ok(None);
    };
    let ingress = site.ingress;
    let addr: std::net::SocketAddr = ingress
        .strip_prefix("http://")
        .unwrap_or(ingress)
        .trim_end_matches('/')
        .parse()
        .map_err(|e| {
            format!(
                "--ingress {ingress}: --node listens there, so it must be http://ADDRESS:PORT ({e})"
            )
        })?;
    runtime
        .block_on(NodeAgent::start(
            client.clone(),
            NodeOptions {
                node: node.clone(),
                namespace: site.namespace.to_owned(),
                envoy: envoy.clone(),
                dir: dir.to_owned(),
                pod_logs: args
                    .node_logs
                    .clone()
                    .unwrap_or_else(|| dir.join("containers")),
                ingress: addr,
                istio,
                patience: site.patience,
                istiod: args
                    .istiod_xds
                    .zip(args.istiod_debug)
                    .map(|(xds, debug)| e2e::cluster::node_agent::ads::Istiod { xds, debug }),
                workloads: workloads(&args.workloads, args.workload_dir.as_ref()),
                process_groups: site.process_groups.clone(),
            },
        ))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `mirror-e2e node`: starts the data plane, says so in `<dir>/ready`, and keeps it until
/// SIGTERM or Ctrl-C; then stops it (saving each proxy's configuration dump).
/// How long the data plane may take to start unless told.
const PATIENCE: Duration = Duration::from_secs(300);

pub(crate) fn node(args: NodeArgs) -> ExitCode {
    let istio = istio_version(args.istio.as_deref());
    // Before connecting: a usage error needs no cluster.
    if args.data_plane.node.is_none() || args.data_plane.envoy.is_none() {
        eprintln!("error: mirror-e2e node needs --node NODE and --envoy (or ENVOY_BIN)");
        return Exit::Usage.into();
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let client = match runtime.block_on(client(
        args.target.kubeconfig.as_deref(),
        args.target.context.clone(),
    )) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: connect to the cluster: {e}");
            return Exit::Environment.into();
        }
    };
    // SIGTERM or Ctrl-C stops the agent, which ends its workloads: no handler kills them.
    let process_groups = ProcessGroups::default();
    let site = NodeSite {
        namespace: &args.namespace,
        ingress: &args.ingress,
        patience: args.patience.unwrap_or(PATIENCE),
        process_groups: &process_groups,
    };
    let agent = match start_node_agent(&runtime, &client, &site, &args.data_plane, istio, &args.dir)
    {
        Ok(Some(agent)) => agent,
        // Checked above.
        Ok(None) => return Exit::Usage.into(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = args.dir.join("ready");
    if let Err(e) = std::fs::write(&ready, format!("{}\n", std::process::id())) {
        eprintln!("error: write {}: {e}", ready.display());
        let _ = runtime.block_on(agent.shutdown());
        return Exit::Environment.into();
    }
    eprintln!("node data plane started; SIGTERM or Ctrl-C stops it");
    runtime.block_on(stop_requested());
    eprintln!("stopping the node's data plane");
    match runtime.block_on(agent.shutdown()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mirror-e2e proxies-synced`: the wait after istiod is replaced.
pub(crate) fn proxies_synced(args: &ProxiesSyncedArgs) -> ExitCode {
    let istiod = e2e::cluster::node_agent::ads::Istiod {
        xds: args.istiod_xds,
        debug: args.istiod_debug,
    };
    let (node_dir, patience) = (&args.node_dir, args.patience.unwrap_or(PATIENCE));
    let list = node_dir.join(e2e::cluster::node_agent::PROXY_LIST);
    let proxies: Vec<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(e) => {
            eprintln!(
                "error: read {}: {e} (is `mirror-e2e node --dir {}` running?)",
                list.display(),
                node_dir.display()
            );
            return Exit::Environment.into();
        }
    };
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let started = std::time::Instant::now();
    match runtime.block_on(e2e::cluster::node_agent::ads::await_synced(
        &istiod, &proxies, patience,
    )) {
        Ok(()) => {
            eprintln!(
                "{} {} connected to istiod ({}) and ACKed its configuration in {:.1?}",
                proxies.len(),
                if proxies.len() == 1 {
                    "proxy"
                } else {
                    "proxies"
                },
                istiod.xds,
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

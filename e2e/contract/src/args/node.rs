//! The arguments of a kwok node's data plane: played by `cluster --node` within a run, or
//! by `node` apart from the runs (an upgrade walk), and awaited by `proxies-synced`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::KubeTarget;
use super::argv::Argv;
use crate::env;
use crate::patience::{parse_seconds, seconds_arg};

/// A kwok node's data plane: for `cluster --node` and for `node`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlaneArgs {
    /// Play the data plane of this kwok node: a process for each of its Running pods on the
    /// pod's address, and one Envoy for the proxies (its ingress listening where --ingress
    /// says), configured from the API. For a cluster whose nodes run no containers.
    #[arg(long, value_name = "NODE", requires = "envoy")]
    pub node: Option<String>,
    /// The Envoy binary of --node's data plane (unused without --node: ENVOY_BIN may be set
    /// for other reasons).
    #[arg(long, env = env::ENVOY_BIN)]
    pub envoy: Option<PathBuf>,
    /// Where --node keeps its pods' container logs (default: the run's artifacts); a
    /// reused cluster's pods keep theirs across runs.
    #[arg(long, value_name = "DIR", requires = "node")]
    pub node_logs: Option<PathBuf>,
    /// With --node: run COMMAND for each pod of the Deployment NAME in place of its built-in
    /// stand-in (repeatable). It must listen on `{address}:{port}` (POD_IP and PORT: the
    /// pod's own address and containerPort); HTTP_PROXY is its sidecar; its output is the
    /// pod's log.
    #[arg(long = "workload", value_name = "NAME=COMMAND", requires = "node")]
    pub workloads: Vec<String>,
    /// With --node: the node's proxies take their whole configuration over ADS from the
    /// real istiod at this plaintext xDS address (else the project's translation).
    #[arg(
        long,
        value_name = "ADDRESS",
        requires = "node",
        requires = "istiod_debug"
    )]
    pub istiod_xds: Option<SocketAddr>,
    /// istiod's HTTP debug address (`/debug/syncz`), with --istiod-xds.
    #[arg(long, value_name = "ADDRESS", requires = "istiod_xds")]
    pub istiod_debug: Option<SocketAddr>,
    /// Where `--workload` commands run (default: here).
    #[arg(long, value_name = "DIR")]
    pub workload_dir: Option<PathBuf>,
}

impl DataPlaneArgs {
    pub(super) fn extend(&self, a: &mut Argv) {
        a.opt("--node", self.node.as_ref());
        a.opt_path("--envoy", self.envoy.as_ref());
        a.opt_path("--node-logs", self.node_logs.as_ref());
        for w in &self.workloads {
            a.value("--workload", w);
        }
        a.opt("--istiod-xds", self.istiod_xds);
        a.opt("--istiod-debug", self.istiod_debug);
        a.opt_path("--workload-dir", self.workload_dir.as_ref());
    }
}

/// `mirror-e2e node`: a kwok node's data plane on its own.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct NodeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: KubeTarget,
    /// The namespace whose pods and routing the data plane serves.
    #[arg(long, default_value = "test")]
    pub namespace: String,
    /// Base URL of the ingress gateway (the data plane listens there).
    #[arg(long, default_value = "http://127.0.0.1:30080")]
    pub ingress: String,
    /// The Istio version the proxies say they run (their istio-agent's, in a pod; default:
    /// the newest pinned).
    #[arg(long)]
    pub istio: Option<String>,
    /// Where the data plane keeps its files: Envoy's configuration and logs, `proxies`,
    /// and `ready` once it has started.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Seconds Envoy and the pods' programs may take to start (default 300).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data_plane: DataPlaneArgs,
}

impl NodeArgs {
    pub(super) fn argv(&self) -> Argv {
        let mut a = self.target.argv();
        a.value("--namespace", &self.namespace);
        a.value("--ingress", &self.ingress);
        a.opt("--istio", self.istio.as_ref());
        a.path("--dir", &self.dir);
        a.opt("--patience", self.patience.map(seconds_arg));
        self.data_plane.extend(&mut a);
        a
    }
}

/// `mirror-e2e proxies-synced`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ProxiesSyncedArgs {
    /// istiod's HTTP debug address.
    #[arg(long, value_name = "ADDRESS")]
    pub istiod_debug: SocketAddr,
    /// istiod's plaintext xDS address (named in messages).
    #[arg(long, value_name = "ADDRESS")]
    pub istiod_xds: SocketAddr,
    /// The data plane's directory (`mirror-e2e node --dir`).
    #[arg(long, value_name = "DIR")]
    pub node_dir: PathBuf,
    /// Seconds to wait (default 300).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
}

impl ProxiesSyncedArgs {
    pub(super) fn argv(&self) -> Argv {
        let mut a = Argv::default();
        a.value("--istiod-debug", self.istiod_debug);
        a.value("--istiod-xds", self.istiod_xds);
        a.path("--node-dir", &self.node_dir);
        a.opt("--patience", self.patience.map(seconds_arg));
        a
    }
}

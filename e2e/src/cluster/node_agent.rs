//! The data plane of a kwok node: what a kubelet's containers and Istio's proxies do on a
//! real node, for the pods kwok plays.
//!
//! kwok gives each pod its status (Running, Ready, an address from the pod range); this
//! agent gives it a process: the pod's stand-in (`backend::Behaviour::of` its containers'
//! images) listening on the pod's own address and container port, inside the cluster's
//! network namespace, where the whole pod range is local. Each process's output is a
//! container log in the CRI format, and a kwok `Logs` object (owned by the pod, so the
//! real garbage collector removes it) points kwok's kubelet endpoint at it: `pods/log`
//! through the API server reads what the process wrote.
//!
//! One Envoy stands for the proxies (the ingress gateway's listener on the address the
//! suite is given, productpage's sidecar on loopback), configured from the API as istiod
//! would: routes translated from the namespace's VirtualServices, DestinationRules and
//! Gateways (`envoy::config`, local mode's translation), clusters whose endpoints are the
//! ready addresses the real EndpointSlices list. Every change the API shows is rewritten
//! into the files Envoy watches. Nothing is translated away: Envoy sends to the pods'
//! addresses.
//!
//! With the real istiod (`NodeOptions::istiod`) the translation is not used: the proxies
//! are Envoys configured by istiod over ADS (`ads.rs`), the ingress gateway from the start,
//! productpage's sidecar with its pod (its process starts once the sidecar's listener is
//! there, as with `holdApplicationUntilProxyStarts`).

pub mod ads;
mod pods;
mod reconcile;
mod xds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use serde_json::Value;

use crate::bookinfo::Sidecar;
use crate::envoy::config::{self, BootstrapPaths};
use crate::envoy::process::{Envoy, EnvoyError};
use crate::envoy::translation::Translation;
use crate::topology::Topology;
use crate::version::IstioVersion;
use crate::workload::{ProcessGroups, WorkloadCommand};
use pods::RunningPod;

/// Errors starting a node's data plane.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    /// A file of the data plane could not be written.
    #[error("node {node}: cannot write {path}: {source}")]
    Write {
        /// The node.
        node: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The proxies' initial configuration could not be made.
    #[error("node {node}: {source}")]
    Translate {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: config::TranslateError,
    },
    /// Envoy could not start.
    #[error("node {node}: {source}")]
    Envoy {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: EnvoyError,
    },
    /// A proxy configured by istiod failed, or rejected what istiod sent.
    #[error("node {node}: {source}")]
    Ads {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: Box<ads::AdsError>,
    },
    /// productpage's sidecar client could not be set up.
    #[error("node {node}: productpage's sidecar: {message}")]
    Sidecar {
        /// The node.
        node: String,
        /// Why.
        message: String,
    },
}

/// What the node's data plane needs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node whose pods get processes (`spec.nodeName`).
    pub node: String,
    /// The namespace whose pods and routing the data plane serves (the run's).
    pub namespace: String,
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// Where the data plane keeps the run's files: xDS, Envoy's log and configuration.
    pub dir: PathBuf,
    /// Where the pods' container logs are (the node's, kept across runs on a reused
    /// cluster, as a kubelet's are: a pod's log is appended to, never replaced).
    pub pod_logs: PathBuf,
    /// Where the ingress gateway listens (the address the suite sends to).
    pub ingress: SocketAddr,
    /// The Istio whose translation the proxies get.
    pub istio: IstioVersion,
    /// Patience for Envoy and a user's program to get ready.
    pub patience: Duration,
    /// User programs in place of the built-in stand-ins, by Deployment (`--workload`).
    pub workloads: Vec<WorkloadCommand>,
    /// Where the user workloads' process groups are registered, for the Ctrl-C handler.
    pub process_groups: ProcessGroups,
    /// The real istiod, when it configures the proxies (else the project's translation).
    pub istiod: Option<ads::Istiod>,
}

/// The sidecars istiod configures, by pod uid.
type IstiodProxies = Arc<tokio::sync::Mutex<BTreeMap<String, ads::Proxy>>>;
const GATEWAY: &str = "gateway";
/// The file in the agent's directory listing the node ids of its proxies.
pub const PROXY_LIST: &str = "proxies";

/// The running data plane.
pub struct NodeAgent {
    /// The translation's Envoy (none with the real istiod).
    envoy: Option<Envoy>,
    proxies: IstiodProxies,
    /// The ingress gateway istiod configures, and the wait for its listener.
    gateway: Option<(Arc<ads::Proxy>, tokio::task::JoinHandle<()>)>,
    istiod: Option<ads::Istiod>,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    /// The node, for errors.
    node: String,
}

impl NodeAgent {
    /// Writes an empty configuration, starts Envoy, and follows the API from then on.
    pub async fn start(client: Client, opts: NodeOptions) -> Result<NodeAgent, NodeAgentError> {
        let files = DataPlaneFiles::create(&opts)?;
        let mut state = State {
            client,
            sidecar: Sidecar::default(),
            outbound: SocketAddr::from(([127, 0, 0, 1], 0)),
            pods: BTreeMap::new(),
            written: BTreeMap::new(),
            version: 0,
            files,
            opts: opts.clone(),
            proxies: IstiodProxies::default(),
        };
        if let Some(istiod) = opts.istiod {
            return Self::start_with_istiod(state, istiod).await;
        }
        // Envoy reads its first configuration at start: an empty mesh until the API shows one.
        let empty = Topology {
            namespace: opts.namespace.clone(),
            ..Topology::default()
        };
        let translate = |source| NodeAgentError::Translate {
            node: opts.node.clone(),
            source,
        };
        let first = Translation::of(&empty, &opts.istio)
            .proxy_config(0, |_| Vec::new())
            .map_err(translate)?;
        state.write("clusters.json", config::cds_file(&first.clusters, 0))?;
        state.write("routes.json", first.routes)?;
        state.write("gateway-routes.json", first.gateway_routes)?;
        let bootstrap = config::node_bootstrap(
            &state.files.xds("clusters.json"),
            opts.ingress,
            &BootstrapPaths {
                routes_file: &state.files.xds("routes.json"),
                gateway_routes_file: &state.files.xds("gateway-routes.json"),
                access_log: &opts.dir.join("envoy-access.log"),
            },
        );
        let bootstrap_file = opts.dir.join("envoy-bootstrap.json");
        config::write_json(&bootstrap_file, &bootstrap).map_err(|source| {
            NodeAgentError::Write {
                node: opts.node.clone(),
                path: bootstrap_file.clone(),
                source,
            }
        })?;
        let envoy = Envoy::start(
            &opts.envoy,
            &bootstrap_file,
            &opts.dir.join("envoy.log"),
            opts.patience,
        )
        .await
        .map_err(|source| NodeAgentError::Envoy {
            node: opts.node.clone(),
            source,
        })?;
        let outbound = envoy
            .listener(config::OUTBOUND_LISTENER)
            .map_err(|source| NodeAgentError::Envoy {
                node: opts.node.clone(),
                source,
            })?;
        state.outbound = outbound;
        state
            .sidecar
            .set(outbound)
            .map_err(|message| NodeAgentError::Sidecar {
                node: opts.node.clone(),
                message,
            })?;
        let task = tokio::spawn(state.follow());
        Ok(NodeAgent {
            envoy: Some(envoy),
            proxies: IstiodProxies::default(),
            gateway: None,
            istiod: None,
            task,
            node: opts.node.clone(),
            dir: opts.dir,
        })
    }

    /// The real istiod configures the proxies: the ingress gateway connects now, and says
    /// (in the background) when istiod has given it its Gateway's listener.
    async fn start_with_istiod(
        mut state: State,
        istiod: ads::Istiod,
    ) -> Result<NodeAgent, NodeAgentError> {
        let opts = state.opts.clone();
        let node_err = |source| NodeAgentError::Ads {
            node: opts.node.clone(),
            source: Box::new(source),
        };
        let outbound = SocketAddr::from(([127, 0, 0, 1], 9080));
        state.outbound = outbound;
        state
            .sidecar
            .set(outbound)
            .map_err(|message| NodeAgentError::Sidecar {
                node: opts.node.clone(),
                message,
            })?;
        let started = std::time::Instant::now();
        let gateway = ads::Proxy::start(
            &opts.envoy,
            &opts.dir.join(GATEWAY),
            ads::ProxyIdentity::gateway(&opts.ingress.ip().to_string()),
            &istiod,
            &opts.istio.to_string(),
            opts.patience,
        )
        .await
        .map_err(node_err)?;
        eprintln!(
            "node {}: ingress gateway connected to istiod ({}) in {:.1?}",
            opts.node,
            istiod.xds,
            started.elapsed()
        );
        let gateway = Arc::new(gateway);
        let waiting = {
            let gateway = gateway.clone();
            let node = opts.node.clone();
            let patience = opts.patience;
            tokio::spawn(async move {
                match gateway
                    .await_listener(ads::GATEWAY_LISTENER, &istiod, patience)
                    .await
                {
                    Ok(addr) => eprintln!(
                        "node {node}: istiod configured the ingress gateway ({} on {addr}) {:.1?} after it connected",
                        ads::GATEWAY_LISTENER,
                        started.elapsed()
                    ),
                    Err(e) => eprintln!("node {node}: {e}"),
                }
            })
        };
        let proxies = state.proxies.clone();
        state.write_proxy_list().await;
        let task = tokio::spawn(state.follow());
        Ok(NodeAgent {
            envoy: None,
            proxies,
            gateway: Some((gateway, waiting)),
            istiod: Some(istiod),
            task,
            node: opts.node.clone(),
            dir: opts.dir,
        })
    }

    /// Saves Envoy's configuration dump beside its log, and stops Envoy and the pods'
    /// processes.
    /// With the real istiod, an error if a proxy rejected what istiod sent it.
    pub async fn shutdown(self) -> Result<(), NodeAgentError> {
        self.task.abort();
        if let Some(envoy) = self.envoy {
            let dump = envoy
                .admin_text("/config_dump")
                .await
                .unwrap_or_else(|e| format!("unavailable: {e}"));
            let _ = std::fs::write(self.dir.join("envoy-config-dump.json"), dump);
            envoy.stop().await;
        }
        let mut rejected = Ok(());
        let mut proxies: Vec<Arc<ads::Proxy>> = std::mem::take(&mut *self.proxies.lock().await)
            .into_values()
            .map(Arc::new)
            .collect();
        if let Some((gateway, waiting)) = self.gateway {
            waiting.abort();
            let _ = waiting.await;
            proxies.push(gateway);
        }
        for proxy in proxies {
            let dir = proxy
                .log
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let dump = proxy
                .envoy
                .admin_text("/config_dump")
                .await
                .unwrap_or_else(|e| format!("unavailable: {e}"));
            let _ = std::fs::write(dir.join("envoy-config-dump.json"), dump);
            if let Some(istiod) = &self.istiod
                && rejected.is_ok()
                && let Err(source) = proxy.check_accepted(istiod).await
            {
                rejected = Err(NodeAgentError::Ads {
                    node: self.node.clone(),
                    source: Box::new(source),
                });
            }
            if let Ok(proxy) = Arc::try_unwrap(proxy) {
                proxy.envoy.stop().await;
            }
        }
        rejected
    }
}

/// The data plane's directory.
struct DataPlaneFiles {
    xds: PathBuf,
    logs: PathBuf,
}

impl DataPlaneFiles {
    fn create(opts: &NodeOptions) -> Result<DataPlaneFiles, NodeAgentError> {
        let files = DataPlaneFiles {
            // Envoy watches this directory for files renamed into place.
            xds: opts.dir.join("xds"),
            logs: opts.pod_logs.clone(),
        };
        for dir in [&files.xds, &files.logs] {
            std::fs::create_dir_all(dir).map_err(|source| NodeAgentError::Write {
                node: opts.node.clone(),
                path: dir.clone(),
                source,
            })?;
        }
        Ok(files)
    }

    fn xds(&self, name: &str) -> PathBuf {
        self.xds.join(name)
    }
}

/// What the data plane follows and has done.
struct State {
    client: Client,
    opts: NodeOptions,
    files: DataPlaneFiles,
    sidecar: Sidecar,
    /// productpage's sidecar listener, the HTTP proxy of a user's program.
    outbound: SocketAddr,
    /// By pod uid: a pod deleted and made again under the same name is a new pod.
    pods: BTreeMap<String, RunningPod>,
    /// The xDS files as last written, so an unchanged configuration is not pushed again.
    written: BTreeMap<&'static str, Value>,
    version: u64,
    /// The proxies istiod configures (none with the translation).
    proxies: IstiodProxies,
}

/// What the API shows of the namespace, listed after every change.
struct Snapshot {
    pods: Vec<Pod>,
    topology: Topology,
    slices: Vec<EndpointSlice>,
}

#[cfg(test)]
mod tests;

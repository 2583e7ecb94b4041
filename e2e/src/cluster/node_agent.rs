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

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::backend::{Backend, Behaviour, LogBuffer};
use crate::bookinfo::Sidecar;
use crate::envoy::config::{self, BootstrapPaths};
use crate::envoy::process::{Envoy, EnvoyError};
use crate::envoy::translation::Translation;
use crate::istio::Destination;
use crate::topology::{Topology, Typed, labels_match};
use crate::version::IstioVersion;
use crate::workload::{ProcessWorkload, WorkloadCommand};

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
    /// The real istiod, when it configures the proxies (else the project's translation).
    pub istiod: Option<ads::Istiod>,
}

/// The sidecars istiod configures, by pod uid.
type Proxies = Arc<tokio::sync::Mutex<BTreeMap<String, ads::Proxy>>>;
const GATEWAY: &str = "gateway";
/// The file in the agent's directory listing the node ids of its proxies.
pub const PROXY_LIST: &str = "proxies";

/// The running data plane.
pub struct NodeAgent {
    /// The translation's Envoy (none with the real istiod).
    envoy: Option<Envoy>,
    proxies: Proxies,
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
        let files = Files::create(&opts)?;
        let mut state = State {
            client,
            sidecar: Sidecar::default(),
            outbound: SocketAddr::from(([127, 0, 0, 1], 0)),
            pods: BTreeMap::new(),
            written: BTreeMap::new(),
            version: 0,
            files,
            opts: opts.clone(),
            proxies: Proxies::default(),
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
            proxies: Proxies::default(),
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
            ads::Identity::gateway(&opts.ingress.ip().to_string()),
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
struct Files {
    xds: PathBuf,
    logs: PathBuf,
}

impl Files {
    fn create(opts: &NodeOptions) -> Result<Files, NodeAgentError> {
        let files = Files {
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

/// A pod this node runs a process for.
struct RunningPod {
    name: String,
    process: PodProcess,
}

/// What runs for a pod: a built-in stand-in, or the user's program (`--workload`).
enum PodProcess {
    Builtin(Backend),
    User(Box<ProcessWorkload>),
}

impl PodProcess {
    fn addr(&self) -> SocketAddr {
        match self {
            PodProcess::Builtin(b) => b.addr(),
            PodProcess::User(p) => p.addr(),
        }
    }

    fn what(&self) -> String {
        match self {
            PodProcess::Builtin(_) => "the built-in stand-in".to_owned(),
            PodProcess::User(p) => format!("`{}`", p.command()),
        }
    }

    async fn stop(&self) {
        match self {
            PodProcess::Builtin(b) => b.stop(),
            PodProcess::User(p) => p.stop().await,
        }
    }
}

/// What the data plane follows and has done.
struct State {
    client: Client,
    opts: NodeOptions,
    files: Files,
    sidecar: Sidecar,
    /// productpage's sidecar listener, the HTTP proxy of a user's program.
    outbound: SocketAddr,
    /// By pod uid: a pod deleted and made again under the same name is a new pod.
    pods: BTreeMap<String, RunningPod>,
    /// The xDS files as last written, so an unchanged configuration is not pushed again.
    written: BTreeMap<&'static str, Value>,
    version: u64,
    /// The proxies istiod configures (none with the translation).
    proxies: Proxies,
}

/// What the API shows of the namespace, listed after every change.
struct Snapshot {
    pods: Vec<Pod>,
    topology: Topology,
    slices: Vec<EndpointSlice>,
}

impl State {
    /// Follows the namespace: every change to a pod, an EndpointSlice, a Service or the
    /// routing wakes a reconcile, which lists what is and makes the data plane match it.
    async fn follow(mut self) {
        let changed = Arc::new(Notify::new());
        let ns = self.opts.namespace.clone();
        let on_node =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.opts.node));
        spawn_watch::<Pod>(Api::namespaced(self.client.clone(), &ns), on_node, &changed);
        spawn_watch::<EndpointSlice>(
            Api::namespaced(self.client.clone(), &ns),
            watcher::Config::default(),
            &changed,
        );
        spawn_watch::<Service>(
            Api::namespaced(self.client.clone(), &ns),
            watcher::Config::default(),
            &changed,
        );
        for kind in ISTIO_KINDS {
            spawn_watch::<DynamicObject>(
                Api::namespaced_with(self.client.clone(), &ns, &istio_resource(kind)),
                watcher::Config::default(),
                &changed,
            );
        }
        loop {
            changed.notified().await;
            match self.snapshot().await {
                Ok(snapshot) => self.reconcile(&snapshot).await,
                Err(e) => eprintln!("node {}: list the namespace {ns}: {e}", self.opts.node),
            }
        }
    }

    async fn snapshot(&self) -> Result<Snapshot, kube::Error> {
        let ns = &self.opts.namespace;
        let pods: Vec<Pod> = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.opts.node)))
            .await?
            .items;
        let slices = list::<EndpointSlice>(&self.client, ns).await?;
        let topology = Topology {
            namespace: ns.clone(),
            services: typed(list::<Service>(&self.client, ns).await?),
            deployments: typed(list::<Deployment>(&self.client, ns).await?),
            destination_rules: typed(istio_objects(&self.client, ns, "DestinationRule").await?),
            virtual_services: typed(istio_objects(&self.client, ns, "VirtualService").await?),
            gateways: typed(istio_objects(&self.client, ns, "Gateway").await?),
        };
        Ok(Snapshot {
            pods,
            topology,
            slices,
        })
    }

    async fn reconcile(&mut self, snapshot: &Snapshot) {
        self.run_pods(&snapshot.pods).await;
        if self.opts.istiod.is_some() {
            // istiod follows the API itself.
            return;
        }
        if let Err(e) = self.configure_proxies(snapshot) {
            // The last good configuration stays, as with istiod's rejected pushes (often
            // only until the rest of the manifests arrive); the checks see what it means.
            eprintln!(
                "node {}: the proxies keep their last configuration: {e}",
                self.opts.node
            );
        }
    }

    /// Starts a process for every Running pod with an address, and stops those whose pod
    /// is deleting or gone.
    async fn run_pods(&mut self, pods: &[Pod]) {
        let wanted: BTreeMap<String, &Pod> = pods
            .iter()
            .filter(|p| is_running(p))
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !wanted.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            let stopped = self.proxies.lock().await.remove(&uid);
            if let Some(proxy) = stopped {
                proxy.envoy.stop().await;
                self.write_proxy_list().await;
            }
            if let Some(pod) = self.pods.remove(&uid) {
                pod.process.stop().await;
                eprintln!("node {}: pod {} stopped", self.opts.node, pod.name);
            }
        }
        for (uid, pod) in wanted {
            if self.pods.contains_key(&uid) {
                continue;
            }
            match self.start_pod(pod).await {
                Ok(running) => {
                    eprintln!(
                        "node {}: pod {} runs on {} ({})",
                        self.opts.node,
                        running.name,
                        running.process.addr(),
                        running.process.what()
                    );
                    self.pods.insert(uid, running);
                }
                Err(e) => eprintln!(
                    "node {}: pod {}: {e}",
                    self.opts.node,
                    pod.metadata.name.as_deref().unwrap_or("")
                ),
            }
        }
    }

    async fn start_pod(&self, pod: &Pod) -> Result<RunningPod, String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or(&[]);
        let addr = pod_address(pod)?;
        if let Some(istiod) = self.opts.istiod {
            self.start_sidecar(pod, &name, &uid, addr, istiod).await?;
        }
        let log_path = self
            .files
            .logs
            .join(format!("{}_{name}_{uid}.log", self.opts.namespace));
        let log = LogBuffer::create_cri(&log_path)
            .map_err(|e| format!("create its log {}: {e}", log_path.display()))?;
        let deployment = deployment_of(pod);
        let user = self
            .opts
            .workloads
            .iter()
            .find(|w| Some(w.name.as_str()) == deployment.as_deref());
        let process = match user {
            Some(command) => {
                let process =
                    ProcessWorkload::prepare_at(command, containers, name.clone(), addr, log)
                        .map_err(|e| e.to_string())?;
                process
                    .start(self.outbound, self.opts.patience)
                    .await
                    .map_err(|e| e.to_string())?;
                PodProcess::User(Box::new(process))
            }
            None => PodProcess::Builtin(
                Backend::start_as(
                    deployment.as_deref().unwrap_or(&name),
                    &name,
                    addr,
                    Behaviour::of(containers, &self.sidecar),
                    log,
                )
                .await
                .map_err(|e| e.to_string())?,
            ),
        };
        self.serve_logs(&name, &uid, &log_path)
            .await
            .map_err(|e| format!("kwok Logs for its log: {e}"))?;
        Ok(RunningPod { name, process })
    }

    /// productpage's sidecar, configured by istiod, before the pod's process (which sends
    /// through it): its outbound listener is awaited, and a rejected configuration is the
    /// pod's error.
    async fn start_sidecar(
        &self,
        pod: &Pod,
        name: &str,
        uid: &str,
        addr: SocketAddr,
        istiod: ads::Istiod,
    ) -> Result<(), String> {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if labels.get("app").map(String::as_str) != Some(ads::SIDECAR_APP) {
            return Ok(());
        }
        let identity = ads::Identity {
            kind: "sidecar",
            ip: addr.ip().to_string(),
            pod: name.to_owned(),
            namespace: self.opts.namespace.clone(),
            workload: deployment_of(pod).unwrap_or_else(|| name.to_owned()),
            service_account: pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".to_owned()),
            labels: labels.into_iter().collect(),
        };
        // Capture without iptables: the Sidecar istiod builds the outbound listener from;
        // and plaintext inbound, there being no istio-agent to serve certificates.
        let ns = &self.opts.namespace;
        for (name, group, kind, object) in [
            (
                "mirror-e2e-node-capture",
                "networking.istio.io",
                "Sidecar",
                ads::sidecar(ns),
            ),
            (
                "mirror-e2e-node-plaintext",
                "security.istio.io",
                "PeerAuthentication",
                ads::plaintext_inbound(ns),
            ),
        ] {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
            Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &resource)
                .patch(
                    name,
                    &PatchParams::apply("mirror-e2e-node").force(),
                    &Patch::Apply(object),
                )
                .await
                .map_err(|e| format!("apply the {kind} {name}: {e}"))?;
        }
        let started = std::time::Instant::now();
        let proxy = ads::Proxy::start(
            &self.opts.envoy,
            &self.opts.dir.join(format!("sidecar-{name}")),
            identity,
            &istiod,
            &self.opts.istio.to_string(),
            self.opts.patience,
        )
        .await
        .map_err(|e| e.to_string())?;
        let listener = proxy
            .await_listener(ads::SIDECAR_OUTBOUND, &istiod, self.opts.patience)
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "node {}: istiod configured {name}'s sidecar ({} on {listener}) in {:.1?}",
            self.opts.node,
            ads::SIDECAR_OUTBOUND,
            started.elapsed()
        );
        self.proxies.lock().await.insert(uid.to_owned(), proxy);
        self.write_proxy_list().await;
        Ok(())
    }

    /// Writes the node ids of the proxies istiod configures to `<dir>/proxies` (the
    /// gateway first), one a line: what `mirror-e2e proxies-synced` awaits on istiod's
    /// `/debug/syncz` after istiod is replaced. Renamed into place, so a reader never sees
    /// half a list.
    async fn write_proxy_list(&self) {
        let mut ids = vec![ads::Identity::gateway(&self.opts.ingress.ip().to_string()).node_id()];
        ids.extend(
            self.proxies
                .lock()
                .await
                .values()
                .map(|p| p.identity.node_id()),
        );
        let path = self.opts.dir.join(PROXY_LIST);
        let partial = self.opts.dir.join(format!(".{PROXY_LIST}.partial"));
        let written = std::fs::write(&partial, ids.join("\n") + "\n")
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            eprintln!(
                "node {}: cannot write {}: {e}",
                self.opts.node,
                path.display()
            );
        }
    }

    /// A kwok `Logs` object naming the pod's log file: kwok's kubelet endpoint serves
    /// `/containerLogs/<namespace>/<pod>/<container>` from it, for every container.
    async fn serve_logs(&self, pod: &str, uid: &str, path: &Path) -> Result<(), kube::Error> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Logs"),
            "logs",
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.opts.namespace, &resource);
        let logs = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {
                "name": pod,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}],
            },
            "spec": {"logs": [{"logsFile": path, "follow": true}]},
        });
        api.patch(
            pod,
            &PatchParams::apply("mirror-e2e-node").force(),
            &Patch::Apply(logs),
        )
        .await
        .map(|_| ())
    }

    /// Translates the namespace's routing for the proxies and gives every cluster the
    /// ready endpoints of its Service (of its subset's pods), as EDS from istiod does.
    fn configure_proxies(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let topology = &snapshot.topology;
        let version = self.version + 1;
        let proxies = Translation::of(topology, &self.opts.istio)
            .proxy_config(version, |dest| {
                endpoints(topology, dest, &snapshot.slices, &snapshot.pods)
            })
            .map_err(|e| e.to_string())?;
        // Clusters first: a route never names a cluster Envoy does not have yet.
        let mut changed = self.write_if_changed(
            "clusters.json",
            config::cds_file(&proxies.clusters, version),
        )?;
        changed |= self.write_if_changed("routes.json", proxies.routes)?;
        changed |= self.write_if_changed("gateway-routes.json", proxies.gateway_routes)?;
        if changed {
            self.version = version;
        }
        Ok(())
    }

    /// Writes an xDS file unless it says what it said last (its version aside).
    fn write_if_changed(&mut self, file: &'static str, value: Value) -> Result<bool, String> {
        let mut unversioned = value.clone();
        strip_versions(&mut unversioned);
        if self.written.get(file) == Some(&unversioned) {
            return Ok(false);
        }
        self.write(file, value).map_err(|e| e.to_string())?;
        self.written.insert(file, unversioned);
        Ok(true)
    }

    fn write(&self, file: &str, value: Value) -> Result<(), NodeAgentError> {
        let path = self.files.xds(file);
        config::write_watched(&path, &value).map_err(|source| NodeAgentError::Write {
            node: self.opts.node.clone(),
            path,
            source,
        })
    }
}

/// The Istio kinds the proxies' configuration comes from.
const ISTIO_KINDS: [&str; 3] = ["VirtualService", "DestinationRule", "Gateway"];

fn istio_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", "v1", kind))
}

/// Every change of `api`'s objects wakes `changed` (watch errors are retried with
/// kube's backoff: a CRD may arrive after the data plane starts).
fn spawn_watch<K>(api: Api<K>, config: watcher::Config, changed: &Arc<Notify>)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let changed = changed.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            if event.is_ok() {
                changed.notify_one();
            }
        }
    });
}

async fn list<K>(client: &Client, ns: &str) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}

/// The namespace's objects of an Istio kind, typed; a kind not served yet is none.
async fn istio_objects<T: DeserializeOwned>(
    client: &Client,
    ns: &str,
    kind: &str,
) -> Result<Vec<T>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &istio_resource(kind));
    let items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

fn typed<T>(objects: Vec<T>) -> Vec<Typed<T>> {
    objects
        .into_iter()
        .map(|object| Typed {
            document: 0,
            object,
        })
        .collect()
}

/// Whether a pod has a process on its node: Running with an address, and not deleting.
fn is_running(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status.and_then(|s| s.pod_ip.as_deref()).is_some()
}

/// The Deployment a pod belongs to: its ReplicaSet owner's name without the
/// `pod-template-hash` the deployment controller appended.
fn deployment_of(pod: &Pod) -> Option<String> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "ReplicaSet")?;
    let hash = pod.metadata.labels.as_ref()?.get("pod-template-hash")?;
    owner
        .name
        .strip_suffix(&format!("-{hash}"))
        .map(str::to_owned)
}

/// The pod's address and its first container's first declared port.
fn pod_address(pod: &Pod) -> Result<SocketAddr, String> {
    let ip: IpAddr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .ok_or("has no address")?
        .parse()
        .map_err(|e| format!("its address: {e}"))?;
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find_map(|c| c.ports.as_ref()?.first()))
        .map(|p| p.container_port)
        .ok_or("declares no containerPort: the stand-in needs a port to listen on")?;
    let port = u16::try_from(port).map_err(|_| format!("containerPort {port} out of range"))?;
    Ok(SocketAddr::new(ip, port))
}

/// The ready endpoints of `dest`'s Service, of the pods its subset selects, on the port
/// the Service's port targets.
fn endpoints(
    topology: &Topology,
    dest: &Destination,
    slices: &[EndpointSlice],
    pods: &[Pod],
) -> Vec<SocketAddr> {
    let Some(service) = topology.service_name_of(&dest.host) else {
        return Vec::new();
    };
    let subset_labels = dest.subset.as_deref().and_then(|name| {
        topology
            .subsets_of(&dest.host)
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.labels.clone())
    });
    if dest.subset.is_some() && subset_labels.is_none() {
        // A subset the DestinationRules do not define has no endpoints (istiod: no cluster).
        return Vec::new();
    }
    let port = dest
        .port
        .as_ref()
        .map_or_else(|| config::service_port(topology, &dest.host), |p| p.number);
    let port_name = topology
        .service(service)
        .and_then(|s| s.spec.as_ref()?.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| u32::try_from(p.port).ok() == Some(port))
        })
        .and_then(|p| p.name.clone());
    let labels_of: BTreeMap<&str, BTreeMap<String, String>> = pods
        .iter()
        .filter_map(|p| {
            Some((
                p.metadata.name.as_deref()?,
                p.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let mut out = BTreeSet::new();
    for slice in slices.iter().filter(|s| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map(String::as_str)
            == Some(service)
    }) {
        let Some(target_port) = slice.ports.as_ref().and_then(|ports| {
            ports
                .iter()
                .find(|p| port_name.is_none() || p.name == port_name)
                .and_then(|p| p.port)
        }) else {
            continue;
        };
        let Ok(target_port) = u16::try_from(target_port) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let pod_labels = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .and_then(|name| labels_of.get(name));
            let in_subset = match (&subset_labels, pod_labels) {
                (None, _) => true,
                (Some(wanted), Some(have)) => labels_match(wanted, have),
                (Some(_), None) => false,
            };
            if !ready || !in_subset {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.insert(SocketAddr::new(ip, target_port));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn strip_versions(value: &mut Value) {
    if let Value::Object(map) = value {
        map.remove("version_info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        let yaml = "
kind: Namespace
metadata: {name: test-run}
---
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
";
        let (topo, errors) =
            Topology::from_manifests(&crate::manifest::ManifestSet::from_str("t.yaml", yaml));
        assert!(errors.is_empty(), "{errors:?}");
        topo
    }

    fn pod(name: &str, version: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "reviews", "version": version}},
        }))
        .expect("pod")
    }

    /// EndpointSlice as the real controller writes it: the target port by the Service
    /// port's name, one endpoint per pod with its readiness and target reference.
    fn slice(endpoints: Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "reviews-abcde", "labels": {"kubernetes.io/service-name": "reviews"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .expect("slice")
    }

    fn dest(subset: Option<&str>) -> Destination {
        Destination {
            host: "reviews".into(),
            subset: subset.map(str::to_owned),
            port: None,
        }
    }

    #[test]
    fn a_subset_gets_the_ready_endpoints_of_its_pods_only() {
        let slices = [slice(json!([
            {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v1-a"}},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v2-b"}},
            {"addresses": ["10.244.0.7"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "reviews-v2-c"}},
        ]))];
        let pods = [
            pod("reviews-v1-a", "v1"),
            pod("reviews-v2-b", "v2"),
            pod("reviews-v2-c", "v2"),
        ];
        let topo = topology();
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            endpoints(&topo, &dest(Some("v2")), &slices, &pods),
            [addr("10.244.0.6:9080")]
        );
        assert_eq!(
            endpoints(&topo, &dest(None), &slices, &pods),
            [addr("10.244.0.5:9080"), addr("10.244.0.6:9080")]
        );
        assert_eq!(
            endpoints(&topo, &dest(Some("v3")), &slices, &pods),
            Vec::<SocketAddr>::new(),
            "a subset no DestinationRule defines has no endpoints"
        );
    }

    #[test]
    fn an_emptied_slice_leaves_the_cluster_without_endpoints() {
        let slices = [slice(json!([]))];
        assert!(endpoints(&topology(), &dest(None), &slices, &[]).is_empty());
    }

    #[test]
    fn only_a_running_pod_with_an_address_that_is_not_deleting_gets_a_process() {
        let pod = |extra: Value| -> Pod {
            let mut base = json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "podIP": "10.244.0.9"}});
            json_patch(&mut base, extra);
            serde_json::from_value(base).expect("pod")
        };
        assert!(is_running(&pod(json!({}))));
        assert!(!is_running(&pod(json!({"status": {"phase": "Pending"}}))));
        assert!(!is_running(&pod(json!({"status": {"podIP": null}}))));
        assert!(!is_running(&pod(
            json!({"metadata": {"deletionTimestamp": "2026-12-02T08:00:00Z"}})
        )));
    }

    #[test]
    fn a_pod_belongs_to_the_deployment_its_replica_set_was_made_for() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "reviews-v2-76b94dd577-xprgd",
                "labels": {"app": "reviews", "pod-template-hash": "76b94dd577"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v2-76b94dd577", "uid": "u"}],
            },
        }))
        .expect("pod");
        assert_eq!(deployment_of(&pod).as_deref(), Some("reviews-v2"));
        let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).expect("pod");
        assert_eq!(deployment_of(&bare), None);
    }

    #[test]
    fn a_pod_listens_on_its_address_and_first_declared_port() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9080}]}]},
            "status": {"podIP": "10.244.0.9"},
        }))
        .expect("pod");
        assert_eq!(
            pod_address(&pod),
            Ok("10.244.0.9:9080".parse().expect("addr"))
        );
        let portless: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"podIP": "10.244.0.9"},
        }))
        .expect("pod");
        assert!(
            pod_address(&portless)
                .expect_err("no port, no address")
                .contains("containerPort")
        );
    }

    fn json_patch(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    json_patch(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }
}

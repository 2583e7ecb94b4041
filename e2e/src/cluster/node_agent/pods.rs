//! A process per Running pod on the pod's own address (built-in stand-in or `--workload`),
//! its output a CRI-format log kwok's kubelet endpoint serves; the capture sidecars istiod
//! configures.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::State;
use super::{PROXY_LIST, ads};
use crate::backend::{Backend, Behaviour, LogBuffer};
use crate::workload::ProcessWorkload;

/// A pod this node runs a process for.
pub(super) struct RunningPod {
    pub(super) name: String,
    pub(super) process: PodProcess,
}

/// What runs for a pod: a built-in stand-in, or the user's program (`--workload`).
pub(super) enum PodProcess {
    Builtin(Backend),
    User(Box<ProcessWorkload>),
}

impl PodProcess {
    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            PodProcess::Builtin(b) => b.addr(),
            PodProcess::User(p) => p.addr(),
        }
    }

    pub(super) fn what(&self) -> String {
        match self {
            PodProcess::Builtin(_) => "the built-in stand-in".to_owned(),
            PodProcess::User(p) => format!("`{}`", p.command()),
        }
    }

    pub(super) async fn stop(&self) {
        match self {
            PodProcess::Builtin(b) => b.stop(),
            PodProcess::User(p) => p.stop().await,
        }
    }
}

impl State {
    /// Starts a process for every Running pod with an address, and stops those whose pod
    /// is deleting or gone.
    pub(super) async fn run_pods(&mut self, pods: &[Pod]) {
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

    pub(super) async fn start_pod(&self, pod: &Pod) -> Result<RunningPod, String> {
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
                let process = ProcessWorkload::prepare_at(
                    command,
                    containers,
                    name.clone(),
                    addr,
                    log,
                    &self.opts.process_groups,
                )
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
    pub(super) async fn start_sidecar(
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
        let identity = ads::ProxyIdentity {
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
    pub(super) async fn write_proxy_list(&self) {
        let mut ids =
            vec![ads::ProxyIdentity::gateway(&self.opts.ingress.ip().to_string()).node_id()];
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
    pub(super) async fn serve_logs(
        &self,
        pod: &str,
        uid: &str,
        path: &Path,
    ) -> Result<(), kube::Error> {
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
}
/// Whether a pod has a process on its node: Running with an address, and not deleting.
pub(super) fn is_running(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status.and_then(|s| s.pod_ip.as_deref()).is_some()
}

/// The Deployment a pod belongs to: its ReplicaSet owner's name without the
/// `pod-template-hash` the deployment controller appended.
pub(super) fn deployment_of(pod: &Pod) -> Option<String> {
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
pub(super) fn pod_address(pod: &Pod) -> Result<SocketAddr, String> {
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

//! `ClusterMesh`, the `Mesh` of cluster mode: traffic through the ingress gateway, routing
//! applied through the API, the mirror's records from its pods' logs, and the proof that a
//! page came from the run's own pods (`RunPods`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::apply::Applier;
use super::deploy::move_namespace;
use super::logs::LogFollower;
use super::{ClusterOptions, Proxies, ready};
use crate::istio::VirtualService;
use crate::mesh::{Call, Mesh, MeshError, MirrorChange, Reply};
use crate::mirror_log::MirrorRecords;
use crate::productpage::Productpage;
use crate::topology::Topology;
use crate::version::{IstioVersion, ShadowRule};

/// The running cluster mesh.
pub struct ClusterMesh {
    pub(super) client: Client,
    pub(super) opts: ClusterOptions,
    pub(super) topology: Topology,
    pub(super) applier: Applier,
    pub(super) page: Productpage,
    pub(super) records: Arc<MirrorRecords>,
    /// Feeds `records` while the mesh lives.
    #[allow(dead_code)] // Held for its Drop, which ends the streams.
    pub(super) mirror_follower: LogFollower,
    /// The run's pods, to prove a page was served from its namespace.
    pub(super) pods: RunPods,
    /// The namespace the manifests were written for (host names in it move to the run's).
    pub(super) manifests_namespace: Option<String>,
}

/// The pods of the run's namespace, to prove a page was served from it: on a shared
/// ingress another namespace's Bookinfo has pods of the same `reviews-vN-...` shape.
pub struct RunPods {
    api: Api<Pod>,
    namespace: String,
    host: String,
    names: Mutex<BTreeSet<String>>,
}

impl RunPods {
    /// The pods of `namespace`, whose pages are asked for with `Host: host`.
    pub fn new(client: &Client, namespace: &str, host: &str) -> RunPods {
        RunPods {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
            host: host.to_owned(),
            names: Mutex::default(),
        }
    }

    /// Fails unless `pod` is a pod of the run's namespace (listed again when not known).
    pub async fn verify(&self, tag: &str, pod: &str) -> Result<(), MeshError> {
        if self
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(pod)
        {
            return Ok(());
        }
        let names: BTreeSet<String> = self
            .api
            .list_metadata(&Default::default())
            .await
            .map_err(|e| MeshError::Request {
                tag: tag.to_owned(),
                message: format!("list pods of {}: {e}", self.namespace),
            })?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let known = names.contains(pod);
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = names;
        if known {
            Ok(())
        } else {
            Err(MeshError::Request {
                tag: tag.to_owned(),
                message: format!(
                    "the page was served by pod {pod}, which is not in the run's namespace {}: the ingress routed host {} to someone else's Bookinfo",
                    self.namespace, self.host
                ),
            })
        }
    }
}

impl Mesh for ClusterMesh {
    fn istio_version(&self) -> IstioVersion {
        self.opts.istiod.version
    }

    fn shadow_rule(&self) -> ShadowRule {
        self.opts.istiod.shadow_rule.clone()
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn log_latency(&self) -> Duration {
        match self.opts.proxies {
            // Through the sidecars to the mirror pod, then its log through the API server.
            Proxies::Injected => Duration::from_secs(10),
            // One local Envoy to a local process, its log through the API server and kwok:
            // milliseconds. Longer waits only slow down an attempt sent before the proxies
            // had the mirror's new endpoint, which the next attempt passes.
            Proxies::Node => Duration::from_secs(2),
        }
    }

    async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        let reply = self.page.send(call).await?;
        if let Some(pod) = &reply.pod {
            self.pods.verify(&call.tag, pod).await?;
        }
        Ok(reply)
    }

    async fn matched_route(&self, _tag: &str, _host: &str) -> Result<Option<String>, String> {
        // Istio's default installation (manifests/istio/operator.yaml) logs no access log,
        // so no proxy says which route matched a request; the routes productpage's sidecar
        // holds are collected on failure.
        Err("cluster mode cannot read it: Istio's installation logs no access log (meshConfig.accessLogFile is unset); productpage's sidecar routes are in diagnostics/productpage-routes.json".into())
    }

    fn mirror_records(&self) -> &MirrorRecords {
        &self.records
    }

    async fn apply_virtual_service(&self, vs: &VirtualService) -> Result<(), MeshError> {
        let name = vs.metadata.name.clone().unwrap_or_default();
        let mut doc = serde_json::to_value(vs).map_err(|e| MeshError::Apply {
            name: name.clone(),
            message: e.to_string(),
        })?;
        doc["apiVersion"] = vs
            .api_version
            .clone()
            .unwrap_or_else(|| "networking.istio.io/v1".into())
            .into();
        doc["kind"] = "VirtualService".into();
        if let (Some(from), Some(spec)) = (&self.manifests_namespace, doc.get_mut("spec")) {
            move_namespace(spec, from, &self.opts.namespace);
        }
        self.applier
            .apply(0, &doc)
            .await
            .map(|_| ())
            .map_err(|e| MeshError::Apply {
                name,
                message: e.to_string(),
            })
    }

    async fn send_to_mirror(&self, tag: &str) -> Result<(), MeshError> {
        let failed = |message: String| MeshError::Request {
            tag: tag.to_owned(),
            message,
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.opts.namespace);
        let listed = pods
            .list(&kube::api::ListParams::default().labels(&format!("app={}", self.opts.mirror)))
            .await
            .map_err(|e| failed(format!("list the mirror's pods: {e}")))?;
        let pod = listed
            .items
            .iter()
            .find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .ok_or_else(|| failed(format!("no Running pod of {}", self.opts.mirror)))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let port = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == self.opts.mirror))
            .and_then(|c| c.ports.as_ref()?.first())
            .map_or(9080, |p| p.container_port);
        // The API server's proxy to the pod: the mirror itself, whatever the routing does.
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{}/pods/{name}:{port}/proxy/mirror-e2e/barrier",
            self.opts.namespace
        ))
        .header("user-agent", tag)
        .body(Vec::new())
        .map_err(|e| failed(e.to_string()))?;
        self.client
            .request_text(request)
            .await
            .map_err(|e| failed(format!("through the API server's proxy to pod {name}: {e}")))?;
        Ok(())
    }

    async fn set_mirror_running(&self, running: bool) -> Result<MirrorChange, MeshError> {
        let start = tokio::time::Instant::now();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.opts.namespace);
        let replicas = i32::from(running);
        api.patch_scale(
            &self.opts.mirror,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(|e| MeshError::Mirror(format!("scale {} to {replicas}: {e}", self.opts.mirror)))?;
        if running {
            ready::deployment_complete(
                &self.client,
                &self.opts.namespace,
                &self.opts.mirror,
                self.opts.patience,
            )
            .await
            .map_err(|e| MeshError::Mirror(e.to_string()))?;
            if self.opts.proxies == Proxies::Injected {
                ready::sidecars_ready(&self.client, &self.opts.namespace, self.opts.patience)
                    .await
                    .map_err(|e| MeshError::Mirror(e.to_string()))?;
            }
        } else {
            // A terminating pod still serves, and proxies keep sending to an endpoint until
            // it is no longer ready: only then is the mirror really down.
            ready::workload_down(
                &self.client,
                &self.opts.namespace,
                &format!("app={}", self.opts.mirror),
                &self.opts.mirror,
                self.opts.patience,
            )
            .await
            .map_err(|e| MeshError::Mirror(e.to_string()))?;
        }
        let what = if running {
            format!("Deployment {} scaled to 1 and rolled out", self.opts.mirror)
        } else {
            format!(
                "Deployment {} scaled to 0: no pod and no ready endpoint left",
                self.opts.mirror
            )
        };
        Ok(MirrorChange {
            what,
            waited: Some(start.elapsed()),
        })
    }
}

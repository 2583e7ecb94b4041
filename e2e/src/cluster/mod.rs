//! Cluster mode: the suite against a real Kubernetes cluster with Istio, through the API.
//!
//! This crate does not create clusters or install Istio (xtask does); it applies the
//! manifests, waits for them, drives traffic through the ingress gateway, reads the mirror's
//! logs, and collects evidence.

pub mod apply;
pub mod evidence;
pub mod logs;
pub mod productpage;
pub mod ready;
pub mod rollout;
#[cfg(test)]
mod test_api;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::istio::VirtualService;
use crate::manifest::ManifestSet;
use crate::mesh::{Call, Mesh, MeshError, Reply};
use crate::progress::Progress;
use crate::topology::Topology;
use crate::version::IstioVersion;
use crate::wait::poll_until;
use apply::{Applier, ApplyError, apply_order};
use logs::PodLogs;
use productpage::Productpage;

/// Errors preparing the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Kubeconfig or connection problems.
    #[error("connect to the cluster ({context}): {message}")]
    Connect {
        /// Which kubeconfig/context.
        context: String,
        /// Why.
        message: String,
    },
    /// Istio is not installed.
    #[error(
        "Istio is not installed: no Deployment istiod in istio-system ({0}); install it, or pass --install-istio"
    )]
    NoIstio(String),
    /// Manifests could not be read or typed.
    #[error("{path}: {message}")]
    Manifests {
        /// Manifests path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Waiting failed.
    #[error(transparent)]
    Ready(#[from] ready::ReadyError),
    /// Restarting workloads or verifying their proxies failed.
    #[error(transparent)]
    Rollout(#[from] rollout::RolloutError),
    /// Deleting the run's namespace failed.
    #[error("delete namespace {namespace}: {source}")]
    Cleanup {
        /// The namespace.
        namespace: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The run's namespace did not go away in time.
    #[error("delete namespace {namespace}: {source}")]
    CleanupWait {
        /// The namespace.
        namespace: String,
        /// The wait that ran out.
        #[source]
        source: crate::wait::WaitError,
    },
}

/// What cluster mode needs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The namespace to deploy into (`test`, or `test-<run-id>` on an existing cluster).
    pub namespace: String,
    /// The ingress gateway's base URL on the host, e.g. `http://127.0.0.1:30080`.
    pub ingress: String,
    /// Registry path of Bookinfo images, to replace the manifests' (version table).
    pub bookinfo_hub: Option<String>,
    /// Tag of Bookinfo images, to replace the manifests' (version table).
    pub bookinfo_tag: Option<String>,
    /// Restart every Deployment after deploying and verify its proxy runs `istio` (after a
    /// control-plane upgrade).
    pub restart_workloads: bool,
    /// The Istio version expected (or found).
    pub istio: IstioVersion,
    /// Patience for waits.
    pub patience: Duration,
    /// The mirror's Deployment, container and Service.
    pub mirror: String,
}

/// The running cluster mesh.
pub struct ClusterMesh {
    client: Client,
    opts: ClusterOptions,
    topology: Topology,
    applier: Applier,
    page: Productpage,
    mirror_logs: PodLogs,
}

/// The Istio version the cluster runs, from istiod's image tag.
pub async fn installed_istio(client: &Client) -> Result<IstioVersion, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "istio-system");
    let istiod = api
        .get_opt("istiod")
        .await
        .map_err(|e| ClusterError::NoIstio(e.to_string()))?
        .ok_or_else(|| ClusterError::NoIstio("not found".into()))?;
    let image = istiod
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    let tag = image.rsplit(':').next().unwrap_or("");
    tag.split('-').next().unwrap_or("").parse().map_err(|_| {
        ClusterError::NoIstio(format!(
            "cannot read a version from istiod's image `{image}`"
        ))
    })
}

impl ClusterMesh {
    /// Applies the manifests into the namespace and waits until every workload and its
    /// sidecar is ready. Istio must be running (istiod's webhook injects the sidecars).
    pub async fn deploy(
        client: Client,
        set: &ManifestSet,
        opts: ClusterOptions,
        progress: &mut Progress,
    ) -> Result<ClusterMesh, ClusterError> {
        let (topology, type_errors) = Topology::from_manifests(set);
        if let Some(e) = type_errors.first() {
            return Err(ClusterError::Manifests {
                path: set
                    .documents
                    .get(e.document)
                    .map(|d| d.file.display().to_string())
                    .unwrap_or_default(),
                message: e.to_string(),
            });
        }
        progress.phase("wait for istiod");
        ready::deployment_complete(&client, "istio-system", "istiod", opts.patience).await?;
        progress.phase("deploy");
        let mut applier = Applier::new(client.clone(), &opts.namespace).await?;
        let mut docs: Vec<(usize, Value)> = set
            .documents
            .iter()
            .enumerate()
            .filter(|(_, d)| apply_order(d.kind()) < 7)
            .map(|(i, d)| (i, for_cluster(&d.value, &opts)))
            .collect();
        docs.sort_by_key(|(_, d)| apply_order(d.get("kind").and_then(Value::as_str).unwrap_or("")));
        for (index, doc) in &docs {
            match applier.apply(*index, doc).await {
                // Istio's CRDs may have arrived after discovery ran: look again once.
                Err(ApplyError::UnknownKind { .. }) => {
                    applier.rediscover().await?;
                    applier.apply(*index, doc).await?;
                }
                other => {
                    other?;
                }
            }
        }
        progress.phase("wait for workloads");
        for deployment in &topology.deployments {
            let name = deployment.object.metadata.name.clone().unwrap_or_default();
            ready::deployment_complete(&client, &opts.namespace, &name, opts.patience).await?;
        }
        ready::sidecars_ready(&client, &opts.namespace, opts.patience).await?;
        if opts.restart_workloads {
            progress.phase("restart workloads");
            let at = k8s_openapi::jiff::Timestamp::now().to_string();
            for deployment in &topology.deployments {
                let name = deployment.object.metadata.name.clone().unwrap_or_default();
                rollout::restart(&client, &opts.namespace, &name, &at).await?;
            }
            for deployment in &topology.deployments {
                let name = deployment.object.metadata.name.clone().unwrap_or_default();
                ready::deployment_complete(&client, &opts.namespace, &name, opts.patience).await?;
            }
            ready::sidecars_ready(&client, &opts.namespace, opts.patience).await?;
            rollout::verify_proxies(&client, &opts.namespace, &opts.istio).await?;
        }
        let since = k8s_openapi::jiff::Timestamp::now();
        Ok(ClusterMesh {
            mirror_logs: PodLogs::new(
                &client,
                &opts.namespace,
                &format!("app={}", opts.mirror),
                &opts.mirror,
                since,
            ),
            page: Productpage::new(&opts.ingress),
            client,
            topology,
            applier,
            opts,
        })
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The namespace in use.
    pub fn namespace(&self) -> &str {
        &self.opts.namespace
    }
}

/// A document as applied: the Namespace renamed to the run's namespace, and Bookinfo images
/// moved to the version's registry and tag.
pub fn for_cluster(doc: &Value, opts: &ClusterOptions) -> Value {
    let mut doc = doc.clone();
    if doc.get("kind").and_then(Value::as_str) == Some("Namespace") {
        doc["metadata"]["name"] = opts.namespace.clone().into();
    }
    if let Some(containers) = doc
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            let Some(pos) = image.find("/examples-bookinfo-") else {
                continue;
            };
            let (hub, rest) = image.split_at(pos);
            let (name, tag) = rest.rsplit_once(':').unwrap_or((rest, ""));
            let hub = opts.bookinfo_hub.as_deref().unwrap_or(hub);
            let tag = opts.bookinfo_tag.as_deref().unwrap_or(tag);
            c["image"] = format!("{hub}{name}:{tag}").into();
        }
    }
    doc
}

/// Deletes a namespace this run created, and waits until it is gone.
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    patience: Duration,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let cleanup = |source| ClusterError::Cleanup {
        namespace: namespace.to_owned(),
        source,
    };
    api.delete(namespace, &DeleteParams::foreground())
        .await
        .map_err(cleanup)?;
    let waited = poll_until(
        &format!("namespace {namespace} to be deleted"),
        patience,
        || {
            let api = api.clone();
            async move {
                match api.get_opt(namespace).await {
                    Ok(None) => Ok(Some(())),
                    Ok(Some(ns)) => Err(format!("phase {:?}", ns.status.and_then(|s| s.phase))),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    waited.map_err(|source| ClusterError::CleanupWait {
        namespace: namespace.to_owned(),
        source,
    })
}

impl Mesh for ClusterMesh {
    fn istio_version(&self) -> IstioVersion {
        self.opts.istio
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn log_latency(&self) -> Duration {
        // Through the sidecars to the mirror pod, then its log through the API server.
        Duration::from_secs(10)
    }

    async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        self.page.send(call).await
    }

    async fn mirror_log(&self) -> Result<String, MeshError> {
        self.mirror_logs
            .read()
            .await
            .map_err(|e| MeshError::Log(e.to_string()))
    }

    async fn mirror_log_grown(&self, seen: usize, limit: Duration) -> Result<(), MeshError> {
        // The log API offers no change notification across pods; poll, bounded.
        let _ = poll_until("the mirror's log to grow", limit, || async {
            match self.mirror_logs.read().await {
                Ok(text) if text.len() > seen => Ok(Some(())),
                Ok(text) => Err(format!("{} bytes", text.len())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        Ok(())
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
        self.applier
            .apply(0, &doc)
            .await
            .map(|_| ())
            .map_err(|e| MeshError::Apply {
                name,
                message: e.to_string(),
            })
    }

    async fn set_mirror_running(&self, running: bool) -> Result<(), MeshError> {
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
            ready::sidecars_ready(&self.client, &self.opts.namespace, self.opts.patience)
                .await
                .map_err(|e| MeshError::Mirror(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_api::ApiServer;

    fn opts() -> ClusterOptions {
        ClusterOptions {
            namespace: "test-20261125-1a2b".into(),
            ingress: "http://127.0.0.1:30080".into(),
            bookinfo_hub: Some("docker.io/istio".into()),
            bookinfo_tag: Some("1.20.2".into()),
            restart_workloads: false,
            istio: "1.29.8".parse().expect("version"),
            patience: Duration::from_secs(5),
            mirror: "mirror".into(),
        }
    }

    #[test]
    fn documents_move_to_the_run_namespace_and_the_versions_registry() {
        let ns = for_cluster(
            &json!({"kind": "Namespace", "metadata": {"name": "test", "labels": {"istio-injection": "enabled"}}}),
            &opts(),
        );
        assert_eq!(ns["metadata"]["name"], "test-20261125-1a2b");
        assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
        let d = for_cluster(
            &json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
                {"image": "registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3"},
                {"image": "docker.io/mendhak/http-https-echo:41"}]}}}}),
            &opts(),
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["image"],
            "docker.io/mendhak/http-https-echo:41"
        );
    }

    #[tokio::test]
    async fn istio_version_is_read_from_istiod_and_absence_is_explained() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            (
                installed_istio(&client).await,
                installed_istio(&client).await,
            )
        });
        let (request, _) = server.next().await;
        assert_eq!(
            request.uri().path(),
            "/apis/apps/v1/namespaces/istio-system/deployments/istiod"
        );
        server
            .respond(200, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod"},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.31.1-distroless"}]}}}}))
            .await;
        let _ = server.next().await;
        server
            .respond(
                404,
                test_api::status(404, "NotFound", "deployments.apps \"istiod\" not found"),
            )
            .await;
        let (found, missing) = task.await.expect("task");
        assert_eq!(found.expect("found").to_string(), "1.31.1");
        let err = missing.expect_err("absent").to_string();
        assert!(
            err.starts_with("Istio is not installed") && err.contains("--install-istio"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn scaling_the_mirror_patches_the_scale_subresource() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let api: Api<Deployment> = Api::namespaced(client, "test");
            api.patch_scale(
                "mirror",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
        });
        let (request, body) = server.next().await;
        assert_eq!(request.method(), "PATCH");
        assert_eq!(
            request.uri().path(),
            "/apis/apps/v1/namespaces/test/deployments/mirror/scale"
        );
        assert_eq!(body, json!({"spec": {"replicas": 0}}));
        server.respond(200, json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "mirror"}, "spec": {"replicas": 0}})).await;
        task.await.expect("task").expect("scaled");
    }

    #[tokio::test]
    async fn namespace_cleanup_deletes_then_waits_until_gone() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            delete_namespace(&client, "test-run", Duration::from_secs(5)).await
        });
        let (request, body) = server.next().await;
        assert_eq!(request.method(), "DELETE");
        assert_eq!(request.uri().path(), "/api/v1/namespaces/test-run");
        assert_eq!(body["propagationPolicy"], "Foreground");
        server.respond(200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test-run"}, "status": {"phase": "Terminating"}})).await;
        let _ = server.next().await;
        server.respond(200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test-run"}, "status": {"phase": "Terminating"}})).await;
        let _ = server.next().await;
        server
            .respond(
                404,
                test_api::status(404, "NotFound", "namespaces \"test-run\" not found"),
            )
            .await;
        task.await.expect("task").expect("deleted");
    }
}

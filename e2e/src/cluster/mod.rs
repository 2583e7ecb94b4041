//! Cluster mode: the suite against a real Kubernetes cluster with Istio, through the API.
//!
//! This crate does not create clusters or install Istio (xtask does); it applies the
//! manifests, waits for them, drives traffic through the ingress gateway, reads the mirror's
//! logs, and collects evidence.

pub mod apply;
pub mod evidence;
pub mod install;
pub mod logs;
pub mod ready;
pub mod rollout;
#[cfg(test)]
mod test_api;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::istio::VirtualService;
use crate::manifest::ManifestSet;
use crate::mesh::{Call, Mesh, MeshError, Reply};
use crate::mirror_log::MirrorRecords;
use crate::productpage::Productpage;
use crate::progress::Progress;
use crate::topology::Topology;
use crate::version::IstioVersion;
use crate::wait::poll_until;
use apply::{Applier, ApplyError, apply_order};
use logs::LogFollower;

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
        "Istio is not installed: no istiod Deployment (label app=istiod) in any namespace ({0}); install it, or pass --install-istio"
    )]
    NoIstio(String),
    /// Several control planes and no way to pick one.
    #[error(
        "several Istio control planes run here ({found}); pick one with --revision REV (the namespace is then labelled istio.io/rev=REV)"
    )]
    AmbiguousIstio {
        /// `namespace/name (revision)` of each istiod.
        found: String,
    },
    /// A manifest names a kind the API server does not serve.
    #[error("{file}:{line}: {kind} {name}: the API server serves no {kind} in {api_version}")]
    UnservedKind {
        /// The manifest file.
        file: String,
        /// The line of the document.
        line: usize,
        /// Kind.
        kind: String,
        /// Object name.
        name: String,
        /// apiVersion.
        api_version: String,
    },
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
    /// The host name the run's Gateway and ingress VirtualService bind, sent as `Host`, so
    /// a shared ingress never routes the run's requests to someone else's Bookinfo.
    pub host: String,
    /// The control plane the run's namespace is injected by.
    pub istiod: Istiod,
    /// Registry path of Bookinfo images, to replace the manifests' (version table, or a
    /// mirror registry).
    pub bookinfo_hub: Option<String>,
    /// Registry path of the echo image (`<hub>/http-https-echo:<tag>`), for a mirror
    /// registry.
    pub echo_hub: Option<String>,
    /// Tag of Bookinfo images, to replace the manifests' (version table).
    pub bookinfo_tag: Option<String>,
    /// Restart every Deployment after deploying and verify its proxy runs `istio` (after a
    /// control-plane upgrade).
    pub restart_workloads: bool,
    /// Patience for waits.
    pub patience: Duration,
    /// The mirror's Deployment, container and Service.
    pub mirror: String,
    /// The run id: the mirror's records keep this run's tags.
    pub run_id: String,
}

/// The running cluster mesh.
pub struct ClusterMesh {
    client: Client,
    opts: ClusterOptions,
    topology: Topology,
    applier: Applier,
    page: Productpage,
    records: Arc<MirrorRecords>,
    /// Feeds `records` while the mesh lives.
    #[allow(dead_code)] // Held for its Drop, which ends the streams.
    mirror_follower: LogFollower,
    /// The run's pods, to prove a page was served from its namespace.
    pods: RunPods,
}

/// The control plane a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Istiod {
    /// Its namespace (usually istio-system).
    pub namespace: String,
    /// The Deployment: `istiod`, or `istiod-<revision>`.
    pub name: String,
    /// `istio.io/rev`: "default" for an unrevisioned install.
    pub revision: String,
    /// The version, from the image tag.
    pub version: IstioVersion,
}

impl Istiod {
    /// The namespace label that has this control plane inject sidecars:
    /// `istio-injection=enabled` for the default revision, else `istio.io/rev=<rev>`
    /// (Istio's injector webhooks select on exactly these).
    pub fn injection_label(&self) -> (&'static str, String) {
        if self.revision == "default" {
            ("istio-injection", "enabled".into())
        } else {
            ("istio.io/rev", self.revision.clone())
        }
    }
}

/// Finds istiod by its labels, as Istio's charts set them
/// (manifests/charts/istio-control/istio-discovery/templates/deployment.yaml: `app: istiod`,
/// `istio.io/rev: <revision or "default">`, named `istiod` or `istiod-<revision>`). With
/// `revision`, that one; else the default revision, or the only one there is.
pub async fn installed_istio(
    client: &Client,
    revision: Option<&str>,
) -> Result<Istiod, ClusterError> {
    let api: Api<Deployment> = Api::all(client.clone());
    let found = api
        .list(&kube::api::ListParams::default().labels("app=istiod"))
        .await
        .map_err(|e| ClusterError::NoIstio(e.to_string()))?;
    let all: Vec<Istiod> = found.items.iter().filter_map(istiod_of).collect();
    let describe = |list: &[Istiod]| {
        list.iter()
            .map(|i| {
                format!(
                    "{}/{} (revision {}, {})",
                    i.namespace, i.name, i.revision, i.version
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pick: Vec<&Istiod> = match revision {
        Some(rev) => all.iter().filter(|i| i.revision == rev).collect(),
        None if all.iter().any(|i| i.revision == "default") => {
            all.iter().filter(|i| i.revision == "default").collect()
        }
        None => all.iter().collect(),
    };
    match (pick.as_slice(), revision) {
        ([one], _) => Ok((*one).clone()),
        ([], None) if found.items.is_empty() => Err(ClusterError::NoIstio("none found".into())),
        ([], None) => Err(ClusterError::NoIstio(format!(
            "found {} Deployment(s) labelled app=istiod, none with a readable version",
            found.items.len()
        ))),
        ([], Some(rev)) => Err(ClusterError::NoIstio(format!(
            "no istiod of revision {rev}; found: {}",
            if all.is_empty() {
                "none".to_owned()
            } else {
                describe(&all)
            }
        ))),
        (_, _) => Err(ClusterError::AmbiguousIstio {
            found: describe(&all),
        }),
    }
}

fn istiod_of(d: &Deployment) -> Option<Istiod> {
    let image = d
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()?;
    let tag = image.rsplit(':').next().unwrap_or("");
    Some(Istiod {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone()?,
        revision: d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("istio.io/rev"))
            .cloned()
            .unwrap_or_else(|| "default".into()),
        version: tag.split('-').next()?.parse().ok()?,
    })
}

/// Where a document stands, for errors: `file` and the line of its `kind`.
fn document_place(set: &ManifestSet, index: usize) -> (String, usize) {
    set.documents.get(index).map_or((String::new(), 0), |d| {
        (
            d.file.display().to_string(),
            d.line_of(&crate::manifest::YamlPath::parse("kind")),
        )
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
        ready::deployment_complete(
            &client,
            &opts.istiod.namespace,
            &opts.istiod.name,
            opts.patience,
        )
        .await?;
        progress.phase("deploy");
        let mut applier = Applier::new(client.clone(), &opts.namespace).await?;
        // Every document is applied, whatever its kind: a kind this project does not know
        // (ServiceEntry, PeerAuthentication, ...) is as much a part of the routing under test.
        let mut docs: Vec<(usize, Value)> = set
            .documents
            .iter()
            .enumerate()
            .map(|(i, d)| (i, for_cluster(&d.value, &opts)))
            .collect();
        docs.sort_by_key(|(_, d)| apply_order(d.get("kind").and_then(Value::as_str).unwrap_or("")));
        let mut rediscovered = false;
        for (index, doc) in &docs {
            let mut applied = applier.apply(*index, doc).await;
            // Istio's CRDs may have arrived after discovery ran: look again once.
            if matches!(applied, Err(ApplyError::UnknownKind { .. })) && !rediscovered {
                rediscovered = true;
                applier.rediscover().await?;
                applied = applier.apply(*index, doc).await;
            }
            if let Err(ApplyError::UnknownKind {
                kind,
                name,
                api_version,
            }) = applied
            {
                let (file, line) = document_place(set, *index);
                return Err(ClusterError::UnservedKind {
                    file,
                    line,
                    kind,
                    name,
                    api_version,
                });
            }
            applied?;
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
            rollout::verify_proxies(&client, &opts.namespace, &opts.istiod.version).await?;
        }
        let since = k8s_openapi::jiff::Timestamp::now();
        let records = Arc::new(MirrorRecords::new(&crate::suite::tag_prefix(&opts.run_id)));
        Ok(ClusterMesh {
            mirror_follower: LogFollower::start(
                &client,
                &opts.namespace,
                &format!("app={}", opts.mirror),
                &opts.mirror,
                since,
                records.clone(),
            ),
            records,
            page: Productpage::new(&opts.ingress, &opts.host),
            pods: RunPods::new(&client, &opts.namespace, &opts.host),
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

/// A document as applied: the Namespace renamed to the run's namespace and labelled for
/// the run's control plane; the Gateway and the VirtualServices bound to a gateway moved to
/// the run's host name; Bookinfo and echo images moved to the version's (or a mirror's)
/// registry and tag.
pub fn for_cluster(doc: &Value, opts: &ClusterOptions) -> Value {
    let mut doc = doc.clone();
    match doc.get("kind").and_then(Value::as_str) {
        Some("Namespace") => {
            doc["metadata"]["name"] = opts.namespace.clone().into();
            if let Some(labels) = doc
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove("istio-injection");
                labels.remove("istio.io/rev");
            }
            let (key, value) = opts.istiod.injection_label();
            doc["metadata"]["labels"][key] = value.into();
        }
        Some("Gateway") => {
            for server in doc
                .pointer_mut("/spec/servers")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                server["hosts"] = json!([opts.host]);
            }
        }
        Some("VirtualService") => {
            let gateways = doc
                .pointer("/spec/gateways")
                .and_then(Value::as_array)
                .is_some_and(|g| g.iter().any(|g| g.as_str() != Some("mesh")));
            if gateways {
                doc["spec"]["hosts"] = json!([opts.host]);
            }
        }
        _ => {}
    }
    if let Some(containers) = doc
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            if let Some(pos) = image.find("/examples-bookinfo-") {
                let (hub, rest) = image.split_at(pos);
                let (name, tag) = rest.rsplit_once(':').unwrap_or((rest, ""));
                let hub = opts.bookinfo_hub.as_deref().unwrap_or(hub);
                let tag = opts.bookinfo_tag.as_deref().unwrap_or(tag);
                c["image"] = format!("{hub}{name}:{tag}").into();
            } else if let (Some(pos), Some(hub)) =
                (image.find("/http-https-echo:"), opts.echo_hub.as_deref())
            {
                c["image"] = format!("{hub}{}", &image[pos..]).into();
            }
        }
    }
    doc
}

/// Asks the API server to delete a namespace this run created (foreground: its objects go
/// first), without waiting.
pub async fn request_namespace_deletion(
    client: &Client,
    namespace: &str,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.delete(namespace, &DeleteParams::foreground())
        .await
        .map(|_| ())
        .map_err(|source| ClusterError::Cleanup {
            namespace: namespace.to_owned(),
            source,
        })
}

/// Deletes a namespace this run created, and waits until it is gone.
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    patience: Duration,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    request_namespace_deletion(client, namespace).await?;
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
        self.opts.istiod.version
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn log_latency(&self) -> Duration {
        // Through the sidecars to the mirror pod, then its log through the API server.
        Duration::from_secs(10)
    }

    async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        let reply = self.page.send(call).await?;
        if let Some(pod) = &reply.pod {
            self.pods.verify(&call.tag, pod).await?;
        }
        Ok(reply)
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
        self.applier
            .apply(0, &doc)
            .await
            .map(|_| ())
            .map_err(|e| MeshError::Apply {
                name,
                message: e.to_string(),
            })
    }

    async fn set_mirror_running(&self, running: bool) -> Result<Duration, MeshError> {
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
            ready::sidecars_ready(&self.client, &self.opts.namespace, self.opts.patience)
                .await
                .map_err(|e| MeshError::Mirror(e.to_string()))?;
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
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_api::ApiServer;

    fn istiod(revision: &str) -> Istiod {
        Istiod {
            namespace: "istio-system".into(),
            name: "istiod".into(),
            revision: revision.into(),
            version: "1.29.8".parse().expect("version"),
        }
    }

    fn opts() -> ClusterOptions {
        ClusterOptions {
            namespace: "test-20261125-1a2b".into(),
            ingress: "http://127.0.0.1:30080".into(),
            host: "20261125-1a2b.mirror-e2e.test".into(),
            istiod: istiod("default"),
            bookinfo_hub: Some("docker.io/istio".into()),
            echo_hub: None,
            bookinfo_tag: Some("1.20.2".into()),
            restart_workloads: false,
            patience: Duration::from_secs(5),
            mirror: "mirror".into(),
            run_id: "20261125-1a2b".into(),
        }
    }

    #[test]
    fn the_runs_gateway_and_ingress_routing_bind_the_runs_host_only() {
        let gateway: Value = serde_yaml::from_str(
            "
kind: Gateway
metadata: {name: bookinfo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ['*']
",
        )
        .expect("fixture");
        let ingress: Value = serde_yaml::from_str(
            "
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ['*']
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: productpage}}]}]
",
        )
        .expect("fixture");
        let mesh: Value = serde_yaml::from_str(
            "kind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [reviews], http: []}",
        )
        .expect("fixture");
        assert_eq!(
            for_cluster(&gateway, &opts())["spec"]["servers"][0]["hosts"],
            json!(["20261125-1a2b.mirror-e2e.test"])
        );
        assert_eq!(
            for_cluster(&ingress, &opts())["spec"]["hosts"],
            json!(["20261125-1a2b.mirror-e2e.test"])
        );
        assert_eq!(
            for_cluster(&mesh, &opts()),
            mesh,
            "mesh routing is left as it is"
        );
    }

    #[test]
    fn a_revisioned_control_plane_labels_the_namespace_with_its_revision() {
        let ns = json!({"kind": "Namespace", "metadata": {"name": "test", "labels": {"istio-injection": "enabled", "team": "a"}}});
        let mut o = opts();
        o.istiod = istiod("1-31-1");
        let labels = &for_cluster(&ns, &o)["metadata"]["labels"];
        assert_eq!(labels, &json!({"team": "a", "istio.io/rev": "1-31-1"}));
        let labels = &for_cluster(&ns, &opts())["metadata"]["labels"];
        assert_eq!(labels, &json!({"team": "a", "istio-injection": "enabled"}));
    }

    #[test]
    fn a_mirror_registry_moves_the_echo_image() {
        let mut o = opts();
        o.echo_hub = Some("mirror.example/mendhak".into());
        let d = for_cluster(
            &json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
                {"image": "docker.io/mendhak/http-https-echo:41"}]}}}}),
            &o,
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "mirror.example/mendhak/http-https-echo:41"
        );
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

    fn istiod_deployment(name: &str, revision: Option<&str>, image: &str) -> Value {
        let mut labels = json!({"app": "istiod", "istio": "pilot"});
        if let Some(rev) = revision {
            labels["istio.io/rev"] = rev.into();
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "istio-system", "labels": labels},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}}})
    }

    /// Asks `installed_istio(revision)` and answers the label-selected list with `items`.
    async fn find_istiod(
        revision: Option<&'static str>,
        items: Vec<Value>,
    ) -> Result<Istiod, ClusterError> {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move { installed_istio(&client, revision).await });
        let (request, _) = server.next().await;
        assert_eq!(request.uri().path(), "/apis/apps/v1/deployments");
        assert!(
            request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("labelSelector=app%3Distiod"),
            "{}",
            request.uri()
        );
        server
            .respond(200, json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": items}))
            .await;
        task.await.expect("task")
    }

    #[tokio::test]
    async fn istiod_is_found_by_its_labels_with_or_without_a_revision() {
        let plain = find_istiod(
            None,
            vec![istiod_deployment(
                "istiod",
                Some("default"),
                "docker.io/istio/pilot:1.31.1-distroless",
            )],
        )
        .await
        .expect("found");
        assert_eq!(
            (plain.name.as_str(), plain.revision.as_str()),
            ("istiod", "default")
        );
        assert_eq!(plain.version.to_string(), "1.31.1");
        assert_eq!(
            plain.injection_label(),
            ("istio-injection", "enabled".into())
        );

        let revisioned = find_istiod(
            None,
            vec![istiod_deployment(
                "istiod-1-31-1",
                Some("1-31-1"),
                "gcr.io/istio-release/pilot:1.31.1",
            )],
        )
        .await
        .expect("the only control plane is used");
        assert_eq!(revisioned.name, "istiod-1-31-1");
        assert_eq!(
            revisioned.injection_label(),
            ("istio.io/rev", "1-31-1".into())
        );

        let canary = vec![
            istiod_deployment(
                "istiod-1-30-5",
                Some("1-30-5"),
                "docker.io/istio/pilot:1.30.5",
            ),
            istiod_deployment(
                "istiod-1-31-1",
                Some("1-31-1"),
                "docker.io/istio/pilot:1.31.1",
            ),
        ];
        let err = find_istiod(None, canary.clone())
            .await
            .expect_err("ambiguous")
            .to_string();
        assert!(
            err.contains("--revision") && err.contains("istio-system/istiod-1-30-5"),
            "{err}"
        );
        let picked = find_istiod(Some("1-30-5"), canary).await.expect("picked");
        assert_eq!(picked.version.to_string(), "1.30.5");
    }

    #[tokio::test]
    async fn no_istiod_is_explained() {
        let err = find_istiod(None, vec![])
            .await
            .expect_err("absent")
            .to_string();
        assert!(
            err.starts_with("Istio is not installed") && err.contains("--install-istio"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn every_kind_is_applied_and_an_unserved_one_names_its_file_and_line() {
        let set = ManifestSet::from_str(
            "extra.yaml",
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec: {hosts: [api.example.com], resolution: DNS, ports: [{number: 80, name: http, protocol: HTTP}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
",
        );
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let mut progress = Progress::new();
            ClusterMesh::deploy(client, &set, opts(), &mut progress)
                .await
                .map(|_| ())
        });
        // istiod's rollout, by the label-found name.
        let (wait, _) = server.next().await;
        assert_eq!(
            wait.uri().path(),
            "/apis/apps/v1/namespaces/istio-system/deployments"
        );
        server
            .respond(200, json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "1"},
                "items": [{"metadata": {"name": "istiod", "namespace": "istio-system", "generation": 1, "resourceVersion": "1"},
                    "spec": {"replicas": 1, "selector": {}, "template": {}},
                    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}]}))
            .await;
        server.answer_discovery().await;
        let mut applied = Vec::new();
        for _ in 0..2 {
            let (patch, body) = server.next().await;
            assert_eq!(patch.method(), "PATCH");
            applied.push(patch.uri().path().to_owned());
            server.respond(200, body).await;
        }
        assert_eq!(
            applied,
            [
                "/api/v1/namespaces/test-20261125-1a2b",
                "/apis/networking.istio.io/v1/namespaces/test-20261125-1a2b/serviceentries/external"
            ],
            "the namespace first, then the ServiceEntry this project has no type for"
        );
        // The Widget: discovery is asked once more, then the run stops naming the document.
        server.answer_discovery().await;
        let err = task
            .await
            .expect("task")
            .expect_err("unserved kind")
            .to_string();
        assert_eq!(
            err,
            "extra.yaml:11: Widget w: the API server serves no Widget in example.com/v1"
        );
    }

    #[tokio::test]
    async fn a_page_served_by_another_namespaces_pod_is_refused() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let pods = RunPods::new(&client, "test-run", "run.mirror-e2e.test");
            let ours = pods.verify("t1", "reviews-v2-5d9c7f7c8b-x2x9p").await;
            let cached = pods.verify("t2", "reviews-v2-5d9c7f7c8b-x2x9p").await;
            let theirs = pods.verify("t3", "reviews-v2-6f8d9c7b5a-k4m2q").await;
            (ours, cached, theirs)
        });
        let list = json!({"apiVersion": "v1", "kind": "PartialObjectMetadataList", "metadata": {},
            "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "reviews-v2-5d9c7f7c8b-x2x9p"}}]});
        let (request, _) = server.next().await;
        assert_eq!(request.uri().path(), "/api/v1/namespaces/test-run/pods");
        server.respond(200, list.clone()).await;
        // The cached name needs no request; the unknown one is listed again.
        let _ = server.next().await;
        server.respond(200, list).await;
        let (ours, cached, theirs) = task.await.expect("task");
        ours.expect("our pod");
        cached.expect("cached");
        let err = theirs.expect_err("not ours").to_string();
        assert!(
            err.contains(
                "reviews-v2-6f8d9c7b5a-k4m2q, which is not in the run's namespace test-run"
            ),
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

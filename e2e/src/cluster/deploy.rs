//! Deploying the manifests into the run's namespace: each document moved to the run's
//! namespace, host, control plane and images (`for_cluster`), applied in order under the
//! run's rules for cluster-scoped documents, then awaited until it is rolled out.

use std::sync::Arc;

use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::apply::{Applier, ApplyError, apply_order};
use super::logs::LogFollower;
use super::{
    ClusterError, ClusterOptions, ClusterScoped, Proxies, apply, ready, rollout, route_status,
};
use super::{ClusterMesh, RunPods};
use crate::manifest::ManifestSet;
use crate::mirror_log::MirrorRecords;
use crate::productpage::Productpage;
use crate::progress::Progress;
use crate::topology::Topology;

/// Where a document stands, for errors: `file` and the line of its `kind`.
fn document_place(set: &ManifestSet, index: usize) -> (String, usize) {
    set.documents.get(index).map_or((String::new(), 0), |d| {
        (
            d.file.display().to_string(),
            d.line_of(&crate::manifest::YamlPath::parse("kind")),
        )
    })
}

/// The kind of a CustomResourceDefinition.
const CRD: &str = "CustomResourceDefinition";

/// What applying one document needs: where it goes, where it was written, and the run's
/// rules for cluster-scoped documents.
struct Deploying<'a> {
    applier: &'a Applier,
    set: &'a ManifestSet,
    opts: &'a ClusterOptions,
}

impl<'a> Deploying<'a> {
    fn new(applier: &'a Applier, set: &'a ManifestSet, opts: &'a ClusterOptions) -> Self {
        Deploying { applier, set, opts }
    }
}

/// The refusal of a cluster-scoped document (other than the run's Namespace) where the run
/// must not change the cluster beyond its namespace. A kind discovery does not know yet
/// passes here and is checked again when it is applied.
fn scope_refusal(
    Deploying { applier, set, opts }: &Deploying<'_>,
    index: usize,
    doc: &Value,
) -> Option<ClusterError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "Namespace"
        || opts.cluster_scoped != ClusterScoped::Refuse
        || applier.scope(doc) != Some(Scope::Cluster)
    {
        return None;
    }
    let (file, line) = document_place(set, index);
    Some(ClusterError::ClusterScoped {
        file,
        line,
        kind: kind.to_owned(),
        name: doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    })
}

/// Applies one document, refusing or recording a cluster-scoped one as `opts` says, and
/// naming the document's file and line in an error.
async fn apply_document(
    deploying: &Deploying<'_>,
    index: usize,
    doc: &Value,
) -> Result<(), ClusterError> {
    if let Some(refused) = scope_refusal(deploying, index, doc) {
        return Err(refused);
    }
    let Deploying { applier, set, opts } = deploying;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let track = opts.cluster_scoped == ClusterScoped::ApplyAndDelete
        && kind != "Namespace"
        && applier.scope(doc) == Some(Scope::Cluster);
    // Only what did not exist before is the run's to delete.
    let created = if track {
        !applier.exists(index, doc).await?
    } else {
        false
    };
    match applier.apply(index, doc).await {
        Ok(object) => {
            if let (true, Some((resource, _))) = (created, applier.resolve(doc)) {
                opts.created.record(resource, object.name_any());
            }
            Ok(())
        }
        Err(ApplyError::UnknownKind {
            kind,
            name,
            api_version,
        }) => {
            let (file, line) = document_place(set, index);
            Err(ClusterError::UnservedKind {
                file,
                line,
                kind,
                name,
                api_version,
            })
        }
        Err(e @ ApplyError::Rejected { .. }) => {
            let ApplyError::Rejected { message, .. } = &e else {
                unreachable!("matched above")
            };
            let fields = apply::undeclared_fields(message);
            let document = set.documents.get(index);
            match (fields.first(), document) {
                (Some(field), Some(d)) => Err(ClusterError::UndeclaredField {
                    file: d.file.display().to_string(),
                    line: d.line_of(&crate::manifest::YamlPath::parse(field)),
                    field: field.clone(),
                    source: Box::new(e),
                }),
                _ => Err(e.into()),
            }
        }
        // "document 16: no metadata.name" helps nobody find it: say which file and line.
        Err(ApplyError::Malformed { message, .. }) => {
            let (file, line) = document_place(set, index);
            Err(ClusterError::Manifests {
                path: format!("{file}:{line}"),
                message: format!("{kind}: {message}"),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The namespace the manifests were written for: their Namespace document's, else the one
/// their objects name.
fn manifests_namespace(set: &ManifestSet) -> Option<String> {
    set.of_kind("Namespace")
        .next()
        .map(|d| d.name().to_owned())
        .or_else(|| {
            set.documents.iter().find_map(|d| {
                d.value
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        })
}

/// Moves host names and gateway references that name the manifests' namespace `from`
/// (`reviews.test`, `reviews.test.svc`, `reviews.test.svc.cluster.local`, `test/gateway`) to
/// the run's namespace: left as written, they would route to namespace `test`, which on a
/// shared cluster is someone else's or nobody's.
pub(super) fn move_namespace(value: &mut Value, from: &str, to: &str) {
    /// A host name or reference, moved, or `None` when it names another namespace.
    type RewriteFn<'a> = &'a dyn Fn(&str) -> Option<String>;
    if from == to {
        return;
    }
    let host = |text: &str| -> Option<String> {
        let (name, rest) = text.split_once('.')?;
        let rest = rest.strip_prefix(from)?;
        matches!(rest, "" | ".svc" | ".svc.cluster.local").then(|| format!("{name}.{to}{rest}"))
    };
    let gateway = |text: &str| -> Option<String> {
        let name = text.strip_prefix(from)?.strip_prefix('/')?;
        Some(format!("{to}/{name}"))
    };
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let rewrite: Option<RewriteFn<'_>> = match key.as_str() {
                    "host" | "hosts" => Some(&host),
                    "gateways" => Some(&gateway),
                    _ => None,
                };
                match (rewrite, v) {
                    (Some(f), Value::String(text)) => {
                        if let Some(moved) = f(text) {
                            *text = moved;
                        }
                    }
                    (Some(f), Value::Array(items)) => {
                        for item in items {
                            if let Some(moved) = item.as_str().and_then(f) {
                                *item = moved.into();
                            }
                        }
                    }
                    (_, v) => move_namespace(v, from, to),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                move_namespace(item, from, to);
            }
        }
        _ => {}
    }
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
        let from = manifests_namespace(set);
        // Every document is applied, whatever its kind: a kind this project does not know
        // (ServiceEntry, PeerAuthentication, ...) is as much a part of the routing under test.
        // Only provisioning configuration kept beside the manifests (kind's cluster config,
        // the IstioOperator istioctl reads) is not an object of the run.
        let mut docs: Vec<(usize, Value)> = set
            .documents
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.is_provider_configuration())
            .map(|(i, d)| (i, for_cluster(&d.value, &opts, from.as_deref())))
            .collect();
        docs.sort_by_key(|(_, d)| apply_order(d.get("kind").and_then(Value::as_str).unwrap_or("")));
        // Refuse what is known to be cluster-wide before anything is applied.
        for (index, doc) in &docs {
            if let Some(refused) = scope_refusal(&Deploying::new(&applier, set, &opts), *index, doc)
            {
                return Err(refused);
            }
        }
        apply_all(&client, &mut applier, set, &opts, &docs).await?;
        await_workloads(&client, &topology, &opts, progress).await?;
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
            manifests_namespace: from,
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

/// Applies the documents in order; a CRD's kind is served only once it is Established, so
/// the documents after new CRDs wait for them and discovery looks again.
async fn apply_all(
    client: &Client,
    applier: &mut Applier,
    set: &ManifestSet,
    opts: &ClusterOptions,
    docs: &[(usize, Value)],
) -> Result<(), ClusterError> {
    let mut rediscovered = false;
    let mut new_crds: Vec<String> = Vec::new();
    for (index, doc) in docs {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        // The CRDs just applied serve their kinds only once Established: wait for that
        // (apiextensions' NamesAccepted, then Established), then look again.
        if kind != CRD && !new_crds.is_empty() {
            for name in std::mem::take(&mut new_crds) {
                ready::crd_established(client, &name, opts.patience).await?;
            }
            applier.rediscover().await?;
            rediscovered = true;
        }
        let mut applied = apply_document(&Deploying::new(applier, set, opts), *index, doc).await;
        // Istio's CRDs may have arrived after discovery ran: look again once.
        if matches!(applied, Err(ClusterError::UnservedKind { .. })) && !rediscovered {
            rediscovered = true;
            applier.rediscover().await?;
            applied = apply_document(&Deploying::new(applier, set, opts), *index, doc).await;
        }
        applied?;
        if kind == CRD {
            new_crds.push(
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// Waits until every Deployment is rolled out with its sidecars; after an upgrade, restarts
/// them and proves their proxies run the new Istio.
async fn await_workloads(
    client: &Client,
    topology: &Topology,
    opts: &ClusterOptions,
    progress: &mut Progress,
) -> Result<(), ClusterError> {
    progress.phase("wait for workloads");
    for deployment in &topology.deployments {
        let name = deployment.object.metadata.name.clone().unwrap_or_default();
        ready::deployment_complete(client, &opts.namespace, &name, opts.patience).await?;
    }
    if opts.proxies == Proxies::Injected {
        ready::sidecars_ready(client, &opts.namespace, opts.patience).await?;
    }
    // Before any traffic: istiod took every HTTPRoute, with its references resolved.
    let routes: Vec<String> = topology
        .http_routes
        .iter()
        .filter_map(|r| r.object.metadata.name.clone())
        .collect();
    if !routes.is_empty() {
        progress.phase("wait for the HTTPRoutes' status");
        route_status::http_routes_accepted(client, &opts.namespace, &routes, opts.patience).await?;
    }
    if opts.restart_workloads {
        progress.phase("restart workloads");
        let at = k8s_openapi::jiff::Timestamp::now().to_string();
        for deployment in &topology.deployments {
            let name = deployment.object.metadata.name.clone().unwrap_or_default();
            rollout::restart(client, &opts.namespace, &name, &at).await?;
        }
        for deployment in &topology.deployments {
            let name = deployment.object.metadata.name.clone().unwrap_or_default();
            ready::deployment_complete(client, &opts.namespace, &name, opts.patience).await?;
        }
        ready::sidecars_ready(client, &opts.namespace, opts.patience).await?;
        rollout::verify_proxies(client, &opts.namespace, &opts.istiod.version).await?;
    }
    Ok(())
}

/// A document as applied: the Namespace renamed to the run's namespace and labelled for
/// the run's control plane; the Gateway and the VirtualServices bound to a gateway moved to
/// the run's host name; Bookinfo and echo images moved to the version's (or a mirror's)
/// registry and tag; host names and gateway references of the manifests' namespace `from`
/// moved to the run's (see [`move_namespace`]).
pub fn for_cluster(doc: &Value, opts: &ClusterOptions, from: Option<&str>) -> Value {
    let mut doc = doc.clone();
    if let (Some(from), Some(spec)) = (from, doc.get_mut("spec")) {
        move_namespace(spec, from, &opts.namespace);
    }
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

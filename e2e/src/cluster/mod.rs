//! Cluster mode: the suite against a real Kubernetes cluster with Istio, through the API.
//!
//! This crate does not create clusters or install Istio (xtask does); it applies the
//! manifests, waits for them, drives traffic through the ingress gateway, reads the mirror's
//! logs, and collects evidence.

pub mod apply;
pub mod evidence;
pub mod install;
pub mod logs;
pub mod node_agent;
pub mod ready;
pub mod rollout;
#[cfg(test)]
mod test_api;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::istio::VirtualService;
use crate::manifest::ManifestSet;
use crate::mesh::{Call, Mesh, MeshError, MirrorChange, Reply};
use crate::mirror_log::MirrorRecords;
use crate::productpage::Productpage;
use crate::progress::Progress;
use crate::topology::Topology;
use crate::version::{IstioVersion, ShadowRule};
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
    /// The API server refused a request the run needs.
    #[error(
        "forbidden: the user may not {verb} {resource} in {namespace} ({why}); ask for that permission: {message}"
    )]
    Forbidden {
        /// The verb refused.
        verb: &'static str,
        /// The resource, `plural.group`.
        resource: &'static str,
        /// Where (a namespace, or "all namespaces").
        namespace: String,
        /// What the run needed it for.
        why: &'static str,
        /// The server's message.
        message: String,
    },
    /// A request failed otherwise.
    #[error("{what}: {source}")]
    Request {
        /// What was asked.
        what: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// `--install-istio` on a cluster that already runs istiod.
    #[error(
        "refusing --install-istio: this cluster already runs istiod ({found}); installing would overwrite that control plane. Drop --install-istio to use it (--revision picks one)"
    )]
    IstioPresent {
        /// `namespace/name (revision, version)` of each istiod.
        found: String,
    },
    /// The control plane was found, but its version could not be read.
    #[error("istiod {namespace}/{name}: its version could not be read: {tried}")]
    IstiodVersion {
        /// Its namespace.
        namespace: String,
        /// The Deployment.
        name: String,
        /// What each source said.
        tried: String,
    },
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
    /// A cluster-scoped document where the run may only create its namespace.
    #[error(
        "{file}:{line}: {kind} {name} is cluster-scoped: on an existing cluster the run creates only its own namespace; pass --allow-cluster-scoped to apply it (what the run creates cluster-wide is deleted at the end)"
    )]
    ClusterScoped {
        /// The manifest file.
        file: String,
        /// The line of the document.
        line: usize,
        /// Kind.
        kind: String,
        /// Object name.
        name: String,
    },
    /// The server's strict validation refused a field the schema does not declare.
    #[error("{file}:{line}: field {field} is not declared in the schema: {source}")]
    UndeclaredField {
        /// The manifest file.
        file: String,
        /// The line of the field.
        line: usize,
        /// The field's path, `spec.http[0].mirro`.
        field: String,
        /// The server's refusal.
        #[source]
        source: Box<ApplyError>,
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
    /// What to do with cluster-scoped documents (other than the run's Namespace).
    pub cluster_scoped: ClusterScoped,
    /// The cluster-scoped objects the run created, to delete at the end.
    pub created: CreatedObjects,
    /// Where the pods' proxies are.
    pub proxies: Proxies,
}

/// Where the pods' proxies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxies {
    /// Sidecars injected by istiod's webhook: each pod has its `istio-proxy`, awaited Ready.
    Injected,
    /// The node's data plane (`node_agent`, on a kwok node): no pod has a sidecar; one
    /// Envoy outside the pods stands for them.
    Node,
}

/// What a run may do with cluster-scoped documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterScoped {
    /// Apply them: the cluster is the run's own (kind), and goes with it.
    Apply,
    /// Refuse them, naming file and line: on an existing cluster only the run's namespace
    /// is created.
    Refuse,
    /// Apply them, and delete at the end those that did not exist before (an existing
    /// cluster, with `--allow-cluster-scoped`).
    ApplyAndDelete,
}

/// The cluster-scoped objects a run created, shared with whoever cleans up (the end of the
/// run, or its Ctrl-C handler).
#[derive(Debug, Clone, Default)]
pub struct CreatedObjects(Arc<Mutex<Vec<(ApiResource, String)>>>);

impl CreatedObjects {
    /// The run created `name` of `resource`.
    pub fn record(&self, resource: ApiResource, name: String) {
        self.lock().push((resource, name));
    }

    /// What the run created, `plural.group/name` each, in the order created.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(r, name)| format!("{}/{name}", qualified(r)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ApiResource, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `plural.group` (`plural` for the core group), as kubectl names a resource.
fn qualified(r: &ApiResource) -> String {
    if r.group.is_empty() {
        r.plural.clone()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// Asks the API server to delete the cluster-scoped objects the run created, newest first
/// (a custom resource before its definition); one that is already gone is fine. Does not
/// wait: deletion of a definition finishes when its objects are gone.
pub async fn delete_created(client: &Client, created: &CreatedObjects) -> Result<(), ClusterError> {
    let objects = std::mem::take(&mut *created.lock());
    for (resource, name) in objects.into_iter().rev() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.delete(&name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ClusterError::Request {
                    what: format!("delete {}/{name}", qualified(&resource)),
                    source,
                });
            }
        }
    }
    Ok(())
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
    /// The namespace the manifests were written for (host names in it move to the run's).
    manifests_namespace: Option<String>,
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
    /// The version.
    pub version: IstioVersion,
    /// Where the version was read (`image tag`, `label app.kubernetes.io/version`, ...).
    pub version_from: &'static str,
    /// Whether mirrored requests' Host carries `-shadow`, by the version or istiod's env.
    pub shadow_rule: ShadowRule,
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
    let found = list_istiods(client).await?;
    let describe = |list: &[&Listed]| {
        list.iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&Listed> = found.iter().collect();
    let pick: Vec<&Listed> = match revision {
        Some(rev) => all.iter().copied().filter(|l| l.revision == rev).collect(),
        None if all.iter().any(|l| l.revision == "default") => all
            .iter()
            .copied()
            .filter(|l| l.revision == "default")
            .collect(),
        None => all.clone(),
    };
    match (pick.as_slice(), revision) {
        ([one], _) => one.istiod().ok_or_else(|| one.unreadable()),
        ([], None) => Err(ClusterError::NoIstio("none found".into())),
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

/// Fails when the cluster runs any istiod: `--install-istio` would install this project's
/// IstioOperator over someone else's control plane.
pub async fn refuse_install_over_istio(client: &Client) -> Result<(), ClusterError> {
    let found = list_istiods(client).await?;
    if found.is_empty() {
        return Ok(());
    }
    Err(ClusterError::IstioPresent {
        found: found
            .iter()
            .map(Listed::describe)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// What listing istiod needs: the verb, the resource and where.
const ISTIOD_LIST: (&str, &str, &str) = ("list", "deployments.apps", "all namespaces");

/// Every Deployment labelled `app=istiod`. A refusal is reported as what it is (a 403 on a
/// shared cluster names what the user lacks), never as an absent Istio.
async fn list_istiods(client: &Client) -> Result<Vec<Listed>, ClusterError> {
    let api: Api<Deployment> = Api::all(client.clone());
    let (verb, resource, namespace) = ISTIOD_LIST;
    let found = api
        .list(&kube::api::ListParams::default().labels("app=istiod"))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                verb,
                resource,
                namespace: namespace.to_owned(),
                why: "to find istiod by its label app=istiod",
                message: status.message.clone(),
            },
            source => ClusterError::Request {
                what: format!("{verb} {resource} labelled app=istiod in {namespace}"),
                source,
            },
        })?;
    Ok(found.items.iter().map(Listed::of).collect())
}

/// An istiod Deployment as listed: who it is, its version (or why it could not be read),
/// and its shadow-host setting.
struct Listed {
    namespace: String,
    name: String,
    revision: String,
    version: Result<(IstioVersion, &'static str), String>,
    shadow_env: Result<Option<String>, String>,
}

/// The istiod container: `discovery` in Istio's charts, else the first.
fn discovery_container(d: &Deployment) -> Option<&k8s_openapi::api::core::v1::Container> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "discovery")
        .or_else(|| containers.first())
}

impl Listed {
    fn of(d: &Deployment) -> Listed {
        let labels = d.metadata.labels.clone().unwrap_or_default();
        let revision = labels
            .get("istio.io/rev")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let container = discovery_container(d);
        let env = |name: &str| -> Result<Option<String>, String> {
            let Some(var) = container
                .and_then(|c| c.env.as_ref())
                .and_then(|env| env.iter().find(|e| e.name == name))
            else {
                return Ok(None);
            };
            match (&var.value, &var.value_from) {
                (_, Some(from)) => Err(format!(
                    "istiod's {name} is set from {}, which the run does not read",
                    describe_env_source(from)
                )),
                (value, None) => Ok(Some(value.clone().unwrap_or_default())),
            }
        };
        Listed {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            version: istiod_version(container, &labels, &revision, env("ISTIO_VERSION")),
            shadow_env: env(crate::version::DISABLE_SHADOW_HOST_SUFFIX),
            revision,
        }
    }

    /// The error for a version that could not be read.
    fn unreadable(&self) -> ClusterError {
        ClusterError::IstiodVersion {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            tried: self.version.clone().err().unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        let version = match &self.version {
            Ok((v, _)) => v.to_string(),
            Err(_) => "version unknown".into(),
        };
        format!(
            "{}/{} (revision {}, {version})",
            self.namespace, self.name, self.revision
        )
    }

    /// The control plane, when its version could be read (else see [`Listed::unreadable`]).
    fn istiod(&self) -> Option<Istiod> {
        let (version, version_from) = self.version.clone().ok()?;
        Some(Istiod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            revision: self.revision.clone(),
            version,
            version_from,
            shadow_rule: ShadowRule::for_istiod(
                version,
                self.shadow_env
                    .as_ref()
                    .map(Option::as_deref)
                    .map_err(Clone::clone),
            ),
        })
    }
}

/// Where an env var's `valueFrom` points, for a message.
fn describe_env_source(from: &k8s_openapi::api::core::v1::EnvVarSource) -> String {
    if let Some(c) = &from.config_map_key_ref {
        format!("ConfigMap {} key {}", c.name, c.key)
    } else if let Some(s) = &from.secret_key_ref {
        format!("Secret {} key {}", s.name, s.key)
    } else if let Some(f) = &from.field_ref {
        format!("field {}", f.field_path)
    } else {
        "a reference".into()
    }
}

/// istiod's version, from the first source that names one: the image tag
/// (`pilot:1.31.1-distroless`), the `ISTIO_VERSION` env of the container, the chart's
/// `app.kubernetes.io/version` and `helm.sh/chart: istiod-<version>` labels (Istio's
/// zzz_profile.yaml `istio.labels`), a revision named after a version (`1-31-1`). When none
/// does, what each said.
fn istiod_version(
    container: Option<&k8s_openapi::api::core::v1::Container>,
    labels: &std::collections::BTreeMap<String, String>,
    revision: &str,
    env: Result<Option<String>, String>,
) -> Result<(IstioVersion, &'static str), String> {
    let parse = |text: &str| -> Option<IstioVersion> {
        text.split('-').next().and_then(|v| v.parse().ok())
    };
    let mut tried = Vec::new();
    match container.and_then(|c| c.image.as_deref()) {
        None => tried.push("no image".to_owned()),
        Some(image) if image.contains('@') => {
            tried.push(format!("image {image} is pinned by digest"));
        }
        Some(image) => {
            let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
            match parse(tag) {
                Some(v) => return Ok((v, "image tag")),
                None => tried.push(format!("image {image} has no version tag")),
            }
        }
    }
    match env {
        Ok(Some(value)) => match parse(&value) {
            Some(v) => return Ok((v, "ISTIO_VERSION")),
            None => tried.push(format!("ISTIO_VERSION={value:?} is no version")),
        },
        Ok(None) => tried.push("no ISTIO_VERSION env".to_owned()),
        Err(why) => tried.push(why),
    }
    match labels.get("app.kubernetes.io/version") {
        Some(value) => match parse(value) {
            Some(v) => return Ok((v, "label app.kubernetes.io/version")),
            None => tried.push(format!(
                "label app.kubernetes.io/version={value:?} is no version"
            )),
        },
        None => tried.push("no app.kubernetes.io/version label".to_owned()),
    }
    match labels.get("helm.sh/chart") {
        Some(chart) => match chart.strip_prefix("istiod-").and_then(parse) {
            Some(v) => return Ok((v, "label helm.sh/chart")),
            None => tried.push(format!(
                "label helm.sh/chart={chart:?} names no istiod version"
            )),
        },
        None => tried.push("no helm.sh/chart label".to_owned()),
    }
    match parse(&revision.replace('-', ".")) {
        Some(v) if revision.split('-').count() == 3 => Ok((v, "revision name")),
        _ => {
            tried.push(format!("revision {revision:?} names no version"));
            Err(tried.join("; "))
        }
    }
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
fn move_namespace(value: &mut Value, from: &str, to: &str) {
    /// A host name or reference, moved, or `None` when it names another namespace.
    type Rewrite<'a> = &'a dyn Fn(&str) -> Option<String>;
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
                let rewrite: Option<Rewrite<'_>> = match key.as_str() {
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
        let mut rediscovered = false;
        let mut new_crds: Vec<String> = Vec::new();
        for (index, doc) in &docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            // The CRDs just applied serve their kinds only once Established: wait for that
            // (apiextensions' NamesAccepted, then Established), then look again.
            if kind != CRD && !new_crds.is_empty() {
                for name in std::mem::take(&mut new_crds) {
                    ready::crd_established(&client, &name, opts.patience).await?;
                }
                applier.rediscover().await?;
                rediscovered = true;
            }
            let mut applied =
                apply_document(&Deploying::new(&applier, set, &opts), *index, doc).await;
            // Istio's CRDs may have arrived after discovery ran: look again once.
            if matches!(applied, Err(ClusterError::UnservedKind { .. })) && !rediscovered {
                rediscovered = true;
                applier.rediscover().await?;
                applied = apply_document(&Deploying::new(&applier, set, &opts), *index, doc).await;
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
        progress.phase("wait for workloads");
        for deployment in &topology.deployments {
            let name = deployment.object.metadata.name.clone().unwrap_or_default();
            ready::deployment_complete(&client, &opts.namespace, &name, opts.patience).await?;
        }
        if opts.proxies == Proxies::Injected {
            ready::sidecars_ready(&client, &opts.namespace, opts.patience).await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_api::ApiServer;

    fn istiod(revision: &str) -> Istiod {
        let version = "1.29.8".parse().expect("version");
        Istiod {
            namespace: "istio-system".into(),
            name: "istiod".into(),
            revision: revision.into(),
            version,
            version_from: "image tag",
            shadow_rule: ShadowRule::for_istiod(version, Ok(None)),
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
            cluster_scoped: ClusterScoped::Refuse,
            created: CreatedObjects::default(),
            proxies: Proxies::Injected,
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
            for_cluster(&gateway, &opts(), None)["spec"]["servers"][0]["hosts"],
            json!(["20261125-1a2b.mirror-e2e.test"])
        );
        assert_eq!(
            for_cluster(&ingress, &opts(), None)["spec"]["hosts"],
            json!(["20261125-1a2b.mirror-e2e.test"])
        );
        assert_eq!(
            for_cluster(&mesh, &opts(), None),
            mesh,
            "mesh routing is left as it is"
        );
    }

    #[test]
    fn a_revisioned_control_plane_labels_the_namespace_with_its_revision() {
        let ns = json!({"kind": "Namespace", "metadata": {"name": "test", "labels": {"istio-injection": "enabled", "team": "a"}}});
        let mut o = opts();
        o.istiod = istiod("1-31-1");
        let labels = &for_cluster(&ns, &o, None)["metadata"]["labels"];
        assert_eq!(labels, &json!({"team": "a", "istio.io/rev": "1-31-1"}));
        let labels = &for_cluster(&ns, &opts(), None)["metadata"]["labels"];
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
            None,
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
            None,
        );
        assert_eq!(ns["metadata"]["name"], "test-20261125-1a2b");
        assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
        let d = for_cluster(
            &json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
                {"image": "registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3"},
                {"image": "docker.io/mendhak/http-https-echo:41"}]}}}}),
            &opts(),
            None,
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
        find_istiod_answered(
            revision,
            200,
            json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": items}),
        )
        .await
    }

    /// Asks `installed_istio(revision)` and answers the label-selected list with `body`.
    async fn find_istiod_answered(
        revision: Option<&'static str>,
        code: u16,
        body: Value,
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
        server.respond(code, body).await;
        task.await.expect("task")
    }

    #[tokio::test]
    async fn a_refused_istiod_lookup_says_forbidden_and_what_is_lacking() {
        let err = find_istiod_answered(
            None,
            403,
            test_api::status(
                403,
                "Forbidden",
                "deployments.apps is forbidden: User \"dev\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope",
            ),
        )
        .await
        .expect_err("forbidden")
        .to_string();
        assert!(
            err.starts_with("forbidden: the user may not list deployments.apps in all namespaces"),
            "{err}"
        );
        assert!(
            !err.contains("not installed") && !err.contains("--install-istio"),
            "a 403 is not an absent Istio: {err}"
        );
    }

    #[tokio::test]
    async fn installing_istio_is_refused_where_any_istiod_runs() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move { refuse_install_over_istio(&client).await });
        let (request, _) = server.next().await;
        assert_eq!(request.uri().path(), "/apis/apps/v1/deployments");
        server
            .respond(200, json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {},
                "items": [istiod_deployment("istiod-canary", Some("canary"), "docker.io/istio/pilot@sha256:0f")]}))
            .await;
        let err = task.await.expect("task").expect_err("refused").to_string();
        assert!(
            err.starts_with("refusing --install-istio: this cluster already runs istiod (istio-system/istiod-canary (revision canary, version unknown))"),
            "{err}"
        );

        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move { refuse_install_over_istio(&client).await });
        let _ = server.next().await;
        server
            .respond(200, json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": []}))
            .await;
        task.await.expect("task").expect("no istiod: install away");
    }

    #[tokio::test]
    async fn a_digest_pinned_istiod_is_versioned_by_its_labels_or_says_what_was_tried() {
        // Istio's charts label istiod with their version (zzz_profile.yaml `istio.labels`).
        for (label, value) in [
            ("app.kubernetes.io/version", "1.28.4"),
            ("helm.sh/chart", "istiod-1.28.4"),
        ] {
            let mut pinned =
                istiod_deployment("istiod", None, "gcr.io/istio-release/pilot@sha256:4b2c");
            pinned["metadata"]["labels"][label] = value.into();
            let found = find_istiod(None, vec![pinned]).await.expect("found");
            assert_eq!(
                (found.version.to_string(), found.version_from),
                ("1.28.4".to_owned(), format!("label {label}").as_str())
            );
        }
        let bare = istiod_deployment("istiod", None, "gcr.io/istio-release/pilot@sha256:4b2c");
        let err = find_istiod(None, vec![bare])
            .await
            .expect_err("unreadable")
            .to_string();
        assert_eq!(
            err,
            "istiod istio-system/istiod: its version could not be read: image gcr.io/istio-release/pilot@sha256:4b2c is pinned by digest; no ISTIO_VERSION env; no app.kubernetes.io/version label; no helm.sh/chart label; revision \"default\" names no version"
        );
    }

    #[tokio::test]
    async fn istiods_shadow_host_setting_is_read_from_its_environment() {
        let mut compat = istiod_deployment("istiod", None, "docker.io/istio/pilot:1.28.4");
        compat["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "REVISION", "value": "default"}, {"name": "DISABLE_SHADOW_HOST_SUFFIX", "value": "false"}]);
        let found = find_istiod(None, vec![compat]).await.expect("found");
        assert!(found.shadow_rule.appends_suffix(), "{}", found.shadow_rule);
        assert_eq!(
            found.shadow_rule.to_string(),
            "istiod's DISABLE_SHADOW_HOST_SUFFIX=false on Istio 1.28.4"
        );

        let mut indirect = istiod_deployment("istiod", None, "docker.io/istio/pilot:1.28.4");
        indirect["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "DISABLE_SHADOW_HOST_SUFFIX",
            "valueFrom": {"configMapKeyRef": {"name": "pilot-env", "key": "shadow"}}}]);
        let found = find_istiod(None, vec![indirect]).await.expect("found");
        assert!(!found.shadow_rule.appends_suffix());
        assert!(
            found
                .shadow_rule
                .to_string()
                .contains("istiod's DISABLE_SHADOW_HOST_SUFFIX is set from ConfigMap pilot-env key shadow, which the run does not read"),
            "{}",
            found.shadow_rule
        );
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
        let (task, mut server) = deploying(
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
            opts(),
        )
        .await;
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
            "m.yaml:11: Widget w: the API server serves no Widget in example.com/v1"
        );
    }

    #[tokio::test]
    async fn provider_configuration_is_not_applied_and_a_nameless_document_is_placed() {
        let (task, mut server) = deploying(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes: [{role: control-plane}]
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec: {profile: minimal}
---
apiVersion: v1
kind: ConfigMap
metadata: {labels: {a: b}}
",
            opts(),
        )
        .await;
        // kind's config and the IstioOperator are not objects of the run: nothing is sent
        // for them, and the nameless ConfigMap is refused naming its file and line.
        let err = task
            .await
            .expect("task")
            .expect_err("a nameless document")
            .to_string();
        assert_eq!(err, "m.yaml:10: ConfigMap: no metadata.name");
        server.expect_no_more().await;
    }

    /// Starts `deploy` of `manifests` (one file, `m.yaml`) with `opts`, and answers istiod's
    /// rollout and discovery.
    async fn deploying(
        manifests: &'static str,
        opts: ClusterOptions,
    ) -> (tokio::task::JoinHandle<Result<(), ClusterError>>, ApiServer) {
        let set = ManifestSet::from_str("m.yaml", manifests);
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let mut progress = Progress::new();
            ClusterMesh::deploy(client, &set, opts, &mut progress)
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
        (task, server)
    }

    const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
";

    #[tokio::test]
    async fn a_shipped_crd_is_awaited_until_established_before_its_kind_is_applied() {
        let mut o = opts();
        o.cluster_scoped = ClusterScoped::Apply;
        let (task, mut server) = deploying(WIDGET_CRD, o).await;
        let (patch, body) = server.next().await;
        assert_eq!(
            patch.uri().path(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
        );
        server.respond(200, body.clone()).await;
        // The definition is accepted but not yet Established; the watch stays open until
        // the apiextensions controller says so.
        let (list, _) = server.next().await;
        assert_eq!(
            list.uri().path(),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        );
        let mut crd = body;
        crd["metadata"]["resourceVersion"] = "5".into();
        crd["status"] = json!({"conditions": [{"type": "NamesAccepted", "status": "True"}]});
        server
            .respond(200, json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                "metadata": {"resourceVersion": "5"}, "items": [crd.clone()]}))
            .await;
        let _watch = server.next().await;
        let events = server.open();
        crd["metadata"]["resourceVersion"] = "6".into();
        crd["status"]["conditions"] = json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]);
        events.event("MODIFIED", &crd);
        // Only then is discovery asked again, and now it serves Widget.
        server
            .answer_discovery_with(vec![test_api::group(
                "example.com",
                "v1",
                vec![test_api::resource(
                    "example.com",
                    "v1",
                    "Widget",
                    "widgets",
                    "Namespaced",
                )],
            )])
            .await;
        let (patch, body) = server.next().await;
        assert_eq!(
            patch.uri().path(),
            "/apis/example.com/v1/namespaces/test-20261125-1a2b/widgets/w"
        );
        server.respond(200, body).await;
        // The mesh then waits for workloads: the script ends here.
        drop(server);
        let _ = task.await.expect("task");
    }

    #[tokio::test]
    async fn cluster_scoped_documents_are_refused_on_a_cluster_the_run_does_not_own() {
        let (task, mut server) = deploying(
            "apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: []
",
            opts(),
        )
        .await;
        // Nothing is applied, not even the namespace.
        server.expect_no_more().await;
        let err = task.await.expect("task").expect_err("refused").to_string();
        assert!(
            err.starts_with("m.yaml:6: ClusterRole reader is cluster-scoped")
                && err.contains("--allow-cluster-scoped"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn allowed_cluster_scoped_objects_the_run_created_are_deleted_at_the_end() {
        let mut o = opts();
        o.cluster_scoped = ClusterScoped::ApplyAndDelete;
        let created = o.created.clone();
        let (task, mut server) = deploying(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view}
rules: []
",
            o,
        )
        .await;
        // `reader` is new; `view` existed before the run and is not the run's to delete.
        for (name, exists) in [("reader", false), ("view", true)] {
            let (get, _) = server.next().await;
            assert_eq!(get.method(), "GET");
            assert_eq!(
                get.uri().path(),
                format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")
            );
            if exists {
                server.respond(200, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}})).await;
            } else {
                server
                    .respond(404, test_api::status(404, "NotFound", "not found"))
                    .await;
            }
            let (patch, body) = server.next().await;
            assert_eq!(patch.method(), "PATCH");
            server.respond(200, body).await;
        }
        drop(server);
        let _ = task.await.expect("task");
        assert_eq!(
            created.names(),
            ["clusterroles.rbac.authorization.k8s.io/reader"]
        );
        let (client, mut server) = ApiServer::start();
        let cleanup = tokio::spawn(async move { delete_created(&client, &created).await });
        let (delete, _) = server.next().await;
        assert_eq!(delete.method(), "DELETE");
        assert_eq!(
            delete.uri().path(),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/reader"
        );
        server
            .respond(200, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}))
            .await;
        cleanup.await.expect("task").expect("deleted");
    }

    #[tokio::test]
    async fn a_field_the_servers_strict_validation_refuses_is_named_with_its_file_and_line() {
        let (task, mut server) = deploying(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - route: [{destination: {host: reviews, subset: v1}}]
      mirro: {host: mirror}
",
            opts(),
        )
        .await;
        let _ = server.next().await;
        let (code, body) = test_api::strict_validation_failure(
            "test-20261125-1a2b/reviews",
            "networking.istio.io/v1, Kind=VirtualService",
            ".spec.http[0].mirro",
        );
        server.respond(code, body).await;
        let err = task.await.expect("task").expect_err("refused").to_string();
        assert!(
            err.starts_with(
                "m.yaml:8: field spec.http[0].mirro is not declared in the schema: apply VirtualService test-20261125-1a2b/reviews: HTTP 500: failed to create typed patch object"
            ),
            "{err}"
        );
    }

    #[test]
    fn hosts_naming_the_manifests_namespace_move_to_the_runs() {
        let vs: Value = serde_yaml::from_str(
            "
kind: VirtualService
metadata: {name: reviews, namespace: test}
spec:
  hosts: [reviews.test.svc.cluster.local]
  gateways: [mesh, test/bookinfo-gateway]
  http:
    - route: [{destination: {host: reviews.test.svc.cluster.local, subset: v2}}]
      mirror: {host: mirror.test}
    - route: [{destination: {host: reviews, subset: v1}}]
      mirrors: [{destination: {host: ratings.other.svc.cluster.local}}]
",
        )
        .expect("fixture");
        let moved = for_cluster(&vs, &opts(), Some("test"));
        let spec = &moved["spec"];
        assert_eq!(
            spec["http"][0]["route"][0]["destination"]["host"],
            "reviews.test-20261125-1a2b.svc.cluster.local"
        );
        assert_eq!(
            spec["http"][0]["mirror"]["host"],
            "mirror.test-20261125-1a2b"
        );
        assert_eq!(
            spec["http"][1]["route"][0]["destination"]["host"],
            "reviews"
        );
        assert_eq!(
            spec["http"][1]["mirrors"][0]["destination"]["host"], "ratings.other.svc.cluster.local",
            "another namespace's host is left alone"
        );
        assert_eq!(
            spec["gateways"],
            json!(["mesh", "test-20261125-1a2b/bookinfo-gateway"])
        );
        let dr = json!({"kind": "DestinationRule", "spec": {"host": "reviews.test.svc"}});
        assert_eq!(
            for_cluster(&dr, &opts(), Some("test"))["spec"]["host"],
            "reviews.test-20261125-1a2b.svc"
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

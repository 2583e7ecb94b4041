//! Cluster mode: the suite against a real Kubernetes cluster with Istio, through the API.
//!
//! This crate does not create clusters or install Istio (xtask does); it applies the
//! manifests, waits for them, drives traffic through the ingress gateway, reads the mirror's
//! logs, and collects evidence. Here: the errors and the options; `deploy` (the manifests
//! moved to the run's namespace and applied), `mesh` (`ClusterMesh`), `installed` (the
//! Istio the cluster runs), `cleanup` (what the run deletes).

pub mod apply;
mod cleanup;
mod deploy;
pub mod evidence;
pub mod install;
mod installed;
pub mod logs;
mod mesh;
pub mod node_agent;
pub mod ready;
pub mod rollout;
pub mod route_status;
#[cfg(test)]
mod test_api;

pub use cleanup::{CreatedObjects, delete_created, delete_namespace, request_namespace_deletion};
pub use deploy::for_cluster;
pub use installed::{InstalledIstiod, installed_istio, refuse_install_over_istio};
pub use mesh::{ClusterMesh, RunPods};

use std::time::Duration;

use apply::ApplyError;

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
    pub istiod: InstalledIstiod,
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

#[cfg(test)]
mod tests;

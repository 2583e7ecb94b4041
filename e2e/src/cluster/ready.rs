//! Waiting for workloads: watch-based (`await_condition`, or a watch over a label selector)
//! inside a timeout, with named predicates; a wait that runs out reports the last state.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::WatchStreamExt;
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::Instant;

/// The sidecar container's name.
pub const SIDECAR: &str = "istio-proxy";

/// Errors waiting.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    /// The wait ran out.
    #[error(
        "timed out after {waited:?} waiting for {what} {namespace}/{name}; last seen: {last_seen}"
    )]
    TimedOut {
        /// What condition.
        what: &'static str,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Patience used.
        waited: Duration,
        /// The object's last state.
        last_seen: String,
    },
    /// The deployment controller gave up on the rollout (`Progressing` is
    /// `ProgressDeadlineExceeded`): no wait can end well, as `kubectl rollout status` says.
    #[error("deployment {namespace}/{name} exceeded its progress deadline: {last_seen}")]
    ProgressDeadlineExceeded {
        /// Namespace.
        namespace: String,
        /// The Deployment.
        name: String,
        /// The condition's message and the Deployment's state.
        last_seen: String,
    },
    /// The watch failed.
    #[error("watch {namespace}/{name}: {source}")]
    Watch {
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Why.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// Listing failed.
    #[error("list {what} in {namespace}: {source}")]
    List {
        /// What was listed.
        what: &'static str,
        /// Namespace.
        namespace: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// A pod whose containers are all ready and which runs an Istio sidecar that is ready, as a
/// classic container or as a native sidecar (an init container that keeps running).
pub fn is_sidecar_ready() -> impl Condition<Pod> {
    |pod: Option<&Pod>| {
        let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
            return false;
        };
        let containers = status.container_statuses.as_deref().unwrap_or_default();
        let inits = status
            .init_container_statuses
            .as_deref()
            .unwrap_or_default();
        let sidecar_ready = containers
            .iter()
            .chain(inits)
            .any(|c| c.name == SIDECAR && c.ready);
        sidecar_ready && !containers.is_empty() && containers.iter().all(|c| c.ready)
    }
}

/// A Deployment whose rollout is complete, by the rule `kubectl rollout status` uses
/// (`DeploymentStatusViewer` in kubernetes/kubernetes
/// staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go, at v1.36.1): the
/// controller has seen the latest spec, and every replica the spec asks for is updated and
/// available, with no old replica left. kube's
/// `is_deployment_completed` only reads the `Progressing` condition, which the deployment
/// controller leaves at `NewReplicaSetAvailable` while it scales or restarts
/// (pkg/controller/deployment/progress.go), so it answers "done" before the new pod exists.
pub fn is_rolled_out() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| d.is_some_and(|d| rollout_pending(d).is_none())
}

/// The `Progressing` condition's reason once the deployment controller has given up.
const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";

/// Why a rollout can no longer finish, or `None`: kubectl's rollout_status.go fails as soon
/// as the controller has observed the latest generation and set `Progressing` to
/// `ProgressDeadlineExceeded` (`spec.progressDeadlineSeconds` ran out); waiting on would
/// only wait out the patience.
pub fn rollout_failed(d: &Deployment) -> Option<String> {
    let status = d.status.as_ref()?;
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return None;
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")?;
    (progressing.reason.as_deref() == Some(TIMED_OUT_REASON))
        .then(|| progressing.message.clone().unwrap_or_default())
}

/// A Deployment that has rolled out or whose rollout has failed: either ends the wait.
fn is_rolled_out_or_failed() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| {
        d.is_some_and(|d| rollout_pending(d).is_none() || rollout_failed(d).is_some())
    }
}

/// Why a Deployment has not rolled out yet, or `None` when it has.
pub fn rollout_pending(d: &Deployment) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return Some("no status yet".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if observed < generation {
        Some(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ))
    } else if updated < want {
        Some(format!("{updated} of {want} replicas updated"))
    } else if replicas > updated {
        Some(format!(
            "{} old replicas pending termination",
            replicas - updated
        ))
    } else if available < updated || available != want {
        Some(format!("{available} of {want} updated replicas available"))
    } else {
        None
    }
}

/// Waits, within `patience`, until the object `name` of `namespace` that `api` reaches meets
/// `condition`, and returns it as last seen. A wait that runs out is `what` timing out, with
/// the object as `describe` tells it from a last read (gone, or the read's error included).
pub async fn await_named<K, C>(
    api: &Api<K>,
    (namespace, name): (&str, &str),
    condition: C,
    patience: Duration,
    what: &'static str,
    describe: impl FnOnce(Result<Option<K>, kube::Error>) -> String,
) -> Result<Option<K>, ReadyError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    C: Condition<K>,
{
    match tokio::time::timeout(patience, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(source)) => Err(ReadyError::Watch {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
        Err(_) => Err(ReadyError::TimedOut {
            what,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            waited: patience,
            last_seen: describe(api.get_opt(name).await),
        }),
    }
}

/// Waits until a Deployment has rolled out completely (see [`is_rolled_out`]); fails at once
/// when its rollout has failed (see [`rollout_failed`]).
pub async fn deployment_complete(
    client: &Client,
    namespace: &str,
    name: &str,
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = await_named(
        &api,
        (namespace, name),
        is_rolled_out_or_failed(),
        patience,
        "Deployment to complete",
        |seen| describe_deployment(seen.ok().flatten().as_ref()),
    )
    .await?;
    match d.as_ref().and_then(rollout_failed) {
        Some(message) => Err(ReadyError::ProgressDeadlineExceeded {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            last_seen: format!("{message}; {}", describe_deployment(d.as_ref())),
        }),
        None => Ok(()),
    }
}

/// Waits until a CustomResourceDefinition is `Established` (its kinds are served; the
/// apiextensions controller sets it after `NamesAccepted`), as kube's `is_crd_established`
/// reads it.
pub async fn crd_established(
    client: &Client,
    name: &str,
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    await_named(
        &api,
        ("", name),
        conditions::is_crd_established(),
        patience,
        "CustomResourceDefinition to be Established",
        |seen| match seen {
            Ok(Some(crd)) => crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    format!(
                        "{}={} ({})",
                        c.type_,
                        c.status,
                        c.reason.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Ok(None) => "no such CustomResourceDefinition".into(),
            Err(e) => e.to_string(),
        },
    )
    .await
    .map(drop)
}

/// Waits until every pod of the namespace has a ready sidecar.
pub async fn sidecars_ready(
    client: &Client,
    namespace: &str,
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&Default::default())
        .await
        .map_err(|source| ReadyError::List {
            what: "pods",
            namespace: namespace.to_owned(),
            source,
        })?;
    for pod in pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        await_named(
            &api,
            (namespace, &name),
            is_sidecar_ready(),
            patience,
            "the pod's istio-proxy sidecar to be ready",
            |seen| describe_pod(seen.ok().flatten().as_ref()),
        )
        .await?;
    }
    Ok(())
}

/// A one-line state of a Deployment, for "last seen".
pub fn describe_deployment(d: Option<&Deployment>) -> String {
    let Some(status) = d.and_then(|d| d.status.as_ref()) else {
        return "no such Deployment (or no status yet)".to_owned();
    };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({})",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    let pending = d
        .and_then(rollout_pending)
        .unwrap_or_else(|| "rolled out".into());
    format!(
        "{pending}; ready {}/{} replicas; conditions: {}",
        status.ready_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        conditions.join(", ")
    )
}

/// Watches the objects `config` selects and returns how long it took once `settled` says
/// the set is as wanted. `settled` returns `Err(what is still wrong)` until then; that text
/// is the "last seen" of a wait that runs out. A watch error is retried with kube's backoff
/// and reported, never taken for an answer.
pub async fn await_set<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    (namespace, selector): (&str, &str),
    patience: Duration,
    settled: impl Fn(&BTreeMap<String, K>) -> Result<(), String>,
) -> Result<Duration, ReadyError>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let start = Instant::now();
    let mut last_seen = "no answer from the watch yet".to_owned();
    let watch = async {
        let mut events = watcher(api, config).default_backoff().boxed();
        let (mut objects, mut listing) = (BTreeMap::new(), BTreeMap::new());
        while let Some(event) = events.next().await {
            match event {
                // A (re)list starts: nothing is known until it is done.
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    continue;
                }
                Ok(watcher::Event::InitApply(o)) => {
                    listing.insert(o.name_any(), o);
                    continue;
                }
                Ok(watcher::Event::InitDone) => objects = std::mem::take(&mut listing),
                Ok(watcher::Event::Apply(o)) => {
                    objects.insert(o.name_any(), o);
                }
                Ok(watcher::Event::Delete(o)) => {
                    objects.remove(&o.name_any());
                }
                Err(e) => {
                    last_seen = format!("watch error (retrying): {e}");
                    continue;
                }
            }
            match settled(&objects) {
                Ok(()) => return,
                Err(seen) => last_seen = seen,
            }
        }
    };
    match tokio::time::timeout(patience, watch).await {
        Ok(()) => Ok(start.elapsed()),
        Err(_) => Err(ReadyError::TimedOut {
            what,
            namespace: namespace.to_owned(),
            name: selector.to_owned(),
            waited: patience,
            last_seen,
        }),
    }
}

/// A node whose `Ready` condition is `True`.
pub fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until the cluster has nodes and every one is Ready. `kind create cluster --wait`
/// only warns when its wait runs out (kind pkg/cluster/internal/create/actions/waitforready),
/// so this is what proves a new cluster can run pods.
pub async fn nodes_ready(client: &Client, patience: Duration) -> Result<Duration, ReadyError> {
    let api: Api<Node> = Api::all(client.clone());
    await_set(
        api,
        watcher::Config::default(),
        "every node to be Ready",
        ("", "all nodes"),
        patience,
        |nodes| {
            let unready: Vec<String> = nodes
                .values()
                .filter(|n| !is_node_ready(n))
                .map(|n| format!("{} {}", n.name_any(), describe_node(n)))
                .collect();
            match (nodes.is_empty(), unready.is_empty()) {
                (true, _) => Err("no nodes yet".into()),
                (false, true) => Ok(()),
                (false, false) => Err(format!("not Ready: {}", unready.join("; "))),
            }
        },
    )
    .await
}

fn describe_node(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("(no Ready condition)".into(), |c| {
            format!(
                "Ready={} ({})",
                c.status,
                c.reason.as_deref().unwrap_or("no reason")
            )
        })
}

/// An endpoint that a proxy may still send traffic to: `ready` unset counts as ready (the
/// EndpointSlice API: consumers interpret an unknown state as ready).
fn has_ready_endpoint(slice: &EndpointSlice) -> bool {
    slice
        .endpoints
        .iter()
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
}

/// Waits until a workload scaled to zero is really down: no pod matches `selector` (a
/// terminating pod still serves) and the Service `service` has no ready endpoint left in
/// its EndpointSlices. Returns how long it took.
pub async fn workload_down(
    client: &Client,
    namespace: &str,
    selector: &str,
    service: &str,
    patience: Duration,
) -> Result<Duration, ReadyError> {
    let start = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    await_set(
        pods,
        watcher::Config::default().labels(selector),
        "every pod to be gone",
        (namespace, selector),
        patience,
        |pods| match pods.keys().cloned().collect::<Vec<_>>() {
            left if left.is_empty() => Ok(()),
            left => Err(format!("pods left: {}", left.join(", "))),
        },
    )
    .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let service_selector = format!("kubernetes.io/service-name={service}");
    await_set(
        slices,
        watcher::Config::default().labels(&service_selector),
        "the Service to have no ready endpoint",
        (namespace, &service_selector),
        patience.saturating_sub(start.elapsed()),
        |slices| {
            let ready: Vec<String> = slices
                .values()
                .filter(|s| has_ready_endpoint(s))
                .map(ResourceExt::name_any)
                .collect();
            if ready.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "EndpointSlices with ready endpoints: {}",
                    ready.join(", ")
                ))
            }
        },
    )
    .await?;
    Ok(start.elapsed())
}

/// A one-line state of a Pod, for "last seen".
pub fn describe_pod(p: Option<&Pod>) -> String {
    let Some(status) = p.and_then(|p| p.status.as_ref()) else {
        return "no such pod (or no status yet)".to_owned();
    };
    let containers: Vec<String> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|c| {
            let waiting = c
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone());
            format!(
                "{} ready={}{}",
                c.name,
                c.ready,
                waiting.map(|w| format!(" waiting={w}")).unwrap_or_default()
            )
        })
        .collect();
    format!(
        "phase {}; {}",
        status.phase.as_deref().unwrap_or("?"),
        containers.join(", ")
    )
}

#[cfg(test)]
mod tests;

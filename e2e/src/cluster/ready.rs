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

/// Waits until a Deployment has rolled out completely (see [`is_rolled_out`]); fails at once
/// when its rollout has failed (see [`rollout_failed`]).
pub async fn deployment_complete(
    client: &Client,
    namespace: &str,
    name: &str,
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let waited = tokio::time::timeout(
        patience,
        await_condition(api.clone(), name, is_rolled_out_or_failed()),
    )
    .await;
    match waited {
        Ok(Ok(d)) => match d.as_ref().and_then(rollout_failed) {
            Some(message) => Err(ReadyError::ProgressDeadlineExceeded {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                last_seen: format!("{message}; {}", describe_deployment(d.as_ref())),
            }),
            None => Ok(()),
        },
        Ok(Err(source)) => Err(ReadyError::Watch {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
        Err(_) => Err(ReadyError::TimedOut {
            what: "Deployment to complete",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            waited: patience,
            last_seen: describe_deployment(api.get_opt(name).await.ok().flatten().as_ref()),
        }),
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
    let waited = tokio::time::timeout(
        patience,
        await_condition(api.clone(), name, conditions::is_crd_established()),
    )
    .await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(ReadyError::Watch {
            namespace: String::new(),
            name: name.to_owned(),
            source,
        }),
        Err(_) => Err(ReadyError::TimedOut {
            what: "CustomResourceDefinition to be Established",
            namespace: String::new(),
            name: name.to_owned(),
            waited: patience,
            last_seen: match api.get_opt(name).await {
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
        }),
    }
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
        let waited = tokio::time::timeout(
            patience,
            await_condition(api.clone(), &name, is_sidecar_ready()),
        )
        .await;
        match waited {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(ReadyError::Watch {
                    namespace: namespace.to_owned(),
                    name,
                    source,
                });
            }
            Err(_) => {
                return Err(ReadyError::TimedOut {
                    what: "the pod's istio-proxy sidecar to be ready",
                    namespace: namespace.to_owned(),
                    last_seen: describe_pod(api.get_opt(&name).await.ok().flatten().as_ref()),
                    name,
                    waited: patience,
                });
            }
        }
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
mod tests {
    use super::*;
    use crate::cluster::test_api::ApiServer;
    use serde_json::{Value, json};

    fn pod(statuses: Value) -> Pod {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-v2-abc-xyz", "namespace": "test"}});
        p["status"] = statuses;
        serde_json::from_value(p).expect("pod fixture")
    }

    fn status(name: &str, ready: bool) -> Value {
        json!({"name": name, "ready": ready, "restartCount": 0, "image": "i", "imageID": ""})
    }

    #[test]
    fn classic_and_native_sidecars_count_when_ready() {
        let classic = pod(
            json!({"phase": "Running", "containerStatuses": [status("reviews", true), status("istio-proxy", true)]}),
        );
        let native = pod(
            json!({"phase": "Running", "initContainerStatuses": [status("istio-proxy", true)], "containerStatuses": [status("reviews", true)]}),
        );
        assert!(is_sidecar_ready().matches_object(Some(&classic)));
        assert!(is_sidecar_ready().matches_object(Some(&native)));
    }

    #[test]
    fn no_sidecar_or_anything_unready_is_not_ready() {
        let no_sidecar =
            pod(json!({"phase": "Running", "containerStatuses": [status("reviews", true)]}));
        let sidecar_starting = pod(
            json!({"phase": "Running", "containerStatuses": [status("reviews", true), status("istio-proxy", false)]}),
        );
        let app_starting = pod(
            json!({"phase": "Running", "initContainerStatuses": [status("istio-proxy", true)], "containerStatuses": [status("reviews", false)]}),
        );
        for p in [no_sidecar, sidecar_starting, app_starting] {
            assert!(
                !is_sidecar_ready().matches_object(Some(&p)),
                "{:?}",
                describe_pod(Some(&p))
            );
        }
        assert!(!is_sidecar_ready().matches_object(None));
    }

    fn deployment(complete: bool) -> Value {
        let (reason, n) = if complete {
            ("NewReplicaSetAvailable", 1)
        } else {
            ("ReplicaSetUpdated", 0)
        };
        rollout(1, 1, [1, n, n], reason)
    }

    /// A Deployment at `generation` whose status has observed `observed`, with
    /// `[replicas, updatedReplicas, availableReplicas]` and the Progressing reason.
    fn rollout(
        generation: i64,
        observed: i64,
        [replicas, updated, available]: [i32; 3],
        reason: &str,
    ) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reviews-v1", "namespace": "test", "resourceVersion": format!("{}", 10 + observed * 10 + i64::from(available)), "generation": generation},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "reviews"}}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                "availableReplicas": available, "readyReplicas": available,
                "conditions": [{"type": "Progressing", "status": "True", "reason": reason}]},
        })
    }

    fn watch_events(events: &[(&str, Value)]) -> Vec<u8> {
        events
            .iter()
            .map(|(kind, object)| format!("{}\n", json!({"type": kind, "object": object})))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn rolled_out_needs_the_observed_generation_and_every_replica_updated_and_available() {
        let done = |d: Value| {
            let d: Deployment = serde_json::from_value(d).expect("deployment");
            rollout_pending(&d)
        };
        assert_eq!(
            done(rollout(2, 2, [1, 1, 1], "NewReplicaSetAvailable")),
            None
        );
        assert_eq!(
            done(rollout(2, 1, [0, 0, 0], "NewReplicaSetAvailable")).as_deref(),
            Some("the controller has not observed generation 2 yet (observed 1)")
        );
        assert_eq!(
            done(rollout(2, 2, [2, 1, 1], "NewReplicaSetAvailable")).as_deref(),
            Some("1 old replicas pending termination")
        );
        assert_eq!(
            done(rollout(2, 2, [1, 1, 0], "ReplicaSetUpdated")).as_deref(),
            Some("0 of 1 updated replicas available")
        );
    }

    #[tokio::test]
    async fn a_stale_progressing_condition_after_a_scale_does_not_end_the_wait() {
        // The sequence the deployment controller produces after `replicas: 0 -> 1`: the
        // Progressing condition still says NewReplicaSetAvailable from the last rollout while
        // the new generation is unobserved, then while the new pod starts.
        let (task, mut server) = waiting_for_rollout(
            rollout(2, 1, [0, 0, 0], "NewReplicaSetAvailable"),
            Duration::from_secs(5),
        )
        .await;
        server
            .respond_raw(
                200,
                watch_events(&[(
                    "MODIFIED",
                    rollout(2, 2, [1, 1, 0], "NewReplicaSetAvailable"),
                )]),
            )
            .await;
        // Still waiting: the watch is resumed.
        let (again, _) = server.next().await;
        assert!(
            !task.is_finished(),
            "the wait ended before the pod was available"
        );
        let done = rollout(2, 2, [1, 1, 1], "NewReplicaSetAvailable");
        if again
            .uri()
            .query()
            .unwrap_or_default()
            .contains("watch=true")
        {
            server
                .respond_raw(200, watch_events(&[("MODIFIED", done)]))
                .await;
        } else {
            server.respond(200, list(vec![done])).await;
        }
        task.await.expect("task").expect("rolled out");
    }

    #[tokio::test]
    async fn a_rollout_past_its_progress_deadline_fails_at_once_naming_the_deployment() {
        // The patience is long; the controller gives up while the watch stays open.
        let (task, mut server) = waiting_for_rollout(
            rollout(2, 2, [1, 0, 0], "ReplicaSetUpdated"),
            Duration::from_secs(600),
        )
        .await;
        let events = server.open();
        // Still progressing: the wait goes on over the same open watch.
        let mut still = rollout(2, 2, [1, 0, 0], "ReplicaSetUpdated");
        still["metadata"]["resourceVersion"] = "40".into();
        events.event("MODIFIED", &still);
        let mut gave_up = rollout(2, 2, [1, 0, 0], "ProgressDeadlineExceeded");
        gave_up["metadata"]["resourceVersion"] = "41".into();
        gave_up["status"]["conditions"][0]["status"] = "False".into();
        gave_up["status"]["conditions"][0]["message"] =
            "ReplicaSet \"reviews-v1-5d9c7f7c8b\" has timed out progressing.".into();
        events.event("MODIFIED", &gave_up);
        let err = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the wait ends as soon as the deadline is exceeded, not after the patience")
            .expect("task")
            .expect_err("failed rollout")
            .to_string();
        assert!(
            err.starts_with(
                "deployment test/reviews-v1 exceeded its progress deadline: ReplicaSet \"reviews-v1-5d9c7f7c8b\" has timed out progressing."
            ),
            "{err}"
        );
        assert!(
            err.contains("Progressing=False (ProgressDeadlineExceeded)"),
            "{err}"
        );
    }

    #[test]
    fn an_exceeded_deadline_of_an_older_generation_is_not_yet_a_failure() {
        // kubectl reads the condition only once the controller has seen the latest spec: a
        // new rollout (generation 3) of a Deployment that timed out before may still succeed.
        let d: Deployment =
            serde_json::from_value(rollout(3, 2, [1, 0, 0], "ProgressDeadlineExceeded"))
                .expect("deployment");
        assert_eq!(rollout_failed(&d), None);
        let d: Deployment =
            serde_json::from_value(rollout(2, 2, [1, 0, 0], "ProgressDeadlineExceeded"))
                .expect("deployment");
        assert_eq!(rollout_failed(&d).as_deref(), Some(""));
    }

    fn node(name: &str, ready: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": "7"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" }}]}})
    }

    #[tokio::test]
    async fn nodes_ready_waits_for_every_node_and_reports_the_unready_one() {
        let (client, mut server) = ApiServer::start();
        let task =
            tokio::spawn(async move { nodes_ready(&client, Duration::from_millis(400)).await });
        let (request, _) = server.next().await;
        assert_eq!(request.uri().path(), "/api/v1/nodes");
        server
            .respond(
                200,
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"},
                "items": [node("mirror-e2e-control-plane", "False")]}),
            )
            .await;
        let _watch_left_open = server.next().await;
        let err = task
            .await
            .expect("task")
            .expect_err("never ready")
            .to_string();
        assert!(
            err.contains("every node to be Ready")
                && err
                    .contains("not Ready: mirror-e2e-control-plane Ready=False (KubeletNotReady)"),
            "{err}"
        );

        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move { nodes_ready(&client, Duration::from_secs(5)).await });
        let _ = server.next().await;
        server
            .respond(
                200,
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"},
                "items": [node("mirror-e2e-control-plane", "False")]}),
            )
            .await;
        let _ = server.next().await;
        server
            .respond_raw(
                200,
                watch_events(&[("MODIFIED", node("mirror-e2e-control-plane", "True"))]),
            )
            .await;
        task.await.expect("task").expect("ready");
    }

    #[tokio::test]
    async fn a_workload_is_down_only_when_its_pods_are_gone_and_no_endpoint_is_ready() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            workload_down(
                &client,
                "test",
                "app=mirror",
                "mirror",
                Duration::from_secs(5),
            )
            .await
        });
        // A terminating pod still serves: it is listed, then deleted.
        let (pods, _) = server.next().await;
        assert_eq!(pods.uri().path(), "/api/v1/namespaces/test/pods");
        assert!(
            pods.uri()
                .query()
                .unwrap_or_default()
                .contains("labelSelector=app%3Dmirror")
        );
        let mut terminating = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mirror-1-a", "namespace": "test", "resourceVersion": "8", "deletionTimestamp": "2026-11-27T08:00:00Z"}});
        server
            .respond(200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "8"}, "items": [terminating.clone()]}))
            .await;
        let _ = server.next().await;
        terminating["metadata"]["resourceVersion"] = "9".into();
        server
            .respond_raw(200, watch_events(&[("DELETED", terminating)]))
            .await;
        // Then the Service's slices: one still has a ready endpoint until kube-proxy's view
        // catches up.
        let (slices, _) = server.next().await;
        assert_eq!(
            slices.uri().path(),
            "/apis/discovery.k8s.io/v1/namespaces/test/endpointslices"
        );
        assert!(
            slices
                .uri()
                .query()
                .unwrap_or_default()
                .contains("labelSelector=kubernetes.io%2Fservice-name%3Dmirror")
        );
        let slice = |ready: Option<bool>| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "mirror-x7k2p", "namespace": "test", "resourceVersion": "10"},
            "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": ready}}]})
        };
        server
            .respond(200, json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList", "metadata": {"resourceVersion": "10"}, "items": [slice(None)]}))
            .await;
        let _ = server.next().await;
        assert!(
            !task.is_finished(),
            "an endpoint with unknown readiness counts as ready"
        );
        server
            .respond_raw(200, watch_events(&[("MODIFIED", slice(Some(false)))]))
            .await;
        task.await.expect("task").expect("down");
    }

    /// Waits for `test/reviews-v1` with `patience`: answers the list with `first`, and
    /// returns once the watch is asked for (not answered yet).
    async fn waiting_for_rollout(
        first: Value,
        patience: Duration,
    ) -> (tokio::task::JoinHandle<Result<(), ReadyError>>, ApiServer) {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            deployment_complete(&client, "test", "reviews-v1", patience).await
        });
        let _ = server.next().await;
        server.respond(200, list(vec![first])).await;
        let (watch, _) = server.next().await;
        assert!(
            watch
                .uri()
                .query()
                .unwrap_or_default()
                .contains("watch=true"),
            "{}",
            watch.uri()
        );
        (task, server)
    }

    fn list(items: Vec<Value>) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "10"}, "items": items})
    }

    #[tokio::test]
    async fn a_completed_deployment_ends_the_wait_through_a_field_selected_watch() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            deployment_complete(&client, "test", "reviews-v1", Duration::from_secs(5)).await
        });
        let (request, _) = server.next().await;
        assert_eq!(
            request.uri().path(),
            "/apis/apps/v1/namespaces/test/deployments"
        );
        assert!(
            request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("fieldSelector=metadata.name%3Dreviews-v1"),
            "{}",
            request.uri()
        );
        server.respond(200, list(vec![deployment(true)])).await;
        task.await.expect("task").expect("completed");
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_reports_the_last_state() {
        // The watch: left unanswered, as a rollout that never finishes.
        let (task, mut server) =
            waiting_for_rollout(deployment(false), Duration::from_millis(300)).await;
        let (get, _) = server.next().await;
        assert_eq!(
            get.uri().path(),
            "/apis/apps/v1/namespaces/test/deployments/reviews-v1"
        );
        server.respond(200, deployment(false)).await;
        let err = task
            .await
            .expect("task")
            .expect_err("times out")
            .to_string();
        assert!(
            err.starts_with(
                "timed out after 300ms waiting for Deployment to complete test/reviews-v1"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "last seen: 0 of 1 replicas updated; ready 0/1 replicas; conditions: Progressing=True (ReplicaSetUpdated)"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_watch_that_ends_early_is_resumed_and_the_wait_still_completes() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            deployment_complete(&client, "test", "reviews-v1", Duration::from_secs(5)).await
        });
        let _ = server.next().await;
        server.respond(200, list(vec![deployment(false)])).await;
        let _ = server.next().await;
        server.respond_raw(200, Vec::new()).await;
        // kube's watcher comes back (a new list or watch); this time the rollout is done.
        let (again, _) = server.next().await;
        if again
            .uri()
            .query()
            .unwrap_or_default()
            .contains("watch=true")
        {
            let event = json!({"type": "MODIFIED", "object": deployment(true)});
            server
                .respond_raw(200, format!("{event}\n").into_bytes())
                .await;
        } else {
            server.respond(200, list(vec![deployment(true)])).await;
        }
        task.await
            .expect("task")
            .expect("completed after the watch resumed");
    }

    #[tokio::test]
    async fn sidecar_wait_lists_the_namespace_then_watches_each_pod() {
        let (client, mut server) = ApiServer::start();
        let task =
            tokio::spawn(
                async move { sidecars_ready(&client, "test", Duration::from_secs(5)).await },
            );
        let ready_pod = {
            let mut p = serde_json::to_value(pod(json!({"phase": "Running",
                "containerStatuses": [status("reviews", true), status("istio-proxy", true)]})))
            .expect("pod");
            p["metadata"]["resourceVersion"] = "5".into();
            p
        };
        let pods = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": items});
        let (list, _) = server.next().await;
        assert_eq!(list.uri().path(), "/api/v1/namespaces/test/pods");
        server.respond(200, pods(vec![ready_pod.clone()])).await;
        let (watch, _) = server.next().await;
        assert!(
            watch
                .uri()
                .query()
                .unwrap_or_default()
                .contains("fieldSelector=metadata.name%3Dreviews-v2-abc-xyz"),
            "{}",
            watch.uri()
        );
        server.respond(200, pods(vec![ready_pod])).await;
        task.await.expect("task").expect("ready");
    }
}

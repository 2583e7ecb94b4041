//! Waiting for workloads: watch-based (`await_condition`) inside a timeout, with named
//! predicates; a wait that runs out reports the object's last state.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::wait::{Condition, await_condition, conditions::is_deployment_completed};
use kube::{Api, Client};

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

/// Waits until a Deployment has rolled out completely.
pub async fn deployment_complete(
    client: &Client,
    namespace: &str,
    name: &str,
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let waited = tokio::time::timeout(
        patience,
        await_condition(api.clone(), name, is_deployment_completed()),
    )
    .await;
    match waited {
        Ok(Ok(_)) => Ok(()),
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
    format!(
        "ready {}/{} replicas; conditions: {}",
        status.ready_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        conditions.join(", ")
    )
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
        let reason = if complete {
            "NewReplicaSetAvailable"
        } else {
            "ReplicaSetUpdated"
        };
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reviews-v1", "namespace": "test", "resourceVersion": "10"},
            "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "template": {}},
            "status": {"replicas": 1, "readyReplicas": if complete { 1 } else { 0 },
                "conditions": [{"type": "Progressing", "status": "True", "reason": reason}]},
        })
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
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            deployment_complete(&client, "test", "reviews-v1", Duration::from_millis(300)).await
        });
        let _ = server.next().await;
        server.respond(200, list(vec![deployment(false)])).await;
        // The watch: left unanswered, as a rollout that never finishes.
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
                "last seen: ready 0/1 replicas; conditions: Progressing=True (ReplicaSetUpdated)"
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

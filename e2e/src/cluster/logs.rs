//! The mirror's log through the Kubernetes API, since the run started.
//!
//! Every read lists the mirror's pods and fetches each running container's log since the
//! run's start, with timestamps. Text is kept per (pod, restart count), so a container
//! restart or a pod replaced by scaling does not take earlier lines with it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

/// Errors reading the mirror's log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Listing the mirror's pods failed.
    #[error("list pods {selector} in {namespace}: {source}")]
    List {
        /// Namespace.
        namespace: String,
        /// Label selector.
        selector: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Reading a pod's log failed.
    #[error("read log of {namespace}/{pod} container {container}: {source}")]
    Read {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The log of one container of the pods a selector matches.
pub struct PodLogs {
    api: Api<Pod>,
    namespace: String,
    selector: String,
    container: String,
    since: k8s_openapi::jiff::Timestamp,
    /// Text by (pod creation time, pod uid, restart count): creation order, then restarts.
    seen: Mutex<BTreeMap<(String, String, i32), String>>,
}

impl PodLogs {
    /// Logs of `container` in pods matching `selector`, from `since` on.
    pub fn new(
        client: &Client,
        namespace: &str,
        selector: &str,
        container: &str,
        since: k8s_openapi::jiff::Timestamp,
    ) -> PodLogs {
        PodLogs {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
            selector: selector.to_owned(),
            container: container.to_owned(),
            since,
            seen: Mutex::default(),
        }
    }

    /// Everything logged since the start, across pods and restarts, oldest first.
    pub async fn read(&self) -> Result<String, LogError> {
        let pods = self
            .api
            .list(&ListParams::default().labels(&self.selector))
            .await
            .map_err(|source| LogError::List {
                namespace: self.namespace.clone(),
                selector: self.selector.clone(),
                source,
            })?;
        for pod in &pods.items {
            let Some(restarts) = running_restart_count(pod, &self.container) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let params = LogParams {
                container: Some(self.container.clone()),
                since_time: Some(self.since),
                timestamps: true,
                ..LogParams::default()
            };
            let text = self
                .api
                .logs(&name, &params)
                .await
                .map_err(|source| LogError::Read {
                    namespace: self.namespace.clone(),
                    pod: name.clone(),
                    container: self.container.clone(),
                    source,
                })?;
            let created = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or(name);
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((created, uid, restarts), text);
        }
        Ok(self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(String::as_str)
            .collect())
    }
}

/// The restart count of `container` when it is running (a log can be read), else `None`.
fn running_restart_count(pod: &Pod, container: &str) -> Option<i32> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?;
    status.state.as_ref()?.running.as_ref()?;
    Some(status.restart_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_api::ApiServer;
    use serde_json::{Value, json};

    fn pod(uid: &str, restarts: i32) -> Value {
        json!({
            "metadata": {"name": format!("mirror-1-{uid}"), "uid": uid, "creationTimestamp": "2026-11-25T19:00:00Z"},
            "status": {"containerStatuses": [{"name": "mirror", "ready": true, "restartCount": restarts, "image": "i", "imageID": "",
                "state": {"running": {"startedAt": "2026-11-25T19:00:01Z"}}}]},
        })
    }

    fn pod_list(pods: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods})
    }

    #[tokio::test]
    async fn reads_since_the_start_with_timestamps_and_survives_a_restart() {
        let (client, mut server) = ApiServer::start();
        let since: k8s_openapi::jiff::Timestamp =
            "2026-11-25T19:33:14Z".parse().expect("timestamp");
        let logs =
            std::sync::Arc::new(PodLogs::new(&client, "test", "app=mirror", "mirror", since));
        let reader = logs.clone();
        let task = tokio::spawn(async move {
            (
                reader.read().await.expect("first read"),
                reader.read().await.expect("second read"),
            )
        });

        let (list, _) = server.next().await;
        assert_eq!(list.uri().path(), "/api/v1/namespaces/test/pods");
        assert!(
            list.uri()
                .query()
                .unwrap_or_default()
                .contains("labelSelector=app%3Dmirror"),
            "{}",
            list.uri()
        );
        server.respond(200, pod_list(vec![pod("a", 0)])).await;
        let (log, _) = server.next().await;
        assert_eq!(
            log.uri().path(),
            "/api/v1/namespaces/test/pods/mirror-1-a/log"
        );
        let query = log.uri().query().unwrap_or_default().to_owned();
        for part in [
            "container=mirror",
            "timestamps=true",
            "sinceTime=2026-11-25T19%3A33%3A14Z",
        ] {
            assert!(query.contains(part), "{part} missing from {query}");
        }
        server
            .respond_raw(200, b"2026-11-25T19:33:15Z before restart\n".to_vec())
            .await;

        // The container restarted: its current log holds only the new lines.
        let _ = server.next().await;
        server.respond(200, pod_list(vec![pod("a", 1)])).await;
        let _ = server.next().await;
        server
            .respond_raw(200, b"2026-11-25T19:33:20Z after restart\n".to_vec())
            .await;

        let (first, second) = task.await.expect("task");
        assert_eq!(first, "2026-11-25T19:33:15Z before restart\n");
        assert_eq!(
            second,
            "2026-11-25T19:33:15Z before restart\n2026-11-25T19:33:20Z after restart\n"
        );
    }

    #[tokio::test]
    async fn pods_not_running_are_skipped() {
        let (client, mut server) = ApiServer::start();
        let logs = PodLogs::new(
            &client,
            "test",
            "app=mirror",
            "mirror",
            k8s_openapi::jiff::Timestamp::now(),
        );
        let task = tokio::spawn(async move { logs.read().await.expect("read") });
        let _ = server.next().await;
        let mut pending = pod("b", 0);
        pending["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        server.respond(200, pod_list(vec![pending])).await;
        assert_eq!(task.await.expect("task"), "");
        drop(client);
        server.expect_no_more().await;
    }
}

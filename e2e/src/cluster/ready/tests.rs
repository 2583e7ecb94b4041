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
    let task = tokio::spawn(async move { nodes_ready(&client, Duration::from_millis(400)).await });
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
            && err.contains("not Ready: mirror-e2e-control-plane Ready=False (KubeletNotReady)"),
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
    let task =
        tokio::spawn(
            async move { deployment_complete(&client, "test", "reviews-v1", patience).await },
        );
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
        err.starts_with("timed out after 300ms waiting for Deployment to complete test/reviews-v1"),
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
        tokio::spawn(async move { sidecars_ready(&client, "test", Duration::from_secs(5)).await });
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

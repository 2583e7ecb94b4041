use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::*;
use crate::manifest::ManifestSet;
use crate::progress::Progress;
use crate::version::ShadowRule;
use test_api::ApiServer;

fn istiod(revision: &str) -> InstalledIstiod {
    let version = "1.29.8".parse().expect("version");
    InstalledIstiod {
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
) -> Result<InstalledIstiod, ClusterError> {
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
) -> Result<InstalledIstiod, ClusterError> {
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
        .respond(
            200,
            json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": []}),
        )
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
        .respond(
            200,
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                "metadata": {"resourceVersion": "5"}, "items": [crd.clone()]}),
        )
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
        err.contains("reviews-v2-6f8d9c7b5a-k4m2q, which is not in the run's namespace test-run"),
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
    let task =
        tokio::spawn(
            async move { delete_namespace(&client, "test-run", Duration::from_secs(5)).await },
        );
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

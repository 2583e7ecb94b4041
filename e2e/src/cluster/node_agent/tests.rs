use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::pods::{deployment_of, is_running, pod_address};
use super::xds::endpoints;
use super::*;
use crate::istio::Destination;

fn topology() -> Topology {
    let yaml = "
kind: Namespace
metadata: {name: test-run}
---
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
";
    let (topo, errors) =
        Topology::from_manifests(&crate::manifest::ManifestSet::from_str("t.yaml", yaml));
    assert!(errors.is_empty(), "{errors:?}");
    topo
}

fn pod(name: &str, version: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "reviews", "version": version}},
    }))
    .expect("pod")
}

/// EndpointSlice as the real controller writes it: the target port by the Service
/// port's name, one endpoint per pod with its readiness and target reference.
fn slice(endpoints: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "reviews-abcde", "labels": {"kubernetes.io/service-name": "reviews"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

fn dest(subset: Option<&str>) -> Destination {
    Destination {
        host: "reviews".into(),
        subset: subset.map(str::to_owned),
        port: None,
    }
}

#[test]
fn a_subset_gets_the_ready_endpoints_of_its_pods_only() {
    let slices = [slice(json!([
        {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v1-a"}},
        {"addresses": ["10.244.0.6"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v2-b"}},
        {"addresses": ["10.244.0.7"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "reviews-v2-c"}},
    ]))];
    let pods = [
        pod("reviews-v1-a", "v1"),
        pod("reviews-v2-b", "v2"),
        pod("reviews-v2-c", "v2"),
    ];
    let topo = topology();
    let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
    assert_eq!(
        endpoints(&topo, &dest(Some("v2")), &slices, &pods),
        [addr("10.244.0.6:9080")]
    );
    assert_eq!(
        endpoints(&topo, &dest(None), &slices, &pods),
        [addr("10.244.0.5:9080"), addr("10.244.0.6:9080")]
    );
    assert_eq!(
        endpoints(&topo, &dest(Some("v3")), &slices, &pods),
        Vec::<SocketAddr>::new(),
        "a subset no DestinationRule defines has no endpoints"
    );
}

#[test]
fn an_emptied_slice_leaves_the_cluster_without_endpoints() {
    let slices = [slice(json!([]))];
    assert!(endpoints(&topology(), &dest(None), &slices, &[]).is_empty());
}

#[test]
fn only_a_running_pod_with_an_address_that_is_not_deleting_gets_a_process() {
    let pod = |extra: Value| -> Pod {
        let mut base = json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "podIP": "10.244.0.9"}});
        json_patch(&mut base, extra);
        serde_json::from_value(base).expect("pod")
    };
    assert!(is_running(&pod(json!({}))));
    assert!(!is_running(&pod(json!({"status": {"phase": "Pending"}}))));
    assert!(!is_running(&pod(json!({"status": {"podIP": null}}))));
    assert!(!is_running(&pod(
        json!({"metadata": {"deletionTimestamp": "2026-12-02T08:00:00Z"}})
    )));
}

#[test]
fn a_pod_belongs_to_the_deployment_its_replica_set_was_made_for() {
    let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "reviews-v2-76b94dd577-xprgd",
                "labels": {"app": "reviews", "pod-template-hash": "76b94dd577"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v2-76b94dd577", "uid": "u"}],
            },
        }))
        .expect("pod");
    assert_eq!(deployment_of(&pod).as_deref(), Some("reviews-v2"));
    let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).expect("pod");
    assert_eq!(deployment_of(&bare), None);
}

#[test]
fn a_pod_listens_on_its_address_and_first_declared_port() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9080}]}]},
        "status": {"podIP": "10.244.0.9"},
    }))
    .expect("pod");
    assert_eq!(
        pod_address(&pod),
        Ok("10.244.0.9:9080".parse().expect("addr"))
    );
    let portless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"podIP": "10.244.0.9"},
    }))
    .expect("pod");
    assert!(
        pod_address(&portless)
            .expect_err("no port, no address")
            .contains("containerPort")
    );
}

fn json_patch(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                json_patch(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

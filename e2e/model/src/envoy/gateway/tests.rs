//! Tests of the ingress gateway's routes against what istiod 1.30/1.31 does.

use serde_json::{Value, json};

use super::*;
use crate::manifest::ManifestSet;

fn topology(server_hosts: &str) -> Topology {
    let yaml = format!(
        "
kind: Namespace
metadata: {{name: test}}
---
kind: Service
metadata: {{name: reviews}}
spec: {{selector: {{app: reviews}}, ports: [{{port: 9080, name: http}}]}}
---
kind: Service
metadata: {{name: details}}
spec: {{selector: {{app: details}}, ports: [{{port: 9080, name: http}}, {{port: 9443, name: https}}]}}
---
kind: Gateway
metadata: {{name: gw}}
spec: {{selector: {{istio: ingressgateway}}, servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: {server_hosts}}}]}}
"
    );
    let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", &yaml));
    assert!(errors.is_empty(), "{errors:?}");
    topo
}

fn vs(yaml: &str) -> VirtualService {
    serde_yaml::from_str(yaml).expect("fixture parses")
}

fn hosts(topo: &Topology, vss: &[&VirtualService]) -> Result<Value, TranslateError> {
    let config = gateway_route_configuration(topo, vss, &"1.31.1".parse().expect("version"))?;
    Ok(config["resources"][0]["virtual_hosts"].clone())
}

#[test]
fn gateway_virtual_hosts_are_named_and_matched_as_istiod_does() {
    let topo = topology("['*']");
    let short = vs(
        "metadata: {name: r}\nspec: {hosts: [reviews], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    let any = vs(
        "metadata: {name: a}\nspec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    let hosts = hosts(&topo, &[&short, &any]).expect("translates");
    assert_eq!(hosts[0]["name"], "*:8080");
    assert_eq!(hosts[0]["domains"], json!(["*"]));
    // What istiod 1.31 sent the gateway in `cargo xtask parity` (it was `reviews:80`).
    assert_eq!(hosts[1]["name"], "reviews.test.svc.cluster.local:8080");
    assert_eq!(
        hosts[1]["domains"],
        json!(["reviews.test.svc.cluster.local"])
    );
}

/// Issue 23, item 4: a server admits the intersection of its hosts and the VirtualService's,
/// the more specific of each pair, honouring `ns/` and `./`.
#[test]
fn admission_is_the_intersection_of_server_and_virtual_service_hosts() {
    let wildcard = vs(
        "metadata: {name: w}\nspec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    let hosts_of = |server: &str, vs: &VirtualService| -> Vec<String> {
        hosts(&topology(server), &[vs])
            .expect("translates")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["name"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        hosts_of("['*.example.com']", &wildcard),
        ["*.example.com:8080"]
    );
    let named = vs(
        "metadata: {name: n}\nspec: {hosts: [bookinfo.example.com], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    assert_eq!(
        hosts_of("['*.example.com']", &named),
        ["bookinfo.example.com:8080"]
    );
    assert!(hosts_of("['other.example.com']", &named).is_empty());
    assert_eq!(
        hosts_of("['test/bookinfo.example.com']", &named),
        ["bookinfo.example.com:8080"]
    );
    assert_eq!(
        hosts_of("['./bookinfo.example.com']", &named),
        ["bookinfo.example.com:8080"]
    );
    assert!(hosts_of("['prod/bookinfo.example.com']", &named).is_empty());
}

/// Issue 23, item 7: on a gateway, a destination without a port names its Service's only
/// port, else the server's port.
#[test]
fn port_choice_follows_the_service_on_a_gateway() {
    let topo = topology("['*']");
    let v = vs(
        "metadata: {name: r}\nspec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: reviews}}], mirror: {host: details}}]}",
    );
    let hosts = hosts(&topo, &[&v]).expect("translates");
    let action = &hosts[0]["routes"][0]["route"];
    assert_eq!(
        action["cluster"],
        "outbound|9080||reviews.test.svc.cluster.local"
    );
    assert_eq!(
        action["request_mirror_policies"][0]["cluster"],
        "outbound|8080||details.test.svc.cluster.local",
        "two ports: the server's"
    );
}

/// Issue 23, item 8: `exportTo: [.]` keeps a VirtualService from the gateway's namespace.
#[test]
fn export_to_its_own_namespace_hides_it_from_the_gateway() {
    let topo = topology("['*']");
    let private = vs(
        "metadata: {name: p}\nspec: {hosts: ['*'], gateways: [gw], exportTo: ['.'], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    assert_eq!(hosts(&topo, &[&private]).expect("translates"), json!([]));
    let exported = vs(
        "metadata: {name: p}\nspec: {hosts: ['*'], gateways: [gw], exportTo: [istio-system], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    assert_eq!(
        hosts(&topo, &[&exported]).expect("translates")[0]["name"],
        "*:8080"
    );
}

/// Issue 23, item 3 (gateway): the routes of every VirtualService for a host are merged,
/// catch-alls last, which needs their creation order.
#[test]
fn two_virtual_services_for_one_gateway_host_merge_in_creation_order() {
    let topo = topology("['*']");
    let mut a = vs(
        "metadata: {name: a}\nspec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    let mut b = vs(
        "metadata: {name: b}\nspec: {hosts: ['*'], gateways: [gw], http: [{match: [{uri: {prefix: /b}}], route: [{destination: {host: details}}]}]}",
    );
    assert!(matches!(
        hosts(&topo, &[&a, &b]),
        Err(TranslateError::Unordered { .. })
    ));
    for (v, ts) in [
        (&mut a, "2026-01-01T00:00:00Z"),
        (&mut b, "2026-01-01T00:00:01Z"),
    ] {
        v.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            ts.parse().expect("timestamp"),
        ));
    }
    let hosts = hosts(&topo, &[&b, &a]).expect("ordered");
    let matches: Vec<&Value> = hosts[0]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["match"])
        .collect();
    assert_eq!(
        matches,
        [&json!({"prefix": "/b"}), &json!({"prefix": "/"})],
        "a's catch-all goes last"
    );
}

#[test]
fn hosts_with_the_same_routes_collapse_into_one() {
    let topo = topology("['*']");
    let v = vs(
        "metadata: {name: r}\nspec: {hosts: [a.example.com, bb.example.com], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
    );
    let hosts = hosts(&topo, &[&v]).expect("translates");
    assert_eq!(hosts.as_array().map(Vec::len), Some(1));
    assert_eq!(hosts[0]["name"], "bb.example.com:8080");
    assert_eq!(
        hosts[0]["domains"],
        json!(["bb.example.com", "a.example.com"])
    );
}

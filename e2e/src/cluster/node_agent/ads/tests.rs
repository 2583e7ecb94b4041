//! Tests of the ADS identities, istiod's sync status and the proxies' checks.
use super::*;

#[test]
fn a_sidecar_connects_as_its_pod_without_iptables() {
    let sidecar = ProxyIdentity {
        kind: "sidecar",
        ip: "10.244.0.7".into(),
        pod: "productpage-v1-abc".into(),
        namespace: "test".into(),
        labels: [("app".to_owned(), "productpage".to_owned())].into(),
        workload: "productpage-v1".into(),
        service_account: "bookinfo-productpage".into(),
    };
    assert_eq!(
        sidecar.node_id(),
        "sidecar~10.244.0.7~productpage-v1-abc.test~test.svc.cluster.local"
    );
    let meta = sidecar.metadata("1.31-dev");
    assert_eq!(meta["INTERCEPTION_MODE"], "REDIRECT");
    let capture = super::sidecar("test");
    assert_eq!(capture["spec"]["egress"][0]["captureMode"], "NONE");
    assert_eq!(capture["spec"]["egress"][0]["bind"], "127.0.0.1");
    assert_eq!(
        format!(
            "{}_{}",
            capture["spec"]["egress"][0]["bind"].as_str().expect("bind"),
            capture["spec"]["egress"][0]["port"]["number"]
        ),
        SIDECAR_OUTBOUND
    );
    assert_eq!(meta["LABELS"]["app"], "productpage");
    assert_eq!(meta["INSTANCE_IPS"], "10.244.0.7");
    assert_eq!(meta["CLUSTER_ID"], "Kubernetes");
    let gateway = ProxyIdentity::gateway("10.250.0.1");
    assert!(gateway.node_id().starts_with("router~10.250.0.1~"));
    // A gateway's listeners come from its Gateways; interception is a sidecar's.
    assert!(
        gateway
            .metadata("1.31-dev")
            .get("INTERCEPTION_MODE")
            .is_none()
    );
    let boot = gateway.bootstrap("127.0.0.1:15010".parse().expect("addr"), "1.31-dev");
    assert_eq!(
            boot.pointer("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
            Some(&json!(15010))
        );
    assert_eq!(boot["dynamic_resources"]["lds_config"]["ads"], json!({}));
}

const SYNCZ: &str = r#"[
      {"cluster_id": "Kubernetes", "proxy": "gw.istio-system",
       "proxy_type": "router", "istio_version": "1.30.5",
       "cluster_sent": "2026-12-02T12:09:53Z/n1", "cluster_acked": "2026-12-02T12:09:53Z/n1",
       "resources": {
         "type.googleapis.com/envoy.config.cluster.v3.Cluster": {"sent": "n1", "acked": "n1", "sentTime": "2026-12-02T11:00:00Z"},
         "type.googleapis.com/envoy.config.listener.v3.Listener": {"sent": "n2", "acked": "n2"},
         "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": {"sent": "n3", "acked": "n3"}
       }},
      {"proxy": "pp.test",
       "resources": {
         "type.googleapis.com/envoy.config.cluster.v3.Cluster": {"sent": "n4", "acked": "n4"},
         "type.googleapis.com/envoy.config.listener.v3.Listener": {"sent": "n6", "acked": "n5"}
       }},
      {"proxy": "bad.test",
       "resources": {
         "type.googleapis.com/envoy.config.cluster.v3.Cluster": {"sent": "n7", "acked": "n7"},
         "type.googleapis.com/envoy.config.listener.v3.Listener": {"sent": "n8", "acked": "n7",
            "lastError": "Error adding/updating listener(s) 0.0.0.0_8080: cannot bind"}
       }},
      {"proxy": "new.test", "resources": {
         "type.googleapis.com/envoy.config.cluster.v3.Cluster": {"sent": "n9", "acked": "n9"}}}
    ]"#;

#[test]
fn a_proxy_is_synced_when_every_push_is_acked_and_none_rejected() {
    let listed = parse_syncz(SYNCZ).expect("syncz");
    let [gateway, pending, nacked, no_listeners] = listed.as_slice() else {
        panic!("four proxies: {listed:?}");
    };
    assert!(is_synced(gateway));
    assert_eq!(gateway.istio_version, "1.30.5");
    assert!(!is_synced(pending));
    assert_eq!(pending.pending(), ["Listener (sent n6, acked n5)"]);
    assert!(!is_synced(nacked));
    assert_eq!(
        nacked.rejected(),
        ["Listener: Error adding/updating listener(s) 0.0.0.0_8080: cannot bind"]
    );
    // Clusters alone are not a configuration: istiod has not pushed listeners yet.
    assert!(!is_synced(no_listeners));
    assert!(parse_syncz("404 page not found").is_err());
    // istiod lists a proxy by the `<pod>.<namespace>` of its node id.
    assert_eq!(
        istiod_proxy_id("router~10.250.0.1~gw.istio-system~istio-system.svc.cluster.local"),
        gateway.proxy
    );
}

#[test]
fn only_counters_above_zero_are_rejections() {
    let stats = "listener_manager.lds.update_rejected: 0\ncluster_manager.cds.update_rejected: 2\nhttp.x.rds.9080.update_rejected: 1\ncluster_manager.cds.update_success: 3\n";
    assert_eq!(
        rejected_counters(stats),
        [
            "cluster_manager.cds.update_rejected: 2",
            "http.x.rds.9080.update_rejected: 1"
        ]
    );
    assert!(rejected_counters("listener_manager.lds.update_rejected: 0\n").is_empty());
    let log = "[info] ok\n[warning] gRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: bad\n";
    assert!(rejection_lines(log).contains("Listener rejected: bad"));
}

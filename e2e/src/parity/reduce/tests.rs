//! Tests of the reduction and the differences, on route configurations in istiod's shape.

use serde_json::json;

use super::*;

fn istiod_route_config() -> Value {
    json!({
        "name": "9080",
        "virtual_hosts": [
            {"name": "reviews.test.svc.cluster.local:9080",
             "domains": ["reviews.test.svc.cluster.local", "reviews", "10.96.0.12"],
             "routes": [{
                "name": "tester",
                "match": {"case_sensitive": true, "prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "tester"}}]},
                "decorator": {"operation": "reviews:9080/*"},
                "request_headers_to_add": [{"header": {"key": "x-a", "value": "1"}}],
                "route": {
                    "cluster": "outbound|9080|v2|reviews.test.svc.cluster.local",
                    "timeout": "0s",
                    "retry_policy": {"num_retries": 2},
                    "request_mirror_policies": [{
                        "cluster": "outbound|9080||mirror.test.svc.cluster.local",
                        "runtime_fraction": {"default_value": {"numerator": 100000, "denominator": "MILLION"}},
                        "trace_sampled": false,
                        "disable_shadow_host_suffix_append": true,
                    }],
                },
             }]},
            {"name": "allow_any", "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]},
        ],
    })
}

#[test]
fn reduction_keeps_routing_mirrors_headers_and_domains_and_drops_istiods_extras() {
    let reduced = reduce(&istiod_route_config());
    assert_eq!(
        reduced,
        json!([{
            "name": "reviews.test.svc.cluster.local:9080",
            "domains": ["reviews.test.svc.cluster.local", "reviews"],
            "routes": [{
                "match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "tester"}}]},
                "to": "outbound|9080|v2|reviews.test.svc.cluster.local",
                "mirrors": [{"cluster": "outbound|9080||mirror.test.svc.cluster.local", "fraction": "100000/MILLION", "disable_shadow_host_suffix_append": true}],
                "headers": {
                    "request_add": [{"key": "x-a", "value": "1", "append_action": "APPEND_IF_EXISTS_OR_ADD"}],
                    "request_remove": [], "response_add": [], "response_remove": [],
                },
                "host_rewrite": null,
                "policies": {"timeout": "0s", "retry_policy": {"num_retries": 2}},
            }],
        }])
    );
}

/// Before issue 24 the policies were left out (local mode refused VirtualServices that set
/// them); now each is compared, and a route without them must have istiod's defaults.
#[test]
fn timeout_retries_rewrites_and_per_route_filters_are_compared() {
    let istiod = reduce(&istiod_route_config());
    let route = "/virtual_hosts/0/routes/0";
    let changes: [(&str, Value); 5] = [
        ("/route/timeout", json!("5s")),
        ("/route/retry_policy", json!({"num_retries": 3})),
        ("/route/prefix_rewrite", json!("/v2")),
        (
            "/typed_per_filter_config",
            json!({"envoy.filters.http.fault": {"abort": {"http_status": 503}}}),
        ),
        ("/stat_prefix", json!("s")),
    ];
    for (at, value) in changes {
        let mut local = istiod_route_config();
        let (parent, key) = at.rsplit_once('/').expect("a key");
        local
            .pointer_mut(&format!("{route}{parent}"))
            .expect("parent")[key] = value;
        let found = diff(&reduce(&local), &istiod);
        assert!(
            found.len() == 1 && found[0].contains("route 0 policies"),
            "{at}: {found:?}"
        );
    }
    let mut local = istiod_route_config();
    local
        .pointer_mut(&format!("{route}/route"))
        .expect("action")
        .as_object_mut()
        .expect("an object")
        .remove("retry_policy");
    assert_eq!(diff(&reduce(&local), &istiod).len(), 1, "a missing default");
}

#[test]
fn query_parameters_compare_in_any_order() {
    let with = |names: [&str; 2]| {
        let mut config = istiod_route_config();
        config["virtual_hosts"][0]["routes"][0]["match"]["query_parameters"] = names
            .iter()
            .map(|n| json!({"name": n, "present_match": true}))
            .collect();
        reduce(&config)
    };
    assert!(diff(&with(["a", "b"]), &with(["b", "a"])).is_empty());
}

#[test]
fn a_different_fraction_shadow_rule_order_header_or_duplicate_is_a_difference() {
    let istiod = reduce(&istiod_route_config());
    assert!(diff(&istiod, &istiod).is_empty());
    let mut local = istiod_route_config();
    let policy = "/virtual_hosts/0/routes/0/route/request_mirror_policies/0";
    local.pointer_mut(policy).expect("policy")["runtime_fraction"]["default_value"] =
        json!({"numerator": 10, "denominator": "HUNDRED"});
    assert_eq!(
        diff(&reduce(&local), &istiod).len(),
        1,
        "the same share in another unit is another fraction: compared exactly"
    );
    let mut local = istiod_route_config();
    local.pointer_mut(policy).expect("policy")["disable_shadow_host_suffix_append"] = json!(false);
    let found = diff(&reduce(&local), &istiod);
    assert!(
        found.len() == 1 && found[0].contains("route 0 mirrors"),
        "{found:?}"
    );
    let mut local = istiod_route_config();
    local["virtual_hosts"][0]["routes"][0]["request_headers_to_add"][0]["append_action"] =
        json!("OVERWRITE_IF_EXISTS_OR_ADD");
    let found = diff(&reduce(&local), &istiod);
    assert!(
        found.len() == 1 && found[0].contains("route 0 headers"),
        "{found:?}"
    );
    let mut local = istiod_route_config();
    local["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes")
        .insert(
            0,
            json!({"match": {"prefix": "/"}, "route": {"cluster": "x"}}),
        );
    let found = diff(&reduce(&local), &istiod);
    assert!(
        found
            .iter()
            .any(|d| d.contains("2 routes here, 1 from istiod")),
        "{found:?}"
    );
    let mut local = istiod_route_config();
    let host = local["virtual_hosts"][0].clone();
    local["virtual_hosts"]
        .as_array_mut()
        .expect("hosts")
        .insert(0, host);
    let found = diff(&reduce(&local), &istiod);
    assert!(found[0].starts_with("virtual hosts: here"), "{found:?}");
    assert_eq!(
        diff(&json!([]), &istiod),
        ["virtual hosts: here [], istiod [\"reviews.test.svc.cluster.local:9080\"]"]
    );
}

#[test]
fn cluster_ips_are_not_domains_to_compare() {
    for address in ["10.96.0.12", "10.96.0.12:9080", "[fd00::1]:9080", "fd00::1"] {
        assert!(is_address(address), "{address}");
    }
    assert!(!is_address("reviews:9080"));
}

#[test]
fn clusters_of_the_namespace_are_compared_both_ways() {
    let istiod = namespace_clusters(
        [
            "outbound|9080||reviews.ns.svc.cluster.local",
            "outbound|9080|v1|reviews.ns.svc.cluster.local",
            "outbound|15010||istiod.istio-system.svc.cluster.local",
            "BlackHoleCluster",
            "inbound|9080||",
        ],
        "ns",
    );
    assert_eq!(istiod.len(), 2);
    let local = namespace_clusters(["outbound|9080||reviews.ns.svc.cluster.local"], "ns");
    assert_eq!(
        diff_clusters(&local, &istiod),
        ["only istiod has cluster outbound|9080|v1|reviews.ns.svc.cluster.local"]
    );
}

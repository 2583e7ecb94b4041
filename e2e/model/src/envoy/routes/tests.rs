//! Tests of the sidecar's routes and clusters against what istiod 1.30/1.31 does.

use serde_json::{Value, json};

use super::*;
use crate::manifest::ManifestSet;

const MESH: &str = "
kind: Namespace
metadata: {name: test}
---
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: mirror}
spec: {selector: {app: mirror}, ports: [{port: 9080, name: http}]}
---
";

fn vs(yaml: &str) -> (Topology, VirtualService) {
    let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", MESH));
    assert!(errors.is_empty());
    (topo, serde_yaml::from_str(yaml).expect("fixture parses"))
}

fn config(yaml: &str, version: &str) -> Result<Value, TranslateError> {
    let (topo, vs) = vs(yaml);
    let config = route_configuration(&topo, &[&vs], &version.parse().expect("version"), 1)?;
    Ok(config["resources"][0].clone())
}

/// The routes of the virtual host of `reviews`.
fn routes(yaml: &str, version: &str) -> Result<Value, TranslateError> {
    let config = config(yaml, version)?;
    Ok(virtual_host(&config, "reviews.test.svc.cluster.local:9080")["routes"].clone())
}

fn virtual_host<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|vh| vh["name"] == name)
        .unwrap_or_else(|| panic!("no virtual host {name} in {config}"))
}

const TESTER_MIRRORED: &str = "
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - match: [{headers: {end-user: {exact: tester}}}]
      route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: mirror}
      mirrorPercentage: {value: 100.0}
    - route: [{destination: {host: reviews, subset: v1}}]
";

#[test]
fn header_match_and_mirror_translate_as_istiod_does() {
    let routes = routes(TESTER_MIRRORED, "1.31.1").expect("translates");
    assert_eq!(
        routes[0]["match"],
        json!({"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "tester"}}]})
    );
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080|v2|reviews.test.svc.cluster.local"
    );
    assert_eq!(
        routes[0]["route"]["request_mirror_policies"],
        json!([{
            "cluster": "outbound|9080||mirror.test.svc.cluster.local",
            "runtime_fraction": {"default_value": {"numerator": 1_000_000, "denominator": "MILLION"}},
            "trace_sampled": false,
            "disable_shadow_host_suffix_append": true,
        }])
    );
    assert_eq!(routes[1]["match"], json!({"prefix": "/"}));
    assert!(routes[1]["route"].get("request_mirror_policies").is_none());
}

#[test]
fn shadow_suffix_is_kept_before_1_28() {
    let routes = routes(TESTER_MIRRORED, "1.27.3").expect("translates");
    assert!(
        routes[0]["route"]["request_mirror_policies"][0]
            .get("disable_shadow_host_suffix_append")
            .is_none()
    );
}

fn route(extra: &str) -> HttpRoute {
    serde_yaml::from_str(&format!(
        "{{route: [{{destination: {{host: reviews}}}}], mirror: {{host: mirror}}{extra}}}"
    ))
    .expect("parses")
}

fn million(numerator: u64) -> Option<Fraction> {
    Some(Fraction {
        numerator,
        denominator: "MILLION",
    })
}

#[test]
fn percentages_in_every_spelling() {
    assert_eq!(
        mirror_fraction(&route("")),
        Some(Fraction {
            numerator: 100,
            denominator: "HUNDRED"
        })
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 50}")),
        million(500_000)
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 0.5}")),
        million(5_000)
    );
    assert_eq!(
        mirror_fraction(&route(", mirror_percent: 30")),
        Some(Fraction {
            numerator: 30,
            denominator: "HUNDRED"
        })
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercent: 30, mirrorPercentage: {value: 10}")),
        million(100_000)
    );
}

/// Issue 23, item 5: istiod truncates `value * 10000` as Go's `uint32()` does, and a share of
/// 0, however written, emits no mirror policy at all.
#[test]
fn mirror_percentages_truncate_and_zero_mirrors_nothing() {
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 0.57}")),
        million(5_699)
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 33.33333}")),
        million(333_333)
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 0.00001}")),
        million(0),
        "positive: a policy, with numerator 0"
    );
    assert_eq!(
        mirror_fraction(&route(", mirrorPercentage: {value: 0}")),
        None
    );
    assert_eq!(mirror_fraction(&route(", mirrorPercentage: {}")), None);
    assert_eq!(mirror_fraction(&route(", mirrorPercent: 0")), None);
    let routes = routes(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrorPercentage: {}}]}",
        "1.31.1",
    )
    .expect("translates");
    assert!(
        routes[0]["route"].get("request_mirror_policies").is_none(),
        "{routes}"
    );
}

#[test]
fn uri_matches_weights_and_mirrors_list() {
    let routes = routes(
        "
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - match: [{uri: {exact: /a}}, {uri: {prefix: /b}}, {uri: {regex: '/c/[0-9]+'}, headers: {x: {prefix: p}}}]
      route:
        - {destination: {host: reviews, subset: v1}, weight: 80}
        - {destination: {host: reviews, subset: v2}, weight: 20}
      mirrors: [{destination: {host: mirror}, percentage: {value: 25}}]
",
        "1.31.1",
    )
    .expect("translates");
    assert_eq!(
        routes.as_array().map(Vec::len),
        Some(3),
        "one Envoy route per match entry"
    );
    assert_eq!(routes[0]["match"], json!({"path": "/a"}));
    assert_eq!(routes[1]["match"], json!({"prefix": "/b"}));
    assert_eq!(
        routes[2]["match"],
        json!({"safe_regex": {"regex": "/c/[0-9]+"}, "headers": [{"name": "x", "string_match": {"prefix": "p"}}]})
    );
    assert_eq!(
        routes[0]["route"]["weighted_clusters"]["clusters"][1],
        json!({"name": "outbound|9080|v2|reviews.test.svc.cluster.local", "weight": 20})
    );
    assert_eq!(
        routes[0]["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"],
        250_000
    );
}

/// Issue 23, item 6: weight-0 destinations are dropped; several destinations stay weighted
/// clusters even when one is left; one destination is a plain cluster whatever its weight.
#[test]
fn weight_zero_destinations_are_dropped() {
    let routes = routes(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}, weight: 100}, {destination: {host: reviews, subset: v2}, weight: 0}]}]}",
        "1.31.1",
    )
    .expect("translates");
    assert_eq!(
        routes[0]["route"]["weighted_clusters"]["clusters"],
        json!([{"name": "outbound|9080|v1|reviews.test.svc.cluster.local", "weight": 100}])
    );
    let routes = routes_of(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: 0}]}]}",
    );
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080||reviews.test.svc.cluster.local"
    );
}

fn routes_of(yaml: &str) -> Value {
    routes(yaml, "1.31.1").expect("translates")
}

#[test]
fn unsupported_fields_are_named_not_ignored() {
    let err = routes("metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], redirect: {uri: /x}}]}", "1.31.1")
        .expect_err("redirect is not modelled");
    assert_eq!(
        err.to_string(),
        "VirtualService r: spec.http[0].redirect: not supported in local mode"
    );
    let err = routes("metadata: {name: r}\nspec: {hosts: [reviews], http: [{match: [{sourceLabels: {app: productpage}}], route: [{destination: {host: reviews, subset: v1}}]}]}", "1.31.1")
        .expect_err("a source label match is not modelled");
    assert_eq!(
        err.to_string(),
        "VirtualService r: spec.http[0].match[0].sourceLabels: not supported in local mode"
    );
}

#[test]
fn timeout_retries_fault_cors_rewrite_and_method_matches_translate() {
    // Refused before this change, each of them: now translated as istiod does
    // (`envoy::policies` tests what each becomes).
    let routes = routes(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{match: [{method: {exact: GET}, queryParams: {v: {exact: '1'}}, authority: {prefix: reviews}, scheme: {exact: http}}], route: [{destination: {host: reviews, subset: v1}}], timeout: 3s, retries: {attempts: 1}, fault: {abort: {httpStatus: 500, percentage: {value: 1}}}, corsPolicy: {allowOrigins: [{exact: 'https://a'}]}, rewrite: {uri: /v1}}]}",
        "1.31.1",
    )
    .expect("translates");
    let route = &routes[0];
    assert_eq!(route["route"]["timeout"], "3s");
    assert_eq!(route["route"]["retry_policy"]["num_retries"], 1);
    assert_eq!(route["route"]["prefix_rewrite"], "/v1");
    assert_eq!(route["match"]["query_parameters"][0]["name"], "v");
    let filters = route["typed_per_filter_config"]
        .as_object()
        .expect("filters");
    let mut names: Vec<&String> = filters.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["envoy.filters.http.cors", "envoy.filters.http.fault"]
    );
}

#[test]
fn a_destination_istiod_built_no_cluster_for_keeps_its_route_and_mirror() {
    // Port 8080 is not a port of reviews or mirror: istiod has no such cluster, and
    // still routes (and mirrors) to its name; Envoy answers 503 NC and mirrors nothing.
    let routes = routes(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1, port: {number: 8080}}}], mirror: {host: mirror, port: {number: 8080}}}]}",
        "1.31.1",
    )
    .expect("translates");
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|8080|v1|reviews.test.svc.cluster.local"
    );
    assert_eq!(
        routes[0]["route"]["request_mirror_policies"][0]["cluster"],
        "outbound|8080||mirror.test.svc.cluster.local"
    );
    let (topo, _) = vs("metadata: {name: r}");
    let clusters: Vec<String> = outbound_clusters(&topo)
        .iter()
        .map(|d| cluster_name(&topo, d))
        .collect();
    assert!(
        !clusters.iter().any(|c| c.starts_with("outbound|8080|")),
        "{clusters:?}"
    );
}

/// Issue 23, item 1: `mirror.test` is not expanded, so the mirror names a cluster istiod
/// never builds (the new user's case: a green local run, nothing mirrored on a cluster).
#[test]
fn a_host_with_a_dot_is_not_expanded() {
    let routes = routes_of(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews.test}}], mirror: {host: mirror.test}}]}",
    );
    assert_eq!(routes[0]["route"]["cluster"], "outbound|9080||reviews.test");
    assert_eq!(
        routes[0]["route"]["request_mirror_policies"][0]["cluster"],
        "outbound|9080||mirror.test"
    );
    let (topo, _) = vs("metadata: {name: r}");
    let clusters: Vec<String> = outbound_clusters(&topo)
        .iter()
        .map(|d| cluster_name(&topo, d))
        .collect();
    assert!(!clusters.iter().any(|c| c.ends_with("|mirror.test")));
    // A VirtualService whose only host names no Service configures no sidecar: the
    // Service's default route serves instead.
    let config = config(
        "metadata: {name: r}\nspec: {hosts: [reviews.test], http: [{route: [{destination: {host: reviews, subset: v2}}]}]}",
        "1.31.1",
    )
    .expect("translates");
    let reviews = virtual_host(&config, "reviews.test.svc.cluster.local:9080");
    assert_eq!(reviews["routes"][0]["name"], "default");
}

/// Issue 23, item 2: destination and route `headers` become Envoy's header mutations and a
/// host rewrite (Envoy mutates the request before it copies it for the mirror).
#[test]
fn headers_become_mutations_and_a_host_rewrite() {
    let routes = routes_of(
        "
metadata: {name: r}
spec:
  hosts: [reviews]
  http:
    - match: [{uri: {prefix: /a}}]
      headers: {request: {set: {x-route: r, x-both: route}}}
      route:
        - destination: {host: reviews, subset: v2}
          headers: {request: {set: {x-both: dest, host: shadowed.example}, remove: [x-drop]}}
      mirror: {host: mirror}
    - route:
        - {destination: {host: reviews, subset: v1}, weight: 50, headers: {request: {add: {x-w: '1'}, set: {':authority': a.example}}}}
        - {destination: {host: reviews, subset: v2}, weight: 50}
",
    );
    let keys: Vec<(&str, &str)> = routes[0]["request_headers_to_add"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["header"]["key"].as_str().unwrap_or(""),
                h["header"]["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [("x-both", "route"), ("x-route", "r"), ("x-both", "dest")],
        "the destination's follow the route's"
    );
    assert_eq!(routes[0]["request_headers_to_remove"], json!(["x-drop"]));
    assert_eq!(
        routes[0]["route"]["host_rewrite_literal"],
        "shadowed.example"
    );
    let weighted = &routes[1]["route"]["weighted_clusters"]["clusters"][0];
    assert_eq!(weighted["host_rewrite_literal"], "a.example");
    assert_eq!(
        weighted["request_headers_to_add"][0],
        json!({"header": {"key": "x-w", "value": "1"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"})
    );
    assert!(routes[1].get("request_headers_to_add").is_none());
}

/// Issue 23, item 3: two VirtualServices for one host. istiod keeps the older on a sidecar
/// (creation time, then name); files have no creation time, so local mode refuses.
#[test]
fn two_virtual_services_for_one_host_need_creation_times() {
    let (topo, first) = vs(
        "metadata: {name: b}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}",
    );
    let second: VirtualService = serde_yaml::from_str(
        "metadata: {name: a}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v2}}]}]}",
    )
    .expect("parses");
    let version = "1.31.1".parse().expect("version");
    let err =
        route_configuration(&topo, &[&first, &second], &version, 1).expect_err("no creation times");
    assert!(
        matches!(err, TranslateError::Unordered { ref host, .. } if host == "reviews.test.svc.cluster.local"),
        "{err}"
    );
    let at = |vs: &VirtualService, ts: &str| {
        let mut vs = vs.clone();
        vs.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts.parse().expect("timestamp")),
        );
        vs
    };
    let (older, newer) = (
        at(&first, "2026-01-01T00:00:00Z"),
        at(&second, "2026-01-01T00:00:05Z"),
    );
    let config = route_configuration(&topo, &[&newer, &older], &version, 1).expect("ordered");
    let reviews = virtual_host(
        &config["resources"][0],
        "reviews.test.svc.cluster.local:9080",
    );
    assert_eq!(
        reviews["routes"][0]["route"]["cluster"], "outbound|9080|v1|reviews.test.svc.cluster.local",
        "the older keeps the host"
    );
    // The same second: the name decides.
    let same = at(&second, "2026-01-01T00:00:00Z");
    let config = route_configuration(&topo, &[&older, &same], &version, 1).expect("ordered");
    let reviews = virtual_host(
        &config["resources"][0],
        "reviews.test.svc.cluster.local:9080",
    );
    assert_eq!(
        reviews["routes"][0]["route"]["cluster"], "outbound|9080|v2|reviews.test.svc.cluster.local",
        "`a` before `b`"
    );
}

/// Issue 23, item 7: on a sidecar a destination without a port names the listener's port,
/// whatever its Service's ports.
#[test]
fn a_destination_without_a_port_uses_the_listener_port_on_a_sidecar() {
    let yaml = "
kind: Service
metadata: {name: reviews}
spec: {ports: [{port: 9080}]}
---
kind: Service
metadata: {name: mirror}
spec: {ports: [{port: 8000}]}
";
    let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", yaml));
    assert!(errors.is_empty(), "{errors:?}");
    let vs: VirtualService = serde_yaml::from_str(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], mirror: {host: mirror}}]}",
    )
    .expect("parses");
    let config =
        route_configuration(&topo, &[&vs], &"1.31.1".parse().expect("version"), 1).expect("ok");
    let reviews = virtual_host(
        &config["resources"][0],
        "reviews.test.svc.cluster.local:9080",
    );
    assert_eq!(
        reviews["routes"][0]["route"]["request_mirror_policies"][0]["cluster"],
        "outbound|9080||mirror.test.svc.cluster.local",
        "no such cluster: the mirror listens on 8000"
    );
    // mirror has no port 9080: no virtual host of its own on this listener.
    assert_eq!(
        config["resources"][0]["virtual_hosts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// Issue 23, item 8: a VirtualService exported only to another namespace configures no
/// sidecar of this one.
#[test]
fn export_to_another_namespace_hides_it_from_the_sidecar() {
    let config = config(
        "metadata: {name: r}\nspec: {hosts: [reviews], exportTo: [other], http: [{route: [{destination: {host: reviews, subset: v2}}]}]}",
        "1.31.1",
    )
    .expect("translates");
    let reviews = virtual_host(&config, "reviews.test.svc.cluster.local:9080");
    assert_eq!(reviews["routes"][0]["name"], "default");
}

#[test]
fn clusters_are_every_service_port_times_no_subset_and_each_subset() {
    let yaml = "
kind: Service
metadata: {name: reviews}
spec: {ports: [{port: 9080}, {port: 9443}]}
---
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
kind: DestinationRule
metadata: {name: qualified}
spec: {host: reviews.test, subsets: [{name: v9, labels: {version: v9}}]}
";
    let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", yaml));
    assert!(errors.is_empty(), "{errors:?}");
    let clusters: Vec<String> = outbound_clusters(&topo)
        .iter()
        .map(|d| cluster_name(&topo, d))
        .collect();
    assert_eq!(
        clusters,
        [
            "outbound|9080||reviews.test.svc.cluster.local",
            "outbound|9080|v1|reviews.test.svc.cluster.local",
            "outbound|9443||reviews.test.svc.cluster.local",
            "outbound|9443|v1|reviews.test.svc.cluster.local",
        ],
        "a DestinationRule for `reviews.test` applies to no Service"
    );
}

#[test]
fn routes_after_a_catch_all_are_dropped_as_istiod_does_but_still_checked() {
    let catch_all_first = "
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - name: all
      route: [{destination: {host: reviews, subset: v1}}]
    - name: tester
      match: [{headers: {end-user: {exact: tester}}}]
      route: [{destination: {host: reviews, subset: v2}}]
";
    let kept = routes(catch_all_first, "1.31.1").expect("translates");
    let names: Vec<&str> = kept
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["all"]);
    // A header match is not a catch-all: both routes stay.
    let both = routes(TESTER_MIRRORED, "1.31.1").expect("translates");
    assert_eq!(both.as_array().map(Vec::len), Some(2));
    let err = routes(
        &format!("{catch_all_first}      redirect: {{uri: /x}}\n"),
        "1.31.1",
    )
    .expect_err("an unmodelled field after the catch-all is still refused");
    assert_eq!(
        err.to_string(),
        "VirtualService reviews: spec.http[1].redirect: not supported in local mode"
    );
}

#[test]
fn domains_are_istiods_for_a_caller_in_the_namespace() {
    assert_eq!(
        service_domains("reviews", "test"),
        [
            "reviews.test.svc.cluster.local",
            "reviews.test.svc.cluster.local.",
            "reviews",
            "reviews.test.svc",
            "reviews.test",
        ]
    );
}

#[test]
fn route_names_join_the_rule_and_the_match_name() {
    let routes = routes_of(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{name: rule, match: [{name: m, uri: {prefix: /a}}, {uri: {prefix: /b}}], route: [{destination: {host: reviews}}]}]}",
    );
    assert_eq!(routes[0]["name"], "rule.m");
    assert_eq!(routes[1]["name"], "rule");
}
#[test]
fn a_virtual_host_whose_domains_another_took_is_dropped_as_istiod_drops_it() {
    // `reviews.test` names no Service (a dot: not expanded), so it is a VirtualService host
    // of its own; the reviews Service's virtual host, built first, took the domain already.
    // istiod's `buildVirtualHost` keeps no virtual host without domains; Envoy rejects one.
    let (mut topo, _) = vs("metadata: {name: a}");
    topo.namespace = "test".into();
    let at = |s: i64| {
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(s).expect("a time"),
        ))
    };
    let mut first: VirtualService = serde_yaml::from_str(
        "metadata: {name: a}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}",
    )
    .expect("fixture parses");
    first.metadata.creation_timestamp = at(1);
    let mut second: VirtualService = serde_yaml::from_str(
        "metadata: {name: b}\nspec: {hosts: [reviews.test], http: [{route: [{destination: {host: mirror}}]}]}",
    )
    .expect("fixture parses");
    second.metadata.creation_timestamp = at(2);
    let config = route_configuration(
        &topo,
        &[&first, &second],
        &"1.31.1".parse().expect("version"),
        1,
    )
    .expect("translates");
    let names: Vec<&str> = config["resources"][0]["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|vh| vh["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "mirror.test.svc.cluster.local:9080",
            "reviews.test.svc.cluster.local:9080"
        ]
    );
}

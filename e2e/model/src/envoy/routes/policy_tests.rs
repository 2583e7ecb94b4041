//! Tests of the route policies (`envoy::policies`) as the sidecar's routes carry them,
//! against istiod's translation (route.go, retry.go). Beside the routes, which they
//! translate whole: the policies module itself stays below the routes.

use serde_json::{Value, json};

use super::route_configuration;
use crate::envoy::policies::{CORS_FILTER, FAULT_FILTER, per_filter_config, retry_policy};
use crate::istio::{HttpRoute, VirtualService};
use crate::manifest::ManifestSet;
use crate::topology::Topology;

const MESH: &str = "
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: ratings}
spec: {selector: {app: ratings}, ports: [{port: 9080, name: http}]}
";

/// The routes of reviews' virtual host for one rule with `extra` fields (YAML flow
/// mapping entries), and the default route of ratings.
fn translate(extra: &str) -> (Value, Value) {
    let (mut topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", MESH));
    assert!(errors.is_empty(), "{errors:?}");
    topo.namespace = "test".into();
    let vs: VirtualService = serde_yaml::from_str(&format!(
        "metadata: {{name: r}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}], {extra}}}]}}"
    ))
    .expect("fixture parses");
    let config = route_configuration(&topo, &[&vs], &"1.31.1".parse().expect("version"), 1)
        .expect("translates");
    let host = |name: &str| {
        config["resources"][0]["virtual_hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|vh| vh["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))["routes"][0]
            .clone()
    };
    (
        host("reviews.test.svc.cluster.local:9080"),
        host("ratings.test.svc.cluster.local:9080"),
    )
}

fn rule(yaml: &str) -> HttpRoute {
    serde_yaml::from_str(yaml).expect("fixture parses")
}

fn default_policy() -> Value {
    json!({
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": "5",
    })
}

#[test]
fn every_route_has_no_timeout_and_the_default_retry_policy_unless_it_says_otherwise() {
    let (route, default) = translate("name: plain");
    for action in [&route["route"], &default["route"]] {
        assert_eq!(action["timeout"], "0s", "{action}");
        assert_eq!(action["max_grpc_timeout"], "0s", "{action}");
        assert_eq!(action["retry_policy"], default_policy(), "{action}");
    }
}

#[test]
fn a_timeout_bounds_the_route_and_grpc_alike() {
    let (route, _) = translate("timeout: 1.5s");
    assert_eq!(route["route"]["timeout"], "1.500s");
    assert_eq!(route["route"]["max_grpc_timeout"], "1.500s");
    let (route, _) = translate("timeout: 2m");
    assert_eq!(route["route"]["timeout"], "120s");
}

#[test]
fn retries_override_the_default_and_zero_attempts_remove_the_policy() {
    let policy = |yaml: &str| retry_policy(rule(yaml).retries.as_ref(), false);
    let mut expected = default_policy();
    expected["num_retries"] = 3.into();
    expected["per_try_timeout"] = "0.250s".into();
    assert_eq!(
        policy("retries: {attempts: 3, perTryTimeout: 250ms}"),
        Some(expected)
    );
    assert_eq!(policy("retries: {attempts: 0}"), None);
    assert_eq!(policy("retries: {}"), None, "attempts absent is 0");
    let (route, _) = translate("retries: {attempts: 0}");
    assert!(route["route"].get("retry_policy").is_none(), "{route}");
    let on = policy("retries: {attempts: 1, retryOn: 'gateway-error, 503,connect-failure,,425'}")
        .expect("a policy");
    assert_eq!(
        on["retry_on"],
        "gateway-error,connect-failure,retriable-status-codes"
    );
    assert_eq!(on["retriable_status_codes"], json!([503, 425]));
    // Only codes: istiod appends to an empty list, leading comma and all.
    let codes = policy("retries: {attempts: 1, retryOn: '503'}").expect("a policy");
    assert_eq!(codes["retry_on"], ",retriable-status-codes");
    // 306 has no text in Go's net/http: a condition, not a code.
    let unused = policy("retries: {attempts: 1, retryOn: '306'}").expect("a policy");
    assert_eq!(unused["retry_on"], "306");
    assert!(unused.get("retriable_status_codes").is_none());
}

#[test]
fn retry_host_choice_remote_localities_and_backoff() {
    let policy = |yaml: &str| retry_policy(rule(yaml).retries.as_ref(), false).expect("a policy");
    let off = policy("retries: {attempts: 2, retryIgnorePreviousHosts: false}");
    assert!(off.get("retry_host_predicate").is_none(), "{off}");
    let all = policy("retries: {attempts: 2, retryRemoteLocalities: true, backoff: 100ms}");
    assert_eq!(
        all["retry_priority"]["name"],
        "envoy.retry_priorities.previous_priorities"
    );
    assert_eq!(all["retry_priority"]["typed_config"]["update_frequency"], 2);
    assert_eq!(all["retry_back_off"], json!({"base_interval": "0.100s"}));
    // A consistent hash keeps the host: no previous-hosts predicate in the default.
    let hashed = retry_policy(None, true).expect("the default");
    assert!(hashed.get("retry_host_predicate").is_none());
}

#[test]
fn fault_delay_and_abort_with_their_shares() {
    let (route, _) = translate(
        "fault: {delay: {fixedDelay: 2s, percentage: {value: 12.5}}, abort: {httpStatus: 503, percentage: {value: 0.1}}}",
    );
    assert_eq!(
        route["typed_per_filter_config"][FAULT_FILTER],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "delay": {"fixed_delay": "2s", "percentage": {"numerator": 125_000, "denominator": "MILLION"}},
            "abort": {"http_status": 503, "percentage": {"numerator": 1000, "denominator": "MILLION"}},
        })
    );
    let fault = |yaml: &str| {
        per_filter_config(rule(yaml).fault.as_ref(), None).expect("a config")[FAULT_FILTER].clone()
    };
    // The deprecated integer share is hundredths; an abort without a share has none.
    let old =
        fault("fault: {delay: {fixedDelay: 1s, percent: 5}, abort: {grpcStatus: UNAVAILABLE}}");
    assert_eq!(
        old["delay"]["percentage"],
        json!({"numerator": 5, "denominator": "HUNDRED"})
    );
    assert_eq!(old["abort"], json!({"grpc_status": 14}));
    // What istiod drops: an exponential delay, an HTTP/2 abort, an abort of no type.
    let dropped = fault("fault: {delay: {exponentialDelay: 1s}, abort: {http2Error: x}}");
    assert_eq!(
        dropped,
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"})
    );
}

#[test]
fn cors_policy_as_envoys_per_route_policy() {
    let (route, _) = translate(
        "corsPolicy: {allowOrigins: [{exact: 'https://a.example'}, {prefix: 'https://b'}, {regex: '.*\\.c\\.example'}], allowOrigin: [ignored], allowMethods: [GET, POST], allowHeaders: [x-a, x-b], exposeHeaders: [x-c], maxAge: 90s, allowCredentials: false}",
    );
    assert_eq!(
        route["typed_per_filter_config"][CORS_FILTER],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "allow_origin_string_match": [
                {"exact": "https://a.example"},
                {"prefix": "https://b"},
                {"safe_regex": {"regex": ".*\\.c\\.example"}},
            ],
            "allow_methods": "GET,POST",
            "allow_headers": "x-a,x-b",
            "expose_headers": "x-c",
            "max_age": "90",
            "allow_credentials": false,
            "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "forward_not_matching_preflights": true,
        })
    );
    let cors = |yaml: &str| {
        per_filter_config(None, rule(yaml).cors_policy.as_ref()).expect("a config")[CORS_FILTER]
            .clone()
    };
    let old = cors("corsPolicy: {allowOrigin: ['https://a.example'], unmatchedPreflights: IGNORE}");
    assert_eq!(
        old["allow_origin_string_match"],
        json!([{"exact": "https://a.example"}])
    );
    assert_eq!(old["forward_not_matching_preflights"], false);
    assert!(old.get("allow_credentials").is_none(), "unset stays unset");
}

#[test]
fn rewrite_of_the_path_and_the_authority_over_the_routes_host_header() {
    let (route, _) = translate(
        "rewrite: {uri: /v2/, authority: new.example}, headers: {request: {set: {host: old.example}}}",
    );
    assert_eq!(route["route"]["prefix_rewrite"], "/v2/");
    assert_eq!(route["route"]["host_rewrite_literal"], "new.example");
    let (route, _) =
        translate("rewrite: {uriRegexRewrite: {match: '^/old/(.*)', rewrite: '/new/\\1'}}");
    assert_eq!(
        route["route"]["regex_rewrite"],
        json!({"pattern": {"regex": "^/old/(.*)"}, "substitution": "/new/\\1"})
    );
    assert!(route["route"].get("prefix_rewrite").is_none());
    assert!(route["route"].get("host_rewrite_literal").is_none());
}

#[test]
fn a_rewritten_authority_wins_over_the_single_destinations_host_header() {
    let (mut topo, _) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", MESH));
    topo.namespace = "test".into();
    let vs: VirtualService = serde_yaml::from_str(
        "metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, headers: {request: {set: {host: dest.example}}}}], rewrite: {authority: rw.example}}]}",
    )
    .expect("fixture parses");
    let config = route_configuration(&topo, &[&vs], &"1.31.1".parse().expect("version"), 1)
        .expect("translates");
    let route = &config["resources"][0]["virtual_hosts"][1]["routes"][0];
    assert_eq!(
        route["route"]["host_rewrite_literal"], "rw.example",
        "{config}"
    );
}

//! istiod's and the translation's Envoy configuration reduced to what decides traffic, and
//! the differences between the two. Both sides are what an Envoy holds (its
//! `/config_dump`), so protobuf's defaults and JSON spellings are the same on both.
//!
//! Kept: every virtual host in order (duplicates too: Envoy rejects a RouteConfiguration
//! whose domains repeat), its domains, its routes in order with match (query parameters by
//! name), destination (cluster, or weighted clusters with weights, header mutations and
//! host rewrite), header mutations, host rewrite, mirror policies (cluster, exact fraction,
//! shadow host rule), and the policies: every other field of the route action (`timeout`,
//! `max_grpc_timeout`, `retry_policy`, `prefix_rewrite`, `regex_rewrite`, `hash_policy`,
//! ...), the route's `typed_per_filter_config` (fault, CORS) and `stat_prefix`; and the set
//! of outbound clusters of the namespace under test.
//!
//! Left out, and why (docs/parity.md lists them too):
//! - domains that are IP addresses: istiod adds each Service's cluster IP, which only a
//!   cluster has (a caller that names a Service by IP is not what the suite sends);
//! - route `name`, `decorator`, `metadata`: tracing and telemetry, not where a request goes
//!   (the name is checked by local mode's own tests: its access log reports it);
//! - a mirror's `trace_sampled`: whether the shadow request is traced, not whether it goes;
//! - istiod's own virtual hosts (`allow_any`, `block_all`, `blackhole:<port>`): traffic to
//!   hosts no Service has, which the suite never sends;
//! - `match.case_sensitive: true`: Envoy's default, spelled out by one side only;
//! - the order of `match.query_parameters`: istiod walks a Go map for them, so its order
//!   changes from push to push, and Envoy requires all of them in any order;
//! - clusters outside the namespace under test, and istiod's fixed ones (`BlackHoleCluster`,
//!   `PassthroughCluster`, `InboundPassthroughCluster`, `inbound|…`): the same for every
//!   variant; the namespace's `outbound|…` clusters are what routes and mirrors name.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};

/// Virtual hosts istiod adds that the translation has no counterpart for.
const ISTIOD_ONLY_VIRTUAL_HOSTS: [&str; 3] = ["allow_any", "block_all", "blackhole"];

/// A RouteConfiguration reduced: `[{name, domains, routes}]` in its order.
pub fn reduce(route_config: &Value) -> Value {
    let mut hosts = Vec::new();
    for vh in route_config["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = vh["name"].as_str().unwrap_or_default();
        if ISTIOD_ONLY_VIRTUAL_HOSTS
            .iter()
            .any(|n| name == *n || name.starts_with(&format!("{n}:")))
        {
            continue;
        }
        let domains: Vec<&Value> = vh["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| !d.as_str().is_some_and(is_address))
            .collect();
        let routes: Vec<Value> = vh["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(reduce_route)
            .collect();
        hosts.push(json!({"name": name, "domains": domains, "routes": routes}));
    }
    Value::from(hosts)
}

/// An IP address, with or without a port.
fn is_address(domain: &str) -> bool {
    domain.parse::<IpAddr>().is_ok()
        || domain
            .rsplit_once(':')
            .is_some_and(|(ip, _)| ip.trim_matches(['[', ']']).parse::<IpAddr>().is_ok())
}

/// The route action's fields compared apart (`to`, `mirrors`, `host_rewrite`); the rest of
/// the action is its policies.
const ACTION_COMPARED_APART: [&str; 4] = [
    "cluster",
    "weighted_clusters",
    "request_mirror_policies",
    "host_rewrite_literal",
];

fn reduce_route(route: &Value) -> Value {
    let mut matched = route["match"].clone();
    if let Some(m) = matched.as_object_mut() {
        if m.get("case_sensitive") == Some(&Value::Bool(true)) {
            m.remove("case_sensitive");
        }
        if let Some(Value::Array(params)) = m.get_mut("query_parameters") {
            params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
    }
    let action = &route["route"];
    let to = if let Some(cluster) = action["cluster"].as_str() {
        json!(cluster)
    } else if let Some(weighted) = action["weighted_clusters"]["clusters"].as_array() {
        weighted
            .iter()
            .map(|c| {
                json!({
                    "name": c["name"],
                    "weight": c["weight"].as_u64().unwrap_or(0),
                    "headers": mutations(c),
                    "host_rewrite": c["host_rewrite_literal"],
                })
            })
            .collect()
    } else if let Some(redirect) = route.get("redirect") {
        json!({"redirect": redirect})
    } else if let Some(direct) = route.get("direct_response") {
        json!({"direct_response": direct["status"]})
    } else {
        action.clone()
    };
    let mirrors: Vec<Value> = action["request_mirror_policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            json!({
                "cluster": m["cluster"],
                "fraction": fraction(&m["runtime_fraction"]),
                "disable_shadow_host_suffix_append":
                    m["disable_shadow_host_suffix_append"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    let mut policies = serde_json::Map::new();
    if let Some(action) = action.as_object() {
        for (key, value) in action {
            if !ACTION_COMPARED_APART.contains(&key.as_str()) {
                policies.insert(key.clone(), value.clone());
            }
        }
    }
    for key in ["typed_per_filter_config", "stat_prefix"] {
        if let Some(value) = route.get(key) {
            policies.insert(key.into(), value.clone());
        }
    }
    json!({
        "match": matched,
        "to": to,
        "mirrors": mirrors,
        "headers": mutations(route),
        "host_rewrite": action["host_rewrite_literal"],
        "policies": policies,
    })
}

/// The header mutations of a Route or a ClusterWeight, with protobuf's defaults written
/// out (Envoy's dump leaves out `append_action` when it is `APPEND_IF_EXISTS_OR_ADD`).
fn mutations(at: &Value) -> Value {
    let adds = |key: &str| -> Vec<Value> {
        at[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                json!({
                    "key": h["header"]["key"],
                    "value": h["header"]["value"],
                    "append_action": h["append_action"].as_str().unwrap_or("APPEND_IF_EXISTS_OR_ADD"),
                })
            })
            .collect()
    };
    let removes = |key: &str| at[key].as_array().cloned().unwrap_or_default();
    json!({
        "request_add": adds("request_headers_to_add"),
        "request_remove": removes("request_headers_to_remove"),
        "response_add": adds("response_headers_to_add"),
        "response_remove": removes("response_headers_to_remove"),
    })
}

/// A `runtime_fraction` exactly, as `numerator/denominator`; none means every request.
fn fraction(fraction: &Value) -> String {
    let Some(default) = fraction.get("default_value") else {
        return "100/HUNDRED".into();
    };
    format!(
        "{}/{}",
        default["numerator"].as_u64().unwrap_or(0),
        default["denominator"].as_str().unwrap_or("HUNDRED")
    )
}

/// The names of the outbound clusters of `namespace` among `names`.
pub fn namespace_clusters<'a>(
    names: impl IntoIterator<Item = &'a str>,
    namespace: &str,
) -> BTreeSet<String> {
    let suffix = format!(".{namespace}.svc.{}", crate::hostname::DOMAIN_SUFFIX);
    names
        .into_iter()
        .filter(|n| n.starts_with("outbound|") && n.ends_with(&suffix))
        .map(str::to_owned)
        .collect()
}

/// The clusters Envoy holds, from its `/config_dump?resource=dynamic_active_clusters`.
pub fn dumped_clusters(dump: &Value) -> Vec<String> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// What differs between two sets of clusters, one line each.
pub fn diff_clusters(local: &BTreeSet<String>, istiod: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = istiod
        .difference(local)
        .map(|c| format!("only istiod has cluster {c}"))
        .collect();
    out.extend(
        local
            .difference(istiod)
            .map(|c| format!("only the translation has cluster {c}")),
    );
    out
}

/// What differs between two reduced route configurations, one line each.
pub fn diff(local: &Value, istiod: &Value) -> Vec<String> {
    let empty = Vec::new();
    let local = local.as_array().unwrap_or(&empty);
    let istiod = istiod.as_array().unwrap_or(&empty);
    let names = |hosts: &[Value]| -> Vec<String> {
        hosts
            .iter()
            .map(|h| h["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut out = Vec::new();
    if names(local) != names(istiod) {
        out.push(format!(
            "virtual hosts: here {:?}, istiod {:?}",
            names(local),
            names(istiod)
        ));
    }
    for (mine, theirs) in local.iter().zip(istiod) {
        let host = theirs["name"].as_str().unwrap_or_default();
        if mine["domains"] != theirs["domains"] {
            out.push(format!(
                "{host} domains: here {}, istiod {}",
                mine["domains"], theirs["domains"]
            ));
        }
        let empty = Vec::new();
        let (a, b) = (
            mine["routes"].as_array().unwrap_or(&empty),
            theirs["routes"].as_array().unwrap_or(&empty),
        );
        if a.len() != b.len() {
            out.push(format!(
                "{host}: {} routes here, {} from istiod",
                a.len(),
                b.len()
            ));
        }
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            for key in [
                "match",
                "to",
                "mirrors",
                "headers",
                "host_rewrite",
                "policies",
            ] {
                if a[key] != b[key] {
                    out.push(format!(
                        "{host} route {i} {key}: here {}, istiod {}",
                        a[key], b[key]
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! Istio's host names: how a short name is expanded, how wildcards cover names, and which
//! hosts a Gateway server admits for a VirtualService.
//!
//! Read in istio/istio (release-1.31, unchanged since 1.30.3): `ResolveShortnameToFQDN` in
//! `pilot/pkg/model/config.go`, `Name.SubsetOf`, `NamesForNamespace`, `Intersection` and
//! `MoreSpecific` in `pkg/config/host/`, `sanitizeServerHostNamespace` in
//! `pilot/pkg/model/gateway.go` and `resolveGatewayName` in `pilot/pkg/model/virtualservice.go`.

use std::cmp::Ordering;

/// The cluster's DNS suffix, as istiod runs by default.
pub const DOMAIN_SUFFIX: &str = "cluster.local";

/// `ResolveShortnameToFQDN`: only a name without a dot is expanded
/// (`reviews` -> `reviews.<ns>.svc.cluster.local`); `reviews.<ns>`, `reviews.<ns>.svc`,
/// FQDNs, wildcards and `*` are kept exactly as written, so `reviews.<ns>` names no Service.
pub fn resolve_short_name(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        return host.to_owned();
    }
    format!("{host}.{namespace}.svc.{DOMAIN_SUFFIX}")
}

/// The FQDN of Service `name` in `namespace`.
pub fn service_fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{DOMAIN_SUFFIX}")
}

/// Whether the host is a wildcard (`*` or `*.example.com`).
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// `Name.SubsetOf`: every name `a` covers is covered by `b` (`*.a.com` does not cover
/// `a.com`; names compare case-sensitively).
pub fn subset_of(a: &str, b: &str) -> bool {
    match (is_wildcard(a), is_wildcard(b)) {
        (true, true) => a.len() >= b.len() && a[1..].ends_with(&b[1..]),
        (true, false) => false,
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// `NamesForNamespace`: a Gateway server's hosts as they apply to a VirtualService in
/// `namespace`: `ns/host` only when `ns` is that namespace or `*`, the prefix stripped.
pub fn names_for_namespace(hosts: &[String], namespace: &str) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((ns, name)) => (ns == namespace || ns == "*").then(|| name.to_owned()),
            None => Some(h.clone()),
        })
        .collect()
}

/// `Names.Intersection`: for each pair that matches, the more specific host, in the order
/// of `server`'s hosts, without repeats.
pub fn intersection(server: &[String], other: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in server {
        for b in other {
            let pick = if subset_of(a, b) {
                Some(a)
            } else if subset_of(b, a) {
                Some(b)
            } else {
                None
            };
            if let Some(h) = pick
                && !out.contains(h)
            {
                out.push(h.clone());
            }
        }
    }
    out
}

/// `MoreSpecific` as an ordering: names before wildcards, longer first, then alphabetical.
pub fn more_specific_first(a: &str, b: &str) -> Ordering {
    is_wildcard(a)
        .cmp(&is_wildcard(b))
        .then(b.len().cmp(&a.len()))
        .then(a.cmp(b))
}

/// `sanitizeServerHostNamespace`: a Gateway server's host with `./` made the Gateway's own
/// namespace and `*/` dropped (`*/*` is `*`).
pub fn sanitize_server_host(host: &str, gateway_namespace: &str) -> String {
    match host.split_once('/') {
        Some((".", name)) => format!("{gateway_namespace}/{name}"),
        Some(("*", name)) => name.to_owned(),
        _ => host.to_owned(),
    }
}

/// `resolveGatewayName`: a VirtualService's `gateways` entry as `<namespace>/<name>`
/// (`gw` and `./gw` in the VirtualService's namespace; the legacy `gw.ns.svc.cluster.local`
/// as `ns/gw`); `mesh` stays `mesh`.
pub fn resolve_gateway_name(gateway: &str, vs_namespace: &str) -> String {
    if gateway == "mesh" {
        return gateway.to_owned();
    }
    if let Some((ns, name)) = gateway.split_once('/') {
        let ns = if ns == "." { vs_namespace } else { ns };
        return format!("{ns}/{name}");
    }
    let mut parts = gateway.split('.');
    match (parts.next(), parts.next()) {
        (Some(name), Some(ns)) => format!("{ns}/{name}"),
        _ => format!("{vs_namespace}/{gateway}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_names_without_a_dot_are_expanded() {
        assert_eq!(
            resolve_short_name("reviews", "test"),
            "reviews.test.svc.cluster.local"
        );
        for kept in [
            "reviews.test",
            "reviews.test.svc",
            "reviews.test.svc.cluster.local",
            "*.example.com",
            "*",
            "10.0.0.1",
        ] {
            assert_eq!(resolve_short_name(kept, "test"), kept);
        }
    }

    #[test]
    fn wildcards_cover_suffixes_but_not_the_bare_domain() {
        assert!(subset_of("a.example.com", "*.example.com"));
        assert!(!subset_of("example.com", "*.example.com"));
        assert!(subset_of("*.a.example.com", "*.example.com"));
        assert!(!subset_of("*.example.com", "*.a.example.com"));
        assert!(subset_of("anything", "*"));
        assert!(!subset_of("Reviews", "reviews"));
    }

    #[test]
    fn intersection_keeps_the_more_specific_host_in_server_order() {
        assert_eq!(
            intersection(&names(&["*"]), &names(&["bookinfo.example.com"])),
            ["bookinfo.example.com"]
        );
        assert_eq!(
            intersection(&names(&["*.example.com"]), &names(&["*"])),
            ["*.example.com"]
        );
        assert!(intersection(&names(&["a.example.com"]), &names(&["b.example.com"])).is_empty());
        assert_eq!(
            intersection(
                &names(&["b.example.com", "*.example.com"]),
                &names(&["a.example.com", "b.example.com"])
            ),
            ["b.example.com", "a.example.com"]
        );
    }

    #[test]
    fn server_hosts_apply_to_their_namespace_only() {
        let hosts = names(&["test/a.example.com", "other/b.example.com", "c.example.com"]);
        assert_eq!(
            names_for_namespace(&hosts, "test"),
            ["a.example.com", "c.example.com"]
        );
        assert_eq!(sanitize_server_host("./a.com", "test"), "test/a.com");
        assert_eq!(sanitize_server_host("*/a.com", "test"), "a.com");
        assert_eq!(sanitize_server_host("*/*", "test"), "*");
    }

    #[test]
    fn gateway_names_resolve_in_the_virtual_service_namespace() {
        assert_eq!(resolve_gateway_name("gw", "test"), "test/gw");
        assert_eq!(resolve_gateway_name("./gw", "test"), "test/gw");
        assert_eq!(resolve_gateway_name("other/gw", "test"), "other/gw");
        assert_eq!(
            resolve_gateway_name("gw.other.svc.cluster.local", "test"),
            "other/gw"
        );
        assert_eq!(resolve_gateway_name("mesh", "test"), "mesh");
    }

    #[test]
    fn more_specific_sorts_names_before_wildcards_longest_first() {
        let mut v = names(&["*.example.com", "a.com", "bb.com", "*", "aa.com"]);
        v.sort_by(|a, b| more_specific_first(a, b));
        assert_eq!(v, ["aa.com", "bb.com", "a.com", "*.example.com", "*"]);
    }
}

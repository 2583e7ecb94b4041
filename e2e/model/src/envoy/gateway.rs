//! The ingress gateway's routes, the way istiod builds them from Gateways and the
//! VirtualServices bound to them (`buildGatewayHTTPRouteConfig` and
//! `collapseDuplicateRoutes` in istio/istio `pilot/pkg/networking/core/gateway.go`,
//! release-1.31; the same in 1.30.3).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::order::in_istiod_order;
use super::routes::{
    Listener, TranslateError, check_ordered, is_catch_all, rds_response, translate_routes,
};
use crate::hostname;
use crate::istio::VirtualService;
use crate::topology::Topology;
use crate::version::IstioVersion;

/// The ingress gateway's listener and its routes, as Istio names them for a Gateway
/// server on port 8080 (`0.0.0.0_8080`, `http.8080`).
pub const INGRESS_LISTENER: &str = "0.0.0.0_8080";
/// See [`INGRESS_LISTENER`].
pub const INGRESS_ROUTE_CONFIG_NAME: &str = "http.8080";

/// The namespace of the ingress gateway's proxy: which VirtualServices it sees (`exportTo`).
pub const GATEWAY_NAMESPACE: &str = "istio-system";

/// The Gateway selector of the ingress gateway local mode plays.
const INGRESS_SELECTOR: (&str, &str) = ("istio", "ingressgateway");
/// The Gateway server port the ingress gateway listens on (`INGRESS_LISTENER`).
const GATEWAY_PORT: u32 = 8080;

/// One HTTP server on the gateway's port: its Gateway (`<ns>/<name>`) and its hosts.
struct Server {
    gateway: String,
    hosts: Vec<String>,
}

/// A virtual host being built: its routes, and where they came from (`(gateway, VS)` per
/// appended list), which is what makes two virtual hosts collapse into one.
struct VirtualHostDraft<'a> {
    routes: Vec<Value>,
    sources: Vec<(String, String)>,
    claimants: Vec<(u8, &'a VirtualService)>,
}

/// The ingress gateway's routes: the Gateways that select `istio: ingressgateway` with an
/// HTTP server on port 8080, and the VirtualServices bound to them that the gateway's
/// namespace sees; each server admits the intersection of its hosts and the
/// VirtualService's; routes of several VirtualServices for one host are appended in
/// istiod's order, catch-alls last; virtual hosts with the same routes collapse into one.
pub fn gateway_route_configuration(
    topo: &Topology,
    vss: &[&VirtualService],
    version: &IstioVersion,
) -> Result<Value, TranslateError> {
    let ns = &topo.namespace;
    let servers = servers(topo);
    let ordered = in_istiod_order(vss, ns, GATEWAY_NAMESPACE);
    let mut drafts: BTreeMap<String, VirtualHostDraft> = BTreeMap::new();
    let mut translated: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for server in &servers {
        for (class, vs) in &ordered {
            let bound = vs
                .spec
                .gateways
                .iter()
                .any(|g| hostname::resolve_gateway_name(g, ns) == server.gateway);
            if !bound {
                continue;
            }
            let vs_hosts: Vec<String> = vs.spec.hosts.iter().map(|h| topo.fqdn(h)).collect();
            let server_hosts = hostname::names_for_namespace(&server.hosts, ns);
            let admitted = hostname::intersection(&server_hosts, &vs_hosts);
            if admitted.is_empty() {
                continue;
            }
            let vs_name = vs.metadata.name.clone().unwrap_or_default();
            let key = (server.gateway.clone(), vs_name.clone());
            let routes = match translated.get(&key) {
                Some(routes) => routes.clone(),
                None => {
                    let listener = Listener {
                        port: GATEWAY_PORT,
                        gateway: true,
                    };
                    let routes = translate_routes(topo, vs, listener, version)?;
                    translated.insert(key.clone(), routes.clone());
                    routes
                }
            };
            for host in admitted {
                let draft = drafts
                    .entry(host.to_lowercase())
                    .or_insert_with(|| VirtualHostDraft {
                        routes: Vec::new(),
                        sources: Vec::new(),
                        claimants: Vec::new(),
                    });
                draft.routes.extend(routes.iter().cloned());
                draft.sources.push(key.clone());
                draft.claimants.push((*class, *vs));
            }
        }
    }
    for (host, draft) in &drafts {
        check_ordered(host, &draft.claimants)?;
    }
    Ok(rds_response(INGRESS_ROUTE_CONFIG_NAME, collapse(drafts), 1))
}

/// The HTTP servers on the gateway's port of the Gateways that select the ingress gateway,
/// their hosts as `sanitizeServerHostNamespace` leaves them.
fn servers(topo: &Topology) -> Vec<Server> {
    let mut out = Vec::new();
    for gateway in topo.gateways.iter().map(|g| &g.object) {
        let selected = gateway
            .spec
            .selector
            .get(INGRESS_SELECTOR.0)
            .map(String::as_str)
            == Some(INGRESS_SELECTOR.1);
        if !selected {
            continue;
        }
        let name = gateway.metadata.name.clone().unwrap_or_default();
        for server in &gateway.spec.servers {
            let http = server.port.number == GATEWAY_PORT
                && server
                    .port
                    .protocol
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case("HTTP"));
            if http {
                out.push(Server {
                    gateway: format!("{}/{name}", topo.namespace),
                    hosts: server
                        .hosts
                        .iter()
                        .map(|h| hostname::sanitize_server_host(h, &topo.namespace))
                        .collect(),
                });
            }
        }
    }
    out
}

/// `collapseDuplicateRoutes`: in `MoreSpecific` order, a virtual host whose routes came from
/// the very same sources as an earlier one's joins it (its domain added); then each one's
/// catch-all routes go last (`SortVHostRoutes`), and the hosts are sorted by name.
fn collapse(drafts: BTreeMap<String, VirtualHostDraft<'_>>) -> Vec<Value> {
    let mut hosts: Vec<(String, VirtualHostDraft<'_>)> = drafts.into_iter().collect();
    hosts.sort_by(|(a, _), (b, _)| hostname::more_specific_first(a, b));
    let mut merged: Vec<(String, Vec<String>, VirtualHostDraft<'_>)> = Vec::new();
    for (host, draft) in hosts {
        match merged
            .iter_mut()
            .find(|(_, _, d)| d.sources == draft.sources)
        {
            Some((_, domains, _)) => domains.push(host),
            None => merged.push((host.clone(), vec![host], draft)),
        }
    }
    let mut out: Vec<Value> = merged
        .into_iter()
        .map(|(host, domains, draft)| {
            let (mut routes, catch_alls): (Vec<Value>, Vec<Value>) = draft
                .routes
                .into_iter()
                .partition(|r| !is_catch_all(&r["match"]));
            routes.extend(catch_alls);
            json!({
                "name": format!("{host}:{GATEWAY_PORT}"),
                "domains": domains,
                "routes": routes,
                "include_request_attempt_count": true,
            })
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

#[cfg(test)]
mod tests;

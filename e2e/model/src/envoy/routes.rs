//! A sidecar's outbound routes and clusters, the way istiod builds them from VirtualServices,
//! DestinationRules and Services.
//!
//! Read in istio/istio (release-1.31; the same in 1.30.3): `BuildSidecarOutboundVirtualHosts`
//! and `BuildSidecarVirtualHostWrapper` (`pilot/pkg/networking/core/httproute.go`),
//! `BuildHTTPRoutesForVirtualService`, `applyHTTPRouteDestination`, `GetDestinationCluster`,
//! `MirrorPercent` (`core/route/route.go`), `buildOutboundClusters` (`core/cluster.go`),
//! `SelectVirtualServices` and `configCompareByCreationTime` (`pilot/pkg/model/`).
//! Anything this translation does not model is an error naming the field, never ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::headers::Mutations;
pub use super::matches::is_catch_all;
use super::matches::route_match;
use super::mirrors::mirror_policy;
pub use super::mirrors::{Fraction, mirror_fraction};
use super::order::{creation_order, in_istiod_order};
use super::policies;
use crate::hostname;
use crate::istio::{
    Destination, GoDuration, HttpMatchRequest, HttpRoute, PortSelector, VirtualService,
};
use crate::topology::Topology;
use crate::version::IstioVersion;

/// Route configuration name, as Istio names outbound routes by port.
pub const ROUTE_CONFIG_NAME: &str = "9080";

/// The sidecar's outbound listener (productpage's, whose calls the routing under test
/// steers), as Istio names it.
pub const OUTBOUND_LISTENER: &str = "outbound_0.0.0.0_9080";

/// The port of the sidecar's outbound listener.
pub const SIDECAR_PORT: u32 = 9080;

/// A VirtualService that local mode cannot translate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TranslateError {
    /// A field the translation does not model.
    #[error("VirtualService {vs}: {path}: not supported in local mode")]
    Unsupported {
        /// VirtualService name.
        vs: String,
        /// YAML path of the field.
        path: String,
    },
    /// A route with no destination.
    #[error(
        "VirtualService {vs}: spec.http[{index}].route: a route needs at least one destination"
    )]
    NoDestination {
        /// VirtualService name.
        vs: String,
        /// Route index.
        index: usize,
    },
    /// Two VirtualServices compete for one host and only their creation times, which files
    /// do not have, decide between them.
    #[error(
        "VirtualServices {first} and {second} both route host {host}: istiod keeps the older (by creation time, then name) on a sidecar and merges them in that order on a gateway, and files carry no creation time; not supported in local mode"
    )]
    Unordered {
        /// The host both claim.
        host: String,
        /// One VirtualService.
        first: String,
        /// The other.
        second: String,
    },
}

impl TranslateError {
    /// The VirtualService the error is about and the YAML path of the field, for a finding
    /// that names file and line.
    pub fn location(&self) -> (&str, String) {
        match self {
            TranslateError::Unsupported { vs, path } => (vs, path.clone()),
            TranslateError::NoDestination { vs, index } => {
                (vs, format!("spec.http[{index}].route"))
            }
            TranslateError::Unordered { second, .. } => (second, "spec.hosts".into()),
        }
    }

    /// What is wrong, without the VirtualService and the path [`location`](Self::location)
    /// gives (a finding names those itself).
    pub fn reason(&self) -> String {
        match self {
            TranslateError::Unsupported { path, .. } => match path.split_once(" (") {
                Some((_, note)) => format!("not supported in local mode ({note}"),
                None => "not supported in local mode".into(),
            },
            TranslateError::NoDestination { .. } => "a route needs at least one destination".into(),
            TranslateError::Unordered { .. } => self.to_string(),
        }
    }
}

/// Route fields the translation models (in the CRD's spelling).
const SUPPORTED_ROUTE_FIELDS: &[&str] = &[
    "name",
    "match",
    "route",
    "mirror",
    "mirrors",
    "mirrorPercentage",
    "mirrorPercent",
    "mirror_percent",
    "headers",
    "timeout",
    "retries",
    "fault",
    "corsPolicy",
    "rewrite",
];

/// The listener routes are built for: its port names clusters of destinations without one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listener {
    /// The sidecar's listener port, or the Gateway server's port number.
    pub port: u32,
    /// A gateway sees every port of a Service; a sidecar only the listener's.
    pub gateway: bool,
}

impl Listener {
    /// The sidecar's outbound listener.
    pub const SIDECAR: Listener = Listener {
        port: SIDECAR_PORT,
        gateway: false,
    };
}

/// The Istio cluster name of a destination with its port as given (or the sidecar
/// listener's port).
pub fn cluster_name(topo: &Topology, dest: &Destination) -> String {
    destination_cluster(topo, dest, Listener::SIDECAR)
}

/// `GetDestinationCluster`: an explicit port wins; else a Service the proxy knows with
/// exactly one port gives it; else the listener's port. A sidecar knows a Service only by
/// its listener port, so without a port it is always the listener's.
pub(crate) fn destination_cluster(
    topo: &Topology,
    dest: &Destination,
    listener: Listener,
) -> String {
    let fqdn = topo.fqdn(&dest.host);
    let port = match &dest.port {
        Some(p) => p.number,
        None if listener.gateway => match service_ports_by_fqdn(topo, &fqdn).as_slice() {
            [only] => *only,
            _ => listener.port,
        },
        None => listener.port,
    };
    format!(
        "outbound|{port}|{}|{fqdn}",
        dest.subset.as_deref().unwrap_or("")
    )
}

/// The ports of the Service a resolved host names, if it names one of the set.
fn service_ports_by_fqdn(topo: &Topology, fqdn: &str) -> Vec<u32> {
    match topo.service_name_of(fqdn) {
        Some(name) if fqdn.contains('.') => topo.service_ports(name),
        _ => Vec::new(),
    }
}

/// The port of a host's Service (its first port), or the sidecar's port when unknown.
pub fn service_port(topo: &Topology, host: &str) -> u32 {
    topo.service_ports(host)
        .first()
        .copied()
        .unwrap_or(SIDECAR_PORT)
}

/// Whether a VirtualService configures sidecars (as opposed to only gateways).
pub fn applies_to_mesh(vs: &VirtualService) -> bool {
    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh")
}

/// The outbound clusters istiod builds, as destinations with their port: for every port of
/// every Service one without a subset and one per subset of the DestinationRule for its
/// FQDN (`buildOutboundClusters`: `for _, port := range service.Ports`, named by
/// `model.BuildSubsetKey` as `outbound|PORT|SUBSET|HOST`). Nothing else: a route or mirror
/// to another port, subset or host names a cluster that does not exist, and Envoy answers
/// it as a cluster's proxy does (503 `NC`, `cluster_not_found`; a mirror to it sends nothing).
pub fn outbound_clusters(topo: &Topology) -> Vec<Destination> {
    let mut out = Vec::new();
    for service in &topo.services {
        let host = service.object.metadata.name.clone().unwrap_or_default();
        let subsets = topo.subsets_of(&host);
        for port in topo.service_ports(&host) {
            let subsets = std::iter::once(None).chain(subsets.iter().map(|s| Some(s.name.clone())));
            for subset in subsets {
                out.push(Destination {
                    host: host.clone(),
                    subset,
                    port: Some(PortSelector { number: port }),
                });
            }
        }
    }
    // Two DestinationRules may name one subset; the cluster is one.
    let mut seen = BTreeSet::new();
    out.retain(|d| seen.insert(cluster_name(topo, d)));
    out
}

/// The default cluster of a Service (no subset), where a sidecar sends a host that no
/// VirtualService routes.
pub fn service_cluster(topo: &Topology, service: &str) -> String {
    cluster_name(
        topo,
        &Destination {
            host: service.to_owned(),
            ..Destination::default()
        },
    )
}

/// Refuses when two VirtualServices of one class claim `host` and nothing but their creation
/// times orders them.
pub(crate) fn check_ordered(
    host: &str,
    claimants: &[(u8, &VirtualService)],
) -> Result<(), TranslateError> {
    for (i, (ca, a)) in claimants.iter().enumerate() {
        for (cb, b) in &claimants[i + 1..] {
            if ca == cb && creation_order(a, b).is_none() {
                return Err(TranslateError::Unordered {
                    host: host.to_owned(),
                    first: a.metadata.name.clone().unwrap_or_default(),
                    second: b.metadata.name.clone().unwrap_or_default(),
                });
            }
        }
    }
    Ok(())
}

/// The `RouteConfiguration` of the sidecar's outbound listener, as an RDS discovery
/// response: a virtual host per VirtualService host whose Service has the listener's port
/// (the first VirtualService keeps a host), then the default route of every other Service
/// with that port; sorted by name.
pub fn route_configuration(
    topo: &Topology,
    vss: &[&VirtualService],
    version: &IstioVersion,
    config_version: u64,
) -> Result<Value, TranslateError> {
    let ns = &topo.namespace;
    let has_port = |fqdn: &str| service_ports_by_fqdn(topo, fqdn).contains(&SIDECAR_PORT);
    let ordered = sidecar_virtual_services(topo, vss)?;
    let mut virtual_hosts: Vec<Value> = Vec::new();
    let mut names = BTreeSet::new();
    let mut used_domains = BTreeSet::new();
    let mut push = |name: String, domains: Vec<String>, routes: Value| {
        if !names.insert(name.clone()) {
            return;
        }
        let domains: Vec<String> = domains
            .into_iter()
            .filter(|d| used_domains.insert(d.clone()))
            .collect();
        // `buildVirtualHost`: one whose every domain an earlier one took is no virtual host
        // (Envoy would reject a virtual host without domains).
        if domains.is_empty() {
            return;
        }
        virtual_hosts.push(json!({
            "name": name,
            "domains": domains,
            "routes": routes,
            "include_request_attempt_count": true,
        }));
    };
    let mut covered = BTreeSet::new();
    for (_, vs) in &ordered {
        let routes = Value::from(translate_routes(topo, vs, Listener::SIDECAR, version)?);
        // `separateVSHostsAndServices`: hosts naming no Service first, then the Services.
        let (services, others): (Vec<String>, Vec<String>) = vs
            .spec
            .hosts
            .iter()
            .map(|h| topo.fqdn(h))
            .partition(|h| has_port(h));
        for host in others {
            push(format!("{host}:{SIDECAR_PORT}"), vec![host], routes.clone());
        }
        for fqdn in services {
            covered.insert(fqdn.clone());
            let name = topo.service_name_of(&fqdn).unwrap_or_default().to_owned();
            push(
                format!("{fqdn}:{SIDECAR_PORT}"),
                service_domains(&name, ns),
                routes.clone(),
            );
        }
    }
    for service in &topo.services {
        let name = service.object.metadata.name.clone().unwrap_or_default();
        let fqdn = hostname::service_fqdn(&name, ns);
        if covered.contains(&fqdn) || !has_port(&fqdn) {
            continue;
        }
        let route = default_route(topo, &name);
        push(
            format!("{fqdn}:{SIDECAR_PORT}"),
            service_domains(&name, ns),
            route,
        );
    }
    virtual_hosts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(rds_response(
        ROUTE_CONFIG_NAME,
        virtual_hosts,
        config_version,
    ))
}

/// The VirtualServices that configure the sidecar, in istiod's order with their class
/// (`selectVirtualServices`), refused if one has a wildcard host or competing ones have no
/// order.
fn sidecar_virtual_services<'a>(
    topo: &Topology,
    vss: &[&'a VirtualService],
) -> Result<Vec<(u8, &'a VirtualService)>, TranslateError> {
    let ns = &topo.namespace;
    // `selectVirtualServices`: off port 80 only VirtualServices naming a Service with the
    // listener's port configure the sidecar.
    let has_port = |fqdn: &str| service_ports_by_fqdn(topo, fqdn).contains(&SIDECAR_PORT);
    let mesh: Vec<&VirtualService> = vss
        .iter()
        .copied()
        .filter(|vs| applies_to_mesh(vs))
        .collect();
    let ordered: Vec<(u8, &VirtualService)> = in_istiod_order(&mesh, ns, ns)
        .into_iter()
        .filter(|(_, vs)| vs.spec.hosts.iter().any(|h| has_port(&topo.fqdn(h))))
        .collect();
    for vs in &ordered {
        if let Some(host) = vs.1.spec.hosts.iter().find(|h| hostname::is_wildcard(h)) {
            return Err(TranslateError::Unsupported {
                vs: vs.1.metadata.name.clone().unwrap_or_default(),
                path: format!("spec.hosts ({host}: a wildcard host on a sidecar)"),
            });
        }
    }
    let mut by_host: BTreeMap<String, Vec<(u8, &VirtualService)>> = BTreeMap::new();
    for (class, vs) in &ordered {
        for host in &vs.spec.hosts {
            by_host
                .entry(topo.fqdn(host))
                .or_default()
                .push((*class, vs));
        }
    }
    for (host, claimants) in &by_host {
        check_ordered(host, claimants)?;
    }
    Ok(ordered)
}

/// `BuildDefaultHTTPOutboundRoute`: a Service no VirtualService routes, to its cluster with
/// the default retry policy and no timeout.
fn default_route(topo: &Topology, name: &str) -> Value {
    let mut action = Map::new();
    action.insert("cluster".into(), service_cluster(topo, name).into());
    policies::set_timeout(&mut action, None);
    action.insert(
        "retry_policy".into(),
        policies::retry_policy(None, false).into(),
    );
    json!([{"name": "default", "match": {"prefix": "/"}, "route": action}])
}

/// `generateVirtualHostDomains` for a Service in the caller's namespace: the FQDN, the
/// absolute FQDN (1.28+ and every release played here), then the short forms; no ports
/// (the route configuration ignores the port in Host). istiod adds the Service's cluster
/// IPs, which only a cluster has.
pub fn service_domains(name: &str, namespace: &str) -> Vec<String> {
    let fqdn = hostname::service_fqdn(name, namespace);
    vec![
        fqdn.clone(),
        format!("{fqdn}."),
        name.to_owned(),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}"),
    ]
}

/// An RDS discovery response of one RouteConfiguration, with istiod's settings.
pub(crate) fn rds_response(name: &str, virtual_hosts: Vec<Value>, config_version: u64) -> Value {
    json!({
        "version_info": config_version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": name,
            "virtual_hosts": virtual_hosts,
            "validate_clusters": false,
            "ignore_port_in_host_matching": true,
        }],
    })
}

/// `BuildHTTPRoutesForVirtualService`: an Envoy route per match entry of each rule, in
/// order, up to the first catch-all.
pub(crate) fn translate_routes(
    topo: &Topology,
    vs: &VirtualService,
    listener: Listener,
    version: &IstioVersion,
) -> Result<Vec<Value>, TranslateError> {
    let vs_name = vs.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut catch_all = false;
    for (i, route) in vs.spec.http.iter().enumerate() {
        let unsupported = |path: String| TranslateError::Unsupported {
            vs: vs_name.clone(),
            path,
        };
        if let Some(field) = route
            .set_fields()
            .into_iter()
            .find(|f| !SUPPORTED_ROUTE_FIELDS.contains(&f.as_str()))
        {
            return Err(unsupported(format!("spec.http[{i}].{field}")));
        }
        let (action, mutations) =
            route_action(topo, route, listener, version).ok_or_else(|| {
                TranslateError::NoDestination {
                    vs: vs_name.clone(),
                    index: i,
                }
            })?;
        let matches: Vec<Option<&HttpMatchRequest>> = if route.matches.is_empty() {
            vec![None]
        } else {
            route.matches.iter().map(Some).collect()
        };
        for (j, m) in matches.into_iter().enumerate() {
            let route_match = match m {
                None => json!({"prefix": "/"}),
                Some(m) => route_match(m)
                    .map_err(|field| unsupported(format!("spec.http[{i}].match[{j}].{field}")))?,
            };
            // istiod stops at the first catch-all route ("Routes are matched in order, so we
            // will never go beyond this match"); the rules after it are still checked above,
            // so nothing unmodelled passes unnoticed.
            if catch_all {
                continue;
            }
            catch_all = is_catch_all(&route_match);
            let mut name = route.name.clone().unwrap_or_default();
            if let Some(match_name) = m.and_then(|m| m.name.as_deref()).filter(|n| !n.is_empty()) {
                name = format!("{name}.{match_name}");
            }
            let mut envoy_route = Map::new();
            envoy_route.insert("name".into(), name.into());
            envoy_route.insert("match".into(), route_match);
            envoy_route.insert("route".into(), action.clone());
            if let Some(stat_prefix) = m.and_then(|m| m.stat_prefix.as_deref()) {
                envoy_route.insert("stat_prefix".into(), stat_prefix.into());
            }
            mutations.write_lists(&mut envoy_route);
            if let Some(filters) =
                policies::per_filter_config(route.fault.as_ref(), route.cors_policy.as_ref())
            {
                envoy_route.insert("typed_per_filter_config".into(), filters);
            }
            out.push(Value::Object(envoy_route));
        }
    }
    Ok(out)
}

/// The Envoy route action of a rule and the Route-level header mutations
/// (`applyHTTPRouteDestination`); `None` when it has no destination.
fn route_action(
    topo: &Topology,
    route: &HttpRoute,
    listener: Listener,
    version: &IstioVersion,
) -> Option<(Value, Mutations)> {
    let cluster = |dest: &Destination| destination_cluster(topo, dest, listener);
    let mut action = Map::new();
    policies::set_timeout(&mut action, route.timeout.as_ref().map(GoDuration::nanos));
    let mut mutations = Mutations::of(route.headers.as_ref());
    let mut route_authority = mutations.authority.clone();
    if let Some(rewrite) = &route.rewrite
        && let Some(authority) = policies::apply_rewrite(rewrite, &mut action)
    {
        route_authority = Some(authority);
    }
    match route.route.as_slice() {
        [] => return None,
        // One destination is a plain cluster, whatever its weight; its headers follow the
        // route's (so they win for one name); the route's Host wins over its own.
        [only] => {
            action.insert("cluster".into(), cluster(&only.destination).into());
            let own = Mutations::of(only.headers.as_ref());
            if route_authority.is_none() {
                mutations.authority = own.authority.clone();
            }
            mutations.extend(own);
        }
        // Several: weight 0 dropped, always weighted clusters, each with its own headers.
        many => {
            let clusters: Vec<Value> = many
                .iter()
                .filter(|d| d.weight.unwrap_or(0) != 0)
                .map(|d| {
                    let mut weighted = Map::new();
                    weighted.insert("name".into(), cluster(&d.destination).into());
                    weighted.insert("weight".into(), d.weight.unwrap_or(0).into());
                    let own = Mutations::of(d.headers.as_ref());
                    own.write_lists(&mut weighted);
                    if let Some(host) = own.authority {
                        weighted.insert("host_rewrite_literal".into(), host.into());
                    }
                    Value::Object(weighted)
                })
                .collect();
            action.insert("weighted_clusters".into(), json!({"clusters": clusters}));
        }
    }
    let authority = route_authority.or(mutations.authority.clone());
    if let Some(host) = authority {
        action.insert("host_rewrite_literal".into(), host.into());
    }
    let mut mirrors = Vec::new();
    if let (Some(mirror), Some(fraction)) = (&route.mirror, mirror_fraction(route)) {
        mirrors.push(mirror_policy(cluster(mirror), fraction, version));
    }
    for m in route.mirrors.iter().flatten() {
        let fraction = match &m.percentage {
            None => Some(Fraction::HUNDRED_PERCENT),
            Some(p) => Fraction::from_percentage(p.value),
        };
        if let Some(fraction) = fraction {
            mirrors.push(mirror_policy(cluster(&m.destination), fraction, version));
        }
    }
    if !mirrors.is_empty() {
        action.insert("request_mirror_policies".into(), mirrors.into());
    }
    // Consistent hashing (a DestinationRule's `loadBalancer.consistentHash`) would keep the
    // previous host; local mode refuses it (`lint::local_support`), so never here.
    if let Some(retry) = policies::retry_policy(route.retries.as_ref(), false) {
        action.insert("retry_policy".into(), retry);
    }
    Some((Value::Object(action), mutations))
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;

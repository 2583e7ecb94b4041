//! Envoy configuration generated from VirtualServices, the way istiod configures a sidecar.
//!
//! The translation follows istio/istio `pilot/pkg/networking/core/route/route.go`: one
//! virtual host per VirtualService host (with every short and qualified domain form), one
//! Envoy route per `match` entry, destinations as `outbound|<port>|<subset>|<fqdn>` clusters,
//! and each mirror as a `request_mirror_policies` entry with a runtime fraction. Anything
//! this translation does not model is an error naming the field, never ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::istio::{
    Destination, HttpMatchRequest, HttpRoute, PortSelector, StringMatch, VirtualService,
};
use crate::topology::Topology;
use crate::version::IstioVersion;

/// Route configuration name, as Istio names outbound routes by port.
pub const ROUTE_CONFIG_NAME: &str = "9080";

/// The sidecar's outbound listener (productpage's, whose calls the routing under test
/// steers), as Istio names it.
pub const OUTBOUND_LISTENER: &str = "outbound_0.0.0.0_9080";

/// The ingress gateway's listener and its routes, as Istio names them for a Gateway
/// server on port 8080 (`0.0.0.0_8080`, `http.8080`).
pub const INGRESS_LISTENER: &str = "0.0.0.0_8080";
/// See [`INGRESS_LISTENER`].
pub const INGRESS_ROUTE_CONFIG_NAME: &str = "http.8080";

/// The Gateway selector of the ingress gateway local mode plays.
const INGRESS_SELECTOR: (&str, &str) = ("istio", "ingressgateway");
/// The Gateway server port the ingress gateway listens on (`INGRESS_LISTENER`).
const GATEWAY_PORT: u32 = 8080;

/// Port assumed for a host whose Service is not in the manifests.
const DEFAULT_PORT: u32 = 9080;

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
];

/// Match fields the translation models.
const SUPPORTED_MATCH_FIELDS: &[&str] = &["name", "uri", "headers"];

/// An upstream cluster and the addresses of its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<fqdn>`.
    pub name: String,
    /// Endpoint addresses (empty for a host with no workload).
    pub endpoints: Vec<SocketAddr>,
}

/// The Istio cluster name of a destination.
pub fn cluster_name(topo: &Topology, dest: &Destination) -> String {
    let port = dest
        .port
        .as_ref()
        .map(|p| p.number)
        .unwrap_or_else(|| service_port(topo, &dest.host));
    format!(
        "outbound|{port}|{}|{}",
        dest.subset.as_deref().unwrap_or(""),
        topo.fqdn(&dest.host)
    )
}

/// The port of a host's Service (its first port), or 9080 when the Service is unknown.
pub fn service_port(topo: &Topology, host: &str) -> u32 {
    topo.service_name_of(host)
        .and_then(|name| topo.service(name))
        .and_then(|s| s.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port))
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(DEFAULT_PORT)
}

/// Whether a VirtualService configures sidecars (as opposed to only gateways).
pub fn applies_to_mesh(vs: &VirtualService) -> bool {
    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh")
}

/// The outbound clusters istiod builds, as destinations with their port: for every port of
/// every Service one without a subset and one per DestinationRule subset
/// (`pilot/pkg/networking/core/cluster.go`, `buildOutboundClusters`: `for _, port := range
/// service.Ports`, named by `model.BuildSubsetKey` as `outbound|PORT|SUBSET|HOST`). Nothing
/// else: a route or mirror to another port, subset or host names a cluster that does not
/// exist, and Envoy answers it as a cluster's proxy does (503 `NC`, `cluster_not_found`;
/// a mirror to it sends nothing).
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

/// The `RouteConfiguration` of the sidecar's outbound listener, as an RDS discovery
/// response: the mesh VirtualServices, then, as istiod does, a default route to each
/// Service no VirtualService covers.
pub fn route_configuration(
    topo: &Topology,
    vss: &[&VirtualService],
    known_clusters: &[String],
    version: &IstioVersion,
    config_version: u64,
) -> Result<Value, TranslateError> {
    let mut virtual_hosts = Vec::new();
    let mut covered = Vec::new();
    for vs in vss.iter().filter(|vs| applies_to_mesh(vs)) {
        let name = vs.metadata.name.clone().unwrap_or_default();
        let routes = translate_routes(topo, vs, &name, version)?;
        for host in &vs.spec.hosts {
            covered.push(topo.fqdn(host));
            virtual_hosts.push(json!({
                "name": format!("{}:{}", topo.fqdn(host), service_port(topo, host)),
                "domains": domains(topo, host),
                "routes": routes,
                "include_request_attempt_count": true,
            }));
        }
    }
    for service in &topo.services {
        let name = service.object.metadata.name.clone().unwrap_or_default();
        let cluster = service_cluster(topo, &name);
        if covered.contains(&topo.fqdn(&name)) || !known_clusters.contains(&cluster) {
            continue;
        }
        virtual_hosts.push(json!({
            "name": format!("{}:{}", topo.fqdn(&name), service_port(topo, &name)),
            "domains": domains(topo, &name),
            "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}],
        }));
    }
    Ok(rds_response(
        ROUTE_CONFIG_NAME,
        virtual_hosts,
        config_version,
    ))
}

fn rds_response(name: &str, virtual_hosts: Vec<Value>, config_version: u64) -> Value {
    json!({
        "version_info": config_version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": name,
            "virtual_hosts": virtual_hosts,
            "validate_clusters": false,
        }],
    })
}

/// The ingress gateway's routes: the Gateways that select `istio: ingressgateway` with an
/// HTTP server on port 8080, and the VirtualServices bound to them, whose hosts the server
/// admits (istiod's gateway translation, pilot/pkg/networking/core/gateway.go).
pub fn gateway_route_configuration(
    topo: &Topology,
    vss: &[&VirtualService],
    version: &IstioVersion,
) -> Result<Value, TranslateError> {
    let gateways: Vec<(String, Vec<String>)> = topo
        .gateways
        .iter()
        .map(|g| &g.object)
        .filter(|g| {
            g.spec.selector.get(INGRESS_SELECTOR.0).map(String::as_str) == Some(INGRESS_SELECTOR.1)
        })
        .filter_map(|g| {
            let hosts: Vec<String> = g
                .spec
                .servers
                .iter()
                .filter(|s| {
                    s.port.number == GATEWAY_PORT
                        && s.port
                            .protocol
                            .as_deref()
                            .is_some_and(|p| p.eq_ignore_ascii_case("HTTP"))
                })
                .flat_map(|s| {
                    s.hosts
                        .iter()
                        .map(|h| h.rsplit('/').next().unwrap_or(h).to_owned())
                })
                .collect();
            let name = g.metadata.name.clone()?;
            (!hosts.is_empty()).then_some((name, hosts))
        })
        .collect();
    let mut virtual_hosts = Vec::new();
    for vs in vss {
        let bound: Vec<&(String, Vec<String>)> = gateways
            .iter()
            .filter(|(name, _)| {
                vs.spec
                    .gateways
                    .iter()
                    .any(|g| g == name || g.rsplit('/').next() == Some(name))
            })
            .collect();
        if bound.is_empty() {
            continue;
        }
        let name = vs.metadata.name.clone().unwrap_or_default();
        let routes = translate_routes(topo, vs, &name, version)?;
        for host in &vs.spec.hosts {
            let admitted = bound
                .iter()
                .any(|(_, hosts)| hosts.iter().any(|h| h == "*" || h == host));
            if !admitted {
                continue;
            }
            // As istiod names and matches a gateway's virtual host: a short name resolved
            // in the VirtualService's namespace, and the Gateway server's port (seen by
            // `cargo xtask parity`: `reviews.<ns>.svc.cluster.local:8080`, not `reviews:80`).
            let host = if host.contains('*') {
                host.clone()
            } else {
                topo.fqdn(host)
            };
            let domains = if host == "*" {
                vec!["*".to_owned()]
            } else {
                vec![host.clone(), format!("{host}:*")]
            };
            virtual_hosts.push(json!({
                "name": format!("{host}:{GATEWAY_PORT}"),
                "domains": domains,
                "routes": routes,
            }));
        }
    }
    Ok(rds_response(INGRESS_ROUTE_CONFIG_NAME, virtual_hosts, 1))
}

/// Every name a caller in the namespace may use for the host, with and without the port.
fn domains(topo: &Topology, host: &str) -> Vec<String> {
    let port = service_port(topo, host);
    let names: Vec<String> = match topo.service_name_of(host) {
        Some(name) => {
            let ns = &topo.namespace;
            vec![
                name.to_owned(),
                format!("{name}.{ns}"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}.svc.cluster.local"),
            ]
        }
        None => vec![host.to_owned()],
    };
    names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}:{port}")])
        .collect()
}

fn translate_routes(
    topo: &Topology,
    vs: &VirtualService,
    vs_name: &str,
    version: &IstioVersion,
) -> Result<Vec<Value>, TranslateError> {
    // A destination istiod built no cluster for is routed all the same: istiod does not drop
    // the route (pilot/pkg/networking/core/route/route.go, GetDestinationCluster names the
    // cluster from the destination alone), and Envoy answers 503 for it.
    let cluster = |dest: &Destination| cluster_name(topo, dest);
    let mut out = Vec::new();
    let mut catch_all = false;
    for (i, route) in vs.spec.http.iter().enumerate() {
        let unsupported = |path: String| TranslateError::Unsupported {
            vs: vs_name.to_owned(),
            path,
        };
        if let Some(field) = route
            .set_fields()
            .into_iter()
            .find(|f| !SUPPORTED_ROUTE_FIELDS.contains(&f.as_str()))
        {
            return Err(unsupported(format!("spec.http[{i}].{field}")));
        }
        let action = route_action(route, &cluster, version).ok_or_else(|| {
            TranslateError::NoDestination {
                vs: vs_name.to_owned(),
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
            // istiod stops at the first catch-all route (route.go,
            // BuildHTTPRoutesForVirtualService: "Routes are matched in order, so we will never
            // go beyond this match"); the rules after it are still checked above, so nothing
            // unmodelled passes unnoticed.
            if catch_all {
                continue;
            }
            catch_all = is_catch_all(&route_match);
            out.push(json!({
                "name": route.name.clone().unwrap_or_default(),
                "match": route_match,
                "route": action,
            }));
        }
    }
    Ok(out)
}

/// istiod's `IsCatchAllRoute` (route.go): a `/` prefix or a `.*` regex path, and no header
/// match.
fn is_catch_all(route_match: &Value) -> bool {
    let path = route_match.get("prefix").and_then(Value::as_str) == Some("/")
        || route_match
            .pointer("/safe_regex/regex")
            .and_then(Value::as_str)
            == Some(".*");
    path && route_match.get("headers").is_none()
}

/// The Envoy route action of a route; `None` when it has no destination.
fn route_action(
    route: &HttpRoute,
    cluster: &dyn Fn(&Destination) -> String,
    version: &IstioVersion,
) -> Option<Value> {
    let mut action = serde_json::Map::new();
    match route.route.as_slice() {
        [] => return None,
        [only] => {
            action.insert("cluster".into(), cluster(&only.destination).into());
        }
        many => {
            let clusters: Vec<Value> = many
                .iter()
                .map(|d| json!({"name": cluster(&d.destination), "weight": d.weight.unwrap_or(0)}))
                .collect();
            action.insert("weighted_clusters".into(), json!({"clusters": clusters}));
        }
    }
    // Istio disables the route timeout unless the VirtualService sets one.
    action.insert("timeout".into(), "0s".into());
    let mut policies = Vec::new();
    if let Some(mirror) = &route.mirror {
        policies.push(mirror_policy(
            cluster(mirror),
            mirror_fraction(route),
            version,
        ));
    }
    for m in route.mirrors.iter().flatten() {
        let fraction = m
            .percentage
            .as_ref()
            .map_or(Fraction::HUNDRED_PERCENT, |p| {
                Fraction::from_percentage(p.value)
            });
        policies.push(mirror_policy(cluster(&m.destination), fraction, version));
    }
    if !policies.is_empty() {
        action.insert("request_mirror_policies".into(), policies.into());
    }
    Some(Value::Object(action))
}

/// A runtime fraction: `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// Numerator.
    pub numerator: u64,
    /// `HUNDRED` or `MILLION`.
    pub denominator: &'static str,
}

impl Fraction {
    const HUNDRED_PERCENT: Fraction = Fraction {
        numerator: 100,
        denominator: "HUNDRED",
    };

    /// `mirrorPercentage` (a double) as Istio encodes it: parts per million.
    pub fn from_percentage(value: f64) -> Fraction {
        Fraction {
            numerator: (value.clamp(0.0, 100.0) * 10_000.0).round() as u64,
            denominator: "MILLION",
        }
    }
}

/// The share mirrored by a route's `mirror`: `mirrorPercentage` wins over the deprecated
/// integer forms; absent means 100%.
pub fn mirror_fraction(route: &HttpRoute) -> Fraction {
    if let Some(p) = &route.mirror_percentage {
        return Fraction::from_percentage(p.value);
    }
    let deprecated = route
        .mirror_percent
        .as_ref()
        .or(route.mirror_percent_snake.as_ref())
        .and_then(Value::as_u64);
    match deprecated {
        Some(p) => Fraction {
            numerator: p.min(100),
            denominator: "HUNDRED",
        },
        None => Fraction::HUNDRED_PERCENT,
    }
}

fn mirror_policy(cluster: String, fraction: Fraction, version: &IstioVersion) -> Value {
    let mut policy = json!({
        "cluster": cluster,
        "runtime_fraction": {"default_value": {"numerator": fraction.numerator, "denominator": fraction.denominator}},
        "trace_sampled": false,
    });
    if !version.appends_shadow_suffix() {
        policy["disable_shadow_host_suffix_append"] = true.into();
    }
    policy
}

/// An Envoy route match for one VirtualService match entry; `Err(field)` names a field the
/// translation does not model.
fn route_match(m: &HttpMatchRequest) -> Result<Value, String> {
    if let Some(field) = serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .unwrap_or_default()
        .into_iter()
        .find(|f| !SUPPORTED_MATCH_FIELDS.contains(&f.as_str()))
    {
        return Err(field);
    }
    let mut out = serde_json::Map::new();
    match &m.uri {
        None => {
            out.insert("prefix".into(), "/".into());
        }
        Some(uri) => {
            let (kind, value) = string_match_parts(uri).ok_or("uri")?;
            let key = match kind {
                "exact" => "path",
                "prefix" => "prefix",
                _ => "safe_regex",
            };
            let value = if kind == "regex" {
                json!({"regex": value})
            } else {
                value.into()
            };
            out.insert(key.into(), value);
        }
    }
    let headers: BTreeMap<&String, &StringMatch> = m.headers.iter().flatten().collect();
    if !headers.is_empty() {
        let mut list = Vec::new();
        for (name, sm) in headers {
            let (kind, value) = string_match_parts(sm).ok_or_else(|| format!("headers.{name}"))?;
            let string_match = if kind == "regex" {
                json!({"safe_regex": {"regex": value}})
            } else {
                json!({kind: value})
            };
            list.push(json!({"name": name, "string_match": string_match}));
        }
        out.insert("headers".into(), list.into());
    }
    Ok(Value::Object(out))
}

fn string_match_parts(sm: &StringMatch) -> Option<(&'static str, &str)> {
    match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(v), None, None) => Some(("exact", v)),
        (None, Some(v), None) => Some(("prefix", v)),
        (None, None, Some(v)) => Some(("regex", v)),
        _ => None,
    }
}

/// Writes a file of Envoy's configuration, as pretty JSON.
pub fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )
}

/// Writes a file Envoy watches (RDS, CDS) beside its target and renames it over it: Envoy
/// reacts to the rename and never reads a half-written file.
pub fn write_watched(path: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    write_json(&tmp, value)?;
    std::fs::rename(&tmp, path)
}

/// Where the generated bootstrap points Envoy.
pub struct BootstrapPaths<'a> {
    /// The RDS file Envoy watches for the sidecar's routes.
    pub routes_file: &'a Path,
    /// The RDS file of the ingress gateway's routes.
    pub gateway_routes_file: &'a Path,
    /// The access log.
    pub access_log: &'a Path,
}

/// The static bootstrap: admin and the outbound listener on 127.0.0.1 with ephemeral ports,
/// routes from a watched file (so a change propagates asynchronously, as from istiod), and
/// the clusters with their local endpoints.
pub fn bootstrap(clusters: &[Cluster], paths: &BootstrapPaths<'_>) -> Value {
    let clusters: Vec<Value> = clusters.iter().map(static_cluster).collect();
    with_listeners(
        json!({"static_resources": {"clusters": clusters}}),
        loopback_any_port(),
        paths,
    )
}

/// The bootstrap of a kwok node's proxies: the same two listeners, the ingress on
/// `ingress` (the node's address), and the clusters from the watched CDS file `cds_file`
/// (written by [`cds_file`] whenever the cluster's EndpointSlices change, as istiod pushes
/// endpoints).
pub fn node_bootstrap(cds_file: &Path, ingress: SocketAddr, paths: &BootstrapPaths<'_>) -> Value {
    with_listeners(
        json!({"dynamic_resources": {"cds_config": watched_file(cds_file)}}),
        socket_address(ingress),
        paths,
    )
}

/// The CDS file's content: every cluster with its endpoints.
pub fn cds_file(clusters: &[Cluster], version: u64) -> Value {
    let resources: Vec<Value> = clusters
        .iter()
        .map(|c| {
            let mut cluster = static_cluster(c);
            cluster["@type"] = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
            cluster
        })
        .collect();
    json!({"version_info": version.to_string(), "resources": resources})
}

fn static_cluster(c: &Cluster) -> Value {
    let endpoints: Vec<Value> = c
        .endpoints
        .iter()
        .map(|a| json!({"endpoint": {"address": socket_address(*a)}}))
        .collect();
    json!({
        "name": c.name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": c.name, "endpoints": [{"lb_endpoints": endpoints}]},
    })
}

/// `base` with the node, admin, and the two listeners.
fn with_listeners(mut base: Value, ingress: Value, paths: &BootstrapPaths<'_>) -> Value {
    base["node"] = json!({"id": "sidecar~127.0.0.1~productpage-v1.test~test.svc.cluster.local", "cluster": "productpage.test"});
    base["admin"] = json!({"address": loopback_any_port()});
    // The ingress gateway's listener and productpage's sidecar, in one Envoy: the request
    // path of a cluster, ingress -> productpage -> sidecar -> reviews.
    base["static_resources"]["listeners"] = json!([
        listener(
            INGRESS_LISTENER,
            INGRESS_ROUTE_CONFIG_NAME,
            paths.gateway_routes_file,
            ingress,
            paths
        ),
        listener(
            OUTBOUND_LISTENER,
            ROUTE_CONFIG_NAME,
            paths.routes_file,
            loopback_any_port(),
            paths
        ),
    ]);
    base
}

/// A config source of a file Envoy watches (the file is renamed into place when it changes).
fn watched_file(path: &Path) -> Value {
    json!({
        "path_config_source": {
            "path": path,
            "watched_directory": {"path": path.parent().unwrap_or(Path::new("."))},
        },
        "resource_api_version": "V3",
    })
}

/// An HTTP listener on an ephemeral loopback port whose routes come from a watched RDS file.
fn listener(
    name: &str,
    route_config: &str,
    routes_file: &Path,
    address: Value,
    paths: &BootstrapPaths<'_>,
) -> Value {
    json!({
        "name": name,
        "address": address,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "rds": {
                    "route_config_name": route_config,
                    "config_source": watched_file(routes_file),
                },
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
                "access_log": [{
                    "name": "envoy.access_loggers.file",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                        "path": paths.access_log,
                        // Upstreams by cluster (outbound|port|subset|host names the
                        // workload), not by a loopback address nobody can place.
                        "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                    },
                }],
            },
        }]}],
    })
}

/// One line per request through Envoy: what, the answer, which cluster served it, and the
/// headers the suite routes and tags by.
const ACCESS_LOG_FORMAT: &str = "[%START_TIME%] %DOWNSTREAM_LOCAL_ADDRESS% \"%REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms upstream=%UPSTREAM_CLUSTER% (%UPSTREAM_HOST%) user-agent=\"%REQ(USER-AGENT)%\" end-user=\"%REQ(END-USER)%\" route=%ROUTE_NAME%\n";

fn loopback_any_port() -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": 0}})
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

#[cfg(test)]
mod tests {
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

    fn all_clusters() -> Vec<String> {
        [
            "outbound|9080|v1|reviews.test.svc.cluster.local",
            "outbound|9080|v2|reviews.test.svc.cluster.local",
            "outbound|9080||mirror.test.svc.cluster.local",
        ]
        .map(String::from)
        .to_vec()
    }

    fn routes(yaml: &str, version: &str) -> Result<Value, TranslateError> {
        let (topo, vs) = vs(yaml);
        let config = route_configuration(
            &topo,
            &[&vs],
            &all_clusters(),
            &version.parse().expect("version"),
            1,
        )?;
        Ok(config["resources"][0]["virtual_hosts"][0]["routes"].clone())
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

    #[test]
    fn percentages_in_every_spelling() {
        let route = |extra: &str| -> HttpRoute {
            serde_yaml::from_str(&format!(
                "{{route: [{{destination: {{host: reviews}}}}], mirror: {{host: mirror}}{extra}}}"
            ))
            .expect("parses")
        };
        assert_eq!(
            mirror_fraction(&route("")),
            Fraction {
                numerator: 100,
                denominator: "HUNDRED"
            }
        );
        assert_eq!(
            mirror_fraction(&route(", mirrorPercentage: {value: 50}")),
            Fraction {
                numerator: 500_000,
                denominator: "MILLION"
            }
        );
        assert_eq!(
            mirror_fraction(&route(", mirrorPercentage: {value: 0.5}")),
            Fraction {
                numerator: 5_000,
                denominator: "MILLION"
            }
        );
        assert_eq!(
            mirror_fraction(&route(", mirror_percent: 30")),
            Fraction {
                numerator: 30,
                denominator: "HUNDRED"
            }
        );
        assert_eq!(
            mirror_fraction(&route(", mirrorPercent: 30, mirrorPercentage: {value: 10}")),
            Fraction {
                numerator: 100_000,
                denominator: "MILLION"
            }
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

    #[test]
    fn unsupported_fields_are_named_not_ignored() {
        let err = routes("metadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], fault: {abort: {}}}]}", "1.31.1")
            .expect_err("fault is not modelled");
        assert_eq!(
            err.to_string(),
            "VirtualService r: spec.http[0].fault: not supported in local mode"
        );
        let err = routes("metadata: {name: r}\nspec: {hosts: [reviews], http: [{match: [{method: {exact: GET}}], route: [{destination: {host: reviews, subset: v1}}]}]}", "1.31.1")
            .expect_err("method match is not modelled");
        assert_eq!(
            err.to_string(),
            "VirtualService r: spec.http[0].match[0].method: not supported in local mode"
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
            ]
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
            &format!("{catch_all_first}      fault: {{abort: {{}}}}\n"),
            "1.31.1",
        )
        .expect_err("an unmodelled field after the catch-all is still refused");
        assert_eq!(
            err.to_string(),
            "VirtualService reviews: spec.http[1].fault: not supported in local mode"
        );
    }

    #[test]
    fn domains_cover_short_and_qualified_names() {
        let (topo, _) = vs("metadata: {name: r}");
        let d = domains(&topo, "reviews");
        for name in [
            "reviews",
            "reviews:9080",
            "reviews.test",
            "reviews.test.svc.cluster.local:9080",
        ] {
            assert!(d.iter().any(|x| x == name), "{name} in {d:?}");
        }
    }

    #[test]
    fn gateway_virtual_hosts_are_named_and_matched_as_istiod_does() {
        let gateway = format!(
            "{MESH}kind: Gateway\nmetadata: {{name: gw}}\nspec: {{selector: {{istio: ingressgateway}}, servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ['*']}}]}}\n"
        );
        let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("t.yaml", &gateway));
        assert!(errors.is_empty(), "{errors:?}");
        let short: VirtualService = serde_yaml::from_str(
            "metadata: {name: r}\nspec: {hosts: [reviews], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
        )
        .expect("fixture parses");
        let any: VirtualService = serde_yaml::from_str(
            "metadata: {name: a}\nspec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}",
        )
        .expect("fixture parses");
        let config = gateway_route_configuration(
            &topo,
            &[&short, &any],
            &"1.31.1".parse().expect("version"),
        )
        .expect("translates");
        let hosts = &config["resources"][0]["virtual_hosts"];
        // What istiod 1.31 sent the gateway in `cargo xtask parity` (it was `reviews:80`).
        assert_eq!(hosts[0]["name"], "reviews.test.svc.cluster.local:8080");
        assert_eq!(
            hosts[0]["domains"],
            json!([
                "reviews.test.svc.cluster.local",
                "reviews.test.svc.cluster.local:*"
            ])
        );
        assert_eq!(hosts[1]["name"], "*:8080");
        assert_eq!(hosts[1]["domains"], json!(["*"]));
    }
}

//! Envoy's bootstrap and xDS files: the listeners local mode and a kwok node's proxies
//! serve, the clusters with their endpoints, and how the files are written so that Envoy
//! never reads half of one. The routes themselves come from [`super::routes`] (a sidecar)
//! and [`super::gateway`] (the ingress gateway).

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use super::policies::{CORS_FILTER, FAULT_FILTER};

pub use super::gateway::{
    INGRESS_LISTENER, INGRESS_ROUTE_CONFIG_NAME, gateway_route_configuration,
};
pub use super::routes::{
    Fraction, OUTBOUND_LISTENER, ROUTE_CONFIG_NAME, TranslateError, applies_to_mesh, cluster_name,
    mirror_fraction, outbound_clusters, route_configuration, service_cluster, service_port,
};

/// An upstream cluster and the addresses of its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<fqdn>`.
    pub name: String,
    /// Endpoint addresses (empty for a host with no workload).
    pub endpoints: Vec<SocketAddr>,
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
                // istiod's order (`listener_builder.go`): fault, then CORS, then the
                // router; without the first two a route's `fault` and `corsPolicy` would
                // be configured and never act.
                "http_filters": [
                    {
                        "name": FAULT_FILTER,
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"},
                    },
                    {
                        "name": CORS_FILTER,
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
                    },
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                    },
                ],
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

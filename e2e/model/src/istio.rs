//! Typed Istio networking resources: VirtualService, DestinationRule and Gateway.
//!
//! The field sets follow istio/api `networking/v1` (the CRD schemas of Istio 1.30). Objects
//! this project reads field by field are typed (a route's policies in [`policies`], its
//! durations in [`duration`]); objects it only carries (redirect, delegate, tls, ...) are
//! kept as JSON values. Unknown fields are not rejected here: the linter finds them by
//! comparing a typed round trip with the input (see `lint`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod duration;
mod policies;

pub use duration::{DurationError, GoDuration, proto_json};
pub use policies::{
    CorsPolicy, FaultAbort, FaultDelay, HttpFaultInjection, HttpRetry, HttpRewrite, RegexRewrite,
};

/// `networking.istio.io` VirtualService.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    /// `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The routing.
    #[serde(default)]
    pub spec: VirtualServiceSpec,
}

/// `VirtualService.spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Destination hosts the rules apply to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways (and `mesh`) the rules apply to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// HTTP routes, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// TLS routes (carried, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// TCP routes (carried, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Value>,
    /// Namespaces the object is visible to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
}

/// One `http[]` route.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Route name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Match conditions: the route applies when any of them matches.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// The single mirror destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Several mirror destinations with their own percentages (Istio 1.20+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<HttpMirrorPolicy>>,
    /// Share of requests mirrored to `mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer share (camelCase spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<Value>,
    /// Deprecated integer share (snake_case spelling, also declared by the CRD).
    #[serde(
        default,
        rename = "mirror_percent",
        skip_serializing_if = "Option::is_none"
    )]
    pub mirror_percent_snake: Option<Value>,
    /// Redirect (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Value>,
    /// Direct response (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<Value>,
    /// Delegate (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Value>,
    /// Path and authority rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Route timeout (absent: none, as istiod disables Envoy's 15 s default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Retry policy (absent: the mesh's default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// CORS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation, applied before the request is mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `Headers`: what to change in the request and the response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Changes to the request (and so to its mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Changes to the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// `Headers.HeaderOperations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Headers to overwrite (or add).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to append.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HttpRoute {
    /// The names of the fields set on this route, in the CRD's spelling.
    pub fn set_fields(&self) -> Vec<String> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// One `match[]` entry. All conditions of one entry must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Match name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header matches, by lowercase header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Caller workload labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<BTreeMap<String, String>>,
    /// Gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Query parameter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<BTreeMap<String, StringMatch>>,
    /// Case-insensitive path matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Headers that must be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_headers: Option<BTreeMap<String, StringMatch>>,
    /// Caller namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Stat prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// A string match: exactly one of `exact`, `prefix` or `regex`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A destination with its weight.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send.
    pub destination: Destination,
    /// Share of traffic, 0..100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Header manipulation for requests sent to this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A service, optionally narrowed to a subset and port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host: short name, `name.namespace`, or a fully qualified name.
    pub host: String,
    /// A subset defined by a DestinationRule for the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// A port by number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// One entry of `mirrors[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// The mirror destination.
    pub destination: Destination,
    /// Share mirrored (absent: 100%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A percentage as a double.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percent {
    /// 0.0 to 100.0; absent (`mirrorPercentage: {}`) is 0, as protobuf reads it.
    #[serde(default)]
    pub value: f64,
}

/// `networking.istio.io` DestinationRule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The rule.
    #[serde(default)]
    pub spec: DestinationRuleSpec,
}

/// `DestinationRule.spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host.
    #[serde(default)]
    pub host: String,
    /// Traffic policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets of the service's endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces the object is visible to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
    /// Workloads the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<Value>,
}

/// A traffic policy; its parts are carried, not interpreted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancer settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<Value>,
    /// Connection pool settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<Value>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<Value>,
    /// Upstream TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// Per-port overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_level_settings: Option<Value>,
    /// Tunnel settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Value>,
    /// PROXY protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<Value>,
    /// Retry budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<Value>,
}

/// A named subset of a service's endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name.
    pub name: String,
    /// Endpoint labels, combined with the service's selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Traffic policy for the subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `networking.istio.io` Gateway.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The gateway.
    #[serde(default)]
    pub spec: GatewaySpec,
}

/// `Gateway.spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Pods that act as this gateway.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// Listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<GatewayServer>,
}

/// One gateway listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServer {
    /// Port.
    pub port: GatewayPort,
    /// Hosts served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// Bind address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Default endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A gateway port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPort {
    /// Port number.
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Target port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

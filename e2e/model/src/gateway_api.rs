//! Typed Kubernetes Gateway API objects (`gateway.networking.k8s.io/v1`): HTTPRoute and Gateway.
//!
//! The field sets follow the standard-channel CRDs of Gateway API v1.3.0 to v1.6.0
//! (`config/crd/standard/gateway.networking.k8s.io_{httproutes,gateways}.yaml`). What this
//! project reads (parents, matches, backends, the `RequestMirror` filter, listeners) is
//! typed; what it only carries (other filters' bodies, timeouts, TLS, ...) is kept as JSON
//! values. As for the Istio types, unknown fields are not rejected here: the linter finds
//! them by a typed round trip (`lint::unknown_fields`), so every list is serialized even
//! when empty (`filters: []` written by a user is a known field, not a pruned one).
//!
//! Istio's reading of these objects (`pilot/pkg/config/kube/gateway/conversion.go`) is in
//! `docs/design/gateway-api-upstream.md`; the methods here cite the parts they encode.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The GatewayClass whose Gateways istiod serves (`istio.io/gateway-controller`).
pub const ISTIO_GATEWAY_CLASS: &str = "istio";

/// Whether an `apiVersion` is of the Gateway API group (`gateway.networking.k8s.io/v1`, ...).
pub fn is_gateway_api(api_version: &str) -> bool {
    api_version.split_once('/').map(|(group, _)| group) == Some(GROUP)
}

/// `gateway.networking.k8s.io` HTTPRoute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeHttpRoute {
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
    pub spec: KubeHttpRouteSpec,
}

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeHttpRouteSpec {
    /// What the route attaches to: a Gateway (ingress) or a Service (mesh, GAMMA).
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names matched against the request's Host.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The rules; istiod re-sorts them by Gateway API precedence (`sortHTTPRoutes`).
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// One `parentRefs[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group (absent: `gateway.networking.k8s.io`; `""` for a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (absent: `Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace (absent: the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The parent's name.
    #[serde(default)]
    pub name: String,
    /// A listener of the Gateway (ignored by istiod for a Service parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A port of the parent (for a Service: the route applies on that port only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl ParentReference {
    /// The group, with the CRD's default.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }

    /// The kind, with the CRD's default.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// A core Service (kind `Service`, group `""`): a mesh (GAMMA) route for its sidecars.
    pub fn is_service(&self) -> bool {
        self.kind() == "Service" && self.group().is_empty()
    }

    /// A Gateway API Gateway (an ingress route).
    pub fn is_gateway(&self) -> bool {
        self.kind() == "Gateway" && self.group() == GROUP
    }
}

/// One `rules[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The rule's name, which istiod gives its routes (else `<ns>.<name>.<rule index>`;
    /// standard CRDs carry it from v1.4.0, so v1.3.0's prune it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches: the rule applies when any of them matches (absent: the CRD's `PathPrefix /`).
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to every request of the rule (RequestMirror belongs here).
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Value>,
}

/// One `matches[]` entry: all its conditions must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header matches.
    #[serde(default)]
    pub headers: Vec<HttpValueMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: Vec<HttpValueMatch>,
    /// HTTP method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// How a path is matched.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// Path segments (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`): the default.
    #[default]
    PathPrefix,
    /// An RE2 regular expression.
    RegularExpression,
}

/// `HTTPPathMatch`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpPathMatch {
    /// How (absent: `PathPrefix`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<PathMatchType>,
    /// The path (absent: `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl HttpPathMatch {
    /// The match type, with the CRD's default.
    pub fn match_type(&self) -> PathMatchType {
        self.match_type.unwrap_or_default()
    }

    /// The path, with the CRD's default.
    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("/")
    }
}

/// How a header or query parameter value is matched.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ValueMatchType {
    /// The whole value: the default.
    #[default]
    Exact,
    /// An RE2 regular expression.
    RegularExpression,
}

/// `HTTPHeaderMatch` and `HTTPQueryParamMatch`: a name and a value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpValueMatch {
    /// How (absent: `Exact`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<ValueMatchType>,
    /// Header or parameter name.
    #[serde(default)]
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// A filter's `type`: the ones the standard CRD declares, or another string (which the
/// CRD's enum refuses on a cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FilterType {
    /// `RequestHeaderModifier`.
    RequestHeaderModifier,
    /// `ResponseHeaderModifier`.
    ResponseHeaderModifier,
    /// `RequestMirror`: a copy of the request to another backend.
    RequestMirror,
    /// `RequestRedirect`.
    RequestRedirect,
    /// `URLRewrite`.
    UrlRewrite,
    /// `ExtensionRef`.
    ExtensionRef,
    /// `CORS`.
    Cors,
    /// Anything else, as written.
    Other(String),
}

impl FilterType {
    /// The spelling in the CRD.
    pub fn as_str(&self) -> &str {
        match self {
            FilterType::RequestHeaderModifier => "RequestHeaderModifier",
            FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
            FilterType::RequestMirror => "RequestMirror",
            FilterType::RequestRedirect => "RequestRedirect",
            FilterType::UrlRewrite => "URLRewrite",
            FilterType::ExtensionRef => "ExtensionRef",
            FilterType::Cors => "CORS",
            FilterType::Other(other) => other,
        }
    }
}

impl Default for FilterType {
    fn default() -> Self {
        FilterType::Other(String::new())
    }
}

impl From<String> for FilterType {
    fn from(text: String) -> Self {
        match text.as_str() {
            "RequestHeaderModifier" => FilterType::RequestHeaderModifier,
            "ResponseHeaderModifier" => FilterType::ResponseHeaderModifier,
            "RequestMirror" => FilterType::RequestMirror,
            "RequestRedirect" => FilterType::RequestRedirect,
            "URLRewrite" => FilterType::UrlRewrite,
            "ExtensionRef" => FilterType::ExtensionRef,
            "CORS" => FilterType::Cors,
            _ => FilterType::Other(text),
        }
    }
}

impl From<FilterType> for String {
    fn from(filter: FilterType) -> Self {
        filter.as_str().to_owned()
    }
}

/// `HTTPRouteFilter`: a `type` and the body of that type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// Which filter.
    #[serde(rename = "type")]
    pub filter_type: FilterType,
    /// The mirror, for `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// `RequestHeaderModifier` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<Value>,
    /// `ResponseHeaderModifier` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<Value>,
    /// `RequestRedirect` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<Value>,
    /// `URLRewrite` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<Value>,
    /// `ExtensionRef` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<Value>,
    /// `CORS` (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Value>,
}

/// `HTTPRequestMirrorFilter`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where the copy goes.
    #[serde(default)]
    pub backend_ref: BackendObjectReference,
    /// Share mirrored, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Share mirrored as a fraction (the CRD allows `percent` or `fraction`, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<MirrorFraction>,
}

impl RequestMirror {
    /// The share mirrored, in percent, as istiod's `createMirrorFilter` computes it
    /// (conversion.go, byte-identical in Istio 1.27 to 1.31): `fraction` as
    /// `100 * numerator / denominator` with the denominator defaulting to 100, else
    /// `percent`, else 100 (the CRD refuses both at once).
    pub fn percentage(&self) -> f64 {
        match (&self.fraction, self.percent) {
            (Some(fraction), _) => fraction.percentage(),
            (None, Some(percent)) => f64::from(percent),
            (None, None) => 100.0,
        }
    }

    /// Whether anything is mirrored: `percent: 0` or a zero numerator gives no mirror
    /// policy at all (route.go `MirrorPercentByPolicy`), not a 0% one.
    pub fn mirrors(&self) -> bool {
        self.percentage() > 0.0
    }
}

/// The CRD's `Fraction`: `numerator / denominator`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MirrorFraction {
    /// The numerator.
    #[serde(default)]
    pub numerator: i32,
    /// The denominator (absent: 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<i32>,
}

impl MirrorFraction {
    /// The denominator, with the CRD's default.
    pub fn denominator(&self) -> i32 {
        self.denominator.unwrap_or(100)
    }

    /// `100 * numerator / denominator` (0 for a zero denominator, which the CRD refuses).
    pub fn percentage(&self) -> f64 {
        let denominator = self.denominator();
        if denominator == 0 {
            return 0.0;
        }
        100.0 * f64::from(self.numerator) / f64::from(denominator)
    }
}

/// `BackendObjectReference`: a Service by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendObjectReference {
    /// API group (absent: `""`, the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (absent: `Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The backend's name.
    #[serde(default)]
    pub name: String,
    /// Namespace (absent: the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (istiod requires it for a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl BackendObjectReference {
    /// Whether it names a core Service (the defaults).
    pub fn is_service(&self) -> bool {
        is_service(self.group.as_deref(), self.kind.as_deref())
    }
}

fn is_service(group: Option<&str>, kind: Option<&str>) -> bool {
    group.unwrap_or("").is_empty() && kind.unwrap_or("Service") == "Service"
}

/// `HTTPBackendRef`: a backend with its weight and its own filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// API group (absent: `""`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (absent: `Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The backend's name.
    #[serde(default)]
    pub name: String,
    /// Namespace (absent: the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (istiod requires it for a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Share of the rule's traffic, relative to the other backends (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Filters for requests sent to this backend (RequestMirror here fails istiod's
    /// conversion: see `lint`).
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// The weight, with the CRD's default: 1 (istiod drops a 0-weight backend).
    pub fn weight(&self) -> i32 {
        self.weight.unwrap_or(1)
    }

    /// Whether it names a core Service (the defaults).
    pub fn is_service(&self) -> bool {
        is_service(self.group.as_deref(), self.kind.as_deref())
    }
}

/// `gateway.networking.k8s.io` Gateway (not Istio's `networking.istio.io` Gateway).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeGateway {
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
    pub spec: KubeGatewaySpec,
}

/// `Gateway.spec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeGatewaySpec {
    /// The GatewayClass; istiod serves `istio` (a Deployment and Service `<name>-istio`).
    #[serde(default)]
    pub gateway_class_name: String,
    /// Listeners.
    #[serde(default)]
    pub listeners: Vec<KubeListener>,
    /// Addresses (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Value>,
    /// Infrastructure labels and annotations (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<Value>,
    /// ListenerSets allowed to attach (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_listeners: Option<Value>,
    /// Gateway-wide TLS (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
}

/// One `listeners[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeListener {
    /// Listener name (a parentRef's `sectionName`).
    #[serde(default)]
    pub name: String,
    /// Host name served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port; istio's gateway listens on it as is.
    #[serde(default)]
    pub port: u16,
    /// Protocol: HTTP, HTTPS, TLS, TCP, UDP.
    #[serde(default)]
    pub protocol: String,
    /// TLS settings (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// Which routes may attach (carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<Value>,
}

#[cfg(test)]
mod tests;

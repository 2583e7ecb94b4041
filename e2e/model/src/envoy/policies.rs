//! A route's policies as istiod writes them into the Envoy route: `timeout`, `retries` (and
//! the default retry policy of a route without them), `fault`, `corsPolicy` and `rewrite`.
//!
//! Read in istio/istio `pilot/pkg/networking/core/route/route.go` (`setTimeout`,
//! `applyHTTPRouteDestination`, `TranslateFault`, `TranslateCORSPolicy`,
//! `forwardNotMatchingPreflights`, `BuildDefaultHTTPOutboundRoute`) and
//! `core/route/retry/retry.go` (`ConvertPolicy`, `parseRetryOn`, `DefaultPolicy`), the same
//! in what they produce on release-1.27 to release-1.31 (1.29 only cached the default policy;
//! 1.28 added `append_x_forwarded_host` after a rewrite, false unless the proxy's
//! `proxyHeaders.xForwardedHost` asks, which istiod's default mesh does not). The Envoy side
//! (local mode's listeners) has istiod's `envoy.filters.http.fault` and
//! `envoy.filters.http.cors` filters before the router, so the per-route settings act.

use serde_json::{Map, Value, json};

use crate::istio::{
    CorsPolicy, FaultAbort, FaultDelay, HttpFaultInjection, HttpRetry, HttpRewrite, Percent,
    StringMatch, proto_json,
};

/// istiod's fault filter name, the key of its per-route configuration.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// istiod's CORS filter name.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// `retry.go`'s `defaultRetryOn`.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// `setTimeout` for a sidecar or gateway (not proxyless gRPC): the VirtualService's timeout
/// or none (`0s`, Envoy's 15 s default disabled), and `max_grpc_timeout` the same, so a
/// `grpc-timeout` header does not outlast the route's.
pub fn set_timeout(action: &mut Map<String, Value>, timeout_nanos: Option<i64>) {
    let timeout = proto_json(timeout_nanos.unwrap_or(0));
    action.insert("timeout".into(), timeout.clone().into());
    action.insert("max_grpc_timeout".into(), timeout.into());
}

/// `retry.ConvertPolicy(in, hashPolicy)`: absent, the default policy (2 retries on connection
/// failures, another host each time unless consistent hashing pins one); `attempts` 0 or
/// less, no policy at all; otherwise the default with the VirtualService's fields over it.
pub fn retry_policy(retries: Option<&HttpRetry>, consistent_hash: bool) -> Option<Value> {
    let mut out = Map::new();
    out.insert("retry_on".into(), DEFAULT_RETRY_ON.into());
    out.insert("num_retries".into(), 2.into());
    if !consistent_hash {
        out.insert("retry_host_predicate".into(), previous_hosts());
    }
    // int64 in Envoy's API: protobuf's JSON writes it as a string.
    out.insert("host_selection_retry_max_attempts".into(), "5".into());
    let Some(retries) = retries else {
        return Some(Value::Object(out));
    };
    let attempts = retries.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    out.insert("num_retries".into(), attempts.into());
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.is_empty()) {
        let (mut on, codes) = parse_retry_on(retry_on);
        if !codes.is_empty() {
            if !on.contains("retriable-status-codes") {
                // Even when nothing precedes it: a `retryOn` of only codes gives
                // `,retriable-status-codes`, as istiod writes it.
                on.push_str(",retriable-status-codes");
            }
            out.insert("retriable_status_codes".into(), codes.into());
        }
        out.insert("retry_on".into(), on.into());
    }
    if let Some(per_try) = &retries.per_try_timeout {
        out.insert("per_try_timeout".into(), per_try.to_proto_json().into());
    }
    match retries.retry_ignore_previous_hosts {
        Some(true) => {
            out.insert("retry_host_predicate".into(), previous_hosts());
        }
        Some(false) => {
            out.remove("retry_host_predicate");
        }
        None => {}
    }
    if retries.retry_remote_localities == Some(true) {
        out.insert(
            "retry_priority".into(),
            json!({
                "name": "envoy.retry_priorities.previous_priorities",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                    "update_frequency": 2,
                },
            }),
        );
    }
    if let Some(backoff) = &retries.backoff {
        out.insert(
            "retry_back_off".into(),
            json!({"base_interval": backoff.to_proto_json()}),
        );
    }
    Some(Value::Object(out))
}

/// `xdsfilters.RetryPreviousHosts`.
fn previous_hosts() -> Value {
    json!([{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
    }])
}

/// `parseRetryOn`: the comma-separated parts, trimmed, empty ones dropped; a part that is an
/// integer Go's `http.StatusText` knows is a status code, the rest are conditions.
fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut codes = Vec::new();
    let mut conditions = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match go_atoi(part).filter(|c| is_http_status(*c)) {
            Some(code) => codes.push(code as u32),
            None => conditions.push(part),
        }
    }
    (conditions.join(","), codes)
}

/// Go's `strconv.Atoi` for what fits a status code: an optional sign, then digits.
pub(crate) fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if s.starts_with('-') { -v } else { v })
}

/// Whether Go's `http.StatusText` has a text for `code` (`net/http/status.go`).
pub(crate) fn is_http_status(code: i64) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428
        | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// The gRPC codes by name (`pkg/util/grpc`'s `SupportedGRPCStatus`, grpc-go's codes).
pub const GRPC_STATUS: [(&str, u32); 17] = [
    ("OK", 0),
    ("CANCELLED", 1),
    ("UNKNOWN", 2),
    ("INVALID_ARGUMENT", 3),
    ("DEADLINE_EXCEEDED", 4),
    ("NOT_FOUND", 5),
    ("ALREADY_EXISTS", 6),
    ("PERMISSION_DENIED", 7),
    ("RESOURCE_EXHAUSTED", 8),
    ("FAILED_PRECONDITION", 9),
    ("ABORTED", 10),
    ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12),
    ("INTERNAL", 13),
    ("UNAVAILABLE", 14),
    ("DATA_LOSS", 15),
    ("UNAUTHENTICATED", 16),
];

/// A route's `typed_per_filter_config` (`TranslateRoute`): the fault and CORS filters'
/// settings for the route, or none.
pub fn per_filter_config(
    fault: Option<&HttpFaultInjection>,
    cors: Option<&CorsPolicy>,
) -> Option<Value> {
    let mut out = Map::new();
    if let Some(fault) = fault {
        out.insert(FAULT_FILTER.into(), fault_config(fault));
    }
    if let Some(cors) = cors {
        out.insert(CORS_FILTER.into(), cors_config(cors));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// `TranslateFault`: a fixed delay and an HTTP or gRPC abort, each with its share. An
/// exponential delay or an HTTP/2 abort is dropped (istiod's webhook denies both), an abort
/// without an error type too; with nothing left istiod still writes the (empty) message.
fn fault_config(fault: &HttpFaultInjection) -> Value {
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault".into(),
    );
    if let Some(delay) = fault.delay.as_ref().and_then(fault_delay) {
        out.insert("delay".into(), delay);
    }
    if let Some(abort) = fault.abort.as_ref().and_then(fault_abort) {
        out.insert("abort".into(), abort);
    }
    Value::Object(out)
}

fn fault_delay(delay: &FaultDelay) -> Option<Value> {
    let fixed = delay.fixed_delay.as_ref()?;
    let percentage = match &delay.percentage {
        Some(p) => million(p),
        // `translateIntegerToFractionalPercent` of the deprecated field, 0 when absent.
        None => json!({"numerator": delay.percent.unwrap_or(0), "denominator": "HUNDRED"}),
    };
    Some(json!({"fixed_delay": fixed.to_proto_json(), "percentage": percentage}))
}

fn fault_abort(abort: &FaultAbort) -> Option<Value> {
    let mut out = Map::new();
    if let Some(p) = &abort.percentage {
        out.insert("percentage".into(), million(p));
    }
    if let Some(status) = abort.http_status {
        out.insert("http_status".into(), status.into());
    } else if let Some(name) = &abort.grpc_status {
        // The webhook denies an unknown name; istiod would read it as code 0.
        let code = GRPC_STATUS
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c);
        out.insert("grpc_status".into(), code.into());
    } else {
        return None;
    }
    Some(Value::Object(out))
}

/// `translatePercentToFractionalPercent`: millionths, Go's `uint32(v * 10000)`.
fn million(p: &Percent) -> Value {
    json!({"numerator": (p.value * 10_000.0) as u32, "denominator": "MILLION"})
}

/// `TranslateCORSPolicy`: origins as string matches (`allowOrigins`, else the deprecated
/// exact `allowOrigin`), lists joined by commas, `maxAge` in whole seconds, the filter on
/// for every request, and unmatched preflights forwarded unless `IGNORE`.
fn cors_config(cors: &CorsPolicy) -> Value {
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy".into(),
    );
    let origins: Vec<Value> = match cors.allow_origins.as_deref().filter(|o| !o.is_empty()) {
        Some(matches) => matches.iter().filter_map(string_matcher).collect(),
        None => cors
            .allow_origin
            .iter()
            .flatten()
            .map(|o| json!({"exact": o}))
            .collect(),
    };
    if !origins.is_empty() {
        out.insert("allow_origin_string_match".into(), origins.into());
    }
    let lists = [
        ("allow_methods", &cors.allow_methods),
        ("allow_headers", &cors.allow_headers),
        ("expose_headers", &cors.expose_headers),
    ];
    for (key, list) in lists {
        if !list.is_empty() {
            out.insert(key.into(), list.join(",").into());
        }
    }
    if let Some(max_age) = &cors.max_age {
        out.insert("max_age".into(), max_age.seconds().to_string().into());
    }
    if let Some(credentials) = cors.allow_credentials {
        out.insert("allow_credentials".into(), credentials.into());
    }
    out.insert(
        "filter_enabled".into(),
        json!({"default_value": {"numerator": 100, "denominator": "HUNDRED"}}),
    );
    let forward = cors.unmatched_preflights.as_deref() != Some("IGNORE");
    out.insert("forward_not_matching_preflights".into(), forward.into());
    Value::Object(out)
}

/// `util.ConvertToEnvoyMatch`: exact, prefix or a safe regex; none for an empty match.
pub fn string_matcher(sm: &StringMatch) -> Option<Value> {
    match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(v), _, _) => Some(json!({"exact": v})),
        (None, Some(v), _) => Some(json!({"prefix": v})),
        (None, None, Some(v)) => Some(json!({"safe_regex": {"regex": v}})),
        (None, None, None) => None,
    }
}

/// What `rewrite` does to a route action (`applyHTTPRouteDestination`, not Gateway API
/// semantics): a regex rewrite, else a prefix rewrite; `authority` overrides any Host the
/// route's `headers` set.
pub fn apply_rewrite(rewrite: &HttpRewrite, action: &mut Map<String, Value>) -> Option<String> {
    if let Some(regex) = &rewrite.uri_regex_rewrite {
        action.insert(
            "regex_rewrite".into(),
            json!({
                "pattern": {"regex": regex.pattern.clone().unwrap_or_default()},
                "substitution": regex.rewrite.clone().unwrap_or_default(),
            }),
        );
    } else if let Some(uri) = rewrite.uri.as_deref().filter(|u| !u.is_empty()) {
        action.insert("prefix_rewrite".into(), uri.into());
    }
    rewrite.authority.clone().filter(|a| !a.is_empty())
}

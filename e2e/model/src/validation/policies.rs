//! istiod's webhook rules for a route's policies and the matches local mode translates:
//! `validateCORSPolicy`, `validateHTTPFaultInjection` (`...Abort`, `...Delay`,
//! `validatePercentage`), `validateHTTPRetry`, `validateHTTPRewrite`,
//! `validateURIRegexRewrite`, `validateAuthorityRewrite`, `agent.ValidateDuration`, and the
//! string matches of `validateHTTPRouteMatchRequest` (istio/istio
//! `pkg/config/validation/{validation,virtualservice}.go`, `agent/validation.go`; the same
//! rules and words on release-1.27 to release-1.31).

use crate::envoy::policies::{GRPC_STATUS, go_atoi, is_http_status};
use crate::istio::{
    CorsPolicy, GoDuration, Headers, HttpFaultInjection, HttpMatchRequest, HttpRetry, HttpRewrite,
    Percent, StringMatch,
};

use super::{regex_match, string_match};

/// `supportedRetryOnPolicies`: Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on`.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// `supportedCORSMethods`: Go's `net/http` methods and `*`.
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// The match checks after the header names: `withoutHeaders`, the uri, `scheme`, `method`,
/// `authority` and `queryParams` (the headers themselves are checked by the caller).
pub(super) fn match_strings(m: &HttpMatchRequest, errs: &mut Vec<String>) {
    for (name, header) in m.without_headers.iter().flatten() {
        errs.extend(header_name(name));
        // `*` is no RE2 regex: istiod makes it a present match.
        if header.regex.as_deref() != Some("*") {
            errs.extend(string_match(header, "withoutHeaders"));
        }
    }
    if let Some(uri) = &m.uri {
        errs.extend(regex_match(uri, "uri"));
    }
    let named = [
        (&m.scheme, "scheme"),
        (&m.method, "method"),
        (&m.authority, "authority"),
    ];
    for (sm, where_) in named {
        if let Some(sm) = sm {
            errs.extend(string_match(sm, where_));
        }
    }
    for sm in m.query_params.iter().flatten().map(|(_, sm)| sm) {
        errs.extend(string_match(sm, "queryParams"));
    }
}

/// `ValidateHTTPHeaderNameOrJwtClaimRoute`, after its emptiness check: a JWT claim, a
/// pseudo-header, or an RFC 7230 token.
pub(super) fn header_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("header name cannot be empty".into());
    }
    let lower = name.to_ascii_lowercase();
    let claim = lower.strip_prefix("@request.auth.claims").is_some_and(|r| {
        (r.starts_with('.') && r.len() > 1)
            || (r.starts_with('[') && r.ends_with(']') && r.len() > 2)
    });
    let pseudo = [":method", ":scheme", ":authority", ":path", ":status"].contains(&name);
    (!claim && !pseudo && !is_token(name))
        .then(|| format!("header name {name} is not a valid header name"))
}

/// `validHeaderNameRegex`: RFC 7230's `tchar`s, at least one.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `validateCORSPolicy`.
pub(super) fn cors(policy: &CorsPolicy, errs: &mut Vec<String>) {
    for origin in policy.allow_origins.iter().flatten() {
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref())
            .unwrap_or("");
        if value.is_empty() {
            errs.push(format!(
                "'{value}' is not a valid match type for CORS allow origins"
            ));
        } else {
            errs.extend(regex_match(origin, "corsPolicy.allowOrigins"));
        }
    }
    for method in &policy.allow_methods {
        if !CORS_METHODS.contains(&method.as_str()) {
            errs.push(format!("{method:?} is not a supported HTTP method"));
        }
    }
    for name in policy.allow_headers.iter().chain(&policy.expose_headers) {
        if name.is_empty() {
            errs.push("header name cannot be empty".into());
        } else if name != "*" && !is_token(name) {
            errs.push(format!("header name {name} is not a valid header name"));
        }
    }
    if let Some(max_age) = &policy.max_age {
        errs.extend(duration(max_age));
        if max_age.nanos() % 1_000_000_000 > 0 {
            errs.push("max_age duration is accurate only to seconds precision".into());
        }
    }
}

/// `validateHTTPFaultInjection`.
pub(super) fn fault(fault: &HttpFaultInjection, errs: &mut Vec<String>) {
    if fault.abort.is_none() && fault.delay.is_none() {
        errs.push("HTTP fault injection must have an abort and/or a delay".into());
    }
    if let Some(abort) = &fault.abort {
        errs.extend(abort.percentage.as_ref().and_then(percentage));
        if let Some(status) = abort.http_status {
            if !(200..=600).contains(&status) {
                errs.push(format!("HTTP status {status} is not in range 200-599"));
            }
        } else if let Some(name) = &abort.grpc_status {
            if !GRPC_STATUS.iter().any(|(n, _)| n == name) {
                errs.push(format!(
                    "gRPC status {name:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
                ));
            }
        } else if abort.http2_error.is_some() {
            errs.push("HTTP/2 abort fault injection not supported yet".into());
        }
        // No error type at all is a warning, which `kubectl apply` shows and admits.
    }
    if let Some(delay) = &fault.delay {
        errs.extend(delay.percentage.as_ref().and_then(percentage));
        if let Some(fixed) = &delay.fixed_delay {
            errs.extend(duration(fixed));
        } else if let Some(exponential) = &delay.exponential_delay {
            errs.extend(duration(exponential));
            errs.push("exponentialDelay not supported yet".into());
        }
    }
}

/// `validatePercentage`: 0, or 0.0001 to 100.
fn percentage(p: &Percent) -> Option<String> {
    let v = p.value;
    // Go compares, so NaN is in range.
    let out = !v.is_nan() && !(0.0..=100.0).contains(&v);
    (out || (v > 0.0 && v < 0.0001)).then(|| {
        format!(
            "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
            go_float(v)
        )
    })
}

/// `validateHTTPRetry`.
pub(super) fn retry(retries: &HttpRetry, errs: &mut Vec<String>) {
    let attempts = retries.attempts.unwrap_or(0);
    if attempts < 0 {
        errs.push("attempts cannot be negative".into());
    }
    let retry_on = retries.retry_on.as_deref().unwrap_or("");
    if attempts == 0
        && (retries.per_try_timeout.is_some()
            || !retry_on.is_empty()
            || retries.retry_remote_localities.is_some())
    {
        errs.push("http retry policy configured when attempts are set to 0 (disabled)".into());
    }
    if let Some(per_try) = &retries.per_try_timeout {
        errs.extend(duration(per_try));
    }
    if !retry_on.is_empty() {
        // Split, not trimmed: ` 503` is neither a status nor a policy.
        for policy in retry_on.split(',') {
            let status = go_atoi(policy).is_some_and(is_http_status);
            if !status && !RETRY_ON.contains(&policy) {
                errs.push(format!("{policy:?} is not a valid retryOn policy"));
            }
        }
    }
    if let Some(backoff) = &retries.backoff {
        errs.extend(duration(backoff));
    }
}

/// `validateHTTPRewrite` (one error at most, as it returns at the first).
pub(super) fn rewrite(rewrite: &HttpRewrite) -> Option<String> {
    let uri = rewrite.uri.as_deref().unwrap_or("");
    let authority = rewrite.authority.as_deref().unwrap_or("");
    let regex = rewrite.uri_regex_rewrite.as_ref();
    if !uri.is_empty() && regex.is_some() {
        return Some("rewrite may only contain one of URI or UriRegexRewrite".into());
    }
    if uri.is_empty() && regex.is_none() && authority.is_empty() {
        return Some("rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified".into());
    }
    let regex = regex?;
    let (pattern, with) = (
        regex.pattern.as_deref().unwrap_or(""),
        regex.rewrite.as_deref().unwrap_or(""),
    );
    // `errors.Join` puts its errors on lines of their own.
    let inner = if pattern.is_empty() || with.is_empty() {
        Some("UriRegexRewrite requires both Rewrite and Match fields to be specified".into())
    } else {
        let sm = StringMatch {
            regex: Some(pattern.to_owned()),
            ..StringMatch::default()
        };
        regex_match(&sm, "HTTPRewrite.UriRegexRewrite.Match")
    };
    inner.map(|e| format!("UriRegexRewrite has errors\n{e}"))
}

/// `validateAuthorityRewrite`: one Host at most among `rewrite.authority` and the request
/// headers' `set`, then `add`, of `host` or `:authority`.
pub(super) fn authority_rewrite(
    rewrite: Option<&HttpRewrite>,
    headers: Option<&Headers>,
) -> Option<String> {
    let mut current = rewrite
        .and_then(|r| r.authority.clone())
        .unwrap_or_default();
    let request = headers.and_then(|h| h.request.as_ref());
    let ops = request.map(|r| [&r.set, &r.add]).into_iter().flatten();
    for map in ops {
        for (name, value) in map {
            if !(name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority")) {
                continue;
            }
            if !current.is_empty() {
                return Some(format!(
                    "authority header cannot be set multiple times: have {current:?}, attempting to set {value:?}"
                ));
            }
            current = value.clone();
        }
    }
    None
}

/// `agent.ValidateDuration`: at least 1 ms, whole milliseconds.
pub(super) fn duration(d: &GoDuration) -> Option<String> {
    if d.nanos() < 1_000_000 {
        Some("duration must be greater than 1ms".into())
    } else if d.nanos() % 1_000_000 != 0 {
        Some("only durations to ms precision are supported".into())
    } else {
        None
    }
}

/// Go's `%v` of a float64: the shortest digits, in `%e` form when the exponent is below -4
/// or at least 6 (`1e+06`, `5e-05`).
fn go_float(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if v < 0.0 { "-" } else { "" };
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(http: &str) -> Vec<String> {
        let vs = serde_yaml::from_str(&format!(
            "metadata: {{name: r}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}], {http}}}]}}"
        ))
        .expect("fixture parses");
        match crate::validation::validate_virtual_service(&vs) {
            Ok(()) => Vec::new(),
            Err(crate::validation::ValidationError::Denied { errors, .. }) => errors,
        }
    }

    #[test]
    fn the_policies_istio_admits() {
        for ok in [
            "timeout: 10s, retries: {attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error,connect-failure,503'}",
            "retries: {attempts: 0}",
            "fault: {delay: {fixedDelay: 5s, percentage: {value: 0.0001}}, abort: {httpStatus: 503}}",
            "fault: {abort: {percentage: {value: 10}}}",
            "corsPolicy: {allowOrigins: [{exact: 'https://a'}, {regex: '.*'}], allowMethods: [GET, '*'], allowHeaders: ['*', x-a], maxAge: 24h}",
            "rewrite: {authority: a.example}, headers: {request: {set: {x-a: b}}}",
            "match: [{method: {exact: GET}, queryParams: {q: {}}, withoutHeaders: {x-a: {regex: '*'}}, headers: {':authority': {exact: a}}}]",
        ] {
            assert_eq!(errors(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn the_policies_istio_denies_in_its_order_and_words() {
        assert_eq!(
            errors(
                "corsPolicy: {allowOrigins: [{exact: ''}], allowMethods: [get], maxAge: 1500ms}, fault: {abort: {httpStatus: 700, percentage: {value: 150}}, delay: {exponentialDelay: 1s}}, retries: {attempts: 0, retryOn: '5xx, 503'}, rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}, timeout: 0.5ms"
            ),
            [
                "'' is not a valid match type for CORS allow origins",
                "\"get\" is not a supported HTTP method",
                "max_age duration is accurate only to seconds precision",
                "percentage 150 is neither 0.0, nor in range [0.0001, 100.0]",
                "HTTP status 700 is not in range 200-599",
                "exponentialDelay not supported yet",
                "http retry policy configured when attempts are set to 0 (disabled)",
                "\" 503\" is not a valid retryOn policy",
                "rewrite may only contain one of URI or UriRegexRewrite",
                "duration must be greater than 1ms",
            ]
        );
        assert_eq!(
            errors(
                "fault: {}, retries: {attempts: -1}, rewrite: {uriRegexRewrite: {match: '(', rewrite: x}}"
            ),
            [
                "HTTP fault injection must have an abort and/or a delay",
                "attempts cannot be negative",
            ],
            "an unbalanced regex is left to Envoy (RE2 is not compiled here)"
        );
        assert_eq!(
            errors("rewrite: {authority: a}, headers: {request: {add: {host: b}}}"),
            ["authority header cannot be set multiple times: have \"a\", attempting to set \"b\""]
        );
        assert_eq!(
            errors(
                "match: [{method: {prefix: ''}, queryParams: {q: {regex: ''}}, headers: {'bad header': {exact: a}}}]"
            ),
            [
                "header name bad header is not a valid header name",
                "\"method\": prefix string match should not be empty",
                "\"queryParams\": regex string match should not be empty",
            ]
        );
    }

    #[test]
    fn go_float_formats_as_percent_v() {
        assert_eq!(go_float(150.0), "150");
        assert_eq!(go_float(-1.5), "-1.5");
        assert_eq!(go_float(0.00005), "5e-05");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(123_456.0), "123456");
    }

    #[test]
    fn durations_need_whole_milliseconds_of_at_least_one() {
        let d = |t: &str| duration(&GoDuration::parse(t).expect("a duration"));
        assert_eq!(d("1ms"), None);
        assert_eq!(d("2.5s"), None);
        assert_eq!(
            d("0s").as_deref(),
            Some("duration must be greater than 1ms")
        );
        assert_eq!(
            d("1500us").as_deref(),
            Some("only durations to ms precision are supported")
        );
    }
}

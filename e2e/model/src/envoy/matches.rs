//! A VirtualService's match entries as Envoy route matches (`TranslateRouteMatch`,
//! `translateHeaderMatch`, `translateQueryParamMatch`, `canBeConvertedToPresentMatch` and
//! `IsCatchAllRoute` in istio/istio `pilot/pkg/networking/core/route/route.go`, unchanged
//! from release-1.27 to release-1.31).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::policies::string_matcher;
use crate::istio::{HttpMatchRequest, StringMatch};

/// Match fields the translation models. `port`, `sourceLabels`, `gateways` and
/// `sourceNamespace` select routes by the proxy and its listener, which local mode's one
/// Envoy playing two proxies does not separate; they stay refused.
const SUPPORTED_MATCH_FIELDS: &[&str] = &[
    "name",
    "uri",
    "headers",
    "withoutHeaders",
    "method",
    "authority",
    "scheme",
    "queryParams",
    "ignoreUriCase",
    "statPrefix",
];

/// istiod's header of JWT claims (`jwt.HeaderJWTClaim`): a match on it is a match on the
/// request's authenticated claims, which local mode has no RequestAuthentication for.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// istiod's `IsCatchAllRoute` (route.go): a `/` prefix or a `.*` regex path, and no header
/// or query parameter match.
pub fn is_catch_all(route_match: &Value) -> bool {
    let path = route_match.get("prefix").and_then(Value::as_str) == Some("/")
        || route_match
            .pointer("/safe_regex/regex")
            .and_then(Value::as_str)
            == Some(".*");
    path && route_match.get("headers").is_none() && route_match.get("query_parameters").is_none()
}

/// An Envoy route match for one VirtualService match entry; `Err(field)` names a field the
/// translation does not model.
pub(crate) fn route_match(m: &HttpMatchRequest) -> Result<Value, String> {
    if let Some(field) = serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .unwrap_or_default()
        .into_iter()
        .find(|f| !SUPPORTED_MATCH_FIELDS.contains(&f.as_str()))
    {
        return Err(field);
    }
    let mut out = Map::new();
    out.insert("prefix".into(), "/".into());
    let mut headers = Vec::new();
    let named = [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ];
    for (field, matches) in named {
        let inverted = field == "withoutHeaders";
        for (name, sm) in matches.iter().flatten() {
            if is_jwt_claim(name) {
                // The name has dots of its own: the path ends at the map, the note names it.
                return Err(format!(
                    "{field} ({name}: a JWT claim; local mode authenticates no request)"
                ));
            }
            let mut matcher = header_matcher(name, sm);
            if inverted {
                matcher["invert_match"] = true.into();
                // `treat_missing_header_as_empty` conflicts with a present match.
                if !is_present_match(sm) {
                    matcher["treat_missing_header_as_empty"] = true.into();
                }
            }
            headers.push(matcher);
        }
    }
    // istiod sorts the header matchers by name ("guarantee ordering of headers"); the
    // pseudo-headers come after, in this order.
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if let Some(uri) = &m.uri {
        // A `uri: {}` names no path: the match stays the `/` prefix.
        match (&uri.exact, &uri.prefix, &uri.regex) {
            (Some(v), _, _) => {
                out.remove("prefix");
                out.insert("path".into(), v.clone().into());
            }
            (None, Some(v), _) => {
                out.insert("prefix".into(), v.clone().into());
            }
            (None, None, Some(v)) => {
                out.remove("prefix");
                out.insert("safe_regex".into(), json!({"regex": v}));
            }
            (None, None, None) => {}
        }
    }
    if m.ignore_uri_case == Some(true) {
        // istiod writes `case_sensitive` on every match; true is Envoy's default.
        out.insert("case_sensitive".into(), false.into());
    }
    let pseudo = [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ];
    for (name, sm) in pseudo {
        if let Some(sm) = sm {
            headers.push(header_matcher(name, sm));
        }
    }
    if !headers.is_empty() {
        out.insert("headers".into(), headers.into());
    }
    // istiod walks a Go map here, so its order changes from push to push; by name here (the
    // matchers all must hold, in any order).
    let params: BTreeMap<&String, &StringMatch> = m.query_params.iter().flatten().collect();
    if !params.is_empty() {
        let list: Vec<Value> = params
            .into_iter()
            .map(|(name, sm)| {
                let mut matcher = json!({"name": name});
                match string_matcher(sm).filter(|_| !is_present_match(sm)) {
                    Some(string_match) => matcher["string_match"] = string_match,
                    None => matcher["present_match"] = true.into(),
                }
                matcher
            })
            .collect();
        out.insert("query_parameters".into(), list.into());
    }
    Ok(Value::Object(out))
}

/// `translateHeaderMatch`: a present match for `{}` or the regex `*`, else a string match.
fn header_matcher(name: &str, sm: &StringMatch) -> Value {
    match string_matcher(sm).filter(|_| !is_present_match(sm)) {
        Some(string_match) => json!({"name": name, "string_match": string_match}),
        None => json!({"name": name, "present_match": true}),
    }
}

/// `canBeConvertedToPresentMatch`: no match type, or the regex `*` (not RE2: "any value").
fn is_present_match(sm: &StringMatch) -> bool {
    string_matcher(sm).is_none()
        || (sm.exact.is_none() && sm.prefix.is_none() && sm.regex.as_deref() == Some("*"))
}

/// `jwt.ToRoutingClaim(name).Match`: `@request.auth.claims.a.b` or `@request.auth.claims[a][b]`.
fn is_jwt_claim(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(JWT_CLAIM_PREFIX) else {
        return false;
    };
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(yaml: &str) -> Result<Value, String> {
        route_match(&serde_yaml::from_str(yaml).expect("fixture parses"))
    }

    #[test]
    fn method_authority_and_scheme_are_pseudo_headers_after_the_sorted_headers() {
        let m = translated(
            "{method: {exact: POST}, scheme: {exact: http}, authority: {prefix: reviews}, headers: {x-b: {exact: b}, x-a: {regex: 'a.*'}}}",
        )
        .expect("translates");
        assert_eq!(
            m,
            json!({"prefix": "/", "headers": [
                {"name": "x-a", "string_match": {"safe_regex": {"regex": "a.*"}}},
                {"name": "x-b", "string_match": {"exact": "b"}},
                {"name": ":method", "string_match": {"exact": "POST"}},
                {"name": ":authority", "string_match": {"prefix": "reviews"}},
                {"name": ":scheme", "string_match": {"exact": "http"}},
            ]})
        );
        assert!(!is_catch_all(&m));
    }

    #[test]
    fn query_parameters_by_name_and_a_present_match_for_an_empty_or_star_match() {
        let m = translated(
            "{uri: {prefix: /api}, queryParams: {v: {exact: '2'}, debug: {}, any: {regex: '*'}, id: {regex: '[0-9]+'}}}",
        )
        .expect("translates");
        assert_eq!(
            m,
            json!({"prefix": "/api", "query_parameters": [
                {"name": "any", "present_match": true},
                {"name": "debug", "present_match": true},
                {"name": "id", "string_match": {"safe_regex": {"regex": "[0-9]+"}}},
                {"name": "v", "string_match": {"exact": "2"}},
            ]})
        );
        // A query parameter makes a `/` match no catch-all: the rules after it still count.
        let only_query = translated("{queryParams: {v: {exact: '2'}}}").expect("translates");
        assert!(!is_catch_all(&only_query));
        assert!(is_catch_all(&translated("{uri: {}}").expect("translates")));
    }

    #[test]
    fn without_headers_invert_and_ignore_uri_case_turns_case_sensitivity_off() {
        let m = translated(
            "{uri: {exact: /Reviews}, ignoreUriCase: true, headers: {x-b: {}}, withoutHeaders: {x-a: {exact: v}, x-c: {}}, statPrefix: s}",
        )
        .expect("translates");
        assert_eq!(
            m,
            json!({"path": "/Reviews", "case_sensitive": false, "headers": [
                {"name": "x-a", "string_match": {"exact": "v"}, "invert_match": true, "treat_missing_header_as_empty": true},
                {"name": "x-b", "present_match": true},
                {"name": "x-c", "present_match": true, "invert_match": true},
            ]})
        );
    }

    #[test]
    fn what_selects_by_proxy_or_claim_stays_refused_by_name() {
        for (yaml, field) in [
            ("{port: 9080}", "port"),
            ("{sourceLabels: {app: productpage}}", "sourceLabels"),
            ("{gateways: [mesh]}", "gateways"),
            ("{sourceNamespace: default}", "sourceNamespace"),
        ] {
            assert_eq!(translated(yaml).expect_err("refused"), field);
        }
        let err = translated("{headers: {'@request.auth.claims.group': {exact: admin}}}")
            .expect_err("a claim is refused");
        assert_eq!(
            err,
            "headers (@request.auth.claims.group: a JWT claim; local mode authenticates no request)"
        );
        // Only the claim forms istiod reads as claims: another name is a header.
        assert!(translated("{headers: {x-request-auth-claims: {exact: a}}}").is_ok());
    }
}

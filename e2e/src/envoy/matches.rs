//! A VirtualService's match entries as Envoy route matches (`TranslateRouteMatch` and
//! `IsCatchAllRoute` in istio/istio `pilot/pkg/networking/core/route/route.go`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::istio::{HttpMatchRequest, StringMatch};

/// Match fields the translation models.
const SUPPORTED_MATCH_FIELDS: &[&str] = &["name", "uri", "headers"];

/// istiod's `IsCatchAllRoute` (route.go): a `/` prefix or a `.*` regex path, and no header
/// match.
pub fn is_catch_all(route_match: &Value) -> bool {
    let path = route_match.get("prefix").and_then(Value::as_str) == Some("/")
        || route_match
            .pointer("/safe_regex/regex")
            .and_then(Value::as_str)
            == Some(".*");
    path && route_match.get("headers").is_none()
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

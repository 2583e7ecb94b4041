//! A VirtualService's `headers` as Envoy header mutations and a host rewrite, as istiod
//! writes them (`TranslateHeadersOperations`, `translateAppendHeaders`, `dropInternal` in
//! istio/istio `pilot/pkg/networking/core/route/route.go`).
//!
//! Envoy applies these before it copies the request for a mirror, so the mirror sees them.

use serde_json::{Map, Value, json};

use crate::istio::{HeaderOperations, Headers};

/// The Envoy side of one `headers` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mutations {
    /// `request_headers_to_add`: `set` sorted by name, then `add` sorted by name.
    pub request_add: Vec<Value>,
    /// `request_headers_to_remove`.
    pub request_remove: Vec<String>,
    /// `response_headers_to_add`.
    pub response_add: Vec<Value>,
    /// `response_headers_to_remove`.
    pub response_remove: Vec<String>,
    /// A `host` or `:authority` in `set` (else in `add`): never a header, a host rewrite.
    pub authority: Option<String>,
}

impl Mutations {
    /// istiod's translation of one `headers` block (none: nothing).
    pub fn of(headers: Option<&Headers>) -> Mutations {
        let Some(headers) = headers else {
            return Mutations::default();
        };
        let empty = HeaderOperations::default();
        let request = headers.request.as_ref().unwrap_or(&empty);
        let response = headers.response.as_ref().unwrap_or(&empty);
        let (mut request_add, set_authority) = append_headers(&request.set, false);
        let (add, add_authority) = append_headers(&request.add, true);
        request_add.extend(add);
        let (mut response_add, _) = append_headers(&response.set, false);
        response_add.extend(append_headers(&response.add, true).0);
        Mutations {
            request_add,
            request_remove: drop_internal(&request.remove),
            response_add,
            response_remove: drop_internal(&response.remove),
            authority: set_authority.or(add_authority),
        }
    }

    /// Appends `other`'s header lists after this one's (a single destination's headers
    /// follow the route's, so the destination's win for the same name).
    pub fn extend(&mut self, other: Mutations) {
        self.request_add.extend(other.request_add);
        self.request_remove.extend(other.request_remove);
        self.response_add.extend(other.response_add);
        self.response_remove.extend(other.response_remove);
    }

    /// Writes the four lists into a Route or a ClusterWeight (empty lists are left out, as
    /// protobuf's JSON leaves them out).
    pub fn write_lists(&self, out: &mut Map<String, Value>) {
        let lists = [
            ("request_headers_to_add", json!(self.request_add)),
            ("request_headers_to_remove", json!(self.request_remove)),
            ("response_headers_to_add", json!(self.response_add)),
            ("response_headers_to_remove", json!(self.response_remove)),
        ];
        for (key, value) in lists {
            if value.as_array().is_some_and(|a| !a.is_empty()) {
                out.insert(key.into(), value);
            }
        }
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// One of `set` or `add`, sorted by name (the map already is); the authority apart.
fn append_headers(
    headers: &std::collections::BTreeMap<String, String>,
    append: bool,
) -> (Vec<Value>, Option<String>) {
    let mut authority = None;
    let mut out = Vec::new();
    for (key, value) in headers {
        if is_authority(key) {
            authority = Some(value.clone());
        }
        if is_internal(key) {
            continue;
        }
        let action = if append {
            "APPEND_IF_EXISTS_OR_ADD"
        } else {
            "OVERWRITE_IF_EXISTS_OR_ADD"
        };
        out.push(json!({"header": {"key": key, "value": value}, "append_action": action}));
    }
    (out, authority)
}

fn drop_internal(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !is_internal(n)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(yaml: &str) -> Headers {
        serde_yaml::from_str(yaml).expect("headers")
    }

    #[test]
    fn set_then_add_each_sorted_and_the_host_becomes_a_rewrite() {
        let m = Mutations::of(Some(&headers(
            "request: {set: {x-b: '2', x-a: '1', host: h.example}, add: {x-c: '3'}, remove: [x-d, host, ':path']}\n\
             response: {set: {x-r: 'r'}}",
        )));
        let keys: Vec<&str> = m
            .request_add
            .iter()
            .filter_map(|h| h["header"]["key"].as_str())
            .collect();
        assert_eq!(keys, ["x-a", "x-b", "x-c"]);
        assert_eq!(m.request_add[2]["append_action"], "APPEND_IF_EXISTS_OR_ADD");
        assert_eq!(m.request_remove, ["x-d"]);
        assert_eq!(m.authority.as_deref(), Some("h.example"));
        assert_eq!(m.response_add.len(), 1);
    }

    #[test]
    fn set_authority_wins_over_add() {
        let m = Mutations::of(Some(&headers(
            "request: {set: {':authority': a}, add: {host: b}}",
        )));
        assert_eq!(m.authority.as_deref(), Some("a"));
        assert!(m.request_add.is_empty());
    }
}

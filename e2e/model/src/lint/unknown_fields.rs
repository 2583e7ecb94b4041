//! Unknown-field detection by typed round trip.
//!
//! k8s-openapi and the `istio` types ignore fields they do not know, so a misspelled field
//! disappears silently, exactly as the API server prunes it. Deserializing into the kind's
//! type and serializing back keeps only known fields; every path of the input missing from
//! that round trip is unknown.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::gateway_api::{self, KubeHttpRoute};
use crate::istio::{DestinationRule, Gateway, VirtualService};
use crate::manifest::YamlPath;

/// Unknown field paths of a document of a kind this project types; `None` for other kinds
/// or when the document does not type at all (reported elsewhere). A `Gateway` is typed by
/// its `apiVersion`: the Gateway API's (`gateway.networking.k8s.io`) or Istio's.
pub fn unknown_fields(kind: &str, value: &Value) -> Option<Vec<YamlPath>> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if gateway_api::is_gateway_api(api_version) {
        return match kind {
            "HTTPRoute" => round_trip::<KubeHttpRoute>(value),
            "Gateway" => round_trip::<gateway_api::KubeGateway>(value),
            _ => None,
        };
    }
    match kind {
        "Namespace" => round_trip::<Namespace>(value),
        "ServiceAccount" => round_trip::<ServiceAccount>(value),
        "Service" => round_trip::<Service>(value),
        "Deployment" => round_trip::<Deployment>(value),
        "VirtualService" => round_trip::<VirtualService>(value),
        "DestinationRule" => round_trip::<DestinationRule>(value),
        "Gateway" => round_trip::<Gateway>(value),
        _ => None,
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Option<Vec<YamlPath>> {
    let typed: T = serde_json::from_value(value.clone()).ok()?;
    let kept = serde_json::to_value(&typed).ok()?;
    let mut missing = Vec::new();
    missing_paths(value, &kept, &YamlPath::default(), &mut missing);
    Some(missing)
}

fn missing_paths(input: &Value, kept: &Value, path: &YamlPath, out: &mut Vec<YamlPath>) {
    match (input, kept) {
        (Value::Object(input), Value::Object(kept)) => {
            for (key, value) in input {
                // An explicit null is the same as absent to the API server.
                if value.is_null() {
                    continue;
                }
                match kept.get(key) {
                    Some(k) => missing_paths(value, k, &path.key(key), out),
                    None => out.push(path.key(key)),
                }
            }
        }
        (Value::Array(input), Value::Array(kept)) => {
            for (i, (value, k)) in input.iter().zip(kept).enumerate() {
                missing_paths(value, k, &path.index(i), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(kind: &str, yaml: &str) -> Vec<String> {
        let value: Value = serde_yaml::from_str(yaml).expect("fixture parses");
        unknown_fields(kind, &value)
            .expect("kind is typed")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn misspelled_virtual_service_field_is_found_with_its_path() {
        let found = unknown(
            "VirtualService",
            "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: mirror}
      mirrorPercentge: {value: 100}
",
        );
        assert_eq!(found, ["spec.http[0].mirrorPercentge"]);
    }

    /// Before issue 24 these were carried as JSON values: a misspelling inside them passed.
    #[test]
    fn misspellings_inside_a_routes_policies_are_found() {
        let found = unknown(
            "VirtualService",
            "spec: {http: [{retries: {attemps: 3, perTryTimeout: 1s}, fault: {abort: {httpStatus: 500, percentag: {value: 1}}}, corsPolicy: {allowOrigns: [{exact: a}]}, rewrite: {uriRegexRewrite: {match: a, rewite: b}}, timeout: 1s}]}",
        );
        assert_eq!(
            found,
            [
                "spec.http[0].retries.attemps",
                "spec.http[0].fault.abort.percentag",
                "spec.http[0].corsPolicy.allowOrigns",
                "spec.http[0].rewrite.uriRegexRewrite.rewite",
            ]
        );
    }

    #[test]
    fn deprecated_spellings_are_known_not_unknown() {
        let found = unknown(
            "VirtualService",
            "spec: {http: [{mirror: {host: m}, mirror_percent: 5, mirrorPercent: 5}]}",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn misspelled_deployment_fields_are_found_at_any_depth() {
        let found = unknown(
            "Deployment",
            "
apiVersion: apps/v1
kind: Deployment
metadata: {name: m, lables: {a: b}}
spec:
  selector: {matchLabels: {app: m}}
  template:
    metadata: {labels: {app: m}}
    spec:
      containers:
        - name: m
          image: m:1
          ports: [{containerPort: 9080, protocl: TCP}]
",
        );
        assert_eq!(
            found,
            [
                "metadata.lables",
                "spec.template.spec.containers[0].ports[0].protocl"
            ]
        );
    }

    #[test]
    fn unknown_fields_in_every_typed_kind() {
        assert_eq!(
            unknown("Namespace", "metadata: {name: t}\nspc: {}"),
            ["spc"]
        );
        assert_eq!(
            unknown("ServiceAccount", "metadata: {name: t}\nsecret: []"),
            ["secret"]
        );
        assert_eq!(
            unknown(
                "Service",
                "metadata: {name: t}\nspec: {ports: [{port: 1, targtPort: 2}]}"
            ),
            ["spec.ports[0].targtPort"]
        );
        assert_eq!(
            unknown(
                "DestinationRule",
                "spec: {host: r, subsets: [{name: v1, label: {v: a}}]}"
            ),
            ["spec.subsets[0].label"]
        );
        assert_eq!(
            unknown(
                "Gateway",
                "spec: {servers: [{port: {number: 80, protcol: HTTP}}]}"
            ),
            ["spec.servers[0].port.protcol"]
        );
    }

    #[test]
    fn misspellings_in_gateway_api_objects_are_found_and_their_gateway_is_not_istios() {
        let found = unknown(
            "HTTPRoute",
            "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews, sectionNme: http}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: a, valu: b}]}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: mirror, port: 9080}, fraction: {numerator: 1, denominater: 2}}
      backendRefs: [{name: reviews-v1, port: 9080, wieght: 1, filters: []}]
",
        );
        assert_eq!(
            found,
            [
                "spec.parentRefs[0].sectionNme",
                "spec.rules[0].matches[0].headers[0].valu",
                "spec.rules[0].filters[0].requestMirror.fraction.denominater",
                "spec.rules[0].backendRefs[0].wieght",
            ]
        );
        let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nspec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP, hostnme: a}]}";
        assert_eq!(unknown("Gateway", gateway), ["spec.listeners[0].hostnme"]);
        // Istio's Gateway keeps its own schema.
        assert_eq!(
            unknown(
                "Gateway",
                "apiVersion: networking.istio.io/v1\nspec: {listeners: []}"
            ),
            ["spec.listeners"]
        );
    }

    #[test]
    fn other_kinds_are_not_judged() {
        assert!(unknown_fields("ConfigMap", &serde_json::json!({"whatever": 1})).is_none());
    }
}

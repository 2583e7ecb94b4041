//! Tests of the HTTPRoute and Gateway rules, on inline manifests: a failing and a passing
//! case per rule.

use super::{
    BACKEND_PORT, GATEWAY_CLASS, MIRROR_IN_BACKEND_FILTERS, UNKNOWN_BACKEND, UNKNOWN_PARENT,
};
use crate::lint::test_support::findings;

/// Services `reviews`, `reviews-v1`, `reviews-v2`, `mirror` and an `istio` Gateway `bookinfo`;
/// HTTPRoutes are added per test.
const MESH: &str = "
kind: Service
metadata: {name: reviews}
spec: {ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: reviews-v1}
spec: {ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: reviews-v2}
spec: {ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: mirror}
spec: {ports: [{port: 9080, name: http}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bookinfo}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
";

/// The shipped shape: tester to v2 mirrored to `mirror`, everyone else to v1.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs:
    - {group: '', kind: Service, name: reviews, port: 9080}
  rules:
    - matches: [{headers: [{name: end-user, value: tester}]}]
      filters:
        - type: RequestMirror
          requestMirror:
            backendRef: {name: mirror, port: 9080}
            fraction: {numerator: 1, denominator: 2}
      backendRefs: [{name: reviews-v2, port: 9080}]
    - backendRefs:
        - name: reviews-v1
          port: 9080
";

fn lint(route: &str, code: &str) -> Vec<String> {
    findings(&format!("{MESH}{route}"), code)
}

/// The line in `MESH + ROUTE` of the first line of `ROUTE` that contains `needle`.
fn line_of(needle: &str) -> usize {
    let in_route = ROUTE
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in the route"));
    MESH.lines().count() + in_route + 1
}

#[test]
fn the_shipped_shape_has_no_findings_but_local_modes_refusal() {
    let all = crate::lint::lint(&crate::manifest::ManifestSet::from_str(
        "t.yaml",
        &format!("{MESH}{ROUTE}"),
    ));
    let codes: Vec<&str> = all.iter().map(|f| f.code).collect();
    // Local mode refuses Gateway API objects by name until it translates them.
    assert_eq!(
        codes,
        ["local-unsupported", "local-unsupported"],
        "{all:#?}"
    );
    assert!(
        all[0]
            .message
            .contains("local mode does not translate Gateway API objects yet")
    );
}

#[test]
fn a_backend_naming_no_service_is_an_error_at_its_name() {
    assert!(lint(ROUTE, UNKNOWN_BACKEND).is_empty());
    let found = lint(
        &ROUTE.replace("name: reviews-v1", "name: reviews-v3"),
        UNKNOWN_BACKEND,
    );
    let line = line_of("name: reviews-v1");
    assert_eq!(
        found,
        [format!(
            "t.yaml:{line}: error[unknown-backend]: HTTPRoute reviews: spec.rules[1].backendRefs[0].name: no Service `reviews-v3` in the manifests: ResolvedRefs=False, reason BackendNotFound; its share of the traffic gets 500 (no such cluster)"
        )]
    );
}

#[test]
fn a_mirror_naming_no_service_is_an_error_saying_the_mirror_is_dropped() {
    let found = lint(
        &ROUTE.replace("{name: mirror, port", "{name: mirorr, port"),
        UNKNOWN_BACKEND,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let line = line_of("backendRef: {name: mirror");
    assert!(
        found[0].starts_with(&format!("t.yaml:{line}: error[unknown-backend]: HTTPRoute reviews: spec.rules[0].filters[0].requestMirror.backendRef.name: no Service `mirorr`")),
        "{found:?}"
    );
    assert!(found[0].ends_with("istiod drops this mirror, nothing is mirrored"));
}

#[test]
fn a_backend_in_another_namespace_or_of_another_kind_is_not_judged() {
    let other = ROUTE
        .replace(
            "name: reviews-v1",
            "name: reviews-v3\n          namespace: elsewhere",
        )
        .replace(
            "{name: mirror, port: 9080}",
            "{group: networking.istio.io, kind: Hostname, name: m.example.com}",
        );
    assert!(lint(&other, UNKNOWN_BACKEND).is_empty());
    assert!(lint(&other, BACKEND_PORT).is_empty());
}

#[test]
fn a_backend_or_mirror_without_a_port_is_an_error_saying_what_istiod_drops() {
    assert!(lint(ROUTE, BACKEND_PORT).is_empty());
    let found = lint(
        &ROUTE
            .replace("{name: reviews-v2, port: 9080}", "{name: reviews-v2}")
            .replace("{name: mirror, port: 9080}", "{name: mirror}"),
        BACKEND_PORT,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    let (mirror, backend) = (line_of("backendRef: {name: mirror"), line_of("reviews-v2"));
    assert!(
        found[0].starts_with(&format!("t.yaml:{mirror}: error[backend-port]: HTTPRoute reviews: spec.rules[0].filters[0].requestMirror.backendRef.port: Service `mirror` has no port: Istio requires one for a Service backend (\"port is required in backendRef\"); istiod drops this mirror")),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(&format!("t.yaml:{backend}: error[backend-port]: HTTPRoute reviews: spec.rules[0].backendRefs[0].port:")),
        "{found:?}"
    );
    assert!(found[1].contains("drops every route of it"), "{found:?}");
    // Without a port istiod reports the port alone, whether the Service exists or not.
    let both = ROUTE.replace("{name: reviews-v2, port: 9080}", "{name: reviews-v3}");
    assert_eq!(lint(&both, BACKEND_PORT).len(), 1);
    assert!(lint(&both, UNKNOWN_BACKEND).is_empty());
}

#[test]
fn a_mirror_under_backend_filters_is_an_error_naming_the_status_istiod_writes() {
    assert!(lint(ROUTE, MIRROR_IN_BACKEND_FILTERS).is_empty());
    let moved = ROUTE.replace(
        "          port: 9080\n",
        "          port: 9080\n          filters:\n            - type: RequestMirror\n              requestMirror: {backendRef: {name: mirror, port: 9080}}\n",
    );
    let found = lint(&moved, MIRROR_IN_BACKEND_FILTERS);
    let line = MESH.lines().count() + ROUTE.lines().count() + 2;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("t.yaml:{line}: error[mirror-in-backend-filters]: HTTPRoute reviews: spec.rules[1].backendRefs[0].filters[0].type: RequestMirror under backendRefs[].filters")),
        "{found:?}"
    );
    for words in [
        "Accepted=True",
        "ResolvedRefs=False, reason InvalidFilter",
        "drops every route",
    ] {
        assert!(found[0].contains(words), "{words}: {found:?}");
    }
    // Header modifiers are allowed there.
    let modifier = ROUTE.replace(
        "          port: 9080\n",
        "          port: 9080\n          filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]\n",
    );
    assert!(lint(&modifier, MIRROR_IN_BACKEND_FILTERS).is_empty());
}

#[test]
fn a_parent_service_the_manifests_lack_is_no_matching_parent() {
    assert!(lint(ROUTE, UNKNOWN_PARENT).is_empty());
    let found = lint(
        &ROUTE.replace(
            "kind: Service, name: reviews,",
            "kind: Service, name: review,",
        ),
        UNKNOWN_PARENT,
    );
    let line = line_of("kind: Service, name: reviews");
    assert_eq!(
        found,
        [format!(
            "t.yaml:{line}: error[unknown-parent]: HTTPRoute reviews: spec.parentRefs[0].name: no Service `review` in the manifests: istiod does not attach the route (Accepted=False, reason NoMatchingParent: parent service: \"review\" not found) and no sidecar gets its rules"
        )]
    );
}

#[test]
fn a_parent_service_without_the_core_group_is_ignored_by_istiod() {
    let found = lint(
        &ROUTE.replace("{group: '', kind: Service,", "{kind: Service,"),
        UNKNOWN_PARENT,
    );
    let line = line_of("kind: Service, name: reviews");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("t.yaml:{line}: error[unknown-parent]: HTTPRoute reviews: spec.parentRefs[0].kind: kind Service without `group: \"\"`")),
        "{found:?}"
    );
    assert!(found[0].contains("unsupported parent"), "{found:?}");
}

#[test]
fn a_parent_gateway_the_manifests_lack_gets_no_status_at_all() {
    let to = |name: &str| {
        ROUTE.replace(
            "{group: '', kind: Service, name: reviews, port: 9080}",
            &format!("{{name: {name}}}"),
        )
    };
    assert!(lint(&to("bookinfo"), UNKNOWN_PARENT).is_empty());
    let found = lint(&to("bookinf"), UNKNOWN_PARENT);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("error[unknown-parent]: HTTPRoute reviews: spec.parentRefs[0].name: no Gateway `bookinf` (gateway.networking.k8s.io) in the manifests: istiod writes no status at all"),
        "{found:?}"
    );
}

#[test]
fn a_gateway_of_another_class_is_a_warning_and_istios_is_not() {
    assert!(lint(ROUTE, GATEWAY_CLASS).is_empty());
    let found = findings(
        &MESH.replace("gatewayClassName: istio", "gatewayClassName: nginx"),
        GATEWAY_CLASS,
    );
    assert_eq!(
        found,
        [
            "t.yaml:22: warning[gateway-class]: Gateway bookinfo: spec.gatewayClassName: class `nginx` is not Istio's (`istio`): istiod creates no gateway for it and writes no status on its routes"
        ]
    );
}

#[test]
fn an_istio_gateway_is_not_judged_as_a_gateway_api_one() {
    let istio = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]}\n";
    assert!(findings(istio, GATEWAY_CLASS).is_empty());
    assert!(findings(istio, "unknown-field").is_empty());
}

//! The route-status predicate on statuses shaped as istiod writes them.

use serde_json::json;

use super::*;

/// An HTTPRoute at `generation` whose status has `parents`.
fn route(generation: i64, parents: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "reviews", "namespace": "test", "generation": generation},
        "spec": {},
        "status": {"parents": parents},
    }))
    .expect("fixture")
}

/// istiod's entry for the Service parent `reviews` with these conditions.
fn parent(conditions: Value) -> Value {
    json!({
        "controllerName": ISTIO_CONTROLLER,
        "parentRef": {"group": "", "kind": "Service", "name": "reviews", "port": 9080},
        "conditions": conditions,
    })
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": "2026-12-05T00:00:00Z"})
}

fn accepted(generation: i64) -> Value {
    json!([
        condition(
            "Accepted",
            "True",
            "Accepted",
            "Route was valid",
            generation
        ),
        condition(
            "ResolvedRefs",
            "True",
            "ResolvedRefs",
            "All references resolved",
            generation
        ),
    ])
}

#[test]
fn a_route_accepted_with_resolved_references_at_its_generation_is_ready() {
    let ready = route(2, json!([parent(accepted(2))]));
    assert_eq!(route_status_problem(&ready), None);
    assert!(is_route_accepted().matches_object(Some(&ready)));
    assert!(!is_route_accepted().matches_object(None));
}

#[test]
fn a_mirror_under_backend_filters_is_caught_on_resolved_refs_though_accepted() {
    let invalid = route(
        1,
        json!([parent(json!([
            condition("Accepted", "True", "Accepted", "Route was valid", 1),
            condition(
                "ResolvedRefs",
                "False",
                "InvalidFilter",
                "unsupported filter type \"RequestMirror\"",
                1
            ),
        ]))]),
    );
    assert_eq!(
        route_status_problem(&invalid).as_deref(),
        Some(
            "parent Service reviews: ResolvedRefs=False (InvalidFilter: unsupported filter type \"RequestMirror\")"
        )
    );
    assert!(!is_route_accepted().matches_object(Some(&invalid)));
}

#[test]
fn a_missing_parent_service_names_the_reason_and_message() {
    let orphan = route(
        1,
        json!([parent(json!([
            condition(
                "Accepted",
                "False",
                "NoMatchingParent",
                "parent service: \"reviews\" not found",
                1
            ),
            condition(
                "ResolvedRefs",
                "True",
                "ResolvedRefs",
                "All references resolved",
                1
            ),
        ]))]),
    );
    assert_eq!(
        route_status_problem(&orphan).as_deref(),
        Some(
            "parent Service reviews: Accepted=False (NoMatchingParent: parent service: \"reviews\" not found)"
        )
    );
}

#[test]
fn a_status_of_an_earlier_generation_is_not_the_routes() {
    let stale = route(3, json!([parent(accepted(2))]));
    assert_eq!(
        route_status_problem(&stale).as_deref(),
        Some(
            "parent Service reviews: Accepted is for generation 2, the route is at 3; parent Service reviews: ResolvedRefs is for generation 2, the route is at 3"
        )
    );
}

#[test]
fn no_status_from_istio_says_why_there_may_be_none() {
    let other = json!([{
        "controllerName": "example.com/another-controller",
        "parentRef": {"name": "public"},
        "conditions": accepted(1),
    }]);
    for parents in [json!([]), other] {
        let problem = route_status_problem(&route(1, parents)).expect("not ready");
        assert!(
            problem.starts_with("no parent status from istio.io/gateway-controller yet"),
            "{problem}"
        );
    }
    let waiting = route(1, json!([parent(json!([]))]));
    assert_eq!(
        route_status_problem(&waiting).as_deref(),
        Some(
            "parent Service reviews: no Accepted condition yet; parent Service reviews: no ResolvedRefs condition yet"
        )
    );
}

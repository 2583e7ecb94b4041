//! Waiting for Gateway API routes: before any traffic, every HTTPRoute of the run is
//! `Accepted` with its references resolved (`ResolvedRefs`) by istiod, at the route's current
//! generation; a wait that runs out names the parent, the condition, its reason and message.
//!
//! What istiod writes, read in its source (docs/design/gateway-api-upstream.md, section 4): per
//! parent it controls (`controllerName: istio.io/gateway-controller`) the two conditions, each
//! with `observedGeneration`; a parent Gateway that does not exist, or is not of class
//! `istio`, gets no entry at all; a RequestMirror under `backendRefs[].filters` leaves
//! `Accepted=True` with `ResolvedRefs=False` (reason `InvalidFilter`), so both are awaited.

use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::wait::Condition;
use kube::{Api, Client};
use serde_json::Value;

use super::ready::{ReadyError, await_named};

/// The controller name istiod writes its route status under.
pub const ISTIO_CONTROLLER: &str = "istio.io/gateway-controller";

/// The conditions awaited on each parent, in the order they are reported.
const AWAITED: [&str; 2] = ["Accepted", "ResolvedRefs"];

/// What is still wrong with the route's status, or `None` when every parent istiod controls
/// has both conditions `True` at the route's generation.
pub fn route_status_problem(route: &DynamicObject) -> Option<String> {
    let generation = route.metadata.generation;
    let parents: Vec<&Value> = route
        .data
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) == Some(ISTIO_CONTROLLER))
        .collect();
    if parents.is_empty() {
        return Some(format!(
            "no parent status from {ISTIO_CONTROLLER} yet (istiod writes none for a parent Gateway that does not exist or is not of class istio)"
        ));
    }
    let problems: Vec<String> = parents
        .iter()
        .flat_map(|parent| parent_problems(parent, generation))
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The awaited conditions of one parent's status that do not hold yet.
fn parent_problems(parent: &Value, generation: Option<i64>) -> Vec<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    let reference = parent.get("parentRef");
    let named = format!(
        "parent {} {}",
        reference
            .and_then(|r| r.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("Gateway"),
        text(reference.and_then(|r| r.get("name")))
    );
    let conditions: &[Value] = parent
        .get("conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    AWAITED
        .iter()
        .filter_map(|kind| {
            let Some(condition) = conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            else {
                return Some(format!("{named}: no {kind} condition yet"));
            };
            let observed = condition.get("observedGeneration").and_then(Value::as_i64);
            if generation.is_some() && observed != generation {
                return Some(format!(
                    "{named}: {kind} is for generation {}, the route is at {}",
                    observed.map_or_else(|| "none".to_owned(), |g| g.to_string()),
                    generation.unwrap_or_default()
                ));
            }
            let status = text(condition.get("status"));
            (status != "True").then(|| {
                format!(
                    "{named}: {kind}={status} ({}: {})",
                    text(condition.get("reason")),
                    text(condition.get("message"))
                )
            })
        })
        .collect()
}

/// An HTTPRoute istiod has accepted with every reference resolved, at its generation.
pub fn is_route_accepted() -> impl Condition<DynamicObject> {
    |route: Option<&DynamicObject>| route.is_some_and(|r| route_status_problem(r).is_none())
}

/// The HTTPRoute kind as the API serves it.
fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

/// Waits until every HTTPRoute `names` of `namespace` is accepted ([`is_route_accepted`]),
/// within one `patience` for all.
pub async fn http_routes_accepted(
    client: &Client,
    namespace: &str,
    names: &[String],
    patience: Duration,
) -> Result<(), ReadyError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &http_route_resource());
    let deadline = tokio::time::Instant::now() + patience;
    for name in names {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        await_named(
            &api,
            (namespace, name),
            is_route_accepted(),
            left,
            "HTTPRoute to be Accepted with its references resolved",
            |seen| match seen {
                Ok(Some(route)) => route_status_problem(&route)
                    .unwrap_or_else(|| "accepted, as the wait ran out".to_owned()),
                Ok(None) => "no such HTTPRoute".to_owned(),
                Err(e) => e.to_string(),
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

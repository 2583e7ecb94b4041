//! Rules for Gateway API HTTPRoutes and Gateways: backends, mirrors, parents and classes.
//!
//! Each rule says what istiod does with the object (`pilot/pkg/config/kube/gateway/conversion.go`,
//! Istio 1.27 to 1.31), as read in `docs/design/gateway-api-upstream.md`: which status the
//! HTTPRoute gets and what happens to its traffic.

use super::{Report, Severity};
use crate::gateway_api::{
    BackendObjectReference, FilterType, HttpRouteFilter, ISTIO_GATEWAY_CLASS, KubeHttpRoute,
};
use crate::manifest::YamlPath;
use crate::topology::{Topology, Typed};

/// A backendRef or RequestMirror backendRef naming no Service of the manifests.
pub const UNKNOWN_BACKEND: &str = "unknown-backend";
/// A Service backendRef or RequestMirror backendRef with no `port`.
pub const BACKEND_PORT: &str = "backend-port";
/// RequestMirror under `backendRefs[].filters`.
pub const MIRROR_IN_BACKEND_FILTERS: &str = "mirror-in-backend-filters";
/// A parentRef to a Service or Gateway the manifests lack.
pub const UNKNOWN_PARENT: &str = "unknown-parent";
/// A Gateway API Gateway of a class istiod does not serve.
pub const GATEWAY_CLASS: &str = "gateway-class";

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    for route in &topo.http_routes {
        check_parents(topo, route, report);
        let rules = YamlPath::parse("spec.rules");
        for (i, rule) in route.object.spec.rules.iter().enumerate() {
            let at = rules.index(i);
            for (j, filter) in rule.filters.iter().enumerate() {
                if let Some(mirror) = rule_mirror(filter) {
                    let path = at
                        .key("filters")
                        .index(j)
                        .key("requestMirror")
                        .key("backendRef");
                    check_backend(
                        topo,
                        route,
                        &path,
                        &mirror.backend_ref,
                        Role::Mirror,
                        report,
                    );
                }
            }
            for (j, backend) in rule.backend_refs.iter().enumerate() {
                let path = at.key("backendRefs").index(j);
                let reference = BackendObjectReference {
                    group: backend.group.clone(),
                    kind: backend.kind.clone(),
                    name: backend.name.clone(),
                    namespace: backend.namespace.clone(),
                    port: backend.port,
                };
                check_backend(topo, route, &path, &reference, Role::Backend, report);
                check_backend_filters(route, &path, &backend.filters, report);
            }
        }
    }
    check_gateway_classes(topo, report);
}

/// The mirror of a rule-level `RequestMirror` filter.
fn rule_mirror(filter: &HttpRouteFilter) -> Option<&crate::gateway_api::RequestMirror> {
    match filter.filter_type {
        FilterType::RequestMirror => filter.request_mirror.as_ref(),
        _ => None,
    }
}

/// Whether a reference is a rule's backend or a mirror: istiod treats their errors apart.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Backend,
    Mirror,
}

/// Whether a reference of the route (its `namespace`, else the route's) is to the set's own
/// namespace; another namespace is not in the manifests, so not judged.
fn in_set_namespace(
    topo: &Topology,
    route: &Typed<KubeHttpRoute>,
    namespace: Option<&str>,
) -> bool {
    let route_ns = route.object.metadata.namespace.as_deref();
    namespace.or(route_ns).unwrap_or(&topo.namespace) == topo.namespace
}

fn check_backend(
    topo: &Topology,
    route: &Typed<KubeHttpRoute>,
    path: &YamlPath,
    reference: &BackendObjectReference,
    role: Role,
    report: &mut Report<'_>,
) {
    if !reference.is_service() {
        return;
    }
    let name = &reference.name;
    if reference.port.is_none() {
        let outcome = match role {
            Role::Backend => {
                "istiod refuses the whole HTTPRoute (ResolvedRefs=False, reason \
                 InvalidDestination) and drops every route of it"
            }
            Role::Mirror => {
                "istiod drops this mirror (ResolvedRefs=False, reason InvalidDestination): \
                 nothing is mirrored to it"
            }
        };
        report.at(
            route.document,
            &path.key("port"),
            Severity::Error,
            BACKEND_PORT,
            format!(
                "Service `{name}` has no port: Istio requires one for a Service backend (\"port \
                 is required in backendRef\"); {outcome}"
            ),
        );
        // istiod's `buildDestination` returns this error alone, whether the Service exists.
        return;
    }
    if !in_set_namespace(topo, route, reference.namespace.as_deref())
        || topo.service(name).is_some()
    {
        return;
    }
    let outcome = match role {
        Role::Backend => "its share of the traffic gets 500 (no such cluster)",
        Role::Mirror => "istiod drops this mirror, nothing is mirrored",
    };
    report.at(
        route.document,
        &path.key("name"),
        missing_severity(topo.services.is_empty()),
        UNKNOWN_BACKEND,
        format!(
            "no Service `{name}` in the manifests: ResolvedRefs=False, reason BackendNotFound; \
             {outcome}"
        ),
    );
}

/// A missing object is an error, a warning when the set has no object of that kind at all
/// (a partial set, as for `unknown-host`).
fn missing_severity(set_has_none: bool) -> Severity {
    if set_has_none {
        Severity::Warning
    } else {
        Severity::Error
    }
}

fn check_backend_filters(
    route: &Typed<KubeHttpRoute>,
    path: &YamlPath,
    filters: &[HttpRouteFilter],
    report: &mut Report<'_>,
) {
    for (k, filter) in filters.iter().enumerate() {
        if filter.filter_type != FilterType::RequestMirror {
            continue;
        }
        report.at(
            route.document,
            &path.key("filters").index(k).key("type"),
            Severity::Error,
            MIRROR_IN_BACKEND_FILTERS,
            "RequestMirror under backendRefs[].filters: istiod supports it only in the rule's \
             `filters` and drops every route of this HTTPRoute (status Accepted=True but \
             ResolvedRefs=False, reason InvalidFilter: unsupported filter type \
             \"RequestMirror\"); traffic falls back to the plain Service, over all its \
             endpoints. Move it to the rule's `filters`",
        );
    }
}

fn check_parents(topo: &Topology, route: &Typed<KubeHttpRoute>, report: &mut Report<'_>) {
    let parents = YamlPath::parse("spec.parentRefs");
    for (i, parent) in route.object.spec.parent_refs.iter().enumerate() {
        if !in_set_namespace(topo, route, parent.namespace.as_deref()) {
            continue;
        }
        let name = &parent.name;
        let path = parents.index(i).key("name");
        if parent.kind() == "Service" && parent.group.is_none() {
            report.at(
                route.document,
                &parents.index(i).key("kind"),
                Severity::Error,
                UNKNOWN_PARENT,
                "kind Service without `group: \"\"` is a Service of gateway.networking.k8s.io (the \
                 CRD's default group), which istiod does not know: it ignores this parent \
                 (\"unsupported parent\") and writes no status. Add `group: \"\"`",
            );
        } else if parent.is_service() && topo.service(name).is_none() {
            report.at(
                route.document,
                &path,
                missing_severity(topo.services.is_empty()),
                UNKNOWN_PARENT,
                format!(
                    "no Service `{name}` in the manifests: istiod does not attach the route \
                     (Accepted=False, reason NoMatchingParent: parent service: \"{name}\" not \
                     found) and no sidecar gets its rules"
                ),
            );
        } else if parent.is_gateway() && gateway(topo, name).is_none() {
            report.at(
                route.document,
                &path,
                missing_severity(topo.gateway_api_gateways.is_empty()),
                UNKNOWN_PARENT,
                format!(
                    "no Gateway `{name}` (gateway.networking.k8s.io) in the manifests: istiod \
                     writes no status at all for this parent and no gateway serves the route"
                ),
            );
        }
    }
}

fn gateway<'t>(topo: &'t Topology, name: &str) -> Option<&'t crate::gateway_api::KubeGateway> {
    topo.gateway_api_gateways
        .iter()
        .map(|g| &g.object)
        .find(|g| g.metadata.name.as_deref() == Some(name))
}

fn check_gateway_classes(topo: &Topology, report: &mut Report<'_>) {
    for gw in &topo.gateway_api_gateways {
        let class = &gw.object.spec.gateway_class_name;
        if class == ISTIO_GATEWAY_CLASS {
            continue;
        }
        report.at(
            gw.document,
            &YamlPath::parse("spec.gatewayClassName"),
            Severity::Warning,
            GATEWAY_CLASS,
            format!(
                "class `{class}` is not Istio's (`{ISTIO_GATEWAY_CLASS}`): istiod creates no \
                 gateway for it and writes no status on its routes"
            ),
        );
    }
}

#[cfg(test)]
mod tests;

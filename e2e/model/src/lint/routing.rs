//! Rules for VirtualServices and DestinationRules: percentages, mirrors, hosts and subsets.

use serde_json::Value;

use super::{Report, Severity};
use crate::istio::{Destination, HttpRoute};
use crate::manifest::YamlPath;
use crate::topology::{HostTarget, Topology};

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    for vs in &topo.virtual_services {
        let http = YamlPath::parse("spec.http");
        for (i, route) in vs.object.spec.http.iter().enumerate() {
            let at = http.index(i);
            check_mirror_fields(vs.document, &at, route, report);
            for (j, dest) in route.route.iter().enumerate() {
                let path = at.key("route").index(j).key("destination");
                check_destination(topo, vs.document, &path, &dest.destination, report);
            }
            if let Some(mirror) = &route.mirror {
                check_destination(topo, vs.document, &at.key("mirror"), mirror, report);
            }
            for (j, m) in route.mirrors.iter().flatten().enumerate() {
                let path = at.key("mirrors").index(j).key("destination");
                check_destination(topo, vs.document, &path, &m.destination, report);
            }
        }
        check_unreachable_rules(vs.document, &vs.object.spec.http, report);
    }
    check_destination_rule_hosts(topo, report);
    check_subsets_select_workloads(topo, report);
}

/// A DestinationRule whose host names no Service of the manifests: its subsets and policies
/// apply to nothing. Istio's analyzer says IST0174 (`PodNotSelectedAnalyzer` in
/// `pkg/config/analysis/analyzers/destinationrule/subset.go`, a warning: "The host %s
/// defined in the DestinationRule does not match any services in the mesh."). A route to
/// the host it meant is already an `unknown-subset` error; this names the cause.
fn check_destination_rule_hosts(topo: &Topology, report: &mut Report<'_>) {
    if topo.services.is_empty() {
        return;
    }
    for dr in &topo.destination_rules {
        let host = &dr.object.spec.host;
        if let HostTarget::Unexpanded(svc) = topo.resolve_host(host) {
            report.at(
                dr.document,
                &YamlPath::parse("spec.host"),
                Severity::Error,
                "unknown-host",
                unexpanded_message(host, svc, &topo.namespace),
            );
        } else if let HostTarget::Missing = topo.resolve_host(host) {
            report.at(
                dr.document,
                &YamlPath::parse("spec.host"),
                Severity::Warning,
                "unknown-host",
                format!(
                    "host `{host}` names no Service in the manifests: the DestinationRule's subsets apply to nothing"
                ),
            );
        }
    }
}

/// Istio's IST0130 (VirtualServiceUnreachableRule) and IST0131
/// (VirtualServiceIneffectiveMatch): `analyzeUnreachableHTTPRules` in istio/istio
/// `pkg/config/validation/validation.go`, which `ValidateVirtualService` reports as warnings
/// and `istioctl analyze` shows with the templates of `pkg/config/analysis/msg/messages.yaml`,
/// "VirtualService rule %v not used (%s)." and "VirtualService rule %v match %v is not used
/// (duplicate/overlapping match in rule %v)." (a rule or match is `"name"` or `#index`).
/// Routes are tried in order, so a rule after one without matches, or whose every match an
/// earlier rule has, never serves a request; a match an earlier rule has never matches here.
/// Istio's other IST0131, a URI prefix an earlier rule's prefix covers, is not checked.
fn check_unreachable_rules(doc: usize, http: &[HttpRoute], report: &mut Report<'_>) {
    let name = |name: &Option<String>, i: usize| match name {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("#{i}"),
    };
    let rule = |i: usize| name(&http[i].name, i);
    // (rule, code, message), reported after the walk.
    let mut warnings: Vec<(usize, &'static str, String)> = Vec::new();
    let unreachable = |i: usize, reason: &str| {
        (
            i,
            "unreachable-rule",
            format!(
                "IST0130: VirtualService rule {} not used ({reason}).",
                rule(i)
            ),
        )
    };
    // Istio compares matches as JSON without their names (`asJSON`), keeping the first rule
    // that had each.
    let mut seen: Vec<(Value, usize)> = Vec::new();
    let mut without_matches = false;
    for (i, route) in http.iter().enumerate() {
        if route.matches.is_empty() {
            if without_matches {
                warnings.push(unreachable(i, "only the last rule can have no matches"));
            }
            without_matches = true;
            continue;
        }
        let mut duplicates = 0;
        for (n, m) in route.matches.iter().enumerate() {
            if without_matches {
                warnings.push(unreachable(i, "route without matches defined before"));
                continue;
            }
            let unnamed = crate::istio::HttpMatchRequest {
                name: None,
                ..m.clone()
            };
            let json = serde_json::to_value(&unnamed).unwrap_or_default();
            match seen.iter().find(|(seen, _)| *seen == json) {
                Some((_, earlier)) => {
                    duplicates += 1;
                    warnings.push((
                        i,
                        "ineffective-match",
                        format!(
                            "IST0131: VirtualService rule {} match {} is not used (duplicate/overlapping match in rule {}).",
                            rule(i),
                            name(&m.name, n),
                            rule(*earlier)
                        ),
                    ));
                }
                None => seen.push((json, i)),
            }
        }
        if duplicates == route.matches.len() {
            warnings.push(unreachable(i, "all matches used by prior rules"));
        }
    }
    for (i, code, message) in warnings {
        report.at(
            doc,
            &YamlPath::parse("spec.http").index(i),
            Severity::Warning,
            code,
            message,
        );
    }
}

fn check_mirror_fields(doc: usize, at: &YamlPath, route: &HttpRoute, report: &mut Report<'_>) {
    for (field, value) in [
        ("mirrorPercent", &route.mirror_percent),
        ("mirror_percent", &route.mirror_percent_snake),
    ] {
        let Some(value) = value else { continue };
        report.at(
            doc,
            &at.key(field),
            Severity::Warning,
            "deprecated-field",
            "deprecated: use mirrorPercentage: {value: <0..100>}",
        );
        match value.as_f64() {
            Some(p) => check_percent(doc, &at.key(field), p, report),
            None if !matches!(value, Value::Null) => report.at(
                doc,
                &at.key(field),
                Severity::Error,
                "invalid-value",
                format!("expected an integer percentage, found {value}"),
            ),
            None => {}
        }
    }
    if let Some(p) = &route.mirror_percentage {
        check_percent(
            doc,
            &at.key("mirrorPercentage").key("value"),
            p.value,
            report,
        );
    }
    for (j, m) in route.mirrors.iter().flatten().enumerate() {
        if let Some(p) = &m.percentage {
            let path = at.key("mirrors").index(j).key("percentage").key("value");
            check_percent(doc, &path, p.value, report);
        }
    }
    if route.mirror.is_some() && route.mirrors.is_some() {
        report.at(
            doc,
            &at.key("mirrors"),
            Severity::Error,
            "mirror-and-mirrors",
            "`mirror` and `mirrors` on one route: Istio rejects the route; keep one",
        );
    }
}

fn check_percent(doc: usize, path: &YamlPath, value: f64, report: &mut Report<'_>) {
    if !(0.0..=100.0).contains(&value) {
        report.at(
            doc,
            path,
            Severity::Error,
            "percentage-range",
            format!("{value} is outside 0..100"),
        );
    }
}

/// istiod expands only names without a dot (`ResolveShortnameToFQDN`), so `name.<ns>` names
/// no Service: its route answers 503 and its mirror sends nothing.
fn unexpanded_message(
    host: &str,
    svc: &k8s_openapi::api::core::v1::Service,
    namespace: &str,
) -> String {
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    format!(
        "host `{host}` names no Service: istiod expands only names without a dot, so this is not Service `{name}` (no cluster: requests get 503 and nothing is mirrored); write `{name}` or `{}`",
        crate::hostname::service_fqdn(name, namespace)
    )
}

fn check_destination(
    topo: &Topology,
    doc: usize,
    path: &YamlPath,
    dest: &Destination,
    report: &mut Report<'_>,
) {
    let host = &dest.host;
    match topo.resolve_host(host) {
        HostTarget::Service(_) => check_port(topo, doc, path, dest, report),
        HostTarget::Missing if topo.services.is_empty() => report.at(
            doc,
            &path.key("host"),
            Severity::Warning,
            "unknown-host",
            format!("host `{host}`: the manifests define no Services to check it against"),
        ),
        HostTarget::Missing => report.at(
            doc,
            &path.key("host"),
            Severity::Error,
            "unknown-host",
            format!("host `{host}` names no Service in the manifests"),
        ),
        HostTarget::Outside => report.at(
            doc,
            &path.key("host"),
            Severity::Warning,
            "unknown-host",
            format!("host `{host}` is outside the manifests; it cannot be checked here"),
        ),
        HostTarget::Unexpanded(svc) => report.at(
            doc,
            &path.key("host"),
            Severity::Error,
            "unknown-host",
            unexpanded_message(host, svc, &topo.namespace),
        ),
    }
    if let Some(subset) = &dest.subset {
        let defined = topo.subsets_of(host);
        if !defined.iter().any(|s| &s.name == subset) {
            let known: Vec<&str> = defined.iter().map(|s| s.name.as_str()).collect();
            report.at(
                doc,
                &path.key("subset"),
                Severity::Error,
                "unknown-subset",
                format!(
                    "subset `{subset}` of host `{host}` is defined by no DestinationRule (defined: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            );
        }
    }
}

/// A destination port the Service does not expose: istiod builds clusters only for the
/// Service's ports, so on a cluster requests get 503 and nothing is mirrored. Istio's
/// analyzer says IST0101 (`checkServiceEntryPorts` in
/// `pkg/config/analysis/analyzers/virtualservice/destinationhosts.go`: "Referenced %s not
/// found: %q" with `host:port`); the finding adds the ports there are.
fn check_port(
    topo: &Topology,
    doc: usize,
    path: &YamlPath,
    dest: &Destination,
    report: &mut Report<'_>,
) {
    let Some(port) = &dest.port else { return };
    let ports = topo.service_ports(&dest.host);
    if ports.contains(&port.number) {
        return;
    }
    let service = topo.service_name_of(&dest.host).unwrap_or(&dest.host);
    let exposed: Vec<String> = ports.iter().map(u32::to_string).collect();
    report.at(
        doc,
        &path.key("port").key("number"),
        Severity::Error,
        "unknown-port",
        format!(
            "Referenced host:port not found: \"{}:{}\" (Service {service} exposes {})",
            dest.host,
            port.number,
            if exposed.is_empty() {
                "no port".to_owned()
            } else {
                exposed.join(", ")
            }
        ),
    );
}

fn check_subsets_select_workloads(topo: &Topology, report: &mut Report<'_>) {
    if topo.deployments.is_empty() {
        return;
    }
    for dr in &topo.destination_rules {
        let host = &dr.object.spec.host;
        let mut base = match topo.resolve_host(host) {
            HostTarget::Service(svc) => svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default(),
            _ => Default::default(),
        };
        for (i, subset) in dr.object.spec.subsets.iter().enumerate() {
            base.extend(subset.labels.clone());
            if topo.deployments_with_labels(&base).is_empty() {
                let labels: Vec<String> = base.iter().map(|(k, v)| format!("{k}={v}")).collect();
                report.at(
                    dr.document,
                    &YamlPath::parse("spec.subsets").index(i).key("labels"),
                    Severity::Error,
                    "subset-selects-nothing",
                    format!(
                        "subset `{}` of `{host}` selects no Deployment's pods ({})",
                        subset.name,
                        labels.join(",")
                    ),
                );
            }
            for key in subset.labels.keys() {
                base.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;

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
mod tests {
    use crate::lint::test_support::findings;

    /// A Service, two workloads and a DestinationRule; VirtualServices are added per test.
    const MESH: &str = "
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: mirror}
spec: {selector: {app: mirror}, ports: [{port: 9080, name: http}]}
---
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: r, image: r:1, ports: [{containerPort: 9080}]}]}
---
kind: Deployment
metadata: {name: mirror}
spec:
  selector: {matchLabels: {app: mirror}}
  template:
    metadata: {labels: {app: mirror}}
    spec: {containers: [{name: m, image: m:1, ports: [{containerPort: 9080}]}]}
---
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
";

    fn with_route(route: &str) -> String {
        format!(
            "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {route}\n"
        )
    }

    #[test]
    fn deprecated_mirror_percent_is_a_warning_naming_the_field() {
        for field in ["mirror_percent", "mirrorPercent"] {
            let yaml = with_route(&format!(
                "{{route: [{{destination: {{host: reviews, subset: v2}}}}], mirror: {{host: mirror}}, {field}: 100}}"
            ));
            let found = findings(&yaml, "deprecated-field");
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].contains(&format!(
                    "warning[deprecated-field]: VirtualService reviews: spec.http[0].{field}"
                )),
                "{found:?}"
            );
        }
    }

    #[test]
    fn percentages_outside_0_to_100_are_errors() {
        let cases = [
            (
                "mirror: {host: mirror}, mirrorPercentage: {value: 100.5}",
                "spec.http[0].mirrorPercentage.value",
            ),
            (
                "mirror: {host: mirror}, mirrorPercentage: {value: -1}",
                "spec.http[0].mirrorPercentage.value",
            ),
            (
                "mirror: {host: mirror}, mirrorPercent: 101",
                "spec.http[0].mirrorPercent",
            ),
            (
                "mirrors: [{destination: {host: mirror}, percentage: {value: 150}}]",
                "spec.http[0].mirrors[0].percentage.value",
            ),
        ];
        for (mirror, path) in cases {
            let yaml = with_route(&format!(
                "{{route: [{{destination: {{host: reviews}}}}], {mirror}}}"
            ));
            let found = findings(&yaml, "percentage-range");
            assert_eq!(found.len(), 1, "{mirror}: {found:?}");
            assert!(found[0].contains(path), "{found:?}");
        }
        let ok = with_route(
            "{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrorPercentage: {value: 0}}",
        );
        assert!(findings(&ok, "percentage-range").is_empty());
    }

    #[test]
    fn mirror_and_mirrors_together_is_an_error() {
        let yaml = with_route(
            "{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrors: [{destination: {host: mirror}}]}",
        );
        let found = findings(&yaml, "mirror-and-mirrors");
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("spec.http[0].mirrors"), "{found:?}");
    }

    #[test]
    fn undefined_subset_is_an_error_for_routes_and_mirrors() {
        let yaml = with_route(
            "{route: [{destination: {host: reviews, subset: v3}}], mirror: {host: reviews, subset: v9}}",
        );
        let found = findings(&yaml, "unknown-subset");
        assert_eq!(found.len(), 2, "{found:?}");
        let route = found
            .iter()
            .find(|f| f.contains("spec.http[0].route[0].destination.subset: subset `v3`"));
        assert!(
            route.is_some_and(|f| f.contains("(defined: v2)")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("spec.http[0].mirror.subset: subset `v9`")),
            "{found:?}"
        );
    }

    #[test]
    fn host_without_service_is_an_error_and_outside_hosts_a_warning() {
        let yaml = with_route("{route: [{destination: {host: reviews}}], mirror: {host: ghost}}");
        let found = findings(&yaml, "unknown-host");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("error[unknown-host]")
                && found[0].contains("spec.http[0].mirror.host"),
            "{found:?}"
        );

        let yaml = with_route(
            "{route: [{destination: {host: reviews}}], mirror: {host: echo.example.com}}",
        );
        let found = findings(&yaml, "unknown-host");
        assert!(
            found.len() == 1 && found[0].contains("warning[unknown-host]"),
            "{found:?}"
        );

        let alone = "kind: VirtualService\nmetadata: {name: r}\nspec: {http: [{route: [{destination: {host: reviews}}]}]}\n";
        let found = findings(alone, "unknown-host");
        assert!(
            found.len() == 1 && found[0].contains("warning[unknown-host]"),
            "{found:?}"
        );
    }

    /// Issue 23, item 1: the new user's `mirror.test` passed lint and local mode, and
    /// mirrored nothing on the real istiod.
    #[test]
    fn a_host_qualified_by_namespace_names_no_service() {
        let yaml =
            with_route("{route: [{destination: {host: reviews}}], mirror: {host: mirror.test}}");
        let found = findings(&yaml, "unknown-host");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("error[unknown-host]")
                && found[0].contains("spec.http[0].mirror.host")
                && found[0].contains("write `mirror` or `mirror.test.svc.cluster.local`"),
            "{found:?}"
        );
        let yaml = with_route(
            "{route: [{destination: {host: reviews.test.svc.cluster.local}}], mirror: {host: mirror}}",
        );
        assert!(findings(&yaml, "unknown-host").is_empty());
    }

    #[test]
    fn a_port_the_service_does_not_expose_is_an_error_naming_its_ports() {
        let yaml = with_route(
            "{route: [{destination: {host: reviews, subset: v2, port: {number: 8080}}}], mirror: {host: mirror, port: {number: 9081}}, mirrors: [{destination: {host: mirror, port: {number: 9080}}}]}",
        );
        let found = findings(&yaml, "unknown-port");
        assert_eq!(
            found,
            [
                "t.yaml:37: error[unknown-port]: VirtualService reviews: spec.http[0].mirror.port.number: Referenced host:port not found: \"mirror:9081\" (Service mirror exposes 9080)",
                "t.yaml:37: error[unknown-port]: VirtualService reviews: spec.http[0].route[0].destination.port.number: Referenced host:port not found: \"reviews:8080\" (Service reviews exposes 9080)",
            ],
        );
        let exposed = with_route("{route: [{destination: {host: reviews, port: {number: 9080}}}]}");
        assert!(findings(&exposed, "unknown-port").is_empty());
    }

    #[test]
    fn a_rule_after_a_catch_all_or_with_only_earlier_matches_is_istios_ist0130() {
        let tester = "{name: tester, match: [{headers: {end-user: {exact: tester}}}], route: [{destination: {host: reviews, subset: v2}}]}";
        let all = "{route: [{destination: {host: reviews}}]}";
        let yaml = format!(
            "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {all}\n    - {tester}\n    - {all}\n"
        );
        let found = findings(&yaml, "unreachable-rule");
        assert_eq!(
            found,
            [
                "t.yaml:38: warning[unreachable-rule]: VirtualService reviews: spec.http[1]: IST0130: VirtualService rule \"tester\" not used (route without matches defined before).",
                "t.yaml:39: warning[unreachable-rule]: VirtualService reviews: spec.http[2]: IST0130: VirtualService rule #2 not used (only the last rule can have no matches).",
            ]
        );
        let duplicate = format!(
            "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {tester}\n    - {}\n    - {all}\n",
            tester.replace("name: tester", "name: again")
        );
        let found = findings(&duplicate, "unreachable-rule");
        assert_eq!(found.len(), 1, "{found:?}");
        // The same match is also Istio's IST0131 (names left out: Istio compares without them).
        assert_eq!(
            findings(&duplicate, "ineffective-match"),
            [
                "t.yaml:38: warning[ineffective-match]: VirtualService reviews: spec.http[1]: IST0131: VirtualService rule \"again\" match #0 is not used (duplicate/overlapping match in rule \"tester\")."
            ]
        );
        assert!(
            found[0].ends_with(
                "spec.http[1]: IST0130: VirtualService rule \"again\" not used (all matches used by prior rules)."
            ),
            "{found:?}"
        );
        // The catch-all last, as the project's routing has it: nothing to say.
        let ordered = format!(
            "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {tester}\n    - {all}\n"
        );
        assert!(findings(&ordered, "unreachable-rule").is_empty());
    }

    #[test]
    fn a_destination_rule_for_no_service_is_istios_ist0174_warning() {
        let yaml = format!(
            "{MESH}kind: DestinationRule\nmetadata: {{name: typo}}\nspec:\n  host: reveiws\n  subsets: [{{name: v2, labels: {{version: v2}}}}]\n"
        );
        let found = findings(&yaml, "unknown-host");
        assert_eq!(
            found,
            [
                "t.yaml:35: warning[unknown-host]: DestinationRule typo: spec.host: host `reveiws` names no Service in the manifests: the DestinationRule's subsets apply to nothing"
            ]
        );
        // A host outside the manifests cannot be checked here; the shared mesh's own rule is fine.
        let outside = format!(
            "{MESH}kind: DestinationRule\nmetadata: {{name: ext}}\nspec: {{host: echo.example.com}}\n"
        );
        assert!(findings(&outside, "unknown-host").is_empty());
    }

    #[test]
    fn a_match_an_earlier_rule_has_is_istios_ist0131_whatever_its_name() {
        let yaml = format!(
            "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {{name: tester, match: [{{headers: {{end-user: {{exact: tester}}}}}}], route: [{{destination: {{host: reviews, subset: v2}}}}]}}\n    - {{name: both, match: [{{name: jason, headers: {{end-user: {{exact: jason}}}}}}, {{name: again, headers: {{end-user: {{exact: tester}}}}}}], route: [{{destination: {{host: reviews}}}}], mirror: {{host: mirror}}}}\n    - {{route: [{{destination: {{host: reviews}}}}]}}\n"
        );
        assert_eq!(
            findings(&yaml, "ineffective-match"),
            [
                "t.yaml:38: warning[ineffective-match]: VirtualService reviews: spec.http[1]: IST0131: VirtualService rule \"both\" match \"again\" is not used (duplicate/overlapping match in rule \"tester\")."
            ]
        );
        // One of its matches is new, so the rule itself is reachable.
        assert!(findings(&yaml, "unreachable-rule").is_empty());
    }

    #[test]
    fn subset_selecting_no_pods_is_an_error() {
        let yaml = format!(
            "{MESH}kind: DestinationRule\nmetadata: {{name: other}}\nspec:\n  host: reviews\n  subsets: [{{name: v7, labels: {{version: v7}}}}]\n"
        );
        let found = findings(&yaml, "subset-selects-nothing");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("DestinationRule other: spec.subsets[0].labels: subset `v7`"),
            "{found:?}"
        );
        assert!(findings(MESH, "subset-selects-nothing").is_empty());
    }
}

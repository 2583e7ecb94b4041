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
    }
    check_subsets_select_workloads(topo, report);
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

fn check_destination(
    topo: &Topology,
    doc: usize,
    path: &YamlPath,
    dest: &Destination,
    report: &mut Report<'_>,
) {
    let host = &dest.host;
    match topo.resolve_host(host) {
        HostTarget::Service(_) => {}
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

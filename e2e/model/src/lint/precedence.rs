//! Which VirtualService configures what: two for one host on the mesh (istiod keeps one),
//! one the ingress gateway cannot see (`exportTo`), and a mirror at 0% (mirrors nothing).

use super::{Report, Severity};
use crate::envoy::gateway::GATEWAY_NAMESPACE;
use crate::envoy::order::visibility;
use crate::envoy::routes::applies_to_mesh;
use crate::manifest::YamlPath;
use crate::topology::Topology;

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    check_conflicting_hosts(topo, report);
    for vs in &topo.virtual_services {
        let object = &vs.object;
        let on_gateway = object.spec.gateways.iter().any(|g| g != "mesh");
        if on_gateway && visibility(object, &topo.namespace, GATEWAY_NAMESPACE).is_none() {
            report.at(
                vs.document,
                &YamlPath::parse("spec.exportTo"),
                Severity::Warning,
                "export-to",
                format!(
                    "bound to a Gateway but not exported to {GATEWAY_NAMESPACE}, where the ingress gateway runs: it never sees these routes"
                ),
            );
        }
        for (i, route) in object.spec.http.iter().enumerate() {
            let zero = route.mirror.is_some()
                && route
                    .mirror_percentage
                    .as_ref()
                    .is_some_and(|p| p.value <= 0.0);
            if zero {
                report.at(
                    vs.document,
                    &YamlPath::parse("spec.http").index(i).key("mirrorPercentage"),
                    Severity::Warning,
                    "mirror-zero",
                    "a mirror at 0% (or `{}`, which is 0): istiod emits no mirror policy, nothing is mirrored",
                );
            }
        }
    }
}

/// Istio's IST0109 (`ConflictingMeshGatewayVirtualServiceHosts`): two mesh VirtualServices
/// for one host. istiod keeps the older (creation time, then name) for that host on every
/// sidecar and ignores the other's routes, mirrors and headers.
fn check_conflicting_hosts(topo: &Topology, report: &mut Report<'_>) {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for vs in topo
        .virtual_services
        .iter()
        .filter(|v| applies_to_mesh(&v.object))
    {
        let name = vs.object.metadata.name.as_deref().unwrap_or_default();
        for (j, host) in vs.object.spec.hosts.iter().enumerate() {
            let fqdn = topo.fqdn(host);
            if let Some((_, other)) = seen.iter().find(|(h, _)| *h == fqdn) {
                report.at(
                    vs.document,
                    &YamlPath::parse("spec.hosts").index(j),
                    Severity::Warning,
                    "conflicting-hosts",
                    format!(
                        "VirtualServices {other} and {name} both route host {fqdn} on the mesh: istiod keeps the older (creation time, then name) and ignores the other's routes for it; merge them into one"
                    ),
                );
            } else {
                seen.push((fqdn, name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::lint;
    use crate::manifest::ManifestSet;

    fn codes(yaml: &str, code: &str) -> Vec<String> {
        lint(&ManifestSet::from_str("m.yaml", yaml))
            .into_iter()
            .filter(|f| f.code == code)
            .map(|f| f.to_string())
            .collect()
    }

    const SERVICE: &str =
        "kind: Service\nmetadata: {name: reviews}\nspec: {ports: [{port: 9080}]}\n---\n";

    #[test]
    fn two_mesh_virtual_services_for_one_host_are_istios_ist0109() {
        let yaml = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}]}}]}}\n---\nkind: VirtualService\nmetadata: {{name: b}}\nspec: {{hosts: [reviews.test.svc.cluster.local], http: [{{route: [{{destination: {{host: reviews}}}}]}}]}}\n"
        );
        let found = codes(&yaml, "conflicting-hosts");
        assert!(
            found.len() == 1
                && found[0].contains("a and b both route host reviews.test.svc.cluster.local"),
            "{found:?}"
        );
    }

    #[test]
    fn a_gateway_route_the_gateway_cannot_see_and_a_zero_mirror_are_warnings() {
        let yaml = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: ['*'], gateways: [gw], exportTo: ['.'], http: [{{route: [{{destination: {{host: reviews}}}}], mirror: {{host: reviews}}, mirrorPercentage: {{}}}}]}}\n"
        );
        assert_eq!(codes(&yaml, "export-to").len(), 1);
        assert_eq!(codes(&yaml, "mirror-zero").len(), 1);
        let exported = yaml.replace("exportTo: ['.']", "exportTo: [istio-system]");
        assert!(codes(&exported, "export-to").is_empty());
    }
}

//! What local mode cannot model: the translation's refusals as findings with file and line,
//! so lint shows them before a run, and local mode refuses with the same words before it
//! starts anything (`local-unsupported`; cluster modes run the real istiod and are fine).

use super::{Report, Severity};
use crate::envoy::config::{self, TranslateError};
use crate::istio::VirtualService;
use crate::manifest::YamlPath;
use crate::topology::Topology;
use crate::version::IstioVersion;

/// The code of these findings.
pub const CODE: &str = "local-unsupported";

/// What a user does instead.
pub const HINT: &str =
    "local mode refuses it; `cargo xtask e2e --cluster kwok` runs the real istiod on it";

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    // Any supported version translates the same fields; only values differ between them.
    let Ok(version) = crate::version::DEFAULT_ISTIO.parse::<IstioVersion>() else {
        return;
    };
    let refusals = [
        config::route_configuration(topo, &vss, &version, 1).err(),
        config::gateway_route_configuration(topo, &vss, &version).err(),
    ];
    for err in refusals.into_iter().flatten() {
        finding(topo, &err, report);
    }
    for gw in &topo.gateways {
        for (i, server) in gw.object.spec.servers.iter().enumerate() {
            let http = server
                .port
                .protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("HTTP"));
            // Local mode plays one ingress listener, the Gateway server on 8080 over HTTP
            // (istiod maps another server port through the gateway Service's targetPort).
            if server.port.number != 8080 || !http {
                report.at(
                    gw.document,
                    &YamlPath::parse(&format!("spec.servers[{i}].port")),
                    Severity::Note,
                    CODE,
                    format!(
                        "a server on port {} ({}): local mode's ingress plays only an HTTP server on 8080; {HINT}",
                        server.port.number,
                        server.port.protocol.as_deref().unwrap_or("no protocol")
                    ),
                );
            }
        }
    }
    for dr in &topo.destination_rules {
        let tls = dr
            .object
            .spec
            .traffic_policy
            .as_ref()
            .is_some_and(|p| p.tls.is_some())
            || dr
                .object
                .spec
                .subsets
                .iter()
                .any(|s| s.traffic_policy.as_ref().is_some_and(|p| p.tls.is_some()));
        if tls {
            report.at(
                dr.document,
                &YamlPath::parse("spec"),
                Severity::Note,
                CODE,
                format!("trafficPolicy.tls decides whether requests reach the host at all; {HINT}"),
            );
        }
        let export_to = dr.object.spec.export_to.as_deref().unwrap_or(&[]);
        // One Envoy plays the sidecar and the gateway: a DestinationRule that only one of
        // them sees (exportTo) would need clusters of two sets.
        if !export_to.is_empty() && !export_to.iter().any(|e| e == "*") {
            report.at(
                dr.document,
                &YamlPath::parse("spec.exportTo"),
                Severity::Note,
                CODE,
                format!(
                    "exportTo {export_to:?}: the sidecar and the ingress gateway see different subsets; {HINT}"
                ),
            );
        }
    }
}

fn finding(topo: &Topology, err: &TranslateError, report: &mut Report<'_>) {
    let (vs, path) = err.location();
    let Some(doc) = topo
        .virtual_services
        .iter()
        .find(|t| t.object.metadata.name.as_deref() == Some(vs))
        .map(|t| t.document)
    else {
        return;
    };
    // The path may end in a note in parentheses; the position is the field's.
    let field = path.split(" (").next().unwrap_or(&path);
    report.at(
        doc,
        &YamlPath::parse(field),
        Severity::Note,
        CODE,
        format!("{err}; {HINT}"),
    );
}

#[cfg(test)]
mod tests {
    use crate::lint::{Severity, lint};
    use crate::manifest::ManifestSet;

    fn notes(yaml: &str) -> Vec<String> {
        lint(&ManifestSet::from_str("m.yaml", yaml))
            .into_iter()
            .filter(|f| f.code == super::CODE)
            .inspect(|f| assert_eq!(f.severity, Severity::Note, "{f}"))
            .map(|f| f.to_string())
            .collect()
    }

    const SERVICE: &str =
        "kind: Service\nmetadata: {name: reviews}\nspec: {ports: [{port: 9080}]}\n---\n";

    #[test]
    fn what_local_mode_cannot_model_is_a_note_naming_file_line_and_the_way_on() {
        let two = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}]}}]}}\n---\nkind: VirtualService\nmetadata: {{name: b}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}]}}]}}\n"
        );
        let found = notes(&two);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("m.yaml:")
                && found[0].contains("VirtualServices a and b both route host")
                && found[0].contains("--cluster kwok"),
            "{found:?}"
        );
        let gateway = "kind: Gateway\nmetadata: {name: g}\nspec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
        let found = notes(gateway);
        assert!(
            found.len() == 1 && found[0].contains("spec.servers[0].port"),
            "{found:?}"
        );
        let tls = format!(
            "{SERVICE}kind: DestinationRule\nmetadata: {{name: r}}\nspec: {{host: reviews, subsets: [{{name: v1, labels: {{version: v1}}, trafficPolicy: {{tls: {{mode: DISABLE}}}}}}]}}\n"
        );
        assert_eq!(notes(&tls).len(), 1);
        let fault = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}], fault: {{abort: {{httpStatus: 500, percentage: {{value: 1}}}}}}}}]}}\n"
        );
        let found = notes(&fault);
        assert!(
            found.len() == 1 && found[0].contains("spec.http[0].fault"),
            "{found:?}"
        );
    }

    #[test]
    fn the_shipped_manifests_are_all_local_mode_can_run() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let set = ManifestSet::load(&[dir]).expect("manifests");
        let found: Vec<String> = lint(&set)
            .into_iter()
            .filter(|f| f.code == super::CODE)
            .map(|f| f.to_string())
            .collect();
        assert!(found.is_empty(), "{found:?}");
    }
}

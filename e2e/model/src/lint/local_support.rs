//! What local mode cannot model: the translation's refusals as findings with file and line,
//! so lint shows them before a run, and local mode refuses with the same words before it
//! starts anything (`local-unsupported`; cluster modes run the real istiod and are fine).

use super::{Report, Severity};
use crate::envoy::config::TranslateError;
use crate::envoy::translation::Translation;
use crate::istio::{DestinationRuleSpec, TrafficPolicy};
use crate::manifest::YamlPath;
use crate::topology::Topology;
use crate::version::IstioVersion;

/// The code of these findings.
pub const CODE: &str = "local-unsupported";

/// What a user does instead.
pub const HINT: &str =
    "local mode refuses it; `cargo xtask e2e --cluster kwok` runs the real istiod on it";

/// Gateway API objects: local mode does not translate them yet (issue 26), so it refuses
/// them by name rather than run without their routing.
fn gateway_api(topo: &Topology, report: &mut Report<'_>) {
    let documents = topo.http_routes.iter().map(|r| r.document);
    let gateways = topo.gateway_api_gateways.iter().map(|g| g.document);
    for document in documents.chain(gateways) {
        report.at(
            document,
            &YamlPath::parse("spec"),
            Severity::Note,
            CODE,
            format!("local mode does not translate Gateway API objects yet; {HINT}"),
        );
    }
}

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    // Any supported version translates the same fields; only values differ between them.
    let Ok(version) = crate::version::DEFAULT_ISTIO.parse::<IstioVersion>() else {
        return;
    };
    let translation = Translation::of(topo, &version);
    let refusals = [
        translation.routes(1).err(),
        translation.gateway_routes().err(),
    ];
    for err in refusals.into_iter().flatten() {
        finding(topo, &err, report);
    }
    gateway_api(topo, report);
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
        if let Some(path) = consistent_hash(&dr.object.spec) {
            report.at(
                dr.document,
                &YamlPath::parse(&path),
                Severity::Note,
                CODE,
                format!(
                    "consistentHash: istiod adds a hash policy to every route to the host and keeps retries on the host they tried; local mode models neither; {HINT}"
                ),
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

/// The path of the first `loadBalancer.consistentHash` of a DestinationRule: its traffic
/// policy's, a port's, a subset's or a subset port's (`HashForHTTPDestination`).
fn consistent_hash(spec: &DestinationRuleSpec) -> Option<String> {
    let in_policy = |prefix: &str, policy: Option<&TrafficPolicy>| -> Option<String> {
        let policy = policy?;
        if policy
            .load_balancer
            .as_ref()?
            .get("consistentHash")
            .is_some()
        {
            return Some(format!("{prefix}.loadBalancer.consistentHash"));
        }
        None
    };
    let in_ports = |prefix: &str, policy: Option<&TrafficPolicy>| -> Option<String> {
        let ports = policy?.port_level_settings.as_ref()?.as_array()?;
        ports.iter().enumerate().find_map(|(i, p)| {
            p.pointer("/loadBalancer/consistentHash")
                .map(|_| format!("{prefix}.portLevelSettings[{i}].loadBalancer.consistentHash"))
        })
    };
    let top = spec.traffic_policy.as_ref();
    in_policy("spec.trafficPolicy", top)
        .or_else(|| in_ports("spec.trafficPolicy", top))
        .or_else(|| {
            spec.subsets.iter().enumerate().find_map(|(i, s)| {
                let prefix = format!("spec.subsets[{i}].trafficPolicy");
                let policy = s.traffic_policy.as_ref();
                in_policy(&prefix, policy).or_else(|| in_ports(&prefix, policy))
            })
        })
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
        format!("{}; {HINT}", err.reason()),
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
        let redirect = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews}}}}], redirect: {{uri: /x}}}}]}}\n"
        );
        let found = notes(&redirect);
        assert_eq!(
            found,
            [
                "m.yaml:7: note[local-unsupported]: VirtualService a: spec.http[0].redirect: not supported in local mode; local mode refuses it; `cargo xtask e2e --cluster kwok` runs the real istiod on it"
            ],
            "the path once, and the reason"
        );
    }

    #[test]
    fn the_policies_local_mode_now_translates_are_no_notes() {
        let policies = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec: {{hosts: [reviews], http: [{{match: [{{method: {{exact: GET}}}}], route: [{{destination: {{host: reviews}}}}], timeout: 2s, retries: {{attempts: 3}}, fault: {{abort: {{httpStatus: 500, percentage: {{value: 1}}}}}}, corsPolicy: {{allowOrigins: [{{exact: 'https://a'}}]}}, rewrite: {{uri: /v1}}}}]}}\n"
        );
        assert_eq!(notes(&policies), Vec::<String>::new());
    }

    #[test]
    fn a_jwt_claim_match_and_a_consistent_hash_stay_notes_at_their_line() {
        let claim = format!(
            "{SERVICE}kind: VirtualService\nmetadata: {{name: a}}\nspec:\n  hosts: [reviews]\n  http:\n    - match:\n        - headers:\n            '@request.auth.claims.group': {{exact: admin}}\n      route: [{{destination: {{host: reviews}}}}]\n"
        );
        let found = notes(&claim);
        assert!(
            found.len() == 1
                && found[0].starts_with("m.yaml:11: note[local-unsupported]: VirtualService a: spec.http[0].match[0].headers: not supported in local mode (@request.auth.claims.group: a JWT claim"),
            "{found:?}"
        );
        let hash = format!(
            "{SERVICE}kind: DestinationRule\nmetadata: {{name: r}}\nspec:\n  host: reviews\n  subsets:\n    - name: v1\n      labels: {{version: v1}}\n      trafficPolicy:\n        loadBalancer:\n          consistentHash: {{httpHeaderName: end-user}}\n"
        );
        let found = notes(&hash);
        assert!(
            found.len() == 1
                && found[0].starts_with("m.yaml:14: note[local-unsupported]: DestinationRule r: spec.subsets[0].trafficPolicy.loadBalancer.consistentHash: consistentHash"),
            "{found:?}"
        );
    }

    #[test]
    fn the_shipped_manifests_are_all_local_mode_can_run() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
        let set = ManifestSet::load(&[dir]).expect("manifests");
        let found: Vec<String> = lint(&set)
            .into_iter()
            .filter(|f| f.code == super::CODE)
            .map(|f| f.to_string())
            .collect();
        assert!(found.is_empty(), "{found:?}");
    }
}

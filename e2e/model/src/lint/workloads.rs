//! Rules for Services and Deployments: selectors, target ports and image pinning.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Report, Severity};
use crate::manifest::YamlPath;
use crate::topology::{Topology, containers};

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    check_services(topo, report);
    check_images(topo, report);
}

fn check_services(topo: &Topology, report: &mut Report<'_>) {
    if topo.deployments.is_empty() {
        return;
    }
    for svc in &topo.services {
        let Some(spec) = &svc.object.spec else {
            continue;
        };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let selected = topo.service_workloads(&svc.object);
        if selected.is_empty() {
            let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            report.at(
                svc.document,
                &YamlPath::parse("spec.selector"),
                Severity::Error,
                "selector-matches-nothing",
                format!("selector {} matches no Deployment's pods", labels.join(",")),
            );
            continue;
        }
        for (i, port) in spec.ports.iter().flatten().enumerate() {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            let exposed = selected.iter().flat_map(|d| containers(d)).any(|c| {
                c.ports.iter().flatten().any(|p| match &target {
                    IntOrString::Int(n) => p.container_port == *n,
                    IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
                })
            });
            if !exposed {
                let shown = match &target {
                    IntOrString::Int(n) => n.to_string(),
                    IntOrString::String(s) => format!("`{s}`"),
                };
                let field = if port.target_port.is_some() {
                    "targetPort"
                } else {
                    "port"
                };
                report.at(
                    svc.document,
                    &YamlPath::parse("spec.ports").index(i).key(field),
                    Severity::Error,
                    "target-port",
                    format!("target port {shown} is exposed by no container of the selected pods"),
                );
            }
        }
    }
}

fn check_images(topo: &Topology, report: &mut Report<'_>) {
    for deploy in &topo.deployments {
        let Some(pod) = deploy
            .object
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
        else {
            continue;
        };
        let groups = [
            ("containers", Some(&pod.containers)),
            ("initContainers", pod.init_containers.as_ref()),
        ];
        for (field, list) in groups {
            for (i, c) in list.into_iter().flatten().enumerate() {
                let image = c.image.as_deref().unwrap_or("");
                if !is_pinned(image) {
                    report.at(
                        deploy.document,
                        &YamlPath::parse("spec.template.spec").key(field).index(i).key("image"),
                        Severity::Error,
                        "unpinned-image",
                        format!("image `{image}` has no pinned tag (add a version tag or @sha256 digest, never `latest`)"),
                    );
                }
            }
        }
    }
}

/// Whether an image reference names a fixed version: a digest, or a tag other than `latest`.
pub fn is_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_pinned;
    use crate::lint::test_support::findings;

    fn deployment(image: &str, port: &str) -> String {
        format!(
            "kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: '{image}', ports: [{port}]}}]}}
---
"
        )
    }

    #[test]
    fn image_pinning() {
        for pinned in [
            "a:1",
            "reg:5000/a/b:1.2",
            "a@sha256:abcd",
            "a:latest@sha256:abcd",
        ] {
            assert!(is_pinned(pinned), "{pinned}");
        }
        for unpinned in ["a", "a:latest", "reg:5000/a/b", "a:"] {
            assert!(!is_pinned(unpinned), "{unpinned}");
        }
        let found = findings(
            &deployment("mendhak/http-https-echo", "{containerPort: 80}"),
            "unpinned-image",
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("Deployment web: spec.template.spec.containers[0].image"),
            "{found:?}"
        );
    }

    #[test]
    fn selector_matching_nothing_is_an_error() {
        let yaml = deployment("w:1", "{containerPort: 80}")
            + "kind: Service\nmetadata: {name: web}\nspec: {selector: {app: wbe}, ports: [{port: 80}]}\n";
        let found = findings(&yaml, "selector-matches-nothing");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("Service web: spec.selector: selector app=wbe"),
            "{found:?}"
        );
    }

    #[test]
    fn target_port_must_be_exposed_by_number_or_name() {
        let svc = |ports: &str| {
            deployment("w:1", "{containerPort: 9080, name: http}")
                + &format!(
                    "kind: Service\nmetadata: {{name: web}}\nspec: {{selector: {{app: web}}, ports: [{ports}]}}\n"
                )
        };
        assert!(findings(&svc("{port: 9080}"), "target-port").is_empty());
        assert!(findings(&svc("{port: 80, targetPort: http}"), "target-port").is_empty());
        assert!(findings(&svc("{port: 80, targetPort: 9080}"), "target-port").is_empty());

        let found = findings(&svc("{port: 80}"), "target-port");
        assert!(
            found.len() == 1 && found[0].contains("spec.ports[0].port: target port 80"),
            "{found:?}"
        );
        let found = findings(&svc("{port: 80, targetPort: htp}"), "target-port");
        assert!(
            found.len() == 1 && found[0].contains("spec.ports[0].targetPort: target port `htp`"),
            "{found:?}"
        );
    }
}

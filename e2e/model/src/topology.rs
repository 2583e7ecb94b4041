//! The mesh a manifest set describes: services, workloads, subsets and routes, typed.
//!
//! One place answers "which Deployments does this host, subset or Service select" for both
//! the linter and local mode, so the two can never disagree about what a manifest means.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};
use serde::de::DeserializeOwned;

use crate::gateway_api::{self, KubeHttpRoute};
use crate::istio::{DestinationRule, Gateway, VirtualService};
use crate::manifest::{Document, ManifestSet};

/// The namespace assumed for objects that do not name one and a set with no Namespace.
pub const DEFAULT_NAMESPACE: &str = "test";

/// A document that did not deserialize into its kind's type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} {name}: {message}")]
pub struct TypeError {
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Index of the document in the set.
    pub document: usize,
    /// What serde said (names the field).
    pub message: String,
}

/// A typed object and the index of the document it came from.
#[derive(Debug, Clone)]
pub struct Typed<T> {
    /// Index into [`ManifestSet::documents`].
    pub document: usize,
    /// The object.
    pub object: T,
}

/// Everything the manifests say about the mesh.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// The namespace the objects live in.
    pub namespace: String,
    /// Services.
    pub services: Vec<Typed<Service>>,
    /// Deployments.
    pub deployments: Vec<Typed<Deployment>>,
    /// DestinationRules.
    pub destination_rules: Vec<Typed<DestinationRule>>,
    /// VirtualServices.
    pub virtual_services: Vec<Typed<VirtualService>>,
    /// Istio (`networking.istio.io`) Gateways.
    pub gateways: Vec<Typed<Gateway>>,
    /// Gateway API HTTPRoutes.
    pub http_routes: Vec<Typed<KubeHttpRoute>>,
    /// Gateway API (`gateway.networking.k8s.io`) Gateways.
    pub gateway_api_gateways: Vec<Typed<gateway_api::KubeGateway>>,
}

/// What a destination host refers to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HostTarget<'a> {
    /// A Service of the set.
    Service(&'a Service),
    /// A name inside the set's namespace that no Service has.
    Missing,
    /// A fully qualified name outside the set (another namespace or an external host).
    Outside,
    /// `name.<ns>` or `name.<ns>.svc` for a Service of the set: Istio expands only names
    /// without a dot, so this names no Service (no cluster, 503, nothing mirrored).
    Unexpanded(&'a Service),
}

impl Topology {
    /// Types every known kind of the set (a `Gateway` by its group: the Gateway API's or
    /// Istio's); documents that fail to type are returned as errors
    /// and left out.
    pub fn from_manifests(set: &ManifestSet) -> (Topology, Vec<TypeError>) {
        let mut topo = Topology {
            namespace: set
                .of_kind("Namespace")
                .next()
                .map(|d| d.name().to_owned())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            ..Topology::default()
        };
        let mut errors = Vec::new();
        for (index, doc) in set.documents.iter().enumerate() {
            match doc.kind() {
                "Service" => push_typed(&mut topo.services, index, doc, &mut errors),
                "Deployment" => push_typed(&mut topo.deployments, index, doc, &mut errors),
                "DestinationRule" => {
                    push_typed(&mut topo.destination_rules, index, doc, &mut errors)
                }
                "VirtualService" => push_typed(&mut topo.virtual_services, index, doc, &mut errors),
                "Gateway" if doc.is_gateway_api() => {
                    push_typed(&mut topo.gateway_api_gateways, index, doc, &mut errors)
                }
                "Gateway" => push_typed(&mut topo.gateways, index, doc, &mut errors),
                "HTTPRoute" => push_typed(&mut topo.http_routes, index, doc, &mut errors),
                _ => {}
            }
        }
        (topo, errors)
    }

    /// Resolves a destination host the way istiod does for a VirtualService in
    /// [`Topology::namespace`]: `name` and `name.<ns>.svc.cluster.local` name a Service;
    /// `name.<ns>` and `name.<ns>.svc` are kept as written and name none
    /// ([`crate::hostname::resolve_short_name`]).
    pub fn resolve_host(&self, host: &str) -> HostTarget<'_> {
        let Some(name) = self.service_name_of(host) else {
            let ns = &self.namespace;
            let unexpanded = host
                .strip_suffix(&format!(".{ns}.svc"))
                .or_else(|| host.strip_suffix(&format!(".{ns}")))
                .filter(|name| !name.contains('.'))
                .and_then(|name| self.service(name));
            return match unexpanded {
                Some(svc) => HostTarget::Unexpanded(svc),
                None => HostTarget::Outside,
            };
        };
        match self.service(name) {
            Some(svc) => HostTarget::Service(svc),
            None => HostTarget::Missing,
        }
    }

    /// The name of the Service in this namespace a host means once istiod has expanded it
    /// (`name`, or `name.<ns>.svc.cluster.local`), or `None`.
    pub fn service_name_of<'h>(&self, host: &'h str) -> Option<&'h str> {
        if host.is_empty() || host == "*" {
            return None;
        }
        if !host.contains('.') {
            return Some(host);
        }
        let suffix = format!(".{}.svc.{}", self.namespace, crate::hostname::DOMAIN_SUFFIX);
        host.strip_suffix(&suffix)
            .filter(|name| !name.is_empty() && !name.contains('.'))
    }

    /// A host as istiod resolves it in this namespace, the name its clusters carry.
    pub fn fqdn(&self, host: &str) -> String {
        crate::hostname::resolve_short_name(host, &self.namespace)
    }

    /// A Service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .map(|t| &t.object)
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// The ports a host's Service exposes (none when the set has no such Service).
    pub fn service_ports(&self, host: &str) -> Vec<u32> {
        self.service_name_of(host)
            .and_then(|name| self.service(name))
            .and_then(|s| s.spec.as_ref()?.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| u32::try_from(p.port).ok())
            .collect()
    }

    /// Subsets defined for a host by any DestinationRule of the set.
    pub fn subsets_of(&self, host: &str) -> Vec<&crate::istio::Subset> {
        let fqdn = self.fqdn(host);
        self.destination_rules
            .iter()
            .filter(|dr| self.fqdn(&dr.object.spec.host) == fqdn)
            .flat_map(|dr| dr.object.spec.subsets.iter())
            .collect()
    }

    /// Deployments whose pod template carries all of `labels`.
    pub fn deployments_with_labels(&self, labels: &BTreeMap<String, String>) -> Vec<&Deployment> {
        self.deployments
            .iter()
            .map(|t| &t.object)
            .filter(|d| labels_match(labels, pod_labels(d)))
            .collect()
    }

    /// Deployments a Service selects (none for a Service without a selector).
    pub fn service_workloads(&self, service: &Service) -> Vec<&Deployment> {
        match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(selector) if !selector.is_empty() => self.deployments_with_labels(selector),
            _ => Vec::new(),
        }
    }

    /// Deployments behind a destination: the host's Service selector, narrowed by the
    /// subset's labels when a subset is named.
    pub fn destination_workloads(&self, host: &str, subset: Option<&str>) -> Vec<&Deployment> {
        let HostTarget::Service(service) = self.resolve_host(host) else {
            return Vec::new();
        };
        let mut labels = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if let Some(subset) = subset {
            match self.subsets_of(host).into_iter().find(|s| s.name == subset) {
                Some(s) => labels.extend(s.labels.clone()),
                None => return Vec::new(),
            }
        }
        if labels.is_empty() {
            return Vec::new();
        }
        self.deployments_with_labels(&labels)
    }
}

/// The labels of a Deployment's pod template.
pub fn pod_labels(deployment: &Deployment) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&EMPTY)
}

/// The containers of a Deployment's pod template.
pub fn containers(deployment: &Deployment) -> &[Container] {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or(&[], |s| s.containers.as_slice())
}

/// The value of an environment variable of a container, when set literally.
pub fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .as_deref()
}

/// Whether every selector label is present with the same value.
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn push_typed<T: DeserializeOwned>(
    out: &mut Vec<Typed<T>>,
    index: usize,
    doc: &Document,
    errors: &mut Vec<TypeError>,
) {
    match serde_json::from_value::<T>(doc.value.clone()) {
        Ok(object) => out.push(Typed {
            document: index,
            object,
        }),
        Err(e) => errors.push(TypeError {
            kind: doc.kind().to_owned(),
            name: doc.name().to_owned(),
            document: index,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = "
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
---
kind: Deployment
metadata: {name: reviews-v1}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: r:1}]}
---
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: reviews, image: r:1}]}
---
kind: Deployment
metadata: {name: other-v2}
spec:
  selector: {matchLabels: {app: other, version: v2}}
  template:
    metadata: {labels: {app: other, version: v2}}
    spec: {containers: [{name: other, image: o:1}]}
---
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.test.svc.cluster.local
  subsets:
    - {name: v2, labels: {version: v2}}
";

    fn topo() -> Topology {
        let (topo, errors) = Topology::from_manifests(&ManifestSet::from_str("m.yaml", MESH));
        assert!(errors.is_empty(), "{errors:?}");
        topo
    }

    fn names(ds: Vec<&Deployment>) -> Vec<&str> {
        ds.iter()
            .filter_map(|d| d.metadata.name.as_deref())
            .collect()
    }

    #[test]
    fn only_short_and_fully_qualified_hosts_name_the_service() {
        let t = topo();
        for host in ["reviews", "reviews.test.svc.cluster.local"] {
            assert!(
                matches!(t.resolve_host(host), HostTarget::Service(_)),
                "{host}"
            );
        }
        // istiod expands only names without a dot: these name no Service.
        for host in ["reviews.test", "reviews.test.svc"] {
            assert!(
                matches!(t.resolve_host(host), HostTarget::Unexpanded(_)),
                "{host}"
            );
            assert_eq!(t.fqdn(host), host);
        }
        assert_eq!(t.resolve_host("ghost"), HostTarget::Missing);
        assert_eq!(
            t.resolve_host("reviews.other.svc.cluster.local"),
            HostTarget::Outside
        );
        assert_eq!(t.resolve_host("example.com"), HostTarget::Outside);
    }

    #[test]
    fn subset_narrows_the_service_selector() {
        let t = topo();
        assert_eq!(
            names(t.destination_workloads("reviews", Some("v2"))),
            ["reviews-v2"]
        );
        assert_eq!(
            names(t.destination_workloads("reviews", None)),
            ["reviews-v1", "reviews-v2"]
        );
        assert!(t.destination_workloads("reviews", Some("v9")).is_empty());
        assert!(t.destination_workloads("ghost", None).is_empty());
    }

    #[test]
    fn badly_typed_document_is_reported_not_dropped_silently() {
        let set = ManifestSet::from_str(
            "m.yaml",
            "kind: Service\nmetadata: {name: x}\nspec: {ports: 7}\n",
        );
        let (_, errors) = Topology::from_manifests(&set);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().starts_with("Service x:"),
            "{}",
            errors[0]
        );
    }
}

//! The one translation assembly: a topology, the VirtualServices that apply, and an Istio
//! version give the proxies' configuration istiod would push (the sidecar's routes, the
//! ingress gateway's routes, the outbound clusters with their endpoints). Local mode, the
//! kwok node agent (`--istiod translation`) and parity all build their proxies here; only
//! where the endpoints come from differs (local workloads, EndpointSlices, none), so the
//! three cannot drift apart.

use std::net::SocketAddr;

use serde_json::Value;

use super::config::Cluster;
use super::gateway::gateway_route_configuration;
use super::routes::{TranslateError, cluster_name, outbound_clusters, route_configuration};
use crate::istio::{Destination, VirtualService};
use crate::topology::Topology;
use crate::version::IstioVersion;

/// What istiod would give the proxies of a topology, as Envoy's resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// The sidecar's outbound route configuration (RDS).
    pub routes: Value,
    /// The ingress gateway's route configuration (RDS).
    pub gateway_routes: Value,
    /// Every outbound cluster (Service ports x subsets) with its endpoints (CDS, EDS).
    pub clusters: Vec<Cluster>,
}

/// A topology's routing under one Istio version, ready to translate.
#[derive(Debug, Clone)]
pub struct Translation<'a> {
    topology: &'a Topology,
    virtual_services: Vec<&'a VirtualService>,
    istio: &'a IstioVersion,
}

impl<'a> Translation<'a> {
    /// The topology's own VirtualServices, as the manifests or the API server hold them.
    pub fn of(topology: &'a Topology, istio: &'a IstioVersion) -> Self {
        let virtual_services = topology
            .virtual_services
            .iter()
            .map(|t| &t.object)
            .collect();
        Self::with_virtual_services(topology, virtual_services, istio)
    }

    /// Other VirtualServices than the topology's: local mode's after an apply.
    pub fn with_virtual_services(
        topology: &'a Topology,
        virtual_services: Vec<&'a VirtualService>,
        istio: &'a IstioVersion,
    ) -> Self {
        Self {
            topology,
            virtual_services,
            istio,
        }
    }

    /// The sidecar's route configuration, as RDS `config_version`.
    pub fn routes(&self, config_version: u64) -> Result<Value, TranslateError> {
        route_configuration(
            self.topology,
            &self.virtual_services,
            self.istio,
            config_version,
        )
    }

    /// The ingress gateway's route configuration.
    pub fn gateway_routes(&self) -> Result<Value, TranslateError> {
        gateway_route_configuration(self.topology, &self.virtual_services, self.istio)
    }

    /// Every outbound cluster istiod builds, with the endpoints `endpoints` gives its
    /// destination (a Service port, and a subset or none).
    pub fn clusters(
        &self,
        mut endpoints: impl FnMut(&Destination) -> Vec<SocketAddr>,
    ) -> Vec<Cluster> {
        outbound_clusters(self.topology)
            .iter()
            .map(|dest| Cluster {
                name: cluster_name(self.topology, dest),
                endpoints: endpoints(dest),
            })
            .collect()
    }

    /// The whole configuration: routes as RDS `config_version`, clusters with `endpoints`.
    pub fn proxy_config(
        &self,
        config_version: u64,
        endpoints: impl FnMut(&Destination) -> Vec<SocketAddr>,
    ) -> Result<ProxyConfig, TranslateError> {
        Ok(ProxyConfig {
            routes: self.routes(config_version)?,
            gateway_routes: self.gateway_routes()?,
            clusters: self.clusters(endpoints),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestSet;

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: reviews}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

    fn topology() -> Topology {
        let set = ManifestSet::from_str("mesh.yaml", MESH);
        let (topology, errors) = Topology::from_manifests(&set);
        assert!(errors.is_empty(), "{errors:?}");
        topology
    }

    #[test]
    fn the_assembly_is_the_translation_with_each_clusters_endpoints() {
        let topology = topology();
        let istio: IstioVersion = "1.31.1".parse().expect("version");
        let addr: SocketAddr = "10.0.0.7:9080".parse().expect("address");
        let config = Translation::of(&topology, &istio)
            .proxy_config(3, |dest| match dest.subset.as_deref() {
                Some("v1") => vec![addr],
                _ => Vec::new(),
            })
            .expect("translates");
        let vss: Vec<&VirtualService> = topology
            .virtual_services
            .iter()
            .map(|t| &t.object)
            .collect();
        assert_eq!(
            config.routes,
            route_configuration(&topology, &vss, &istio, 3).expect("routes")
        );
        assert_eq!(
            config.gateway_routes,
            gateway_route_configuration(&topology, &vss, &istio).expect("gateway")
        );
        assert_eq!(
            config.clusters,
            [
                Cluster {
                    name: "outbound|9080||reviews.test.svc.cluster.local".into(),
                    endpoints: Vec::new(),
                },
                Cluster {
                    name: "outbound|9080|v1|reviews.test.svc.cluster.local".into(),
                    endpoints: vec![addr],
                },
            ]
        );
    }

    #[test]
    fn other_virtual_services_replace_the_topologys() {
        let topology = topology();
        let istio: IstioVersion = "1.31.1".parse().expect("version");
        let none = Translation::with_virtual_services(&topology, Vec::new(), &istio);
        assert_eq!(
            none.routes(2).expect("routes"),
            route_configuration(&topology, &[], &istio, 2).expect("routes")
        );
        assert_ne!(
            none.routes(2).expect("routes"),
            Translation::of(&topology, &istio)
                .routes(2)
                .expect("routes")
        );
    }
}

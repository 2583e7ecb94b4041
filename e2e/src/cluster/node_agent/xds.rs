//! The proxies' configuration with `--istiod translation`: the one translation assembly
//! given the EndpointSlices' ready addresses, written to watched xDS files only when it
//! changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::NodeAgentError;
use super::{Snapshot, State};
use crate::envoy::config;
use crate::envoy::translation::Translation;
use crate::istio::Destination;
use crate::topology::{Topology, labels_match};

impl State {
    /// Translates the namespace's routing for the proxies and gives every cluster the
    /// ready endpoints of its Service (of its subset's pods), as EDS from istiod does.
    pub(super) fn configure_proxies(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let topology = &snapshot.topology;
        let version = self.version + 1;
        let proxies = Translation::of(topology, &self.opts.istio)
            .proxy_config(version, |dest| {
                endpoints(topology, dest, &snapshot.slices, &snapshot.pods)
            })
            .map_err(|e| e.to_string())?;
        // Clusters first: a route never names a cluster Envoy does not have yet.
        let mut changed = self.write_if_changed(
            "clusters.json",
            config::cds_file(&proxies.clusters, version),
        )?;
        changed |= self.write_if_changed("routes.json", proxies.routes)?;
        changed |= self.write_if_changed("gateway-routes.json", proxies.gateway_routes)?;
        if changed {
            self.version = version;
        }
        Ok(())
    }

    /// Writes an xDS file unless it says what it said last (its version aside).
    pub(super) fn write_if_changed(
        &mut self,
        file: &'static str,
        value: Value,
    ) -> Result<bool, String> {
        let mut unversioned = value.clone();
        strip_versions(&mut unversioned);
        if self.written.get(file) == Some(&unversioned) {
            return Ok(false);
        }
        self.write(file, value).map_err(|e| e.to_string())?;
        self.written.insert(file, unversioned);
        Ok(true)
    }

    pub(super) fn write(&self, file: &str, value: Value) -> Result<(), NodeAgentError> {
        let path = self.files.xds(file);
        config::write_watched(&path, &value).map_err(|source| NodeAgentError::Write {
            node: self.opts.node.clone(),
            path,
            source,
        })
    }
}

/// The ready endpoints of `dest`'s Service, of the pods its subset selects, on the port
/// the Service's port targets.
pub(super) fn endpoints(
    topology: &Topology,
    dest: &Destination,
    slices: &[EndpointSlice],
    pods: &[Pod],
) -> Vec<SocketAddr> {
    let Some(service) = topology.service_name_of(&dest.host) else {
        return Vec::new();
    };
    let subset_labels = dest.subset.as_deref().and_then(|name| {
        topology
            .subsets_of(&dest.host)
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.labels.clone())
    });
    if dest.subset.is_some() && subset_labels.is_none() {
        // A subset the DestinationRules do not define has no endpoints (istiod: no cluster).
        return Vec::new();
    }
    let port = dest
        .port
        .as_ref()
        .map_or_else(|| config::service_port(topology, &dest.host), |p| p.number);
    let port_name = topology
        .service(service)
        .and_then(|s| s.spec.as_ref()?.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| u32::try_from(p.port).ok() == Some(port))
        })
        .and_then(|p| p.name.clone());
    let labels_of: BTreeMap<&str, BTreeMap<String, String>> = pods
        .iter()
        .filter_map(|p| {
            Some((
                p.metadata.name.as_deref()?,
                p.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let mut out = BTreeSet::new();
    for slice in slices.iter().filter(|s| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map(String::as_str)
            == Some(service)
    }) {
        let Some(target_port) = slice.ports.as_ref().and_then(|ports| {
            ports
                .iter()
                .find(|p| port_name.is_none() || p.name == port_name)
                .and_then(|p| p.port)
        }) else {
            continue;
        };
        let Ok(target_port) = u16::try_from(target_port) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let pod_labels = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .and_then(|name| labels_of.get(name));
            let in_subset = match (&subset_labels, pod_labels) {
                (None, _) => true,
                (Some(wanted), Some(have)) => labels_match(wanted, have),
                (Some(_), None) => false,
            };
            if !ready || !in_subset {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.insert(SocketAddr::new(ip, target_port));
                }
            }
        }
    }
    out.into_iter().collect()
}

pub(super) fn strip_versions(value: &mut Value) {
    if let Value::Object(map) = value {
        map.remove("version_info");
    }
}

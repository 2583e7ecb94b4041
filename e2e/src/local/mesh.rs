//! `LocalMesh`'s `Mesh`: requests through the ingress listener, routing applied by
//! rewriting the sidecar's watched RDS file (after the webhook's validation), the mirror
//! stopped and started as its workload, and where a request went read from the workloads'
//! logs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::{LocalMesh, Workload, write_atomically, write_json};
use crate::envoy::config::{self};
use crate::envoy::translation::Translation;
use crate::istio::VirtualService;
use crate::mesh::{Call, Mesh, MeshError, MirrorChange, Reply};
use crate::mirror_log::MirrorRecords;
use crate::topology::Topology;
use crate::validation::validate_virtual_service;
use crate::version::IstioVersion;

/// The gateway routes briefly: `<virtual host>: <match> -> <cluster>` each.
fn describe_routes(rds: &Value) -> String {
    let hosts = rds
        .pointer("/resources/0/virtual_hosts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if hosts.is_empty() {
        return "none (no VirtualService is bound to a Gateway that selects istio: ingressgateway with an HTTP server on port 8080)".into();
    }
    hosts
        .iter()
        .flat_map(|h| {
            let domains = h
                .get("domains")
                .map(ToString::to_string)
                .unwrap_or_default();
            h.get("routes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| {
                    let m = r.get("match").map(ToString::to_string).unwrap_or_default();
                    let c = r
                        .pointer("/route/cluster")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned();
                    format!("{domains} {m} -> {c}")
                })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Mesh for LocalMesh {
    fn istio_version(&self) -> IstioVersion {
        self.version
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn log_latency(&self) -> Duration {
        // The echo workload logs in-process as the shadow arrives, within milliseconds.
        Duration::from_secs(1)
    }

    async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        let reply = self.page.send(call).await?;
        if reply.status == 404 {
            return Err(MeshError::Request {
                tag: call.tag.clone(),
                message: format!(
                    "the ingress gateway answered 404 for GET /productpage: no gateway route matched it; its routes: {}",
                    describe_routes(&self.gateway_routes)
                ),
            });
        }
        Ok(reply)
    }

    fn request_trail(&self, tag: &str) -> Option<String> {
        // Bookinfo's workloads log every request with its tag and end-user.
        let needle = format!("user-agent={tag} ");
        let seen: Vec<String> = self
            .workloads
            .iter()
            .filter(|(name, _)| !self.mirror.contains(name))
            .flat_map(|(name, b)| {
                b.log()
                    .text()
                    .lines()
                    .filter(|l| l.contains(&needle))
                    .map(|l| format!("{name}: {}", l.trim_end()))
                    .collect::<Vec<_>>()
            })
            .collect();
        (!seen.is_empty()).then(|| seen.join("; "))
    }

    fn mirror_records(&self) -> &MirrorRecords {
        &self.records
    }

    async fn matched_route(&self, tag: &str, host: &str) -> Result<Option<String>, String> {
        let log = self.artifacts.join("envoy-access.log");
        crate::envoy::access_log::wait_for_route(&log, tag, host, self.log_latency())
            .await
            .map_err(|e| e.to_string())
    }

    async fn apply_virtual_service(&self, vs: &VirtualService) -> Result<(), MeshError> {
        let name = vs.metadata.name.clone().unwrap_or_default();
        let err = |message: String| MeshError::Apply {
            name: name.clone(),
            message,
        };
        // As on a cluster, a VirtualService the webhook denies is never applied.
        validate_virtual_service(vs).map_err(|e| err(e.denial()))?;
        let routes = {
            let mut all = self
                .virtual_services
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match all.iter_mut().find(|v| v.metadata.name == vs.metadata.name) {
                Some(existing) => *existing = vs.clone(),
                None => all.push(vs.clone()),
            }
            let refs: Vec<&VirtualService> = all.iter().collect();
            let version = self.config_version.fetch_add(1, Ordering::SeqCst) + 1;
            let routes = Translation::with_virtual_services(&self.topology, refs, &self.version)
                .routes(version)
                .map_err(|e| err(e.to_string()))?;
            write_json(
                &self.applied_dir.join(format!("routes-v{version}.json")),
                &routes,
            )
            .map_err(|e| err(e.to_string()))?;
            routes
        };
        write_atomically(&self.routes_file, &routes).map_err(|e| err(e.to_string()))
    }

    async fn send_to_mirror(&self, tag: &str) -> Result<(), MeshError> {
        let failed = |message: String| MeshError::Request {
            tag: tag.to_owned(),
            message,
        };
        let addr = self
            .mirror
            .iter()
            .filter_map(|m| self.workloads.get(m))
            .map(Workload::addr)
            .next()
            .ok_or_else(|| failed("no mirror workload runs".into()))?;
        // Not through Envoy: the workload itself, as a request to its pod would be.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        http.get(format!("http://{addr}/mirror-e2e/barrier"))
            .header("user-agent", tag)
            .send()
            .await
            .map_err(|e| failed(format!("straight to the mirror at {addr}: {e}")))?;
        Ok(())
    }

    async fn set_mirror_running(&self, running: bool) -> Result<MirrorChange, MeshError> {
        let outbound = self
            .envoy
            .listener(config::OUTBOUND_LISTENER)
            .map_err(|e| MeshError::Mirror(e.to_string()))?;
        for workload in self.mirror.iter().filter_map(|m| self.workloads.get(m)) {
            match (workload, running) {
                (Workload::Builtin(b), true) => b
                    .restart()
                    .await
                    .map_err(|e| MeshError::Mirror(e.to_string()))?,
                (Workload::Builtin(b), false) => b.stop(),
                (Workload::Process(p), true) if !p.is_up() => p
                    .start(outbound, self.patience)
                    .await
                    .map_err(|e| MeshError::Mirror(e.to_string()))?,
                (Workload::Process(_), true) => {}
                (Workload::Process(p), false) => p.stop().await,
            }
        }
        let what = if running {
            "the mirror's workload listening again on its address"
        } else {
            "the mirror's workload stopped: its address refuses connections"
        };
        Ok(MirrorChange {
            what: what.into(),
            waited: None,
        })
    }
}

//! The translation loaded into a real Envoy: what local mode would give Envoy must be
//! accepted by it (a RouteConfiguration with a domain twice, for one, is rejected whole and
//! routes nothing), so parity loads each variant's translation, as files Envoy watches,
//! and waits until Envoy took every one of them or counts a rejection.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::envoy::config::{self, BootstrapPaths, Cluster};
use crate::envoy::process::Envoy;
use crate::envoy::translation::ProxyConfig;
use crate::wait::poll_until;

/// One Envoy for the whole parity run, configured from files.
pub struct LoadedEnvoy {
    envoy: Envoy,
    dir: PathBuf,
    log: PathBuf,
    version: u64,
    patience: Duration,
}

/// The xDS resources one Envoy is given: a variant's translation, or (in tests) one
/// changed to be rejected.
#[derive(Clone, Copy)]
pub struct Resources<'a> {
    /// The clusters (their endpoints do not matter here: none).
    pub clusters: &'a [Cluster],
    /// The sidecar's RDS response.
    pub routes: &'a Value,
    /// The gateway's RDS response.
    pub gateway_routes: &'a Value,
}

impl<'a> From<&'a ProxyConfig> for Resources<'a> {
    fn from(config: &'a ProxyConfig) -> Self {
        Self {
            clusters: &config.clusters,
            routes: &config.routes,
            gateway_routes: &config.gateway_routes,
        }
    }
}

impl LoadedEnvoy {
    /// Starts Envoy on a node bootstrap (clusters from a watched CDS file, both listeners'
    /// routes from watched RDS files) in `dir`.
    pub async fn start(
        binary: &std::path::Path,
        dir: PathBuf,
        patience: Duration,
    ) -> Result<LoadedEnvoy, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let paths = LoadedFiles::in_dir(&dir);
        config::write_watched(&paths.cds, &config::cds_file(&[], 0)).map_err(|e| e.to_string())?;
        let empty = |name| serde_json::json!({"version_info": "0", "resources": [{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": name}]});
        config::write_watched(&paths.routes, &empty(config::ROUTE_CONFIG_NAME))
            .map_err(|e| e.to_string())?;
        config::write_watched(
            &paths.gateway_routes,
            &empty(config::INGRESS_ROUTE_CONFIG_NAME),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.join("envoy.log");
        let bootstrap = config::node_bootstrap(
            &paths.cds,
            "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
            &BootstrapPaths {
                routes_file: &paths.routes,
                gateway_routes_file: &paths.gateway_routes,
                access_log: &dir.join("access.log"),
            },
        );
        let bootstrap_file = dir.join("envoy-bootstrap.json");
        config::write_json(&bootstrap_file, &bootstrap).map_err(|e| e.to_string())?;
        let envoy = Envoy::start(binary, &bootstrap_file, &log, patience)
            .await
            .map_err(|e| e.to_string())?;
        Ok(LoadedEnvoy {
            envoy,
            dir,
            log,
            version: 0,
            patience,
        })
    }

    /// Loads a translation and waits until Envoy holds it, then gives back the two
    /// RouteConfigurations as Envoy holds them (its `/config_dump`, the form istiod's routes
    /// are read in too); `Err` says what Envoy rejected (its counters and the last lines of
    /// its log).
    pub async fn load(&mut self, t: &Resources<'_>) -> Result<Held, String> {
        self.version += 1;
        let version = self.version;
        let paths = LoadedFiles::in_dir(&self.dir);
        let with_version = |mut v: Value| {
            v["version_info"] = version.to_string().into();
            v
        };
        let before = self
            .envoy
            .update_counters()
            .await
            .map_err(|e| e.to_string())?;
        config::write_watched(&paths.cds, &config::cds_file(t.clusters, version))
            .map_err(|e| e.to_string())?;
        config::write_watched(&paths.routes, &with_version(t.routes.clone()))
            .map_err(|e| e.to_string())?;
        config::write_watched(
            &paths.gateway_routes,
            &with_version(t.gateway_routes.clone()),
        )
        .map_err(|e| e.to_string())?;
        let envoy = &self.envoy;
        let log = &self.log;
        poll_until(
            &format!("Envoy to take translation {version}"),
            self.patience,
            || async {
                let now = envoy.update_counters().await.map_err(|e| e.to_string())?;
                let grew = |key: &str| {
                    now.get(key).copied().unwrap_or(0) > before.get(key).copied().unwrap_or(0)
                };
                let rejected: Vec<&str> = SUBSCRIPTIONS
                    .iter()
                    .filter(|s| grew(&format!("{s}.update_rejected")))
                    .copied()
                    .collect();
                if !rejected.is_empty() {
                    return Ok(Some(Err(format!(
                        "Envoy rejected the translation's {}: {}",
                        rejected.join(", "),
                        crate::envoy::process::tail(log, 3)
                    ))));
                }
                let pending: Vec<&str> = SUBSCRIPTIONS
                    .iter()
                    .filter(|s| !grew(&format!("{s}.update_success")))
                    .copied()
                    .collect();
                if pending.is_empty() {
                    Ok(Some(Ok(())))
                } else {
                    Err(format!("Envoy has not taken {} yet", pending.join(", ")))
                }
            },
        )
        .await
        .map_err(|e| e.to_string())??;
        let dump = self
            .envoy
            .admin_json("/config_dump?resource=dynamic_route_configs")
            .await
            .map_err(|e| e.to_string())?;
        let held = |name: &str| -> Result<Value, String> {
            dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["route_config"])
                .find(|r| r["name"] == name)
                .cloned()
                .ok_or_else(|| format!("Envoy took translation {version} but holds no {name}"))
        };
        Ok(Held {
            routes: held(config::ROUTE_CONFIG_NAME)?,
            gateway_routes: held(config::INGRESS_ROUTE_CONFIG_NAME)?,
        })
    }

    /// Ends Envoy.
    pub async fn stop(self) {
        self.envoy.stop().await;
    }
}

/// A translation's RouteConfigurations as Envoy holds them.
#[derive(Debug)]
pub struct Held {
    /// The sidecar's (`9080`).
    pub routes: Value,
    /// The gateway's (`http.8080`).
    pub gateway_routes: Value,
}

/// The watched files in the run's directory.
struct LoadedFiles {
    cds: PathBuf,
    routes: PathBuf,
    gateway_routes: PathBuf,
}

impl LoadedFiles {
    fn in_dir(dir: &std::path::Path) -> LoadedFiles {
        LoadedFiles {
            cds: dir.join("clusters.json"),
            routes: dir.join("routes.json"),
            gateway_routes: dir.join("gateway-routes.json"),
        }
    }
}

/// The xDS subscriptions of the bootstrap, as Envoy's counters name them.
const SUBSCRIPTIONS: [&str; 3] = [
    "cluster_manager.cds",
    "http.outbound_0.0.0.0_9080.rds.9080",
    "http.0.0.0.0_8080.rds.http.8080",
];

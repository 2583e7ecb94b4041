//! Local mode: the mesh hop caller -> reviews on a real Envoy, with no Docker.
//!
//! Envoy plays the caller's sidecar, configured from the manifests' VirtualServices and
//! DestinationRules by `envoy::config`; each Deployment a route or Service selects runs as a
//! local workload (`backend`). Routing changes are written to the route file Envoy watches,
//! so they propagate asynchronously, as config from istiod does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use crate::backend::{Backend, Behaviour, ECHO_IMAGE, EchoSettings};
use crate::envoy::config::{self, BootstrapPaths, Cluster};
use crate::envoy::process::{Envoy, EnvoyError};
use crate::istio::{Destination, VirtualService};
use crate::manifest::ManifestSet;
use crate::mesh::{Call, Identity, Mesh, MeshError, Reply};
use crate::mirror_log::MirrorRecords;
use crate::progress::Progress;
use crate::topology::{Topology, containers, env_value};
use crate::version::IstioVersion;

/// Errors starting local mode.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The manifests could not be read.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// The manifests hold documents that do not type.
    #[error("{path}: {errors}")]
    Invalid {
        /// The manifests directory.
        path: PathBuf,
        /// The errors, one per line.
        errors: String,
    },
    /// The routing cannot be translated.
    #[error(transparent)]
    Translate(#[from] config::TranslateError),
    /// A workload could not start.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// Envoy could not start.
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    /// No workload stands behind the mirror host.
    #[error(
        "{path}: no Deployment is selected by the Service `{host}`; the suite reads the mirror's log from it"
    )]
    NoMirror {
        /// The manifests directory.
        path: PathBuf,
        /// The mirror host.
        host: String,
    },
    /// A file of the run could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What local mode needs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Manifests directory (or file).
    pub manifests: PathBuf,
    /// The Istio version to emulate.
    pub istio: IstioVersion,
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// The run's artifacts directory (created if missing).
    pub artifacts: PathBuf,
    /// Patience for waits.
    pub patience: Duration,
    /// The Service whose workload is the mirror.
    pub mirror_host: String,
    /// The host under test, as callers name it.
    pub host: String,
    /// The run id: the mirror's records keep this run's tags.
    pub run_id: String,
    /// Requests of one batch in flight at once.
    pub concurrency: usize,
    /// Run even when the manifests have lint errors.
    pub allow_lint_errors: bool,
}

/// The running local mesh.
pub struct LocalMesh {
    topology: Topology,
    version: IstioVersion,
    envoy: Envoy,
    workloads: BTreeMap<String, Backend>,
    mirror: Vec<String>,
    known_clusters: Vec<String>,
    virtual_services: Mutex<Vec<VirtualService>>,
    config_version: AtomicU64,
    routes_file: PathBuf,
    applied_dir: PathBuf,
    records: Arc<MirrorRecords>,
    client: reqwest::Client,
    authority: String,
    artifacts: PathBuf,
}

impl LocalMesh {
    /// Reads the manifests, starts the workloads and Envoy, and returns when Envoy is ready.
    pub async fn start(
        opts: &LocalOptions,
        set: &ManifestSet,
        progress: &mut Progress,
    ) -> Result<LocalMesh, LocalError> {
        let invalid = |errors: Vec<String>| LocalError::Invalid {
            path: opts.manifests.clone(),
            errors: errors.join("\n"),
        };
        if !set.syntax_errors.is_empty() {
            return Err(invalid(
                set.syntax_errors.iter().map(ToString::to_string).collect(),
            ));
        }
        let (topology, type_errors) = Topology::from_manifests(set);
        if !type_errors.is_empty() {
            return Err(invalid(
                type_errors.iter().map(ToString::to_string).collect(),
            ));
        }
        let dirs = RunDirs::create(&opts.artifacts)?;

        progress.phase("start workloads");
        let destinations = all_destinations(&topology);
        let mut workloads = BTreeMap::new();
        for dest in &destinations {
            for deployment in topology.destination_workloads(&dest.host, dest.subset.as_deref()) {
                let name = deployment.metadata.name.clone().unwrap_or_default();
                if !workloads.contains_key(&name) {
                    let log = dirs.workloads.join(format!("{name}.log"));
                    workloads.insert(
                        name.clone(),
                        Backend::start(&name, behaviour(deployment), &log).await?,
                    );
                }
            }
        }
        let mirror: Vec<String> = topology
            .destination_workloads(&opts.mirror_host, None)
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        if mirror.is_empty() {
            return Err(LocalError::NoMirror {
                path: opts.manifests.clone(),
                host: opts.mirror_host.clone(),
            });
        }

        progress.phase("start envoy");
        let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
        for dest in &destinations {
            let name = config::cluster_name(&topology, dest);
            let endpoints = topology
                .destination_workloads(&dest.host, dest.subset.as_deref())
                .iter()
                .filter_map(|d| workloads.get(d.metadata.name.as_deref().unwrap_or("")))
                .map(Backend::addr)
                .collect();
            clusters
                .entry(name.clone())
                .or_insert(Cluster { name, endpoints });
        }
        let clusters: Vec<Cluster> = clusters.into_values().collect();
        let known_clusters: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
        let virtual_services: Vec<VirtualService> = topology
            .virtual_services
            .iter()
            .map(|t| t.object.clone())
            .collect();
        let mesh_port = config::service_port(&topology, &opts.host);
        let routes_file = dirs.xds.join("routes.json");
        let bootstrap = config::bootstrap(
            &clusters,
            &BootstrapPaths {
                routes_file: &routes_file,
                access_log: &opts.artifacts.join("envoy-access.log"),
            },
        );
        let bootstrap_file = opts.artifacts.join("envoy-bootstrap.json");
        write_json(&bootstrap_file, &bootstrap)?;
        let refs: Vec<&VirtualService> = virtual_services.iter().collect();
        let routes =
            config::route_configuration(&topology, &refs, &known_clusters, &opts.istio, 1)?;
        write_atomically(&routes_file, &routes)?;
        write_json(&dirs.applied.join("routes-v1.json"), &routes)?;
        let envoy = Envoy::start(
            &opts.envoy,
            &bootstrap_file,
            &opts.artifacts.join("envoy.log"),
            opts.patience,
        )
        .await?;
        // The mirror's output is parsed as it is written, as a pod's log is followed.
        let records = Arc::new(MirrorRecords::new(&crate::suite::tag_prefix(&opts.run_id)));
        for backend in mirror.iter().filter_map(|m| workloads.get(m)) {
            backend.log().feed(records.clone());
        }
        Ok(LocalMesh {
            records,
            topology,
            version: opts.istio,
            envoy,
            workloads,
            mirror,
            known_clusters,
            virtual_services: Mutex::new(virtual_services),
            config_version: AtomicU64::new(1),
            routes_file,
            applied_dir: dirs.applied,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            authority: format!("{}:{mesh_port}", opts.host),
            artifacts: opts.artifacts.clone(),
        })
    }

    /// Saves Envoy's config dump and stops Envoy and the workloads.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        let dump = self.envoy.admin_text("/config_dump").await;
        let stats = self.envoy.admin_text("/stats").await;
        self.envoy.stop().await;
        for (file, text) in [("envoy-config-dump.json", dump), ("envoy-stats.txt", stats)] {
            let path = self.artifacts.join(file);
            let text = text.unwrap_or_else(|e| format!("unavailable: {e}"));
            std::fs::write(&path, text).map_err(|source| LocalError::Write { path, source })?;
        }
        Ok(())
    }
}

/// The run directory's layout.
struct RunDirs {
    xds: PathBuf,
    applied: PathBuf,
    workloads: PathBuf,
}

impl RunDirs {
    fn create(root: &Path) -> Result<RunDirs, LocalError> {
        let dirs = RunDirs {
            // Envoy watches this directory for the route file being renamed into place.
            xds: root.join("xds"),
            applied: root.join("applied"),
            workloads: root.join("workloads"),
        };
        for dir in [&dirs.xds, &dirs.applied, &dirs.workloads] {
            std::fs::create_dir_all(dir).map_err(|source| LocalError::Write {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(dirs)
    }
}

/// Every destination Envoy needs a cluster for: each Service, each subset a
/// DestinationRule defines, and each host the VirtualServices route or mirror to.
fn all_destinations(topo: &Topology) -> Vec<Destination> {
    let mut out: Vec<Destination> = Vec::new();
    for svc in &topo.services {
        let host = svc.object.metadata.name.clone().unwrap_or_default();
        out.push(Destination {
            host: host.clone(),
            ..Default::default()
        });
        for subset in topo.subsets_of(&host) {
            out.push(Destination {
                host: host.clone(),
                subset: Some(subset.name.clone()),
                port: None,
            });
        }
    }
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    out.extend(config::destinations(&vss));
    let mut seen = BTreeSet::new();
    out.retain(|d| seen.insert(config::cluster_name(topo, d)));
    out
}

/// How a Deployment's local stand-in answers: the echo image is emulated, anything else
/// answers with its name.
fn behaviour(deployment: &Deployment) -> Behaviour {
    let echo = containers(deployment)
        .iter()
        .find(|c| c.image.as_deref().is_some_and(|i| i.contains(ECHO_IMAGE)));
    match echo {
        Some(c) => Behaviour::Echo(EchoSettings {
            http_port: env_value(c, "HTTP_PORT").unwrap_or("8080").to_owned(),
            https_port: env_value(c, "HTTPS_PORT").unwrap_or("8443").to_owned(),
            compact: env_value(c, "LOG_WITHOUT_NEWLINE")
                .is_some_and(|v| !v.is_empty() && v != "false"),
            request_logs: env_value(c, "DISABLE_REQUEST_LOGS") != Some("true"),
        }),
        None => Behaviour::Named,
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), LocalError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|source| LocalError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes beside the target and renames over it: Envoy reacts to the rename and never reads
/// a half-written file.
fn write_atomically(path: &Path, value: &Value) -> Result<(), LocalError> {
    let tmp = path.with_extension("json.tmp");
    write_json(&tmp, value)?;
    std::fs::rename(&tmp, path).map_err(|source| LocalError::Write {
        path: path.to_owned(),
        source,
    })
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
        let err = |message: String| MeshError::Request {
            tag: call.tag.clone(),
            message,
        };
        let mut request = self
            .client
            .get(format!("http://{}/reviews/0", self.envoy.listener()))
            .header("host", &self.authority)
            .header("user-agent", &call.tag)
            .timeout(Duration::from_secs(10));
        if let Identity::User(name) = &call.identity {
            // What productpage adds to its call to reviews once the user has logged in.
            request = request.header("end-user", name);
        }
        let start = Instant::now();
        let response = request.send().await.map_err(|e| err(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| err(e.to_string()))?;
        let latency = start.elapsed();
        let workload = (status == 200 && self.workloads.contains_key(body.trim()))
            .then(|| body.trim().to_owned());
        Ok(Reply {
            status,
            workload,
            pod: None,
            latency,
        })
    }

    fn mirror_records(&self) -> &MirrorRecords {
        &self.records
    }

    async fn apply_virtual_service(&self, vs: &VirtualService) -> Result<(), MeshError> {
        let name = vs.metadata.name.clone().unwrap_or_default();
        let err = |message: String| MeshError::Apply {
            name: name.clone(),
            message,
        };
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
            let routes = config::route_configuration(
                &self.topology,
                &refs,
                &self.known_clusters,
                &self.version,
                version,
            )
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

    async fn set_mirror_running(&self, running: bool) -> Result<Duration, MeshError> {
        let start = std::time::Instant::now();
        for backend in self.mirror.iter().filter_map(|m| self.workloads.get(m)) {
            if running {
                backend
                    .restart()
                    .await
                    .map_err(|e| MeshError::Mirror(e.to_string()))?;
            } else {
                backend.stop();
            }
        }
        Ok(start.elapsed())
    }
}

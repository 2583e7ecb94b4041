//! Local mode: the mesh hop caller -> reviews on a real Envoy, with no Docker.
//!
//! Envoy plays the caller's sidecar, configured from the manifests' VirtualServices and
//! DestinationRules by `envoy::config`; each Deployment a route or Service selects runs as a
//! local workload (`backend`). Routing changes are written to the route file Envoy watches,
//! so they propagate asynchronously, as config from istiod does.

mod mesh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::backend::{Backend, Behaviour, LogBuffer, pod_name};
use crate::bookinfo::Sidecar;
use crate::envoy::config::{self, BootstrapPaths};
use crate::envoy::process::{Envoy, EnvoyError};
use crate::envoy::translation::{ProxyConfig, Translation};
use crate::istio::VirtualService;
use crate::manifest::{ManifestSet, YamlPath};
use crate::mirror_log::MirrorRecords;
use crate::productpage::Productpage;
use crate::progress::Progress;
use crate::topology::{Topology, containers};
use crate::validation::validate_virtual_service;
use crate::version::IstioVersion;
use crate::workload::{ProcessGroups, ProcessWorkload, WorkloadCommand, WorkloadError};

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
    /// istiod's validating webhook would deny a VirtualService: a cluster never runs it, so
    /// neither does local mode, `--allow-lint-errors` or not.
    #[error("{}:{line}: {source}", file.display())]
    Denied {
        /// The file of the VirtualService.
        file: PathBuf,
        /// The line its document starts on.
        line: usize,
        /// Istio's denial.
        #[source]
        source: crate::validation::ValidationError,
    },
    /// The routing cannot be translated.
    #[error(transparent)]
    Translate(#[from] config::TranslateError),
    /// A workload could not start.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// A user's workload (`--workload`) could not start or get ready.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// Envoy could not start.
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    /// Envoy rejected the translation (a defect of the translation: istiod's would load).
    #[error("Envoy rejected the translated configuration ({what}): {log}")]
    Rejected {
        /// The counters that say so.
        what: String,
        /// The end of Envoy's log, which says why.
        log: String,
    },
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
    /// productpage's sidecar client could not be set up.
    #[error("productpage's sidecar: {message}")]
    Sidecar {
        /// Why.
        message: String,
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
    /// User programs in place of built-in workloads (`--workload NAME=COMMAND`).
    pub workloads: Vec<WorkloadCommand>,
    /// Where the user workloads' process groups are registered, for the Ctrl-C handler.
    pub process_groups: ProcessGroups,
    /// When the run began: its progress lines count from here (`progress::run_started`).
    pub run_started: std::time::Instant,
}

/// The running local mesh.
pub struct LocalMesh {
    topology: Topology,
    version: IstioVersion,
    envoy: Envoy,
    workloads: BTreeMap<String, Workload>,
    mirror: Vec<String>,
    virtual_services: Mutex<Vec<VirtualService>>,
    config_version: AtomicU64,
    routes_file: PathBuf,
    applied_dir: PathBuf,
    records: Arc<MirrorRecords>,
    /// The suite's client, through the ingress listener, as in cluster mode.
    page: Productpage,
    /// The ingress routes, to explain a request the gateway did not route.
    gateway_routes: Value,
    patience: Duration,
    artifacts: PathBuf,
}

impl LocalMesh {
    /// Reads the manifests, starts the workloads and Envoy, and returns when Envoy is ready.
    pub async fn start(
        opts: &LocalOptions,
        set: &ManifestSet,
        progress: &mut Progress,
    ) -> Result<LocalMesh, LocalError> {
        let topology = admitted_topology(opts, set)?;
        let dirs = RunDirs::create(&opts.artifacts)?;

        progress.phase("start workloads");
        let sidecar = Sidecar::default();
        let workloads = start_workloads(opts, &topology, &dirs, &sidecar).await?;
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
        let (envoy, proxies) = start_envoy(opts, &topology, &workloads, &dirs, &sidecar).await?;
        let virtual_services: Vec<VirtualService> = topology
            .virtual_services
            .iter()
            .map(|t| t.object.clone())
            .collect();
        let ingress = envoy.listener(config::INGRESS_LISTENER)?;
        let outbound = envoy.listener(config::OUTBOUND_LISTENER)?;
        if !opts.workloads.is_empty() {
            progress.phase("start user workloads");
        }
        for workload in workloads.values() {
            if let Workload::Process(p) = workload {
                p.start(outbound, opts.patience).await?;
            }
        }
        let refs: Vec<&VirtualService> = virtual_services.iter().collect();
        let host = ingress_host(&refs);
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
            virtual_services: Mutex::new(virtual_services),
            config_version: AtomicU64::new(1),
            routes_file: dirs.xds.join(ROUTES_FILE),
            applied_dir: dirs.applied,
            page: Productpage::new(&format!("http://{ingress}"), &host),
            gateway_routes: proxies.gateway_routes,
            patience: opts.patience,
            artifacts: opts.artifacts.clone(),
        })
    }

    /// Saves Envoy's config dump and stops Envoy and the workloads.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        let dump = self.envoy.admin_text("/config_dump").await;
        let stats = self.envoy.admin_text("/stats").await;
        self.envoy.stop().await;
        for workload in self.workloads.values() {
            if let Workload::Process(p) = workload {
                p.stop().await;
            }
        }
        for (file, text) in [("envoy-config-dump.json", dump), ("envoy-stats.txt", stats)] {
            let path = self.artifacts.join(file);
            let text = text.unwrap_or_else(|e| format!("unavailable: {e}"));
            std::fs::write(&path, text).map_err(|source| LocalError::Write { path, source })?;
        }
        Ok(())
    }
}

/// The sidecar's RDS file in the run's `xds/` directory, rewritten at every apply.
const ROUTES_FILE: &str = "routes.json";
/// The ingress gateway's RDS file in the run's `xds/` directory.
const GATEWAY_ROUTES_FILE: &str = "gateway-routes.json";

/// The manifests typed into a topology, refused as a cluster would: a document that does
/// not parse or type, or a VirtualService istiod's webhook denies.
fn admitted_topology(opts: &LocalOptions, set: &ManifestSet) -> Result<Topology, LocalError> {
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
    for vs in &topology.virtual_services {
        validate_virtual_service(&vs.object).map_err(|source| {
            let doc = &set.documents[vs.document];
            LocalError::Denied {
                file: doc.file.clone(),
                line: doc.line_of(&YamlPath::default()),
                source,
            }
        })?;
    }
    Ok(topology)
}

/// Every Deployment a destination selects, as a local workload: the user's program where
/// `--workload` names it (prepared, started once Envoy listens), else a built-in backend.
async fn start_workloads(
    opts: &LocalOptions,
    topology: &Topology,
    dirs: &RunDirs,
    sidecar: &Sidecar,
) -> Result<BTreeMap<String, Workload>, LocalError> {
    let destinations = config::outbound_clusters(topology);
    let mut workloads = BTreeMap::new();
    for command in &opts.workloads {
        let Some(deployment) = topology
            .deployments
            .iter()
            .map(|d| &d.object)
            .find(|d| d.metadata.name.as_deref() == Some(command.name.as_str()))
        else {
            return Err(WorkloadError::NotADeployment {
                name: command.name.clone(),
                known: topology
                    .deployments
                    .iter()
                    .filter_map(|d| d.object.metadata.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        };
        let log = dirs.workloads.join(format!("{}.log", command.name));
        let process = ProcessWorkload::prepare(
            command,
            deployment,
            pod_name(&command.name),
            &log,
            &opts.process_groups,
        )?;
        workloads.insert(command.name.clone(), Workload::Process(Box::new(process)));
    }
    for dest in &destinations {
        for deployment in topology.destination_workloads(&dest.host, dest.subset.as_deref()) {
            let name = deployment.metadata.name.clone().unwrap_or_default();
            if !workloads.contains_key(&name) {
                let log = dirs.workloads.join(format!("{name}.log"));
                workloads.insert(
                    name.clone(),
                    Workload::Builtin(
                        Backend::start(&name, Behaviour::of(containers(deployment), sidecar), &log)
                            .await?,
                    ),
                );
            }
        }
    }
    Ok(workloads)
}

/// Envoy on the translation of the topology, its clusters' endpoints the local workloads;
/// refused if Envoy rejects any of it. Returns Envoy and the configuration it was given.
async fn start_envoy(
    opts: &LocalOptions,
    topology: &Topology,
    workloads: &BTreeMap<String, Workload>,
    dirs: &RunDirs,
    sidecar: &Sidecar,
) -> Result<(Envoy, ProxyConfig), LocalError> {
    // The clusters' endpoints are the local workloads a destination selects.
    let mut proxies = Translation::of(topology, &opts.istio).proxy_config(1, |dest| {
        topology
            .destination_workloads(&dest.host, dest.subset.as_deref())
            .iter()
            .filter_map(|d| workloads.get(d.metadata.name.as_deref().unwrap_or("")))
            .map(Workload::addr)
            .collect()
    })?;
    // The bootstrap has always listed the clusters by name.
    proxies.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let routes_file = dirs.xds.join(ROUTES_FILE);
    let gateway_routes_file = dirs.xds.join(GATEWAY_ROUTES_FILE);
    let bootstrap = config::bootstrap(
        &proxies.clusters,
        &BootstrapPaths {
            routes_file: &routes_file,
            gateway_routes_file: &gateway_routes_file,
            access_log: &opts.artifacts.join("envoy-access.log"),
        },
    );
    let bootstrap_file = opts.artifacts.join("envoy-bootstrap.json");
    write_json(&bootstrap_file, &bootstrap)?;
    write_atomically(&routes_file, &proxies.routes)?;
    write_json(&dirs.applied.join("routes-v1.json"), &proxies.routes)?;
    write_atomically(&gateway_routes_file, &proxies.gateway_routes)?;
    write_json(
        &dirs.applied.join("gateway-routes.json"),
        &proxies.gateway_routes,
    )?;
    let envoy = Envoy::start(
        &opts.envoy,
        &bootstrap_file,
        &opts.artifacts.join("envoy.log"),
        opts.patience,
    )
    .await?;
    // A configuration Envoy rejects routes nothing, silently: the run stops on it.
    let rejected = envoy.rejected_updates().await?;
    if !rejected.is_empty() {
        return Err(LocalError::Rejected {
            what: rejected.join(", "),
            log: crate::envoy::process::tail(&opts.artifacts.join("envoy.log"), 3),
        });
    }
    sidecar
        .set(envoy.listener(config::OUTBOUND_LISTENER)?)
        .map_err(|message| LocalError::Sidecar { message })?;
    Ok((envoy, proxies))
}

/// A Deployment, run locally: built in, or the user's program.
enum Workload {
    Builtin(Backend),
    Process(Box<ProcessWorkload>),
}

impl Workload {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Workload::Builtin(b) => b.addr(),
            Workload::Process(p) => p.addr(),
        }
    }

    fn log(&self) -> &LogBuffer {
        match self {
            Workload::Builtin(b) => b.log(),
            Workload::Process(p) => p.log(),
        }
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

/// The host the suite asks the ingress for: the ingress VirtualService's first named host,
/// or any (`*` admits every host).
fn ingress_host(vss: &[&VirtualService]) -> String {
    vss.iter()
        .filter(|vs| !config::applies_to_mesh(vs))
        .flat_map(|vs| vs.spec.hosts.iter())
        .find(|h| h.as_str() != "*")
        .cloned()
        .unwrap_or_else(|| "bookinfo.local".into())
}

fn write_json(path: &Path, value: &Value) -> Result<(), LocalError> {
    config::write_json(path, value).map_err(|source| LocalError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A route file Envoy watches ([`config::write_watched`]).
fn write_atomically(path: &Path, value: &Value) -> Result<(), LocalError> {
    config::write_watched(path, value).map_err(|source| LocalError::Write {
        path: path.to_owned(),
        source,
    })
}

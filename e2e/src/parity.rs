//! `mirror-e2e parity`: the real istiod as the oracle for local mode's translation.
//!
//! For each routing variant, the variant is applied to a kwok cluster in a namespace of its
//! own; once a sentinel proxy shows that istiod's pushes include it ([`barrier`]), two
//! Envoys connect to the real istiod over ADS as productpage's sidecar and as the ingress
//! gateway (the node agent's identities, `cluster::node_agent::ads`). Their
//! RouteConfigurations (`9080`, `http.8080`) and the namespace's clusters are reduced to
//! what decides where a request and its mirrors go and how it is carried ([`reduce`]), and
//! compared with local mode's translation of the same manifests as a third Envoy holds it,
//! which must accept it whole ([`loaded`]). VirtualServices are translated with the creation times the API server
//! gave them, as istiod orders them.
//!
//! One run is one Istio version; its rows go to a [`VersionResult`] file, and
//! [`merged_table`] joins the files of several versions into one table, a column each.

mod barrier;
pub mod generate;
pub mod generated;
mod istiod;
mod loaded;
pub mod reduce;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use crate::cluster::install::install;
use crate::cluster::node_agent::ads::{self, Istiod, Proxy, ProxyIdentity};
use crate::envoy::config::{INGRESS_ROUTE_CONFIG_NAME, ROUTE_CONFIG_NAME};
use crate::envoy::translation::{ProxyConfig, Translation};
use crate::manifest::{Document, ManifestSet};
use crate::topology::Topology;
use crate::version::IstioVersion;
use istiod::{
    await_istiod_objects, creation_times, delete_gateways, delete_namespace, istiod_config,
};

pub use barrier::Barrier;
pub use loaded::{Held, LoadedEnvoy, Resources};
pub use table::{Outcome, Row, VersionResult, merged_table, run_summary};

/// The kinds of a variant that reach istiod or the translation; the rest (Deployments, the
/// kind and IstioOperator configuration) decide nothing of the routes.
const ROUTING_KINDS: [&str; 4] = ["Service", "VirtualService", "DestinationRule", "Gateway"];

/// Where a variant's text names the namespace it runs in.
pub const NAMESPACE_PLACEHOLDER: &str = "${NS}";

/// Errors of a parity run.
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// A variant's file could not be read.
    #[error("{0}")]
    Manifests(String),
    /// A proxy failed.
    #[error("variant {variant}: {source}")]
    Proxy {
        /// The variant.
        variant: String,
        /// Why.
        #[source]
        source: Box<ads::AdsError>,
    },
    /// A bounded wait ran out.
    #[error("variant {variant}: {message}")]
    Wait {
        /// The variant.
        variant: String,
        /// What was awaited and last seen.
        message: String,
    },
    /// The API server failed on something other than the variant.
    #[error("variant {variant}: {message}")]
    Api {
        /// The variant.
        variant: String,
        /// What failed.
        message: String,
    },
}

/// Where a variant's manifests come from.
enum Source {
    /// Files and directories, with `${NS}` put in when read.
    Files(Vec<PathBuf>),
    /// Text (a generated case).
    Text(String),
}

/// One routing variant: a name and its manifests, which may name their namespace `${NS}`.
pub struct Variant {
    /// Its name (the file's stem, `shipped`, or a generated case's).
    pub name: String,
    source: Source,
}

impl Variant {
    /// The variant of `paths` (files or directories), with `base` first when given; read
    /// once now, so a file that does not parse stops the run before anything starts.
    pub fn load(
        name: &str,
        base: Option<&Path>,
        paths: &[PathBuf],
    ) -> Result<Variant, ParityError> {
        let all: Vec<PathBuf> = base
            .map(Path::to_owned)
            .into_iter()
            .chain(paths.iter().cloned())
            .collect();
        let variant = Variant {
            name: name.to_owned(),
            source: Source::Files(all),
        };
        variant.manifests("parity")?;
        Ok(variant)
    }

    /// A variant of YAML text.
    pub fn from_text(name: &str, text: String) -> Variant {
        Variant {
            name: name.to_owned(),
            source: Source::Text(text),
        }
    }

    /// Its routing documents, `${NS}` being `namespace`.
    pub fn manifests(&self, namespace: &str) -> Result<ManifestSet, ParityError> {
        let edit = |text: &str| text.replace(NAMESPACE_PLACEHOLDER, namespace);
        let mut set = match &self.source {
            Source::Files(paths) => ManifestSet::load_edited(paths, edit)
                .map_err(|e| ParityError::Manifests(e.to_string()))?,
            Source::Text(text) => ManifestSet::from_str(&format!("<{}>", self.name), &edit(text)),
        };
        if let Some(e) = set.syntax_errors.first() {
            return Err(ParityError::Manifests(e.to_string()));
        }
        set.documents.retain(|d| ROUTING_KINDS.contains(&d.kind()));
        Ok(set)
    }
}

/// How to reach istiod and run the proxies.
pub struct ParityOptions {
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// istiod's ports.
    pub istiod: Istiod,
    /// The Istio version the translation emulates and the proxies announce.
    pub istio: IstioVersion,
    /// Where the proxies' files and the dumped routes go.
    pub dir: PathBuf,
    /// Every wait's bound.
    pub patience: Duration,
}

/// The namespace of variant `index` under Istio `version`: one per version too, because a
/// namespace of the version before may still be terminating when the next version starts
/// (it is deleted unawaited), and its objects must not meet the next version's.
pub fn namespace(version: &IstioVersion, index: usize) -> String {
    format!(
        "parity-{}-{}-{}-{index}",
        version.major, version.minor, version.patch
    )
}

/// What a run keeps between variants: the sentinel and the Envoy the translations load into.
pub struct Session {
    barrier: Barrier,
    loaded: LoadedEnvoy,
    next: usize,
}

impl Session {
    /// Starts the sentinel (in its own namespace) and the translation's Envoy.
    pub async fn start(client: &Client, opts: &ParityOptions) -> Result<Session, ParityError> {
        let failed = |message: String| ParityError::Api {
            variant: "(the run's sentinel)".into(),
            message,
        };
        let sentinel = format!("{}-sentinel", namespace(&opts.istio, 0));
        let barrier = Barrier::start(
            client,
            &opts.envoy,
            &opts.istiod,
            &opts.istio.to_string(),
            &sentinel,
            opts.dir.join("sentinel"),
            opts.patience,
        )
        .await
        .map_err(failed)?;
        let loaded = LoadedEnvoy::start(&opts.envoy, opts.dir.join("translation"), opts.patience)
            .await
            .map_err(failed)?;
        Ok(Session {
            barrier,
            loaded,
            next: 0,
        })
    }

    /// Runs one variant in a namespace of its own.
    pub async fn run(
        &mut self,
        client: &Client,
        variant: &Variant,
        opts: &ParityOptions,
    ) -> Result<Outcome, ParityError> {
        let namespace = namespace(&opts.istio, self.next);
        self.next += 1;
        let started = std::time::Instant::now();
        let outcome = run_variant(client, variant, &namespace, opts, self).await?;
        eprintln!(
            "parity: {} in {:.1}s: {}",
            variant.name,
            started.elapsed().as_secs_f64(),
            outcome.cell()
        );
        Ok(outcome)
    }

    /// Ends the sentinel's proxy and the translation's Envoy.
    pub async fn stop(self) {
        self.barrier.stop().await;
        self.loaded.stop().await;
    }
}

/// Generated cases to run after the variants: `count` cases of `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// How many.
    pub count: usize,
    /// Which.
    pub seed: u64,
}

/// Runs every variant, then every generated case, one namespace each, one after the other
/// (the gateway's routes merge every Gateway that selects it, so two variants at once would
/// see each other's), in one session of the sentinel and the translation's Envoy. A
/// generated case that differs is shrunk and written to `<dir>/cases/`.
pub async fn run(
    client: &Client,
    variants: &[Variant],
    generated: Generated,
    opts: &ParityOptions,
) -> Result<Vec<(String, Outcome)>, ParityError> {
    let session = Arc::new(tokio::sync::Mutex::new(Session::start(client, opts).await?));
    let mut rows = Vec::new();
    let result: Result<(), ParityError> = async {
        for variant in variants {
            let outcome = session.lock().await.run(client, variant, opts).await?;
            rows.push((variant.name.clone(), outcome));
        }
        let cases = opts.dir.join("cases");
        for index in 0..generated.count {
            let outcome =
                generated::run_case(client, &session, generated.seed, index, opts, &cases).await?;
            rows.push((generated::case_name(generated.seed, index), outcome));
        }
        Ok(())
    }
    .await;
    if let Ok(session) = Arc::try_unwrap(session) {
        session.into_inner().stop().await;
    }
    result.map(|()| rows)
}

async fn run_variant(
    client: &Client,
    variant: &Variant,
    namespace: &str,
    opts: &ParityOptions,
    session: &mut Session,
) -> Result<Outcome, ParityError> {
    let api = |message: String| ParityError::Api {
        variant: variant.name.clone(),
        message,
    };
    let routing = variant.manifests(namespace)?;
    // The node agent's capture (its Sidecar and plaintext inbound), as `e2e --istiod real`.
    let mut set = ManifestSet {
        documents: routing.documents.clone(),
        syntax_errors: Vec::new(),
    };
    let extra = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        ads::sidecar(namespace),
        ads::plaintext_inbound(namespace),
    ];
    for value in extra {
        set.documents.insert(
            0,
            Document {
                file: PathBuf::from(format!("<parity {namespace}>")),
                value,
                positions: Default::default(),
            },
        );
    }
    let applied = install(client, &set, namespace, opts.patience).await;
    let outcome = match applied {
        Err(e) => Outcome::Rejected {
            server: e.to_string().lines().next().unwrap_or_default().to_owned(),
            local: match translate(&routing, namespace, &opts.istio, &BTreeMap::new()) {
                Ok(_) => "translated it".into(),
                Err(e) => format!("refused it: {e}"),
            },
        },
        Ok(_) => {
            let istio_objects = set
                .documents
                .iter()
                .filter(|d| {
                    d.value["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.contains("istio.io"))
                })
                .count();
            await_istiod_objects(opts, namespace, None, |n| n >= istio_objects)
                .await
                .map_err(api)?;
            session.barrier.pass(client).await.map_err(api)?;
            let created = creation_times(client, namespace).await.map_err(api)?;
            match translate(&routing, namespace, &opts.istio, &created) {
                Err(e) => Outcome::Refused {
                    local: e.to_string(),
                },
                Ok(translated) => {
                    compare(variant, namespace, &translated, opts, &mut session.loaded).await?
                }
            }
        }
    };
    // The next variant's gateway must not see this one's Gateways: they go first, awaited
    // until istiod has dropped them; the rest goes with the namespace, unawaited (nothing
    // else of a namespace reaches another's proxies: the Sidecar scopes them to their own).
    let gateways: Vec<&str> = routing.of_kind("Gateway").map(|d| d.name()).collect();
    delete_gateways(client, namespace, &gateways)
        .await
        .map_err(api)?;
    await_istiod_objects(opts, namespace, Some("Gateway"), |n| n == 0)
        .await
        .map_err(api)?;
    delete_namespace(client, namespace).await.map_err(api)?;
    Ok(outcome)
}

/// Translates the variant in `namespace`, its VirtualServices carrying the creation times
/// the API server gave them (istiod orders competing ones by them).
fn translate(
    set: &ManifestSet,
    namespace: &str,
    istio: &IstioVersion,
    created: &BTreeMap<String, k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Result<ProxyConfig, String> {
    let (mut topo, errors) = Topology::from_manifests(set);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    topo.namespace = namespace.to_owned();
    for vs in &mut topo.virtual_services {
        let name = vs.object.metadata.name.clone().unwrap_or_default();
        vs.object.metadata.creation_timestamp = created.get(&name).cloned();
    }
    // No endpoints: parity compares routes and which clusters exist, not addresses.
    Translation::of(&topo, istio)
        .proxy_config(1, |_| Vec::new())
        .map_err(|e| e.to_string())
}

/// Loads the translation into Envoy, connects the two proxies to istiod and compares.
async fn compare(
    variant: &Variant,
    namespace: &str,
    translated: &ProxyConfig,
    opts: &ParityOptions,
    loaded: &mut LoadedEnvoy,
) -> Result<Outcome, ParityError> {
    let mut differences = Vec::new();
    let load = loaded.load(&Resources::from(translated)).await;
    // Compared as Envoy holds it, as istiod's is; what Envoy rejected, as written.
    let held = match load {
        Ok(held) => Some(held),
        Err(e) => {
            differences.push(e);
            None
        }
    };
    let identity = ProxyIdentity::capture_sidecar(
        "10.244.255.1",
        "productpage-v1-parity",
        namespace,
        "productpage-v1",
    );
    let local_clusters = reduce::namespace_clusters(
        translated.clusters.iter().map(|c| c.name.as_str()),
        namespace,
    );
    let (sidecar, gateway) = match &held {
        Some(held) => (&held.routes, &held.gateway_routes),
        None => (
            &translated.routes["resources"][0],
            &translated.gateway_routes["resources"][0],
        ),
    };
    let proxies = [
        (identity, ROUTE_CONFIG_NAME, sidecar),
        (
            ProxyIdentity::gateway("10.250.0.1"),
            INGRESS_ROUTE_CONFIG_NAME,
            gateway,
        ),
    ];
    for (identity, route_config, local) in proxies {
        let seen = ProxySeen {
            identity,
            route_config,
            local,
        };
        differences.extend(compare_proxy(variant, namespace, seen, &local_clusters, opts).await?);
    }
    Ok(if differences.is_empty() {
        Outcome::Same
    } else {
        Outcome::Differs(differences)
    })
}

/// One proxy of a variant, as local mode configured it.
struct ProxySeen<'a> {
    identity: ProxyIdentity,
    route_config: &'static str,
    local: &'a Value,
}

/// Connects one proxy to istiod and compares what istiod gave it with local mode's
/// translation: its routes, and its clusters of the variant's namespace.
async fn compare_proxy(
    variant: &Variant,
    namespace: &str,
    seen_locally: ProxySeen<'_>,
    local_clusters: &BTreeSet<String>,
    opts: &ParityOptions,
) -> Result<Vec<String>, ParityError> {
    let ProxySeen {
        identity,
        route_config,
        local,
    } = seen_locally;
    let proxy_error = |source| ParityError::Proxy {
        variant: variant.name.clone(),
        source: Box::new(source),
    };
    let dir = opts.dir.join(&variant.name);
    let version = opts.istio.to_string();
    let mut differences = Vec::new();
    let kind = identity.kind;
    let local = reduce::reduce(local);
    let proxy = Proxy::start(
        &opts.envoy,
        &dir.join(kind),
        identity,
        &opts.istiod,
        &version,
        opts.patience,
    )
    .await
    .map_err(proxy_error)?;
    let seen = istiod_config(
        &proxy,
        route_config,
        local.as_array().is_some_and(Vec::is_empty),
        opts,
    )
    .await;
    // istiod's own words, unreduced, for whoever reads a difference.
    if let Ok(raw) = proxy.envoy.admin_text("/config_dump").await {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{kind}-config_dump.json")), raw);
    }
    let accepted = proxy.check_accepted(&opts.istiod).await;
    proxy.envoy.stop().await;
    accepted.map_err(proxy_error)?;
    let (routes, clusters) = seen.map_err(|message| ParityError::Wait {
        variant: variant.name.clone(),
        message,
    })?;
    let _ = std::fs::write(
        dir.join(format!("{kind}-{route_config}.json")),
        serde_json::to_string_pretty(&json!({"istiod": routes, "local": local}))
            .unwrap_or_default(),
    );
    differences.extend(
        reduce::diff(&local, &routes)
            .into_iter()
            .map(|d| format!("{route_config}: {d}")),
    );
    let mut clusters = reduce::namespace_clusters(clusters.iter().map(String::as_str), namespace);
    let mut local_clusters = local_clusters.clone();
    if kind == "sidecar" {
        // The node agent's capture `Sidecar` (`ads::sidecar`) imports the namespace's
        // Services on port 9080 only, so istiod gives this sidecar no other port's
        // clusters; a sidecar without one (kind, local mode) has every port's. The
        // gateway, which no Sidecar scopes, is compared on every port.
        let on_port = |c: &String| c.starts_with("outbound|9080|");
        clusters.retain(on_port);
        local_clusters.retain(on_port);
    }
    differences.extend(
        reduce::diff_clusters(&local_clusters, &clusters)
            .into_iter()
            .map(|d| format!("{kind} CDS: {d}")),
    );
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_has_namespaces_of_its_own() {
        let v = |s: &str| s.parse::<IstioVersion>().expect("version");
        assert_eq!(namespace(&v("1.27.9"), 3), "parity-1-27-9-3");
        assert_ne!(namespace(&v("1.27.9"), 3), namespace(&v("1.28.10"), 3));
        // A DNS label: lower-case alphanumerics and '-', at most 63 characters.
        let ns = namespace(&v("1.28.10"), 12);
        assert!(
            ns.len() <= 63
                && ns
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn a_variant_names_its_namespace_with_the_placeholder() {
        let variant = Variant::from_text(
            "v",
            "kind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [reviews.${NS}.svc.cluster.local]}\n---\nkind: Deployment\nmetadata: {name: d}\n".into(),
        );
        let set = variant.manifests("parity-9").expect("parses");
        assert_eq!(set.documents.len(), 1, "only the routing kinds");
        assert_eq!(
            set.documents[0].value["spec"]["hosts"][0],
            "reviews.parity-9.svc.cluster.local"
        );
    }
}

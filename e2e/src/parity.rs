//! `mirror-e2e parity`: the real istiod as the oracle for local mode's translation.
//!
//! For each routing variant, the variant is applied to a kwok cluster in a namespace of its
//! own, and two Envoys connect to the real istiod over ADS as productpage's sidecar and as
//! the ingress gateway (the node agent's identities, `cluster::node_agent::ads`). Their
//! RouteConfigurations (`9080`, `http.8080`, from Envoy's `/config_dump`) are reduced to
//! what decides where a request and its mirror go, and compared with what
//! `envoy::config` generates from the same manifests, reduced the same way.
//!
//! One run is one Istio version; its rows go to a [`VersionResult`] file, and
//! [`merged_table`] joins the files of several versions into one table, a column each.

pub mod generate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::install::install;
use crate::cluster::node_agent::ads::{self, Identity, Istiod, Proxy};
use crate::envoy::config::{self, INGRESS_ROUTE_CONFIG_NAME, ROUTE_CONFIG_NAME};
use crate::istio::VirtualService;
use crate::manifest::{Document, ManifestSet};
use crate::topology::Topology;
use crate::version::IstioVersion;
use crate::wait::poll_until;

/// The kinds of a variant that reach istiod or the translation; the rest (Deployments, the
/// kind and IstioOperator configuration) decide nothing of the routes.
const ROUTING_KINDS: [&str; 4] = ["Service", "VirtualService", "DestinationRule", "Gateway"];
/// Route configurations istiod adds that the translation has no counterpart for: the
/// sidecar's passthrough for hosts no Service has (`allow_any`, `block_all` under
/// REGISTRY_ONLY) and the gateway's `blackhole` when nothing binds a port.
const ISTIOD_ONLY_VIRTUAL_HOSTS: [&str; 3] = ["allow_any", "block_all", "blackhole"];

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

/// One routing variant: a name and its manifests.
pub struct Variant {
    /// Its name (the file's stem, or `shipped`).
    pub name: String,
    /// Its documents.
    pub set: ManifestSet,
}

impl Variant {
    /// The variant of `paths` (files or directories), with `base` first when given.
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
        let mut set = ManifestSet::load(&all).map_err(|e| ParityError::Manifests(e.to_string()))?;
        if let Some(e) = set.syntax_errors.first() {
            return Err(ParityError::Manifests(e.to_string()));
        }
        set.documents.retain(|d| ROUTING_KINDS.contains(&d.kind()));
        Ok(Variant {
            name: name.to_owned(),
            set,
        })
    }
}

/// What a variant came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// istiod's routes and the translation's agree.
    Same,
    /// They differ; each line one difference.
    Differs(Vec<String>),
    /// The API server refused the variant (its CRD schema; Istio's validating webhook is
    /// not running here), with what the translation did with it.
    Rejected {
        /// The server's words.
        server: String,
        /// What local mode does with it.
        local: String,
    },
}

impl Outcome {
    /// The table's cell.
    pub fn cell(&self) -> String {
        match self {
            Outcome::Same => "same".into(),
            Outcome::Differs(what) => format!("differs ({})", what.join("; ")),
            Outcome::Rejected { server, local } => format!(
                "rejected by the API (webhook not running here): {server}; local mode: {local}"
            ),
        }
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
    /// How long a difference must last after istiod has the variant before it counts:
    /// istiod pushes a change after its debounce (100 ms at least), so a proxy that connects
    /// just then may first get the routes of before.
    pub settle: Duration,
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

/// Runs every variant, one namespace each, one after the other: the gateway's routes merge
/// every Gateway that selects it, so two variants at once would see each other's.
pub async fn run(
    client: &Client,
    variants: &[Variant],
    opts: &ParityOptions,
) -> Result<Vec<(String, Outcome)>, ParityError> {
    let mut rows = Vec::new();
    for (index, variant) in variants.iter().enumerate() {
        let namespace = namespace(&opts.istio, index);
        let started = std::time::Instant::now();
        let outcome = run_variant(client, variant, &namespace, opts).await?;
        eprintln!(
            "parity: {} in {:.1}s: {}",
            variant.name,
            started.elapsed().as_secs_f64(),
            outcome.cell()
        );
        rows.push((variant.name.clone(), outcome));
    }
    Ok(rows)
}

async fn run_variant(
    client: &Client,
    variant: &Variant,
    namespace: &str,
    opts: &ParityOptions,
) -> Result<Outcome, ParityError> {
    let api = |message: String| ParityError::Api {
        variant: variant.name.clone(),
        message,
    };
    let local = local_routes(&variant.set, namespace, &opts.istio);
    // The node agent's capture (its Sidecar and plaintext inbound), as `e2e --istiod real`.
    let mut set = ManifestSet {
        documents: variant.set.documents.clone(),
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
    let outcome = match (applied, local) {
        (Err(e), local) => Outcome::Rejected {
            server: e.to_string().lines().next().unwrap_or_default().to_owned(),
            local: match local {
                Ok(_) => "translated it".into(),
                Err(e) => format!("refused it: {e}"),
            },
        },
        (Ok(_), Err(e)) => Outcome::Differs(vec![format!(
            "istiod accepted it; the translation refused it: {e}"
        )]),
        (Ok(_), Ok((sidecar, gateway))) => {
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
            compare_with_istiod(variant, namespace, &sidecar, &gateway, opts).await?
        }
    };
    // The next variant's gateway must not see this one's Gateways: they go first, awaited
    // until istiod has dropped them; the rest goes with the namespace, unawaited (nothing
    // else of a namespace reaches another's proxies: the Sidecar scopes them to their own).
    let gateways: Vec<&str> = variant.set.of_kind("Gateway").map(|d| d.name()).collect();
    delete_gateways(client, namespace, &gateways)
        .await
        .map_err(api)?;
    await_istiod_objects(opts, namespace, Some("Gateway"), |n| n == 0)
        .await
        .map_err(api)?;
    delete_namespace(client, namespace).await.map_err(api)?;
    Ok(outcome)
}

/// Local mode's two route configurations for the variant in `namespace`, reduced.
fn local_routes(
    set: &ManifestSet,
    namespace: &str,
    istio: &IstioVersion,
) -> Result<(Value, Value), String> {
    let (mut topo, errors) = Topology::from_manifests(set);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    topo.namespace = namespace.to_owned();
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    let sidecar = config::route_configuration(&topo, &vss, istio, 1).map_err(|e| e.to_string())?;
    let gateway =
        config::gateway_route_configuration(&topo, &vss, istio).map_err(|e| e.to_string())?;
    Ok((
        reduce(&sidecar["resources"][0]),
        reduce(&gateway["resources"][0]),
    ))
}

/// Connects the two proxies and waits until istiod's routes agree with the translation's,
/// or until the difference has lasted `settle`.
async fn compare_with_istiod(
    variant: &Variant,
    namespace: &str,
    sidecar: &Value,
    gateway: &Value,
    opts: &ParityOptions,
) -> Result<Outcome, ParityError> {
    let proxy_error = |source| ParityError::Proxy {
        variant: variant.name.clone(),
        source: Box::new(source),
    };
    let dir = opts.dir.join(&variant.name);
    let identity = Identity {
        kind: "sidecar",
        ip: "10.244.255.1".into(),
        pod: "productpage-v1-parity".into(),
        namespace: namespace.to_owned(),
        labels: [("app", ads::SIDECAR_APP), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        workload: "productpage-v1".into(),
        service_account: "default".into(),
    };
    let version = opts.istio.to_string();
    let proxies = [
        (identity, ROUTE_CONFIG_NAME, sidecar),
        (
            Identity::gateway("10.250.0.1"),
            INGRESS_ROUTE_CONFIG_NAME,
            gateway,
        ),
    ];
    let mut differences = Vec::new();
    for (identity, route_config, expected) in proxies {
        let kind = identity.kind;
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
        let seen = istiod_routes(&proxy, route_config, expected, opts).await;
        // istiod's own words, unreduced, for whoever reads a difference.
        if let Ok(raw) = proxy
            .envoy
            .admin_text("/config_dump?resource=dynamic_route_configs")
            .await
        {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{kind}-config_dump.json")), raw);
        }
        let accepted = proxy.check_accepted(&opts.istiod).await;
        proxy.envoy.stop().await;
        accepted.map_err(proxy_error)?;
        let seen = seen.map_err(|message| ParityError::Wait {
            variant: variant.name.clone(),
            message,
        })?;
        let _ = std::fs::write(
            dir.join(format!("{kind}-{route_config}.json")),
            serde_json::to_string_pretty(&json!({"istiod": seen, "local": expected}))
                .unwrap_or_default(),
        );
        differences.extend(
            diff(expected, &seen)
                .into_iter()
                .map(|d| format!("{route_config}: {d}")),
        );
    }
    Ok(if differences.is_empty() {
        Outcome::Same
    } else {
        Outcome::Differs(differences)
    })
}

/// The proxy's route configuration `name` from istiod, reduced: as soon as it equals
/// `expected`, else what it is once the difference has lasted `settle`.
async fn istiod_routes(
    proxy: &Proxy,
    name: &str,
    expected: &Value,
    opts: &ParityOptions,
) -> Result<Value, String> {
    let first_differed = std::cell::Cell::new(None);
    poll_until(
        &format!("route configuration {name} from istiod"),
        opts.patience,
        || {
            let now = std::time::Instant::now();
            let found = async {
                let dump = proxy
                    .envoy
                    .admin_json("/config_dump?resource=dynamic_route_configs")
                    .await
                    .map_err(|e| e.to_string())?;
                dump["configs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["route_config"])
                    .find(|r| r["name"] == name)
                    .map(reduce)
                    // No route to expect (a variant without a Gateway): none is the answer.
                    .or_else(|| {
                        expected
                            .as_object()
                            .is_some_and(|e| e.is_empty())
                            .then(|| json!({}))
                    })
                    .ok_or_else(|| format!("Envoy has no route configuration {name} yet"))
            };
            let settle = opts.settle;
            let first = &first_differed;
            async move {
                let seen = found.await?;
                if &seen == expected {
                    return Ok(Some(seen));
                }
                let since = first.get().unwrap_or(now);
                first.set(Some(since));
                Ok((now.duration_since(since) >= settle).then_some(seen))
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// How many of istiod's configuration objects (`/debug/configz`) are in `namespace` (of
/// `kind`, or of any), awaited until `done` says so.
async fn await_istiod_objects(
    opts: &ParityOptions,
    namespace: &str,
    kind: Option<&str>,
    done: impl Fn(usize) -> bool,
) -> Result<(), String> {
    let url = format!("http://{}/debug/configz", opts.istiod.debug);
    poll_until(
        &format!("istiod's objects in namespace {namespace}"),
        opts.patience,
        || async {
            let text = reqwest::get(&url)
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let body: Value = serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))?;
            let n = count_in_namespace(&body, namespace, kind);
            if done(n) {
                Ok(Some(()))
            } else {
                Err(format!("{url} lists {n} in {namespace}"))
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// The objects of istiod's `/debug/configz` list whose metadata names `namespace` (and
/// whose kind is `kind`, when given).
fn count_in_namespace(configz: &Value, namespace: &str, kind: Option<&str>) -> usize {
    configz
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["metadata"]["namespace"] == namespace)
        .filter(|c| kind.is_none_or(|k| c["kind"] == k))
        .count()
}

async fn delete_gateways(client: &Client, namespace: &str, names: &[&str]) -> Result<(), String> {
    let gvk = kube::core::GroupVersionKind::gvk("networking.istio.io", "v1", "Gateway");
    let resource = kube::core::ApiResource::from_gvk(&gvk);
    let api: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), namespace, &resource);
    for name in names {
        match api.delete(name, &Default::default()).await {
            // A variant the server refused may not have got as far as its Gateway.
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(format!("delete Gateway {namespace}/{name}: {e}")),
        }
    }
    Ok(())
}

async fn delete_namespace(client: &Client, namespace: &str) -> Result<(), String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    api.delete(namespace, &Default::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("delete namespace {namespace}: {e}"))
}

/// A RouteConfiguration reduced to what decides where a request and its mirrors go: per
/// virtual host (by name, `<host>:<port>`), its routes in order, each with its match, its
/// destination (a cluster, or weighted clusters with weights) and its mirror policies
/// (cluster, percentage, the shadow host rule).
///
/// Left out, and why:
/// - virtual host `domains`: istiod lists every short form and the Service's cluster IP,
///   the translation the names a caller uses; the host the name carries is what routes;
/// - route `name`, `decorator`, `metadata`, `typed_per_filter_config`: tracing, telemetry
///   and filter settings, not where a request goes;
/// - `timeout`, `retry_policy`, `max_stream_duration`, `hash_policy`,
///   `cluster_not_found_response_code`, `include_request_attempt_count`: how a request is
///   carried, set by istiod on every route whatever the VirtualService says of mirroring;
/// - a mirror's `trace_sampled`: whether the shadow request is traced, not whether it goes;
/// - istiod's passthrough virtual hosts (`ISTIOD_ONLY_VIRTUAL_HOSTS`): traffic to hosts no
///   Service has, which the suite never sends;
/// - `match.case_sensitive: true`: Envoy's default, spelled out by one side only.
pub fn reduce(route_config: &Value) -> Value {
    let mut hosts = BTreeMap::new();
    for vh in route_config["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = vh["name"].as_str().unwrap_or_default();
        if ISTIOD_ONLY_VIRTUAL_HOSTS
            .iter()
            .any(|n| name == *n || name.starts_with(&format!("{n}:")))
        {
            continue;
        }
        let routes: Vec<Value> = vh["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(reduce_route)
            .collect();
        hosts.insert(name.to_owned(), Value::from(routes));
    }
    json!(hosts)
}

fn reduce_route(route: &Value) -> Value {
    let mut matched = route["match"].clone();
    if let Some(m) = matched.as_object_mut()
        && m.get("case_sensitive") == Some(&Value::Bool(true))
    {
        m.remove("case_sensitive");
    }
    let action = &route["route"];
    let to = if let Some(cluster) = action["cluster"].as_str() {
        json!(cluster)
    } else if let Some(weighted) = action["weighted_clusters"]["clusters"].as_array() {
        weighted
            .iter()
            .map(|c| json!([c["name"], c["weight"].as_u64().unwrap_or(0)]))
            .collect()
    } else if let Some(redirect) = route.get("redirect") {
        json!({"redirect": redirect})
    } else if let Some(direct) = route.get("direct_response") {
        json!({"direct_response": direct["status"]})
    } else {
        action.clone()
    };
    let mirrors: Vec<Value> = action["request_mirror_policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            json!({
                "cluster": m["cluster"],
                "percent": percent(&m["runtime_fraction"]),
                "disable_shadow_host_suffix_append":
                    m["disable_shadow_host_suffix_append"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    json!({"match": matched, "to": to, "mirrors": mirrors})
}

/// A `runtime_fraction` as a percentage; none means every request. Over 100 counts as 100:
/// Envoy mirrors every request at any fraction of 1 or more (istiod passes
/// `mirrorPercentage: 150` on as 1,500,000 of a million; the translation caps it at 100).
fn percent(fraction: &Value) -> f64 {
    let Some(default) = fraction.get("default_value") else {
        return 100.0;
    };
    let numerator = default["numerator"].as_f64().unwrap_or(0.0);
    let scale = match default["denominator"].as_str().unwrap_or("HUNDRED") {
        "TEN_THOUSAND" => 100.0,
        "MILLION" => 10_000.0,
        _ => 1.0,
    };
    (numerator / scale).min(100.0)
}

/// What differs between two reduced route configurations, one line each.
pub fn diff(local: &Value, istiod: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let local = local.as_object().unwrap_or(&empty);
    let istiod = istiod.as_object().unwrap_or(&empty);
    let mut out = Vec::new();
    for (host, routes) in istiod {
        match local.get(host) {
            None => out.push(format!("only istiod has virtual host {host}")),
            Some(mine) if mine != routes => {
                let (mine, theirs) = (mine.as_array(), routes.as_array());
                let (mine, theirs) = (
                    mine.map_or(&[][..], Vec::as_slice),
                    theirs.map_or(&[][..], Vec::as_slice),
                );
                if mine.len() != theirs.len() {
                    out.push(format!(
                        "{host}: {} routes here, {} from istiod",
                        mine.len(),
                        theirs.len()
                    ));
                }
                for (i, (a, b)) in mine.iter().zip(theirs).enumerate() {
                    for key in ["match", "to", "mirrors"] {
                        if a[key] != b[key] {
                            out.push(format!(
                                "{host} route {i} {key}: here {}, istiod {}",
                                a[key], b[key]
                            ));
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
    for host in local.keys().filter(|h| !istiod.contains_key(*h)) {
        out.push(format!("only the translation has virtual host {host}"));
    }
    out
}

/// One version's run, as `mirror-e2e parity` writes it (`parity.json`) for merging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionResult {
    /// The Istio version the translation emulated.
    pub version: String,
    /// What played it on the cluster's side (e.g. `istiod 1.30 + compat 1.27`), when told.
    pub played_by: Option<String>,
    /// Each variant's outcome, in the order run.
    pub rows: Vec<Row>,
    /// How long the comparison took.
    pub seconds: f64,
}

/// One variant's outcome in a [`VersionResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The variant's name.
    pub variant: String,
    /// What it came to.
    pub outcome: Outcome,
}

impl VersionResult {
    /// The result of a run of `version` from [`run`]'s rows.
    pub fn new(
        version: &IstioVersion,
        played_by: Option<String>,
        rows: Vec<(String, Outcome)>,
        seconds: f64,
    ) -> VersionResult {
        VersionResult {
            version: version.to_string(),
            played_by,
            rows: rows
                .into_iter()
                .map(|(variant, outcome)| Row { variant, outcome })
                .collect(),
            seconds,
        }
    }

    /// Its column's header: the version, and what played it when that was said, so a
    /// column played by a newer istiod with a compatibility profile says so.
    pub fn column(&self) -> String {
        match &self.played_by {
            Some(by) => format!("{} ({by})", self.version),
            None => self.version.clone(),
        }
    }

    /// Whether any variant differs.
    pub fn differs(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Differs(_)))
    }
}

/// The table `variant × version → outcome`, as the README shows it: a column per result in
/// the order given, a row per variant in the order first met; a variant a version did not
/// run (a corpus changed between runs) says so rather than leaving a gap.
pub fn merged_table(results: &[VersionResult]) -> String {
    let mut variants: Vec<&str> = Vec::new();
    for row in results.iter().flat_map(|r| &r.rows) {
        if !variants.contains(&row.variant.as_str()) {
            variants.push(&row.variant);
        }
    }
    let escape = |s: String| s.replace('|', "\\|");
    let mut out = String::from("| variant |");
    for result in results {
        out.push_str(&format!(" {} |", escape(result.column())));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(results.len()));
    out.push('\n');
    for variant in variants {
        out.push_str(&format!("| {variant} |"));
        for result in results {
            let cell = result
                .rows
                .iter()
                .find(|r| r.variant == variant)
                .map_or_else(|| "not run".to_owned(), |r| r.outcome.cell());
            out.push_str(&format!(" {} |", escape(cell)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn istiod_route_config() -> Value {
        json!({
            "name": "9080",
            "virtual_hosts": [
                {"name": "reviews.test.svc.cluster.local:9080",
                 "domains": ["reviews.test.svc.cluster.local", "reviews", "10.96.0.12"],
                 "routes": [{
                    "name": "tester",
                    "match": {"case_sensitive": true, "prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "tester"}}]},
                    "decorator": {"operation": "reviews:9080/*"},
                    "route": {
                        "cluster": "outbound|9080|v2|reviews.test.svc.cluster.local",
                        "timeout": "0s",
                        "retry_policy": {"num_retries": 2},
                        "request_mirror_policies": [{
                            "cluster": "outbound|9080||mirror.test.svc.cluster.local",
                            "runtime_fraction": {"default_value": {"numerator": 100000, "denominator": "MILLION"}},
                            "trace_sampled": false,
                            "disable_shadow_host_suffix_append": true,
                        }],
                    },
                 }]},
                {"name": "allow_any", "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]},
            ],
        })
    }

    #[test]
    fn reduction_keeps_routing_and_mirrors_and_drops_istiods_extras() {
        let reduced = reduce(&istiod_route_config());
        assert_eq!(
            reduced,
            json!({"reviews.test.svc.cluster.local:9080": [{
                "match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "tester"}}]},
                "to": "outbound|9080|v2|reviews.test.svc.cluster.local",
                "mirrors": [{"cluster": "outbound|9080||mirror.test.svc.cluster.local", "percent": 10.0, "disable_shadow_host_suffix_append": true}],
            }]})
        );
    }

    #[test]
    fn a_different_percentage_or_shadow_rule_or_order_is_a_difference() {
        let istiod = reduce(&istiod_route_config());
        assert!(diff(&istiod, &istiod).is_empty());
        let mut local = istiod_route_config();
        let policy = "/virtual_hosts/0/routes/0/route/request_mirror_policies/0";
        local.pointer_mut(policy).expect("policy")["runtime_fraction"]["default_value"] =
            json!({"numerator": 10});
        assert!(
            diff(&reduce(&local), &istiod).is_empty(),
            "10 of a hundred is 10%"
        );
        let p = local.pointer_mut(policy).expect("policy");
        p["disable_shadow_host_suffix_append"] = json!(false);
        let found = diff(&reduce(&local), &istiod);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("route 0 mirrors"), "{found:?}");
        let mut p = local.pointer_mut(policy).expect("policy");
        p["disable_shadow_host_suffix_append"] = json!(true);
        p["runtime_fraction"]["default_value"]["numerator"] = json!(11);
        assert_eq!(diff(&reduce(&local), &istiod).len(), 1, "11% is not 10%");
        p = local.pointer_mut(policy).expect("policy");
        p["runtime_fraction"]["default_value"]["numerator"] = json!(10);
        local["virtual_hosts"][0]["routes"]
            .as_array_mut()
            .expect("routes")
            .insert(
                0,
                json!({"match": {"prefix": "/"}, "route": {"cluster": "x"}}),
            );
        let found = diff(&reduce(&local), &istiod);
        assert!(
            found
                .iter()
                .any(|d| d.contains("2 routes here, 1 from istiod")),
            "{found:?}"
        );
        assert_eq!(
            diff(&json!({}), &istiod),
            ["only istiod has virtual host reviews.test.svc.cluster.local:9080"]
        );
    }

    #[test]
    fn configz_objects_are_counted_by_namespace() {
        let configz = json!([
            {"kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "parity-1"}},
            {"kind": "Sidecar", "metadata": {"name": "s", "namespace": "parity-1"}},
            {"kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "parity-10"}},
        ]);
        assert_eq!(count_in_namespace(&configz, "parity-1", None), 2);
        assert_eq!(count_in_namespace(&configz, "parity-1", Some("Sidecar")), 1);
        assert_eq!(count_in_namespace(&configz, "parity-2", None), 0);
    }

    fn result(version: &str, played_by: Option<&str>, rows: &[(&str, Outcome)]) -> VersionResult {
        VersionResult {
            version: version.to_owned(),
            played_by: played_by.map(str::to_owned),
            rows: rows
                .iter()
                .map(|(variant, outcome)| Row {
                    variant: (*variant).to_owned(),
                    outcome: outcome.clone(),
                })
                .collect(),
            seconds: 4.2,
        }
    }

    #[test]
    fn the_table_has_a_row_per_variant() {
        let one = result(
            "1.31.1",
            None,
            &[
                ("shipped", Outcome::Same),
                ("x", Outcome::Differs(vec!["a|b".into()])),
            ],
        );
        let table = merged_table(&[one]);
        assert!(
            table.starts_with("| variant | 1.31.1 |\n|---|---|\n"),
            "{table}"
        );
        assert!(table.contains("| shipped | same |"));
        assert!(table.contains("| x | differs (a\\|b) |"));
    }

    #[test]
    fn versions_merge_into_columns_that_say_what_played_them() {
        let results = [
            result(
                "1.31.1",
                Some("istiod 1.31"),
                &[("shipped", Outcome::Same), ("mirror-100", Outcome::Same)],
            ),
            result(
                "1.27.9",
                Some("istiod 1.30 + compat 1.27"),
                &[
                    ("shipped", Outcome::Same),
                    ("mirror-100", Outcome::Differs(vec!["9080: d".into()])),
                    ("only-here", Outcome::Same),
                ],
            ),
        ];
        assert_eq!(
            merged_table(&results),
            "| variant | 1.31.1 (istiod 1.31) | 1.27.9 (istiod 1.30 + compat 1.27) |\n\
             |---|---|---|\n\
             | shipped | same | same |\n\
             | mirror-100 | same | differs (9080: d) |\n\
             | only-here | not run | same |\n"
        );
        assert!(!results[0].differs());
        assert!(results[1].differs());
    }

    #[test]
    fn a_result_file_reads_back_as_written() {
        let rows = vec![
            ("shipped".to_owned(), Outcome::Same),
            ("x".to_owned(), Outcome::Differs(vec!["one".into()])),
            (
                "y".to_owned(),
                Outcome::Rejected {
                    server: "no".into(),
                    local: "translated it".into(),
                },
            ),
        ];
        let version: IstioVersion = "1.27.9".parse().expect("version");
        let written = VersionResult::new(
            &version,
            Some("istiod 1.30 + compat 1.27".into()),
            rows,
            3.5,
        );
        let text = serde_json::to_string_pretty(&written).expect("serialised");
        let read: VersionResult = serde_json::from_str(&text).expect("read back");
        assert_eq!(read, written);
        assert_eq!(read.column(), "1.27.9 (istiod 1.30 + compat 1.27)");
    }

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
}

//! The node's proxies configured by the real istiod over ADS (`--istiod-xds`), in place of
//! the project's translation.
//!
//! Each proxy is one upstream Envoy that connects to istiod's plaintext xDS port with the
//! identity istio-agent would give it: `sidecar~<pod IP>~<pod>.<ns>~<ns>.svc.cluster.local`
//! for productpage's sidecar, `router~<node IP>~...` for the ingress gateway, and the node
//! metadata istiod reads (`pkg/model/proxy.go`, `NodeMetadata`). Capture is without
//! iptables, as Istio documents it: a `Sidecar` (`sidecar`) whose egress listener has
//! `captureMode: NONE` and binds 127.0.0.1:9080, where productpage sends. The proxy itself
//! keeps the default interception mode: in NONE mode istiod binds every Service port it
//! knows on loopback, istiod's own 15010 and 15012 among them, which in the node's one
//! network namespace Envoy cannot bind (seen: "ACK ERROR ... cannot bind
//! '127.0.0.1:15010': Address already in use"); in REDIRECT mode only the Sidecar's
//! listener binds (the virtual ones aside: 15001, 15006).
//!
//! A rejected (NACKed) configuration is an error naming what Envoy said and what istiod's
//! `/debug/syncz` shows for the proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::envoy::process::{Envoy, EnvoyError};

/// Where the real istiod answers, inside the cluster's network namespace.
#[derive(Debug, Clone, Copy)]
pub struct Istiod {
    /// Its plaintext xDS (gRPC) port.
    pub xds: SocketAddr,
    /// Its HTTP debug port (`/debug/syncz`).
    pub debug: SocketAddr,
}

/// productpage's outbound listener as istiod builds it for a proxy in NONE mode: the
/// Services' port 9080 on loopback (`listener.go`, `buildSidecarOutboundListeners`).
pub const SIDECAR_OUTBOUND: &str = "127.0.0.1_9080";
/// The ingress gateway's listener for the Gateway's port 8080 on every address.
pub const GATEWAY_LISTENER: &str = "0.0.0.0_8080";
/// The pods whose sidecar the node plays (`app` label): the one the suite's requests leave
/// through. A second would need 127.0.0.1:9080 too, in the one network namespace.
pub const SIDECAR_APP: &str = "productpage";
/// The Kubernetes cluster id istiod runs with (the chart's `CLUSTER_ID`).
const CLUSTER_ID: &str = "Kubernetes";

/// Errors of the ADS-configured proxies.
#[derive(Debug, thiserror::Error)]
pub enum AdsError {
    /// A proxy's bootstrap could not be written.
    #[error("proxy {proxy}: cannot write {path}: {source}")]
    Write {
        /// The proxy's node id.
        proxy: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Envoy failed.
    #[error("proxy {proxy}: {source}")]
    Envoy {
        /// The proxy's node id.
        proxy: String,
        /// Why.
        #[source]
        source: EnvoyError,
    },
    /// Envoy rejected what istiod sent.
    #[error(
        "proxy {proxy} rejected istiod's configuration ({rejected}); Envoy said ({log}):\n{envoy_said}\nistiod's /debug/syncz for it:\n{syncz}"
    )]
    Nack {
        /// The proxy's node id.
        proxy: String,
        /// The update_rejected counters that are not 0.
        rejected: String,
        /// Envoy's log.
        log: PathBuf,
        /// Its lines saying what it rejected.
        envoy_said: String,
        /// istiod's view of the proxy.
        syncz: String,
    },
    /// istiod's `/debug/syncz` shows a proxy's NACK.
    #[error("proxy {proxy} rejected istiod's configuration; istiod's /debug/syncz says: {said}")]
    Rejected {
        /// The proxy's node id.
        proxy: String,
        /// The rejected types and the proxy's words.
        said: String,
    },
    /// Not every proxy was connected and synced in time.
    #[error(
        "the proxies did not all connect to istiod and ACK its configuration within {patience:?}; last seen: {last}"
    )]
    NotSynced {
        /// How long it waited.
        patience: Duration,
        /// Each proxy still waited for, and for what.
        last: String,
    },
    /// A listener istiod should have sent never came.
    #[error(
        "proxy {proxy}: no listener {listener} from istiod within {patience:?} (last: {last}); istiod's /debug/syncz for it:\n{syncz}"
    )]
    NoListener {
        /// The proxy's node id.
        proxy: String,
        /// The listener.
        listener: String,
        /// How long it waited.
        patience: Duration,
        /// What it saw last.
        last: String,
        /// istiod's view of the proxy.
        syncz: String,
    },
}

/// What istiod's `/debug/syncz` says of one proxy: per xDS type, the nonce it sent last,
/// the one the proxy ACKed last, and the proxy's last rejection (`pilot/pkg/xds/debug.go`,
/// `SyncStatus.resources`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ProxySync {
    /// The proxy's id to istiod: `<pod>.<namespace>` ([`istiod_proxy_id`]).
    pub proxy: String,
    /// The Istio version its metadata says.
    #[serde(default)]
    pub istio_version: String,
    /// By type URL.
    #[serde(default)]
    pub resources: BTreeMap<String, TypeSync>,
}

/// One xDS type's state for a proxy.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct TypeSync {
    /// The nonce istiod sent last.
    #[serde(default)]
    pub sent: String,
    /// The nonce the proxy ACKed last.
    #[serde(default)]
    pub acked: String,
    /// What the proxy said when it last rejected a push (a NACK).
    #[serde(default, rename = "lastError")]
    pub last_error: String,
}

impl ProxySync {
    /// The types whose last push the proxy rejected, with what it said.
    pub fn rejected(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter(|(_, t)| !t.last_error.is_empty())
            .map(|(url, t)| format!("{}: {}", short_type(url), t.last_error))
            .collect()
    }

    /// The types istiod pushed that the proxy has not ACKed yet.
    pub fn pending(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter(|(_, t)| t.sent != t.acked)
            .map(|(url, t)| {
                format!(
                    "{} (sent {}, acked {})",
                    short_type(url),
                    t.sent,
                    or_none(&t.acked)
                )
            })
            .collect()
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}

fn short_type(url: &str) -> &str {
    url.rsplit('.').next().unwrap_or(url)
}

/// Whether istiod has configured the proxy and it took all of it: clusters and listeners
/// pushed, and every push ACKed with no rejection.
pub fn is_synced(sync: &ProxySync) -> bool {
    let has = |kind: &str| sync.resources.keys().any(|url| url.ends_with(kind));
    has(".Cluster") && has(".Listener") && sync.rejected().is_empty() && sync.pending().is_empty()
}

/// The name istiod lists a proxy under (`Proxy.ID`, `<pod>.<namespace>`): the third part
/// of its node id (`pkg/model/context.go`, `ParseServiceNodeWithMetadata`).
pub fn istiod_proxy_id(node_id: &str) -> &str {
    node_id.split('~').nth(2).unwrap_or(node_id)
}

/// istiod's `/debug/syncz` body, parsed.
pub fn parse_syncz(body: &str) -> Result<Vec<ProxySync>, String> {
    serde_json::from_str(body).map_err(|e| {
        format!(
            "not /debug/syncz's JSON ({e}): {}",
            body.chars().take(200).collect::<String>()
        )
    })
}

/// Waits until istiod at `istiod` lists every proxy of `proxies` (node ids) and each is
/// [`is_synced`]; a rejection ends the wait at once. After istiod is replaced, this is the
/// proxies reconnecting and ACKing the new istiod's configuration.
pub async fn await_synced(
    istiod: &Istiod,
    proxies: &[String],
    patience: Duration,
) -> Result<(), AdsError> {
    let url = format!("http://{}/debug/syncz", istiod.debug);
    let url = &url;
    // `Some(rejection)` ends the wait as soon as a proxy NACKs.
    let waited = crate::wait::poll_until(
        &format!(
            "{} proxies to connect to istiod and ACK its configuration",
            proxies.len()
        ),
        patience,
        || async move {
            let listed = parse_syncz(&fetch(url).await?)?;
            let mut waiting = Vec::new();
            for id in proxies {
                let known_as = istiod_proxy_id(id);
                match listed.iter().find(|p| p.proxy == known_as) {
                    None => waiting.push(format!("{id}: not connected")),
                    Some(p) if !p.rejected().is_empty() => {
                        return Ok(Some(Some((id.clone(), p.rejected().join("; ")))));
                    }
                    Some(p) if !is_synced(p) => waiting.push(format!(
                        "{id}: waiting for {}",
                        if p.pending().is_empty() {
                            "clusters and listeners".to_owned()
                        } else {
                            p.pending().join(", ")
                        }
                    )),
                    Some(_) => {}
                }
            }
            if waiting.is_empty() {
                Ok(Some(None))
            } else {
                Err(waiting.join("; "))
            }
        },
    )
    .await;
    match waited {
        Ok(None) => Ok(()),
        Ok(Some((proxy, said))) => Err(AdsError::Rejected { proxy, said }),
        Err(e) => Err(AdsError::NotSynced {
            patience,
            last: e.last_seen,
        }),
    }
}

/// Who a proxy is to istiod.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyIdentity {
    /// `sidecar` or `router`.
    pub kind: &'static str,
    /// The pod's address (the node's, for the gateway).
    pub ip: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels (a Gateway's selector matches the gateway's).
    pub labels: BTreeMap<String, String>,
    /// Its Deployment.
    pub workload: String,
    /// Its ServiceAccount.
    pub service_account: String,
}

impl ProxyIdentity {
    /// A pod the capture `Sidecar` applies to (labelled `app: productpage`), as parity's
    /// proxies are: no pod of the API stands behind them.
    pub fn capture_sidecar(ip: &str, pod: &str, namespace: &str, workload: &str) -> ProxyIdentity {
        ProxyIdentity {
            kind: "sidecar",
            ip: ip.to_owned(),
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            labels: [("app", SIDECAR_APP), ("version", "v1")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            workload: workload.to_owned(),
            service_account: "default".into(),
        }
    }

    /// The ingress gateway on the node's address, as istio-ingressgateway's pod would be.
    pub fn gateway(node_ip: &str) -> ProxyIdentity {
        ProxyIdentity {
            kind: "router",
            ip: node_ip.to_owned(),
            pod: "istio-ingressgateway-kwok".into(),
            namespace: "istio-system".into(),
            labels: [("istio", "ingressgateway"), ("app", "istio-ingressgateway")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            workload: "istio-ingressgateway".into(),
            service_account: "istio-ingressgateway-service-account".into(),
        }
    }

    /// Envoy's node id, as istio-agent builds it (`<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>`).
    pub fn node_id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}.svc.cluster.local",
            self.kind, self.ip, self.pod, self.namespace, self.namespace
        )
    }

    /// The node metadata istiod reads (`NodeMetadata`'s JSON names); `istio_version` is
    /// what istio-agent of the same build would send.
    pub fn metadata(&self, istio_version: &str) -> Value {
        let mut meta = json!({
            "NAMESPACE": self.namespace,
            "NAME": self.pod,
            "LABELS": self.labels,
            "WORKLOAD_NAME": self.workload,
            "SERVICE_ACCOUNT": self.service_account,
            "INSTANCE_IPS": self.ip,
            "CLUSTER_ID": CLUSTER_ID,
            "MESH_ID": "cluster.local",
            "ISTIO_VERSION": istio_version,
        });
        if self.kind == "sidecar" {
            // What istio-agent sends by default; the Sidecar says which listener binds.
            meta["INTERCEPTION_MODE"] = "REDIRECT".into();
        }
        meta
    }

    /// A bootstrap with nothing but the admin port and ADS to istiod.
    pub fn bootstrap(&self, istiod: SocketAddr, istio_version: &str) -> Value {
        json!({
            "node": {
                "id": self.node_id(),
                "cluster": format!("{}.{}", self.workload, self.namespace),
                "metadata": self.metadata(istio_version),
            },
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "dynamic_resources": {
                "ads_config": {
                    "api_type": "GRPC",
                    "transport_api_version": "V3",
                    // Reconnect within a second when istiod goes (an upgrade replaces it):
                    // Envoy's default back-off grows to 30 s.
                    "grpc_services": [{"envoy_grpc": {
                        "cluster_name": "xds-grpc",
                        "retry_policy": {"retry_back_off": {
                            "base_interval": "0.1s",
                            "max_interval": "1s",
                        }},
                    }}],
                },
                "cds_config": {"ads": {}, "resource_api_version": "V3"},
                "lds_config": {"ads": {}, "resource_api_version": "V3"},
            },
            "static_resources": {"clusters": [{
                "name": "xds-grpc",
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": istiod.ip().to_string(),
                        "port_value": istiod.port(),
                    }}},
                }]}]},
            }]},
        })
    }
}

/// The `Sidecar` giving productpage's pods (`SIDECAR_APP`) their outbound listener on
/// 127.0.0.1:9080 without iptables, for the namespace's own Services.
pub fn sidecar(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "mirror-e2e-node-capture", "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": {"app": SIDECAR_APP}},
            "egress": [{
                "port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                "bind": "127.0.0.1",
                "captureMode": "NONE",
                "hosts": ["./*"],
            }],
        },
    })
}

/// The `PeerAuthentication` that turns off inbound mTLS for productpage's pods: with it
/// (permissive by default) istiod gives the sidecar's virtualInbound listener TLS chains
/// whose certificates come over SDS from istio-agent, which is not here; the listeners then
/// warm forever (seen: "StreamSecrets gRPC config stream to sds-grpc closed ... Cluster not
/// available", 127.0.0.1_9080 never bound).
pub fn plaintext_inbound(namespace: &str) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "mirror-e2e-node-plaintext", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": SIDECAR_APP}},
            "mtls": {"mode": "DISABLE"},
        },
    })
}

/// One proxy: its identity and its Envoy.
pub struct Proxy {
    /// Who it is to istiod.
    pub identity: ProxyIdentity,
    /// Its Envoy.
    pub envoy: Envoy,
    /// Envoy's log.
    pub log: PathBuf,
}

impl Proxy {
    /// Starts an Envoy for `identity` in `dir` and waits until it is LIVE (its first
    /// configuration from istiod taken).
    pub async fn start(
        envoy: &Path,
        dir: &Path,
        identity: ProxyIdentity,
        istiod: &Istiod,
        istio_version: &str,
        patience: Duration,
    ) -> Result<Proxy, AdsError> {
        let proxy = identity.node_id();
        let write = |path: &Path, source| AdsError::Write {
            proxy: proxy.clone(),
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write(dir, e))?;
        let bootstrap = dir.join("envoy-bootstrap.json");
        crate::envoy::config::write_json(
            &bootstrap,
            &identity.bootstrap(istiod.xds, istio_version),
        )
        .map_err(|e| write(&bootstrap, e))?;
        let log = dir.join("envoy.log");
        let envoy = Envoy::start_dynamic(envoy, &bootstrap, &log, patience)
            .await
            .map_err(|source| AdsError::Envoy {
                proxy: proxy.clone(),
                source,
            })?;
        let started = Proxy {
            identity,
            envoy,
            log,
        };
        started.check_accepted(istiod).await?;
        Ok(started)
    }

    fn id(&self) -> String {
        self.identity.node_id()
    }

    /// An error if Envoy rejected anything istiod sent it.
    pub async fn check_accepted(&self, istiod: &Istiod) -> Result<(), AdsError> {
        let stats = self
            .envoy
            .admin_text("/stats?filter=update_rejected")
            .await
            .map_err(|source| AdsError::Envoy {
                proxy: self.id(),
                source,
            })?;
        let rejected = rejected_counters(&stats);
        if rejected.is_empty() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(AdsError::Nack {
            proxy: self.id(),
            rejected: rejected.join(", "),
            log: self.log.clone(),
            envoy_said: rejection_lines(&log),
            syncz: syncz(istiod, &self.identity).await,
        })
    }

    /// Waits until istiod has given this proxy the listener `name` and Envoy bound it.
    pub async fn await_listener(
        &self,
        name: &str,
        istiod: &Istiod,
        patience: Duration,
    ) -> Result<SocketAddr, AdsError> {
        let waited = crate::wait::poll_until(
            &format!("listener {name} from istiod"),
            patience,
            || async {
                if let Err(e) = self.check_accepted(istiod).await {
                    return Ok(Some(Err(e)));
                }
                match self.envoy.bound_listener(name).await {
                    Ok(Some(addr)) => Ok(Some(Ok(addr))),
                    Ok(None) => Err(format!("Envoy has no listener {name} yet")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        match waited {
            Ok(result) => result,
            Err(e) => Err(AdsError::NoListener {
                proxy: self.id(),
                listener: name.to_owned(),
                patience,
                last: e.to_string(),
                syncz: syncz(istiod, &self.identity).await,
            }),
        }
    }
}

/// `name: value` of every `update_rejected` counter that is not 0.
fn rejected_counters(stats: &str) -> Vec<String> {
    stats
        .lines()
        .filter(|l| l.contains("update_rejected"))
        .filter(|l| {
            l.rsplit_once(':')
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .is_some_and(|v| v > 0)
        })
        .map(str::to_owned)
        .collect()
}

/// The lines of Envoy's log that say what it rejected (the last few).
fn rejection_lines(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rejected") || l.contains("Error adding/updating"))
        .collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// The body of one of istiod's debug pages, or why it could not be read.
async fn fetch(url: &str) -> Result<String, String> {
    let response = reqwest::get(url).await.map_err(|e| format!("{url}: {e}"))?;
    response.text().await.map_err(|e| format!("{url}: {e}"))
}

/// What istiod's `/debug/syncz` says of the proxy (or why it could not be asked).
async fn syncz(istiod: &Istiod, identity: &ProxyIdentity) -> String {
    let url = format!("http://{}/debug/syncz", istiod.debug);
    let body = match fetch(&url).await {
        Ok(body) => body,
        Err(e) => return e,
    };
    let id = format!("{}.{}", identity.pod, identity.namespace);
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(proxies)) => {
            let mine: Vec<&Value> = proxies
                .iter()
                .filter(|p| p.to_string().contains(&id))
                .collect();
            if mine.is_empty() {
                format!("{url} lists no proxy {id} ({} others)", proxies.len())
            } else {
                serde_json::to_string_pretty(&mine).unwrap_or_default()
            }
        }
        _ => body.chars().take(2000).collect(),
    }
}

#[cfg(test)]
mod tests;

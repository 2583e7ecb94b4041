//! Knowing that istiod's pushes include a variant: a sentinel proxy in a namespace of its
//! own, and a VirtualService there whose header value changes once per variant.
//!
//! `/debug/configz` shows what istiod's store holds, not what it has pushed: a proxy that
//! connects right after may get a push computed before the variant's last object arrived
//! (pushes are debounced, 100 ms at least). The sentinel's change is made after configz
//! shows every object of the variant; the push that brings it to the sentinel was computed
//! after it, so from a store holding the variant. Proxies started after that see the
//! variant whole, with no settling time and no retries.

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use crate::cluster::install::install;
use crate::cluster::node_agent::ads::{self, Istiod, Proxy, ProxyIdentity};
use crate::manifest::{Document, ManifestSet};
use crate::wait::poll_until;

/// The header whose value marks the barrier.
const HEADER: &str = "x-parity-barrier";

/// The sentinel: its namespace, its proxy, and the last mark it saw.
pub struct Barrier {
    namespace: String,
    proxy: Proxy,
    mark: u64,
    patience: Duration,
}

impl Barrier {
    /// Applies the sentinel's objects in `namespace` and starts its proxy.
    pub async fn start(
        client: &Client,
        envoy: &std::path::Path,
        istiod: &Istiod,
        istio_version: &str,
        namespace: &str,
        dir: PathBuf,
        patience: Duration,
    ) -> Result<Barrier, String> {
        let identity = ProxyIdentity::capture_sidecar(
            "10.244.255.2",
            "parity-sentinel",
            namespace,
            "parity-sentinel",
        );
        apply(client, namespace, 0, true, patience).await?;
        let proxy = Proxy::start(envoy, &dir, identity, istiod, istio_version, patience)
            .await
            .map_err(|e| e.to_string())?;
        let barrier = Barrier {
            namespace: namespace.to_owned(),
            proxy,
            mark: 0,
            patience,
        };
        barrier.await_mark().await?;
        Ok(barrier)
    }

    /// Changes the mark and waits until the sentinel's proxy has it: every push after this
    /// returns was computed from a store holding everything applied before it was called.
    pub async fn pass(&mut self, client: &Client) -> Result<(), String> {
        self.mark += 1;
        apply(client, &self.namespace, self.mark, false, self.patience).await?;
        self.await_mark().await
    }

    async fn await_mark(&self) -> Result<(), String> {
        let want = self.mark.to_string();
        let vhost = format!(
            "sentinel.{}.svc.{}:9080",
            self.namespace,
            crate::hostname::DOMAIN_SUFFIX
        );
        poll_until(
            &format!("the sentinel's proxy to see mark {want}"),
            self.patience,
            || async {
                let dump = self
                    .proxy
                    .envoy
                    .admin_json("/config_dump?resource=dynamic_route_configs")
                    .await
                    .map_err(|e| e.to_string())?;
                let seen = mark_in(&dump, &vhost);
                if seen.as_deref() == Some(want.as_str()) {
                    Ok(Some(()))
                } else {
                    Err(format!("mark {seen:?}"))
                }
            },
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Ends the sentinel's proxy (its namespace goes with the cluster).
    pub async fn stop(self) {
        self.proxy.envoy.stop().await;
    }
}

/// The mark the sentinel's route carries, in a route configuration dump.
fn mark_in(dump: &Value, vhost: &str) -> Option<String> {
    dump["configs"]
        .as_array()?
        .iter()
        .flat_map(|c| {
            c["route_config"]["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .find(|vh| vh["name"] == vhost)?["routes"][0]["request_headers_to_add"]
        .as_array()?
        .iter()
        .find(|h| h["header"]["key"] == HEADER)?["header"]["value"]
        .as_str()
        .map(str::to_owned)
}

/// The sentinel's objects (all of them the first time, the VirtualService after).
async fn apply(
    client: &Client,
    namespace: &str,
    mark: u64,
    all: bool,
    patience: Duration,
) -> Result<(), String> {
    let vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "sentinel", "namespace": namespace},
        "spec": {
            "hosts": ["sentinel"],
            "http": [{
                "headers": {"request": {"set": {HEADER: mark.to_string()}}},
                "route": [{"destination": {"host": "sentinel"}}],
            }],
        },
    });
    let mut values = vec![vs];
    if all {
        values.extend([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            ads::sidecar(namespace),
            ads::plaintext_inbound(namespace),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "sentinel", "namespace": namespace},
                "spec": {"ports": [{"port": 9080, "name": "http"}], "selector": {"app": "sentinel"}},
            }),
        ]);
    }
    let set = ManifestSet {
        documents: values
            .into_iter()
            .map(|value| Document {
                file: PathBuf::from(format!("<parity sentinel {namespace}>")),
                value,
                positions: Default::default(),
            })
            .collect(),
        syntax_errors: Vec::new(),
    };
    install(client, &set, namespace, patience)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_read_from_the_sentinels_route() {
        let dump = json!({"configs": [{"route_config": {"name": "9080", "virtual_hosts": [
            {"name": "other:9080", "routes": []},
            {"name": "sentinel.s.svc.cluster.local:9080", "routes": [{
                "request_headers_to_add": [{"header": {"key": HEADER, "value": "7"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
            }]},
        ]}}]});
        assert_eq!(
            mark_in(&dump, "sentinel.s.svc.cluster.local:9080").as_deref(),
            Some("7")
        );
        assert_eq!(mark_in(&dump, "sentinel.t.svc.cluster.local:9080"), None);
    }
}

//! What parity asks of istiod and the API server: istiod's objects (`/debug/configz`), a
//! proxy's configuration from istiod, the VirtualServices' creation times, and the clean-up
//! between variants.

use std::collections::BTreeMap;

use kube::Client;
use serde_json::{Value, json};

use super::{ParityOptions, reduce};
use crate::cluster::node_agent::ads::Proxy;
use crate::wait::poll_until;

/// The creation times of the namespace's VirtualServices, by name.
pub(super) async fn creation_times(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, String> {
    let gvk = kube::core::GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let resource = kube::core::ApiResource::from_gvk(&gvk);
    let api: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), namespace, &resource);
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| format!("list VirtualServices in {namespace}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| Some((o.metadata.name?, o.metadata.creation_timestamp?)))
        .collect())
}

/// The proxy's route configuration `name` from istiod, reduced, and its clusters. After the
/// barrier its first configuration is the variant's: none is awaited beyond it. A route
/// configuration that is not there is empty when none is expected (a gateway no Gateway
/// binds a listener on has none), once the proxy's listeners have come.
pub(super) async fn istiod_config(
    proxy: &Proxy,
    name: &str,
    none_expected: bool,
    opts: &ParityOptions,
) -> Result<(Value, Vec<String>), String> {
    let routes = poll_until(
        &format!("route configuration {name} from istiod"),
        opts.patience,
        || async {
            let text = proxy
                .envoy
                .admin_text("/config_dump?resource=dynamic_route_configs")
                .await
                .map_err(|e| e.to_string())?;
            // Envoy answers with an empty body while it has no route configuration at all.
            let dump: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let found = dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["route_config"])
                .find(|r| r["name"] == name)
                .map(reduce::reduce);
            match found {
                Some(routes) => Ok(Some(routes)),
                None if none_expected => {
                    // Empty only once the listeners have come and none of them asks for it.
                    let text = proxy
                        .envoy
                        .admin_text("/config_dump?resource=dynamic_listeners")
                        .await
                        .map_err(|e| e.to_string())?;
                    let listeners: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let mut names = Vec::new();
                    route_config_names(&listeners, &mut names);
                    let lds = proxy
                        .envoy
                        .admin_json("/stats?format=json&filter=^listener_manager.lds.update_success$")
                        .await
                        .map_err(|e| e.to_string())?;
                    let taken = lds["stats"][0]["value"].as_u64().unwrap_or(0) > 0;
                    match taken {
                        true if !names.iter().any(|n| n == name) => Ok(Some(json!([]))),
                        _ => Err(format!(
                            "Envoy has no route configuration {name} yet (listeners ask for {names:?})"
                        )),
                    }
                }
                None => Err(format!("Envoy has no route configuration {name} yet")),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let clusters = proxy
        .envoy
        .admin_json("/config_dump?resource=dynamic_active_clusters")
        .await
        .map_err(|e| e.to_string())?;
    Ok((routes, reduce::dumped_clusters(&clusters)))
}

/// Every `route_config_name` in a listener dump.
fn route_config_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("route_config_name", Some(name)) => out.push(name.to_owned()),
                    _ => route_config_names(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| route_config_names(v, out)),
        _ => {}
    }
}

/// How many of istiod's configuration objects (`/debug/configz`) are in `namespace` (of
/// `kind`, or of any), awaited until `done` says so.
pub(super) async fn await_istiod_objects(
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
pub(super) fn count_in_namespace(configz: &Value, namespace: &str, kind: Option<&str>) -> usize {
    configz
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["metadata"]["namespace"] == namespace)
        .filter(|c| kind.is_none_or(|k| c["kind"] == k))
        .count()
}

pub(super) async fn delete_gateways(
    client: &Client,
    namespace: &str,
    names: &[&str],
) -> Result<(), String> {
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

pub(super) async fn delete_namespace(client: &Client, namespace: &str) -> Result<(), String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    api.delete(namespace, &Default::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("delete namespace {namespace}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

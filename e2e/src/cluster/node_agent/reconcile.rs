//! How the node's data plane follows the run's namespace: watches wake a reconcile, which
//! lists what the API shows (`Snapshot`) and makes the pods' processes and the proxies'
//! configuration match it.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::{Snapshot, State};
use crate::topology::{Topology, Typed};

impl State {
    /// Follows the namespace: every change to a pod, an EndpointSlice, a Service or the
    /// routing wakes a reconcile, which lists what is and makes the data plane match it.
    pub(super) async fn follow(mut self) {
        let changed = Arc::new(Notify::new());
        let ns = self.opts.namespace.clone();
        let on_node =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.opts.node));
        spawn_watch::<Pod>(Api::namespaced(self.client.clone(), &ns), on_node, &changed);
        spawn_watch::<EndpointSlice>(
            Api::namespaced(self.client.clone(), &ns),
            watcher::Config::default(),
            &changed,
        );
        spawn_watch::<Service>(
            Api::namespaced(self.client.clone(), &ns),
            watcher::Config::default(),
            &changed,
        );
        for kind in ISTIO_KINDS {
            spawn_watch::<DynamicObject>(
                Api::namespaced_with(self.client.clone(), &ns, &istio_resource(kind)),
                watcher::Config::default(),
                &changed,
            );
        }
        loop {
            changed.notified().await;
            match self.snapshot().await {
                Ok(snapshot) => self.reconcile(&snapshot).await,
                Err(e) => eprintln!("node {}: list the namespace {ns}: {e}", self.opts.node),
            }
        }
    }

    pub(super) async fn snapshot(&self) -> Result<Snapshot, kube::Error> {
        let ns = &self.opts.namespace;
        let pods: Vec<Pod> = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.opts.node)))
            .await?
            .items;
        let slices = list::<EndpointSlice>(&self.client, ns).await?;
        let topology = Topology {
            namespace: ns.clone(),
            services: typed(list::<Service>(&self.client, ns).await?),
            deployments: typed(list::<Deployment>(&self.client, ns).await?),
            destination_rules: typed(istio_objects(&self.client, ns, "DestinationRule").await?),
            virtual_services: typed(istio_objects(&self.client, ns, "VirtualService").await?),
            gateways: typed(istio_objects(&self.client, ns, "Gateway").await?),
            // The node agent does not follow Gateway API objects yet (issue 26).
            ..Topology::default()
        };
        Ok(Snapshot {
            pods,
            topology,
            slices,
        })
    }

    pub(super) async fn reconcile(&mut self, snapshot: &Snapshot) {
        self.run_pods(&snapshot.pods).await;
        if self.opts.istiod.is_some() {
            // istiod follows the API itself.
            return;
        }
        if let Err(e) = self.configure_proxies(snapshot) {
            // The last good configuration stays, as with istiod's rejected pushes (often
            // only until the rest of the manifests arrive); the checks see what it means.
            eprintln!(
                "node {}: the proxies keep their last configuration: {e}",
                self.opts.node
            );
        }
    }
}
/// The Istio kinds the proxies' configuration comes from.
pub(super) const ISTIO_KINDS: [&str; 3] = ["VirtualService", "DestinationRule", "Gateway"];

pub(super) fn istio_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", "v1", kind))
}

/// Every change of `api`'s objects wakes `changed` (watch errors are retried with
/// kube's backoff: a CRD may arrive after the data plane starts).
pub(super) fn spawn_watch<K>(api: Api<K>, config: watcher::Config, changed: &Arc<Notify>)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let changed = changed.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            if event.is_ok() {
                changed.notify_one();
            }
        }
    });
}

pub(super) async fn list<K>(client: &Client, ns: &str) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}

/// The namespace's objects of an Istio kind, typed; a kind not served yet is none.
pub(super) async fn istio_objects<T: DeserializeOwned>(
    client: &Client,
    ns: &str,
    kind: &str,
) -> Result<Vec<T>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &istio_resource(kind));
    let items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

pub(super) fn typed<T>(objects: Vec<T>) -> Vec<Typed<T>> {
    objects
        .into_iter()
        .map(|object| Typed {
            document: 0,
            object,
        })
        .collect()
}

//! What a run deletes when it ends: the cluster-scoped objects it created, and its namespace.
//! Never anything it did not create.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject};
use kube::{Api, Client};

use super::ClusterError;
use crate::wait::poll_until;

/// The cluster-scoped objects a run created, shared with whoever cleans up (the end of the
/// run, or its Ctrl-C handler).
#[derive(Debug, Clone, Default)]
pub struct CreatedObjects(Arc<Mutex<Vec<(ApiResource, String)>>>);

impl CreatedObjects {
    /// The run created `name` of `resource`.
    pub fn record(&self, resource: ApiResource, name: String) {
        self.lock().push((resource, name));
    }

    /// What the run created, `plural.group/name` each, in the order created.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(r, name)| format!("{}/{name}", qualified(r)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ApiResource, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `plural.group` (`plural` for the core group), as kubectl names a resource.
fn qualified(r: &ApiResource) -> String {
    if r.group.is_empty() {
        r.plural.clone()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// Asks the API server to delete the cluster-scoped objects the run created, newest first
/// (a custom resource before its definition); one that is already gone is fine. Does not
/// wait: deletion of a definition finishes when its objects are gone.
pub async fn delete_created(client: &Client, created: &CreatedObjects) -> Result<(), ClusterError> {
    let objects = std::mem::take(&mut *created.lock());
    for (resource, name) in objects.into_iter().rev() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.delete(&name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ClusterError::Request {
                    what: format!("delete {}/{name}", qualified(&resource)),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Asks the API server to delete a namespace this run created (foreground: its objects go
/// first), without waiting.
pub async fn request_namespace_deletion(
    client: &Client,
    namespace: &str,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.delete(namespace, &DeleteParams::foreground())
        .await
        .map(|_| ())
        .map_err(|source| ClusterError::Cleanup {
            namespace: namespace.to_owned(),
            source,
        })
}

/// Deletes a namespace this run created, and waits until it is gone.
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    patience: Duration,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    request_namespace_deletion(client, namespace).await?;
    let waited = poll_until(
        &format!("namespace {namespace} to be deleted"),
        patience,
        || {
            let api = api.clone();
            async move {
                match api.get_opt(namespace).await {
                    Ok(None) => Ok(Some(())),
                    Ok(Some(ns)) => Err(format!("phase {:?}", ns.status.and_then(|s| s.phase))),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    waited.map_err(|source| ClusterError::CleanupWait {
        namespace: namespace.to_owned(),
        source,
    })
}

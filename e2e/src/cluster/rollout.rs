//! After a control-plane upgrade: restart the workloads so their sidecars are injected
//! again, and verify every proxy runs the new version before the suite runs again.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::ready::SIDECAR;
use crate::version::IstioVersion;

/// Errors restarting or verifying.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The restart patch failed.
    #[error("restart Deployment {namespace}/{name}: {source}")]
    Restart {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Listing pods failed.
    #[error("list pods in {namespace}: {source}")]
    List {
        /// Namespace.
        namespace: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A proxy runs another version.
    #[error("after the upgrade, {count} pod(s) in {namespace} do not run proxy {expected}: {pods}")]
    OldProxies {
        /// Namespace.
        namespace: String,
        /// Expected version.
        expected: IstioVersion,
        /// How many.
        count: usize,
        /// `pod: image` pairs.
        pods: String,
    },
}

/// Restarts a Deployment the way `kubectl rollout restart` does: a new template annotation.
pub async fn restart(
    client: &Client,
    namespace: &str,
    name: &str,
    at: &str,
) -> Result<(), RolloutError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| RolloutError::Restart {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

/// The image of a pod's sidecar (classic or native).
pub fn proxy_image(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == SIDECAR)?
        .image
        .as_deref()
}

/// Whether an image's tag is `version` (optionally with a variant, e.g. `-distroless`).
pub fn runs_version(image: &str, version: &IstioVersion) -> bool {
    let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
    let v = version.to_string();
    tag == v
        || tag
            .strip_prefix(&v)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Verifies that every live pod of the namespace runs a proxy of `version`.
pub async fn verify_proxies(
    client: &Client,
    namespace: &str,
    version: &IstioVersion,
) -> Result<(), RolloutError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default())
        .await
        .map_err(|source| RolloutError::List {
            namespace: namespace.to_owned(),
            source,
        })?;
    let old: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let image = proxy_image(p).unwrap_or("(no sidecar)");
            (!runs_version(image, version))
                .then(|| format!("{}: {image}", p.metadata.name.as_deref().unwrap_or("?")))
        })
        .collect();
    if old.is_empty() {
        Ok(())
    } else {
        Err(RolloutError::OldProxies {
            namespace: namespace.to_owned(),
            expected: *version,
            count: old.len(),
            pods: old.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_api::ApiServer;
    use serde_json::Value;

    fn pod(name: &str, image: &str, native: bool) -> Value {
        let sidecar = json!({"name": "istio-proxy", "image": image});
        let app = json!({"name": "app", "image": "app:1"});
        let spec = if native {
            json!({"containers": [app], "initContainers": [sidecar]})
        } else {
            json!({"containers": [app, sidecar]})
        };
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn proxy_versions_are_read_from_the_sidecar_image() {
        let v: IstioVersion = "1.31.1".parse().expect("version");
        assert!(runs_version("docker.io/istio/proxyv2:1.31.1", &v));
        assert!(runs_version(
            "gcr.io/istio-release/proxyv2:1.31.1-distroless",
            &v
        ));
        assert!(!runs_version("docker.io/istio/proxyv2:1.27.7", &v));
        assert!(!runs_version("docker.io/istio/proxyv2:1.31.10", &v));
        let native: Pod = serde_json::from_value(pod("a", "proxyv2:1.31.1", true)).expect("pod");
        assert_eq!(proxy_image(&native), Some("proxyv2:1.31.1"));
    }

    #[tokio::test]
    async fn pods_still_on_the_old_proxy_are_named() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            verify_proxies(&client, "test", &"1.31.1".parse().expect("v")).await
        });
        let _ = server.next().await;
        server
            .respond(
                200,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                    pod("reviews-v2-1-a", "docker.io/istio/proxyv2:1.31.1", false),
                    pod("mirror-1-b", "docker.io/istio/proxyv2:1.27.7", true),
                ]}),
            )
            .await;
        let err = task
            .await
            .expect("task")
            .expect_err("an old proxy")
            .to_string();
        assert_eq!(
            err,
            "after the upgrade, 1 pod(s) in test do not run proxy 1.31.1: mirror-1-b: docker.io/istio/proxyv2:1.27.7"
        );
    }

    #[tokio::test]
    async fn restart_patches_the_template_annotation() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            restart(&client, "test", "reviews-v1", "2026-11-25T20:00:00Z").await
        });
        let (request, body) = server.next().await;
        assert_eq!(request.method(), "PATCH");
        assert_eq!(
            request.uri().path(),
            "/apis/apps/v1/namespaces/test/deployments/reviews-v1"
        );
        assert_eq!(
            request.headers()["content-type"],
            "application/merge-patch+json"
        );
        assert_eq!(
            body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-11-25T20:00:00Z"
        );
        server.respond(200, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reviews-v1"}, "spec": {"selector": {}, "template": {}}})).await;
        task.await.expect("task").expect("restarted");
    }
}

//! Evidence on failure, so nobody has to rerun to learn why: pods with a describe-like
//! summary, events, container logs (sidecars included), and the routing objects as the API
//! server holds them. Collecting never fails the run; what could not be read is noted.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ApiResource, DynamicObject, ListParams, LogParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};

use super::ready::describe_pod;

/// Apps whose pods' logs are collected.
const LOGGED_APPS: &[&str] = &["productpage", "reviews", "mirror"];

/// Writes evidence for `namespace` and the control plane's namespace `istio_namespace`
/// (where istiod was found: `istio-system` by default, but any namespace on a cluster the
/// run did not install) under `dir`; returns notes about anything that could not be
/// collected.
pub async fn collect(
    client: &Client,
    namespace: &str,
    istio_namespace: &str,
    dir: &Path,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut note =
        |what: &str, e: &dyn std::fmt::Display| notes.push(format!("evidence: {what}: {e}"));
    if let Err(e) = std::fs::create_dir_all(dir.join("logs")) {
        note("create directory", &e);
        return notes;
    }
    for ns in [namespace, istio_namespace] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        match pods.list(&ListParams::default()).await {
            Ok(list) => {
                let mut describe = String::new();
                for pod in &list.items {
                    let name = pod.metadata.name.as_deref().unwrap_or("?");
                    let _ = writeln!(describe, "{name}: {}", describe_pod(Some(pod)));
                }
                write(dir, &format!("pods-{ns}.txt"), &describe, &mut note);
                write(
                    dir,
                    &format!("pods-{ns}.json"),
                    &serde_json::to_string_pretty(&list.items).unwrap_or_default(),
                    &mut note,
                );
                if ns == namespace {
                    for pod in list.items.iter().filter(|p| logged(p)) {
                        collect_logs(&pods, pod, dir, &mut note).await;
                    }
                }
            }
            Err(e) => note(&format!("list pods in {ns}"), &e),
        }
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        match events.list(&ListParams::default()).await {
            Ok(list) => {
                let mut text = String::new();
                for e in &list.items {
                    let _ = writeln!(
                        text,
                        "{} {} {} {}/{}: {}",
                        e.last_timestamp
                            .as_ref()
                            .map(|t| t.0.to_string())
                            .unwrap_or_default(),
                        e.type_.as_deref().unwrap_or(""),
                        e.reason.as_deref().unwrap_or(""),
                        e.involved_object.kind.as_deref().unwrap_or(""),
                        e.involved_object.name.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("")
                    );
                }
                write(dir, &format!("events-{ns}.txt"), &text, &mut note);
            }
            Err(e) => note(&format!("list events in {ns}"), &e),
        }
    }
    for (kind, plural) in [
        ("VirtualService", "virtualservices"),
        ("DestinationRule", "destinationrules"),
    ] {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("networking.istio.io", "v1", kind),
            plural,
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => write(
                dir,
                &format!("{plural}.json"),
                &serde_json::to_string_pretty(&list.items).unwrap_or_default(),
                &mut note,
            ),
            Err(e) => note(&format!("list {plural}"), &e),
        }
    }
    notes
}

fn logged(pod: &Pod) -> bool {
    let app = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .map(String::as_str);
    app.is_some_and(|a| LOGGED_APPS.contains(&a))
}

async fn collect_logs(
    pods: &Api<Pod>,
    pod: &Pod,
    dir: &Path,
    note: &mut impl FnMut(&str, &dyn std::fmt::Display),
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers = spec
        .map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for container in containers {
        let params = LogParams {
            container: Some(container.clone()),
            timestamps: true,
            tail_lines: Some(5000),
            ..LogParams::default()
        };
        match pods.logs(&name, &params).await {
            Ok(text) => write(dir, &format!("logs/{name}.{container}.log"), &text, note),
            Err(e) => note(&format!("logs of {name}/{container}"), &e),
        }
    }
}

fn write(dir: &Path, file: &str, text: &str, note: &mut impl FnMut(&str, &dyn std::fmt::Display)) {
    if let Err(e) = std::fs::write(dir.join(file), text) {
        note(&format!("write {file}"), &e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_api::ApiServer;
    use serde_json::json;

    #[tokio::test]
    async fn the_control_planes_evidence_comes_from_where_istiod_was_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, mut server) = ApiServer::start();
        let out = dir.path().to_owned();
        let task =
            tokio::spawn(async move { collect(&client, "test-run", "istio-canary", &out).await });
        let mut paths = Vec::new();
        while let Some((request, _)) = server.try_next().await {
            paths.push(request.uri().path().to_owned());
            server
                .respond(
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}),
                )
                .await;
        }
        let notes = task.await.expect("task");
        assert!(notes.is_empty(), "{notes:?}");
        for path in [
            "/api/v1/namespaces/istio-canary/pods",
            "/api/v1/namespaces/istio-canary/events",
        ] {
            assert!(
                paths.iter().any(|p| p == path),
                "{path} not asked: {paths:?}"
            );
        }
        assert!(
            !paths.iter().any(|p| p.contains("istio-system")),
            "{paths:?}"
        );
        assert!(dir.path().join("pods-istio-canary.txt").is_file());
    }
}

//! Applying manifests: server-side apply of any kind the API server serves, found through
//! discovery, with one field manager and strict field validation (a misspelled field fails
//! the run instead of being pruned).

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::Value;

/// The field manager of every object this project applies.
pub const FIELD_MANAGER: &str = "mirror-e2e";

/// Errors applying manifests.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Discovery failed.
    #[error("discover the API server's resources: {0}")]
    Discovery(#[source] kube::Error),
    /// A document names a kind the server does not serve.
    #[error(
        "{kind} {name}: the API server serves no {kind} in {api_version} (is Istio installed?)"
    )]
    UnknownKind {
        /// Kind.
        kind: String,
        /// Object name.
        name: String,
        /// apiVersion.
        api_version: String,
    },
    /// A document is not an object with apiVersion, kind and metadata.name.
    #[error("document {index}: {message}")]
    Malformed {
        /// Index of the document.
        index: usize,
        /// What is missing.
        message: String,
    },
    /// The server rejected the object.
    #[error("apply {kind} {namespace}/{name}: {}: {message}", status_text(reason, *code))]
    Rejected {
        /// Kind.
        kind: String,
        /// Namespace ("" for cluster-scoped).
        namespace: String,
        /// Name.
        name: String,
        /// HTTP status.
        code: u16,
        /// Server's reason, e.g. Conflict, BadRequest; empty for a Strict validation
        /// failure of server-side apply, which servers answer with a bare 500.
        reason: String,
        /// Server's message (for strict validation it names the unknown field).
        message: String,
    },
    /// The request failed without an answer from the server.
    #[error("apply {kind} {name}: {source}")]
    Request {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The status of a rejection: its reason and code, or the code alone when the server gave
/// no reason.
fn status_text(reason: &str, code: u16) -> String {
    if reason.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("{reason} ({code})")
    }
}

/// The fields a Strict server-side apply refused, as the paths the server names
/// (`.spec.http[0].mirro`), without the leading dot. The message is structured-merge-diff's:
/// `failed to create typed patch object (<ns>/<name>; <gvk>): <path>: field not declared in
/// schema`, one `<path>: field not declared in schema` per field when there are several
/// (apimachinery's structuredmerge.go; kubernetes issues 122480, 139253).
pub fn undeclared_fields(message: &str) -> Vec<String> {
    const UNDECLARED: &str = "field not declared in schema";
    let mut pieces: Vec<&str> = message.split(UNDECLARED).collect();
    pieces.pop();
    pieces
        .into_iter()
        .filter_map(|piece| {
            let path = piece.trim_end().strip_suffix(':')?;
            let path = path.rsplit(char::is_whitespace).next()?;
            path.strip_prefix('.').map(str::to_owned)
        })
        .collect()
}

/// Applies documents into one namespace.
pub struct Applier {
    client: Client,
    namespace: String,
    discovery: Discovery,
}

impl Applier {
    /// Discovers what the server serves.
    pub async fn new(client: Client, namespace: &str) -> Result<Applier, ApplyError> {
        let discovery = discover(&client).await?;
        Ok(Applier {
            client,
            namespace: namespace.to_owned(),
            discovery,
        })
    }

    /// Discovers again, after CRDs were installed.
    pub async fn rediscover(&mut self) -> Result<(), ApplyError> {
        self.discovery = discover(&self.client).await?;
        Ok(())
    }

    /// Where discovery says a document goes: its resource and capabilities, or `None` for a
    /// kind the server does not serve (yet).
    pub fn resolve(&self, doc: &Value) -> Option<(ApiResource, ApiCapabilities)> {
        let api_version = doc.get("apiVersion").and_then(Value::as_str)?;
        let kind = doc.get("kind").and_then(Value::as_str)?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.discovery
            .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
    }

    /// Whether the document's kind is namespaced or cluster-wide, when discovery knows it.
    pub fn scope(&self, doc: &Value) -> Option<Scope> {
        self.resolve(doc).map(|(_, caps)| caps.scope)
    }

    /// Whether the object a cluster-scoped document names exists already.
    pub async fn exists(&self, index: usize, doc: &Value) -> Result<bool, ApplyError> {
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApplyError::Malformed {
                index,
                message: "no metadata.name".into(),
            })?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some((resource, _)) = self.resolve(doc) else {
            return Ok(false);
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        api.get_opt(name)
            .await
            .map(|o| o.is_some())
            .map_err(|source| ApplyError::Request {
                kind: kind.to_owned(),
                name: name.to_owned(),
                source,
            })
    }

    /// Applies one document; namespaced objects go into the applier's namespace.
    pub async fn apply(&self, index: usize, doc: &Value) -> Result<DynamicObject, ApplyError> {
        let malformed = |message: &str| ApplyError::Malformed {
            index,
            message: message.to_owned(),
        };
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no apiVersion"))?;
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no kind"))?;
        let mut object: DynamicObject =
            serde_json::from_value(doc.clone()).map_err(|e| malformed(&e.to_string()))?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or_else(|| malformed("no metadata.name"))?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) =
            self.discovery
                .resolve_gvk(&gvk)
                .ok_or_else(|| ApplyError::UnknownKind {
                    kind: kind.to_owned(),
                    name: name.clone(),
                    api_version: api_version.to_owned(),
                })?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                object.metadata.namespace = Some(self.namespace.clone());
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => ApplyError::Rejected {
                    kind: kind.to_owned(),
                    namespace: object.namespace().unwrap_or_default(),
                    name: name.clone(),
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                },
                other => ApplyError::Request {
                    kind: kind.to_owned(),
                    name: name.clone(),
                    source: other,
                },
            })
    }
}

/// Aggregated discovery (two requests), or the classic per-group walk on servers older than
/// Kubernetes 1.26 that do not offer it.
async fn discover(client: &Client) -> Result<Discovery, ApplyError> {
    match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => Ok(d),
        Err(_) => Discovery::new(client.clone())
            .run()
            .await
            .map_err(ApplyError::Discovery),
    }
}

/// The order objects are applied in: the namespace first, then what pods need, then pods,
/// then the routing that refers to them.
pub fn apply_order(kind: &str) -> u8 {
    match kind {
        // A definition first: the kinds it defines may be among the documents.
        "CustomResourceDefinition" | "Namespace" => 0,
        "ServiceAccount" | "ConfigMap" | "Secret" => 1,
        "Service" => 2,
        "Deployment" => 3,
        "DestinationRule" => 4,
        "Gateway" => 5,
        "VirtualService" => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_api::{
        ApiServer, discovery_response, status, strict_validation_failure,
    };
    use serde_json::json;

    fn virtual_service() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"]},
        })
    }

    #[tokio::test]
    async fn apply_is_server_side_strict_with_one_manager_into_the_run_namespace() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let applier = Applier::new(client, "test-run1").await.expect("discovery");
            applier.apply(0, &virtual_service()).await.expect("applied")
        });
        server.answer_discovery().await;
        let (request, body) = server.next().await;
        assert_eq!(request.method(), "PATCH");
        assert_eq!(
            request.uri().path(),
            "/apis/networking.istio.io/v1/namespaces/test-run1/virtualservices/reviews"
        );
        let query = request.uri().query().unwrap_or_default();
        for part in [
            "fieldManager=mirror-e2e",
            "force=true",
            "fieldValidation=Strict",
        ] {
            assert!(query.contains(part), "{part} missing from {query}");
        }
        assert_eq!(
            request.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        assert_eq!(body["metadata"]["namespace"], "test-run1");
        assert_eq!(body["spec"]["hosts"][0], "reviews");
        server.respond(200, body).await;
        let applied = task.await.expect("task");
        assert_eq!(applied.metadata.name.as_deref(), Some("reviews"));
    }

    /// Applies the VirtualService and has the server reject it with `body`.
    async fn rejected_with(code: u16, body: Value) -> ApplyError {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let applier = Applier::new(client, "test").await.expect("discovery");
            applier
                .apply(0, &virtual_service())
                .await
                .expect_err("rejected")
        });
        server.answer_discovery().await;
        let _ = server.next().await;
        server.respond(code, body).await;
        task.await.expect("task")
    }

    #[tokio::test]
    async fn strict_validation_failure_names_the_object_and_the_field() {
        // As a real server answers it: a bare 500 with no reason.
        let (code, body) = strict_validation_failure(
            "test/reviews",
            "networking.istio.io/v1, Kind=VirtualService",
            ".spec.http[0].mirro",
        );
        let err = rejected_with(code, body).await;
        assert!(
            matches!(&err, ApplyError::Rejected { code: 500, reason, .. } if reason.is_empty()),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "apply VirtualService test/reviews: HTTP 500: failed to create typed patch object (test/reviews; networking.istio.io/v1, Kind=VirtualService): .spec.http[0].mirro: field not declared in schema"
        );
    }

    #[test]
    fn the_undeclared_fields_are_read_from_the_servers_message() {
        assert_eq!(
            undeclared_fields(
                "failed to create typed patch object (test/reviews; networking.istio.io/v1, Kind=VirtualService): .spec.http[0].mirro: field not declared in schema"
            ),
            ["spec.http[0].mirro"]
        );
        assert_eq!(
            undeclared_fields(
                "failed to create typed patch object (test/reviews; networking.istio.io/v1, Kind=VirtualService): errors:\n  .spec.a: field not declared in schema\n  .spec.b[1].c: field not declared in schema"
            ),
            ["spec.a", "spec.b[1].c"]
        );
        assert!(undeclared_fields("Apply failed with 1 conflict").is_empty());
    }

    #[tokio::test]
    async fn conflict_is_reported_with_its_reason() {
        let err = rejected_with(409, status(409, "Conflict", "Apply failed with 1 conflict")).await;
        assert!(
            matches!(err, ApplyError::Rejected { code: 409, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_kind_the_server_does_not_serve_is_a_clear_error_without_a_request() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move {
            let applier = Applier::new(client, "test").await.expect("discovery");
            let doc = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
            applier.apply(3, &doc).await.expect_err("unknown kind")
        });
        server.answer_discovery().await;
        let err = task.await.expect("task").to_string();
        assert_eq!(
            err,
            "Widget w: the API server serves no Widget in example.com/v1 (is Istio installed?)"
        );
        server.expect_no_more().await;
    }

    #[tokio::test]
    async fn servers_without_aggregated_discovery_are_walked_group_by_group() {
        let (client, mut server) = ApiServer::start();
        let task = tokio::spawn(async move { Applier::new(client, "test").await.map(|_| ()) });
        let (first, _) = server.next().await;
        assert_eq!(first.uri().path(), "/apis");
        server
            .respond(
                406,
                status(406, "NotAcceptable", "aggregated discovery not served"),
            )
            .await;
        // The classic walk: the group list, the core versions, the core resources.
        for _ in 0..3 {
            let (request, _) = server.next().await;
            let accept = request
                .headers()
                .get("accept")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            assert!(
                !accept.contains("apidiscovery"),
                "the fallback asks for plain discovery: {accept}"
            );
            let body = match request.uri().path() {
                "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
                "/api" => {
                    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
                }
                "/api/v1" => {
                    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": []})
                }
                other => panic!("unexpected discovery request {other}"),
            };
            server.respond(200, body).await;
        }
        task.await.expect("task").expect("discovered");
    }

    #[test]
    fn namespaces_first_routing_last() {
        let mut kinds = [
            "VirtualService",
            "Deployment",
            "Namespace",
            "Service",
            "DestinationRule",
            "ServiceAccount",
        ];
        kinds.sort_by_key(|k| apply_order(k));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "Service",
                "Deployment",
                "DestinationRule",
                "VirtualService"
            ]
        );
    }

    #[test]
    fn discovery_fixture_is_well_formed() {
        assert!(
            discovery_response("/apis")["items"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
        );
    }
}

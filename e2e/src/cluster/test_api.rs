//! A scripted API server for tests (kube-rs's "ApiServerVerifier" pattern): the code under
//! test gets a real `kube::Client` whose transport is a `tower-test` mock; the test takes
//! each request, asserts on it, and answers it.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

/// The test's side of the mock transport.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    pending: Option<Responder>,
}

/// The answer to one request, to give now or to hold (a watch or a follow stream that
/// stays open).
pub struct Responder {
    send: SendResponse<Response<Body>>,
    /// Whether the request was a watch.
    pub is_watch: bool,
}

impl Responder {
    /// Answers with a JSON body.
    pub fn respond(self, code: u16, body: Value) {
        self.respond_raw(code, serde_json::to_vec(&body).expect("json"));
    }

    /// Answers with raw bytes (log text, watch event lines).
    pub fn respond_raw(self, code: u16, body: Vec<u8>) {
        self.send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(body))
                .expect("response"),
        );
    }
}

impl ApiServer {
    /// A client and the server that answers it.
    pub fn start() -> (Client, ApiServer) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (
            Client::new(service, "default"),
            ApiServer {
                handle,
                pending: None,
            },
        )
    }

    /// The next request (head and JSON body, `Null` when empty). Fails after 5 s.
    pub async fn next(&mut self) -> (Request<()>, Value) {
        let next = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request()).await;
        let (request, send) = next.expect("the client sent a request within 5 s").expect(
            "the client is alive (the code under test ended early: await its task to see why)",
        );
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.expect("request body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        let is_watch = parts.uri.query().is_some_and(|q| q.contains("watch=true"));
        self.pending = Some(Responder { send, is_watch });
        (Request::from_parts(parts, ()), value)
    }

    /// Answers the last request with a JSON body.
    pub async fn respond(&mut self, code: u16, body: Value) {
        self.respond_raw(code, serde_json::to_vec(&body).expect("json"))
            .await;
    }

    /// Answers the last request with raw bytes (log text, watch event lines).
    pub async fn respond_raw(&mut self, code: u16, body: Vec<u8>) {
        self.take_pending().respond_raw(code, body);
    }

    /// The last request's answer, to give later.
    pub fn take_pending(&mut self) -> Responder {
        self.pending.take().expect("a request to answer")
    }

    /// Answers aggregated discovery (`/apis`, then `/api`) with the kinds this project uses.
    pub async fn answer_discovery(&mut self) {
        for _ in 0..2 {
            let (request, _) = self.next().await;
            let path = request.uri().path().to_owned();
            assert!(
                path == "/apis" || path == "/api",
                "expected discovery, got {path}"
            );
            self.respond(200, discovery_response(&path)).await;
        }
    }

    /// Asserts the client sends nothing more (it has been dropped).
    pub async fn expect_no_more(&mut self) {
        let next = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// A Kubernetes `Status` error body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

fn resource(group: &str, version: &str, kind: &str, plural: &str, scope: &str) -> Value {
    json!({
        "resource": plural,
        "responseKind": {"group": group, "version": version, "kind": kind},
        "scope": scope,
        "singularResource": kind.to_lowercase(),
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    })
}

/// Aggregated discovery documents for `/api` (core) or `/apis` (groups).
pub fn discovery_response(path: &str) -> Value {
    let group = |name: &str, version: &str, resources: Vec<Value>| json!({"metadata": {"name": name}, "versions": [{"version": version, "resources": resources}]});
    let items = if path == "/api" {
        vec![group(
            "",
            "v1",
            vec![
                resource("", "v1", "Namespace", "namespaces", "Cluster"),
                resource("", "v1", "Pod", "pods", "Namespaced"),
                resource("", "v1", "Service", "services", "Namespaced"),
                resource("", "v1", "ServiceAccount", "serviceaccounts", "Namespaced"),
                resource("", "v1", "Event", "events", "Namespaced"),
            ],
        )]
    } else {
        vec![
            group(
                "apps",
                "v1",
                vec![resource(
                    "apps",
                    "v1",
                    "Deployment",
                    "deployments",
                    "Namespaced",
                )],
            ),
            group(
                "networking.istio.io",
                "v1",
                vec![
                    resource(
                        "networking.istio.io",
                        "v1",
                        "VirtualService",
                        "virtualservices",
                        "Namespaced",
                    ),
                    resource(
                        "networking.istio.io",
                        "v1",
                        "DestinationRule",
                        "destinationrules",
                        "Namespaced",
                    ),
                    resource(
                        "networking.istio.io",
                        "v1",
                        "Gateway",
                        "gateways",
                        "Namespaced",
                    ),
                    resource(
                        "networking.istio.io",
                        "v1",
                        "ServiceEntry",
                        "serviceentries",
                        "Namespaced",
                    ),
                ],
            ),
        ]
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

//! A scripted API server for tests (kube-rs's "ApiServerVerifier" pattern): the code under
//! test gets a real `kube::Client` whose transport is a `tower-test` mock; the test takes
//! each request, asserts on it, and answers it. An answer is whole (a JSON body), or an
//! [`OpenStream`] that stays open while the test sends watch events or log lines, as a real
//! server's watch and `follow=true` log do.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Frame;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle, SendResponse};

/// What the scripted server answers with: a whole body, or one fed while it stays open.
type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// The test's side of the mock transport.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<ResponseBody>>,
    pending: Option<Responder>,
}

/// The answer to one request, to give now or to hold (a watch or a follow stream that
/// stays open).
pub struct Responder {
    send: SendResponse<Response<ResponseBody>>,
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
        let body = http_body_util::Full::new(Bytes::from(body)).boxed_unsync();
        self.send.send_response(
            Response::builder()
                .status(code)
                .body(body)
                .expect("response"),
        );
    }

    /// Answers `200` now and keeps the body open: what the test sends through the returned
    /// stream arrives as it is sent, and the answer ends when the stream is dropped.
    pub fn open(self) -> OpenStream {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
        });
        let body = http_body_util::StreamBody::new(chunks).boxed_unsync();
        self.send.send_response(
            Response::builder()
                .status(200)
                .body(body)
                .expect("response"),
        );
        OpenStream { tx }
    }
}

/// A watch or a `follow=true` log answer that stays open until dropped.
pub struct OpenStream {
    tx: mpsc::UnboundedSender<Bytes>,
}

impl OpenStream {
    /// Sends raw bytes (log lines with their timestamps).
    pub fn send(&self, text: &str) {
        // The client may have stopped reading (the code under test finished): nothing to do.
        let _ = self.tx.send(Bytes::from(text.to_owned()));
    }

    /// Sends one watch event line, `{"type": kind, "object": object}`.
    pub fn event(&self, kind: &str, object: &Value) {
        self.send(&format!("{}\n", json!({"type": kind, "object": object})));
    }
}

impl ApiServer {
    /// A client and the server that answers it.
    pub fn start() -> (Client, ApiServer) {
        let (service, handle) = mock::pair::<Request<Body>, Response<ResponseBody>>();
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
        self.try_next().await.expect(
            "the client is alive (the code under test ended early: await its task to see why)",
        )
    }

    /// The next request, or `None` once the client is gone (the code under test finished).
    /// Fails after 5 s.
    pub async fn try_next(&mut self) -> Option<(Request<()>, Value)> {
        let next = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request()).await;
        let (request, send) = next.expect("the client sent a request within 5 s")?;
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
        Some((Request::from_parts(parts, ()), value))
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

    /// Answers the last request with a body that stays open (see [`Responder::open`]).
    pub fn open(&mut self) -> OpenStream {
        self.take_pending().open()
    }

    /// The last request's answer, to give later.
    pub fn take_pending(&mut self) -> Responder {
        self.pending.take().expect("a request to answer")
    }

    /// Answers aggregated discovery (`/apis`, then `/api`) with the kinds this project uses.
    pub async fn answer_discovery(&mut self) {
        self.answer_discovery_with(Vec::new()).await;
    }

    /// Answers aggregated discovery with the project's kinds and the API groups `extra`
    /// (see [`group`]), as a server serves them once their definitions are established.
    pub async fn answer_discovery_with(&mut self, extra: Vec<Value>) {
        for _ in 0..2 {
            let (request, _) = self.next().await;
            let path = request.uri().path().to_owned();
            assert!(
                path == "/apis" || path == "/api",
                "expected discovery, got {path}"
            );
            let mut body = discovery_response(&path);
            if path == "/apis"
                && let Some(items) = body["items"].as_array_mut()
            {
                items.extend(extra.iter().cloned());
            }
            self.respond(200, body).await;
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

/// What a real API server answers a server-side apply with `fieldValidation=Strict` that
/// carries an undeclared field: HTTP 500, no reason, structured-merge-diff's message
/// (apimachinery's structuredmerge.go returns a plain error, which the server turns into a
/// 500; kubernetes issues 122480, 139253). `object` is `namespace/name`, `gvk` as the server
/// prints it (`networking.istio.io/v1, Kind=VirtualService`), `field` with its leading dot.
pub fn strict_validation_failure(object: &str, gvk: &str, field: &str) -> (u16, Value) {
    let message = format!(
        "failed to create typed patch object ({object}; {gvk}): {field}: field not declared in schema"
    );
    (
        500,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "code": 500}),
    )
}

/// One resource of an aggregated discovery group; `scope` is `Namespaced` or `Cluster`.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str, scope: &str) -> Value {
    json!({
        "resource": plural,
        "responseKind": {"group": group, "version": version, "kind": kind},
        "scope": scope,
        "singularResource": kind.to_lowercase(),
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    })
}

/// One API group of aggregated discovery, with one version serving `resources`.
pub fn group(name: &str, version: &str, resources: Vec<Value>) -> Value {
    json!({"metadata": {"name": name}, "versions": [{"version": version, "resources": resources}]})
}

/// Aggregated discovery documents for `/api` (core) or `/apis` (groups).
pub fn discovery_response(path: &str) -> Value {
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
                "apiextensions.k8s.io",
                "v1",
                vec![resource(
                    "apiextensions.k8s.io",
                    "v1",
                    "CustomResourceDefinition",
                    "customresourcedefinitions",
                    "Cluster",
                )],
            ),
            group(
                "rbac.authorization.k8s.io",
                "v1",
                vec![resource(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "ClusterRole",
                    "clusterroles",
                    "Cluster",
                )],
            ),
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

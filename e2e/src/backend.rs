//! Local HTTP workloads for local mode: one per Deployment the manifests route to.
//!
//! A workload running `mendhak/http-https-echo` is emulated closely enough for the log
//! reader: it writes each request to its log as that image does (FIELD-NOTES section 4).
//! Every other workload answers with its own name, as Bookinfo's page names the pod that
//! served it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::mirror_log::{LineParser, MirrorRecords};

/// The image this module emulates.
pub const ECHO_IMAGE: &str = "mendhak/http-https-echo";

/// Errors running a local workload.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Could not bind its port.
    #[error("workload {name}: cannot listen on {addr}: {source}")]
    Bind {
        /// Workload name.
        name: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Could not write its log.
    #[error("workload {name}: cannot write log {path}: {source}")]
    Log {
        /// Workload name.
        name: String,
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A workload's stdout: kept in memory for the suite and in a file for the evidence; every
/// write bumps a counter that readers can await instead of polling.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<String>>,
    file: Arc<Mutex<std::fs::File>>,
    changed: watch::Sender<usize>,
    feed: Arc<Mutex<Option<Feed>>>,
}

/// Where a log's text is parsed to as it is written.
type Feed = (LineParser, Arc<MirrorRecords>);

impl LogBuffer {
    /// A log that also writes to `path`.
    pub fn create(path: &Path) -> std::io::Result<LogBuffer> {
        Ok(LogBuffer {
            inner: Arc::default(),
            file: Arc::new(Mutex::new(std::fs::File::create(path)?)),
            changed: watch::channel(0).0,
            feed: Arc::default(),
        })
    }

    /// Parses everything written from now on into `records`.
    pub fn feed(&self, records: Arc<MirrorRecords>) {
        *self.feed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((LineParser::default(), records));
    }

    /// Appends text (one or more whole lines).
    pub fn append(&self, text: &str) {
        use std::io::Write;
        let len = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.push_str(text);
            inner.len()
        };
        // The file is evidence only; a full disk must not fail the request being logged.
        let _ = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(text.as_bytes());
        if let Some((parser, records)) =
            self.feed.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
        {
            records.add(parser.push(text));
        }
        self.changed.send_replace(len);
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A receiver that sees the log length after each write.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }
}

/// How a workload answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Answers with its name (the served-by of Bookinfo's page).
    Named,
    /// Emulates `mendhak/http-https-echo`.
    Echo(EchoSettings),
}

/// The echo image's settings, from the container's environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoSettings {
    /// `HTTP_PORT` (default 8080), shown in the startup line.
    pub http_port: String,
    /// `HTTPS_PORT` (default 8443), shown in the startup line.
    pub https_port: String,
    /// `LOG_WITHOUT_NEWLINE`: one-line JSON instead of pretty-printed.
    pub compact: bool,
    /// `DISABLE_REQUEST_LOGS=true` drops the access line.
    pub request_logs: bool,
}

/// A running local workload. It can be stopped and started again on the same port, as a
/// Deployment scaled to zero and back keeps its Service.
pub struct Backend {
    name: String,
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    log: LogBuffer,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Backend {
    /// Starts a workload on an ephemeral loopback port.
    pub async fn start(
        name: &str,
        behaviour: Behaviour,
        log_path: &Path,
    ) -> Result<Backend, BackendError> {
        let log = LogBuffer::create(log_path).map_err(|source| BackendError::Log {
            name: name.to_owned(),
            path: log_path.to_owned(),
            source,
        })?;
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BackendError::Bind {
                name: name.to_owned(),
                addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| BackendError::Bind {
            name: name.to_owned(),
            addr,
            source,
        })?;
        let backend = Backend {
            name: name.to_owned(),
            addr,
            behaviour: Arc::new(behaviour),
            log,
            server: Mutex::new(None),
        };
        backend.serve(listener);
        Ok(backend)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log.
    pub fn log(&self) -> &LogBuffer {
        &self.log
    }

    /// Whether it is serving.
    pub fn is_up(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops serving: the port refuses connections and open connections are closed.
    pub fn stop(&self) {
        if let Some(task) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&self) -> Result<(), BackendError> {
        if self.is_up() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| BackendError::Bind {
                name: self.name.clone(),
                addr: self.addr,
                source,
            })?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        if let Behaviour::Echo(settings) = &*self.behaviour {
            self.log.append(&format!(
                "Listening on ports {} for http, and {} for https.\n",
                settings.http_port, settings.https_port
            ));
        }
        let (name, behaviour, log) = (self.name.clone(), self.behaviour.clone(), self.log.clone());
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the accept loop closes them too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let (name, behaviour, log) = (name.clone(), behaviour.clone(), log.clone());
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let (name, behaviour, log) = (name.clone(), behaviour.clone(), log.clone());
                        async move {
                            Ok::<_, hyper::Error>(respond(&name, &behaviour, &log, peer, req).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn respond(
    name: &str,
    behaviour: &Behaviour,
    log: &LogBuffer,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match behaviour {
        Behaviour::Named => {
            // A line per request, as an app's own request log: who asked, tagged how.
            let header = |h: &str| {
                req.headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            log.append(&format!(
                "{} {} 200 user-agent={} end-user={}\n",
                req.method(),
                req.uri().path(),
                header("user-agent"),
                header("end-user")
            ));
            Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(name.to_owned())))
                .unwrap_or_default()
        }
        Behaviour::Echo(settings) => {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let record = echo_record(name, &parts, &body, peer);
            let json = if settings.compact {
                serde_json::to_string(&record).unwrap_or_default()
            } else {
                pretty_four_spaces(&record)
            };
            let mut entry = format!("{json}\n");
            if settings.request_logs {
                entry.push_str(&access_line(&parts, peer, json.len()));
            }
            log.append(&entry);
            Response::builder()
                .header("content-type", "application/json; charset=utf-8")
                .body(Full::new(Bytes::from(json)))
                .unwrap_or_default()
        }
    }
}

/// The request as the echo image describes it, fields in its order.
fn echo_record(
    pod: &str,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        headers.insert(
            name.as_str().to_owned(),
            String::from_utf8_lossy(value.as_bytes()).into(),
        );
    }
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let mut cookies = Map::new();
    for pair in parts
        .headers
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or("")
        .split(';')
    {
        if let Some((k, v)) = pair.trim().split_once('=') {
            cookies.insert(k.to_owned(), v.into());
        }
    }
    let query: Map<String, Value> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    json!({
        "path": parts.uri.path(),
        "headers": headers,
        "method": parts.method.as_str(),
        "body": String::from_utf8_lossy(body),
        "cookies": cookies,
        "fresh": false,
        "hostname": hostname,
        "ip": format!("::ffff:{}", peer.ip()),
        "ips": [],
        "protocol": "http",
        "query": query,
        "subdomains": [],
        "xhr": false,
        "os": {"hostname": pod},
        "connection": {},
    })
}

fn pretty_four_spaces(value: &Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// Express/morgan's "combined" format, as the image prints it after each request.
fn access_line(parts: &hyper::http::request::Parts, peer: SocketAddr, length: usize) -> String {
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000");
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    format!(
        "::ffff:{} - - [{now}] \"{} {target} HTTP/1.1\" 200 {length} \"{}\" \"{}\"\n",
        peer.ip(),
        parts.method,
        header("referer"),
        header("user-agent"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, host: &str, ua: &str) -> Result<String, reqwest::Error> {
        reqwest::Client::new()
            .get(format!("http://{addr}/reviews/0?x=1"))
            .header("host", host)
            .header("user-agent", ua)
            .header("end-user", "tester")
            .send()
            .await?
            .text()
            .await
    }

    #[tokio::test]
    async fn named_workload_answers_with_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Backend::start("reviews-v2", Behaviour::Named, &dir.path().join("l"))
            .await
            .expect("starts");
        assert_eq!(
            get(b.addr(), "reviews:9080", "t").await.expect("answers"),
            "reviews-v2"
        );
    }

    #[tokio::test]
    async fn echo_logs_pretty_json_then_the_access_line_and_can_be_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = EchoSettings {
            http_port: "9080".into(),
            https_port: "8443".into(),
            compact: false,
            request_logs: true,
        };
        let b = Backend::start("mirror", Behaviour::Echo(settings), &dir.path().join("l"))
            .await
            .expect("starts");
        get(b.addr(), "reviews-shadow:9080", "tag-1")
            .await
            .expect("answers");
        let log = b.log().text();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(
            lines[0],
            "Listening on ports 9080 for http, and 8443 for https."
        );
        assert_eq!(lines[1], "{");
        assert_eq!(lines[2], "    \"path\": \"/reviews/0\",");
        assert!(log.contains("\"hostname\": \"reviews-shadow\""), "{log}");
        assert!(log.contains("        \"end-user\": \"tester\""), "{log}");
        let access = lines.last().expect("access line");
        assert!(
            access.contains("\"GET /reviews/0?x=1 HTTP/1.1\" 200")
                && access.ends_with("\"-\" \"tag-1\""),
            "{access}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("l")).expect("file"),
            log
        );

        b.stop();
        assert!(
            get(b.addr(), "m", "t").await.is_err(),
            "stopped workload refuses connections"
        );
        b.restart().await.expect("restarts on the same port");
        get(b.addr(), "m", "tag-2").await.expect("answers again");
    }
}

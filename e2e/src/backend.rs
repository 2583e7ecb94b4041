//! Local HTTP workloads for local mode: one per Deployment the manifests route to.
//!
//! A workload running `mendhak/http-https-echo` is emulated closely enough for the log
//! reader: it writes each request to its log as that image does (`index.js` of
//! github.com/mendhak/docker-http-https-echo, the image's source, logs `JSON.stringify` of
//! the request's echo).
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
use tokio::task::{JoinHandle, JoinSet};

use k8s_openapi::api::core::v1::Container;

use crate::bookinfo::{self, Sidecar};
use crate::mirror_log::{LineParser, MirrorRecords};
use crate::topology::env_value;

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

/// A workload's stdout: kept in memory for the suite and in a file for the evidence, and
/// parsed as it is written when it is the mirror's ([`LogBuffer::feed`]).
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<String>>,
    file: Arc<Mutex<std::fs::File>>,
    feed: Arc<Mutex<Option<Feed>>>,
    /// The file is in the CRI log format a kubelet serves `pods/log` from (kwok reads it).
    cri: bool,
}

/// Where a log's text is parsed to as it is written.
type Feed = (LineParser, Arc<MirrorRecords>);

impl LogBuffer {
    /// A log that also writes to `path`.
    pub fn create(path: &Path) -> std::io::Result<LogBuffer> {
        Ok(LogBuffer {
            inner: Arc::default(),
            file: Arc::new(Mutex::new(std::fs::File::create(path)?)),
            feed: Arc::default(),
            cri: false,
        })
    }

    /// A log whose file is a container log in the CRI format (`<RFC 3339 time> stdout F
    /// <line>`, what a kubelet, and kwok's `Logs`, serve `pods/log` from).
    /// An existing file is appended to, as a container's log survives its reader.
    pub fn create_cri(path: &Path) -> std::io::Result<LogBuffer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogBuffer {
            inner: Arc::default(),
            file: Arc::new(Mutex::new(file)),
            feed: Arc::default(),
            cri: true,
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
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(text);
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // Stamped under the file's lock: a log's timestamps never go back, which readers
        // of `pods/log` rely on to tell a reopened stream's repeated lines from new ones.
        let written = if self.cri {
            cri_lines(&k8s_openapi::jiff::Timestamp::now().to_string(), text)
        } else {
            text.to_owned()
        };
        // The file is evidence only; a full disk must not fail the request being logged.
        let _ = file.write_all(written.as_bytes());
        drop(file);
        if let Some((parser, records)) =
            self.feed.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
        {
            records.add(parser.push(text));
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `text` (whole lines) as CRI log lines stamped `time`: kubelet's format, parsed by
/// `k8s.io/cri-client/pkg/logs` (`parseCRILog`: time, stream, `F` for a full line, content).
fn cri_lines(time: &str, text: &str) -> String {
    text.lines()
        .map(|line| format!("{time} stdout F {line}\n"))
        .collect()
}

/// How a workload answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Answers with its name (a workload the manifests do not say more about).
    Named,
    /// Emulates `mendhak/http-https-echo`.
    Echo(EchoSettings),
    /// Bookinfo's productpage, calling out through its sidecar.
    Productpage(Sidecar),
    /// Bookinfo's reviews, naming its pod.
    Reviews,
    /// Bookinfo's details or ratings.
    BookinfoData,
}

impl Behaviour {
    /// How a pod's (or Deployment's) local stand-in answers, by its containers' images: the
    /// echo image and Bookinfo's services are emulated (see `bookinfo`), anything else
    /// answers with its pod's name.
    pub fn of(containers: &[Container], sidecar: &Sidecar) -> Behaviour {
        let has_image = |part: &str| {
            containers
                .iter()
                .any(|c| c.image.as_deref().is_some_and(|i| i.contains(part)))
        };
        if has_image("/examples-bookinfo-productpage") {
            return Behaviour::Productpage(sidecar.clone());
        }
        if has_image("/examples-bookinfo-reviews") {
            return Behaviour::Reviews;
        }
        if has_image("/examples-bookinfo-details") || has_image("/examples-bookinfo-ratings") {
            return Behaviour::BookinfoData;
        }
        let echo = containers
            .iter()
            .find(|c| c.image.as_deref().is_some_and(|i| i.contains(ECHO_IMAGE)));
        match echo {
            Some(c) => Behaviour::Echo(EchoSettings {
                http_port: env_value(c, "HTTP_PORT").unwrap_or("8080").to_owned(),
                https_port: env_value(c, "HTTPS_PORT").unwrap_or("8443").to_owned(),
                // Node's `if (process.env.LOG_WITHOUT_NEWLINE)`: any non-empty value, "false"
                // included.
                compact: env_value(c, "LOG_WITHOUT_NEWLINE").is_some_and(|v| !v.is_empty()),
                request_logs: env_value(c, "DISABLE_REQUEST_LOGS") != Some("true"),
            }),
            None => Behaviour::Named,
        }
    }
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
    /// Its pod-like name (`HOSTNAME`), e.g. `reviews-v2-5d9c7f7c8b-x2x9p`.
    pod: String,
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
        Backend::start_as(
            name,
            &pod_name(name),
            ([127, 0, 0, 1], 0).into(),
            behaviour,
            log,
        )
        .await
    }

    /// Starts a workload as the pod `pod`, listening on `addr` (a pod's address and port)
    /// and logging to `log`.
    pub async fn start_as(
        name: &str,
        pod: &str,
        addr: SocketAddr,
        behaviour: Behaviour,
        log: LogBuffer,
    ) -> Result<Backend, BackendError> {
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
            pod: pod.to_owned(),
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

    /// Its pod-like name.
    pub fn pod(&self) -> &str {
        &self.pod
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
        let (name, behaviour, log) = (self.pod.clone(), self.behaviour.clone(), self.log.clone());
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
    pod: &str,
    behaviour: &Behaviour,
    log: &LogBuffer,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path();
    let response = match behaviour {
        Behaviour::Named => Response::builder()
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(pod.to_owned())))
            .unwrap_or_default(),
        Behaviour::Reviews => bookinfo::reviews(pod, path),
        Behaviour::BookinfoData => bookinfo::details_or_ratings(path),
        Behaviour::Productpage(sidecar) => match (parts.method.as_str(), path) {
            ("POST", "/login") => bookinfo::login(&parts.headers, &body),
            ("GET", "/logout") => bookinfo::logout(&parts.headers),
            ("GET", "/productpage") => bookinfo::productpage(sidecar, &parts.headers).await,
            _ => Response::builder()
                .status(404)
                .body(Full::new(Bytes::from_static(b"not found")))
                .unwrap_or_default(),
        },
        Behaviour::Echo(settings) => {
            let record = echo_record(pod, &parts, &body, peer);
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
            return Response::builder()
                .header("content-type", "application/json; charset=utf-8")
                .body(Full::new(Bytes::from(json)))
                .unwrap_or_default();
        }
    };
    // A line per request, as an app's own request log: who asked, tagged how.
    log.append(&bookinfo::log_line(
        parts.method.as_str(),
        path,
        response.status().as_u16(),
        &parts.headers,
    ));
    response
}

/// A pod-like name for a workload: `<deployment>-<replica set hash>-<pod suffix>`, as
/// `kubectl get pods` shows them (and as the served-by line of the page names them).
pub fn pod_name(deployment: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(deployment.as_bytes());
    let bits = hasher.finish();
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|i| ALPHABET[((bits >> (i * 5)) % ALPHABET.len() as u64) as usize] as char)
        .collect();
    format!(
        "{deployment}-{:010x}-{suffix}",
        (bits >> 24) & 0xff_ffff_ffff
    )
}

/// The request as the echo image describes it, fields in its order (the image's `index.js`,
/// tag 41: `JSON.stringify` of an object built as path, headers, method, body, cookies,
/// fresh, hostname, ip, ips, protocol, query, signedCookies, subdomains, xhr, os,
/// connection). Header values are Node's: repeated headers joined with `, `, cookies with
/// `; `. `ip`, `ips` and `hostname` are Express's with the image's
/// `trust proxy` of loopback, link-local and unique-local addresses.
fn echo_record(
    pod: &str,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
) -> Value {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let joiner = if name == "cookie" { "; " } else { ", " };
        headers.insert(name.as_str().to_owned(), values.join(joiner).into());
    }
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let peer_ip = match peer.ip() {
        std::net::IpAddr::V4(v4) => format!("::ffff:{v4}"),
        v6 => v6.to_string(),
    };
    let (ip, ips) = express_ip(&peer_ip, &header("x-forwarded-for"));
    let forwarded_host = header("x-forwarded-host");
    let host = if !forwarded_host.is_empty() && is_trusted_proxy(&peer_ip) {
        forwarded_host
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    } else {
        header("host")
    };
    let hostname = strip_port(&host);
    let mut cookies = Map::new();
    for pair in header("cookie").split(';') {
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
        "ip": ip,
        "ips": ips,
        "protocol": "http",
        "query": query,
        "signedCookies": {},
        "subdomains": [],
        "xhr": false,
        "os": {"hostname": pod},
        "connection": {},
    })
}

/// Express's `req.ip` and `req.ips` (proxy-addr): walk from the socket address through
/// `X-Forwarded-For` right to left while the address is a trusted proxy; `ip` is where the
/// walk stops, `ips` the forwarded addresses walked, farthest first.
fn express_ip(peer: &str, forwarded_for: &str) -> (String, Vec<String>) {
    let forwarded: Vec<String> = forwarded_for
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let mut walked = vec![peer.to_owned()];
    for addr in forwarded.iter().rev() {
        if !is_trusted_proxy(walked.last().map_or("", String::as_str)) {
            break;
        }
        walked.push(addr.clone());
    }
    let ip = walked.last().cloned().unwrap_or_default();
    let ips = walked[1..].iter().rev().cloned().collect();
    (ip, ips)
}

/// The image's `trust proxy`: loopback, link-local and unique-local (private) addresses.
fn is_trusted_proxy(addr: &str) -> bool {
    let addr = addr.trim_start_matches("::ffff:");
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback() || v4.is_link_local() || v4.is_private(),
        Ok(std::net::IpAddr::V6(v6)) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xffc0) == 0xfe80 || (first & 0xfe00) == 0xfc00
        }
        Err(_) => false,
    }
}

/// A host without its port (`[::1]:80` -> `[::1]`), as Express's `req.hostname`.
fn strip_port(host: &str) -> String {
    let end = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.find(':').unwrap_or(host.len())
    };
    host[..end].to_owned()
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
mod tests;

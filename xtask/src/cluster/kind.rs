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
pub mod fakes {
    //! Fake `docker`, `kind`, `istioctl` and `mirror-e2e` executables that append their
    //! arguments to a log and behave as the `FAKE_*` variables say.

    use super::*;

    pub struct Fakes {
        pub dir: tempfile::TempDir,
        pub sh: Shell,
    }

    /// One script for the three tools. kind's part replays kind v0.32.0: `get clusters`
    /// lists the clusters or says "No kind clusters found." on stderr
    /// (pkg/cmd/kind/get/clusters); `create cluster` of a name that exists fails at once
    /// with `node(s) already exist for a cluster with the name "<name>"`
    /// (pkg/cluster/internal/create/create.go), and a failed create leaves no cluster (it
    /// deletes its nodes unless --retain; `FAKE_KIND_APPEARS_ON_FAILURE` stands for another
    /// run creating the name right after). `FAKE_BLOCK="<tool> <verb>"` makes that call say
    /// so on the fifo `$FAKE_DIR/started` and then block until it is killed.
    const SCRIPT: &str = r#"#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >> "$FAKE_DIR/calls.log"
name=mirror-e2e
prev=""
for a in "$@"; do [ "$prev" = "--name" ] && name="$a"; prev="$a"; done
clusters() { cat "$FAKE_DIR/clusters" 2>/dev/null; [ -z "$FAKE_KIND_CLUSTERS" ] || echo "$FAKE_KIND_CLUSTERS"; }
case "$tool $1" in "${FAKE_BLOCK:-none}"|"${FAKE_BLOCK:-none} "*)
  [ -n "$FAKE_BLOCK" ] && { echo started > "$FAKE_DIR/started"; exec sleep 600; } ;;
esac
case "$tool $1 $2" in
  "docker info "*) [ -z "$FAKE_DOCKER_DOWN" ] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; } ;;
  "kind create cluster")
    if clusters | grep -qx "$name"; then
      echo "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"$name\"" >&2; exit 1
    fi
    n=$(cat "$FAKE_DIR/creates" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/creates"
    if [ "$n" -le "${FAKE_KIND_CREATE_FAILS:-0}" ]; then
      [ -z "$FAKE_KIND_APPEARS_ON_FAILURE" ] || echo "$name" >> "$FAKE_DIR/clusters"
      echo "ERROR: failed to create cluster: failed to init node with kubeadm" >&2; exit 1
    fi
    echo "$name" >> "$FAKE_DIR/clusters" ;;
  "kind get clusters") c=$(clusters); if [ -z "$c" ]; then echo "No kind clusters found." >&2; else echo "$c"; fi ;;
  "kind get kubeconfig") echo "apiVersion: v1" ;;
  "kind delete cluster") echo "Deleting cluster \"$name\" ..." >&2
    grep -vx "$name" "$FAKE_DIR/clusters" > "$FAKE_DIR/clusters.new" 2>/dev/null; mv "$FAKE_DIR/clusters.new" "$FAKE_DIR/clusters" 2>/dev/null; true ;;
  "istioctl install "*) [ -z "$FAKE_ISTIOCTL_FAILS" ] || { echo "Error: failed to install" >&2; exit 1; } ;;
  "istioctl proxy-config routes") echo '[{"name": "9080"}]' ;;
  "mirror-e2e cluster "*) [ -z "$FAKE_SUITE_FAILS" ] || { echo "2 passed, 1 failed"; exit 1; }
    case " $* " in *" --istio $FAKE_SUITE_FAILS_ON "*) echo "6 passed, 1 failed"; exit 1 ;; esac ;;
esac
"#;

    impl Fakes {
        pub fn new() -> Fakes {
            let dir = tempfile::tempdir().expect("tempdir");
            for tool in ["docker", "kind", "istioctl", "mirror-e2e"] {
                let path = dir.path().join(tool);
                std::fs::write(&path, SCRIPT).expect("write fake");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .expect("chmod fake");
                }
            }
            let sh = Shell::new().expect("shell");
            let path = format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            sh.set_var("PATH", path);
            sh.set_var("FAKE_DIR", dir.path());
            Fakes { dir, sh }
        }

        pub fn bin(&self, tool: &str) -> PathBuf {
            self.dir.path().join(tool)
        }

        /// Makes `call` (e.g. `kind create`) block until killed, and triggers `interrupt`
        /// as soon as it has started: Ctrl-C in the middle of that call.
        pub fn interrupt_during(
            &self,
            call: &str,
            interrupt: &Interrupt,
        ) -> std::thread::JoinHandle<()> {
            let fifo = self.dir.path().join("started");
            cmd!(self.sh, "mkfifo {fifo}").run().expect("mkfifo");
            self.sh.set_var("FAKE_BLOCK", call);
            let interrupt = interrupt.clone();
            std::thread::spawn(move || {
                // Returns once the fake has written to the fifo, i.e. it has started.
                std::fs::read_to_string(fifo).expect("read the fifo");
                interrupt.trigger();
            })
        }

        /// Fails the test, listing every call, if any `kind delete` ran.
        pub fn assert_deleted_nothing(&self) {
            let calls = self.calls();
            assert!(
                !calls.iter().any(|c| c.starts_with("kind delete")),
                "{calls:?}"
            );
        }

        /// Every call, one line each, with the tool's name and its arguments.
        pub fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls.log"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.replace(&self.dir.path().display().to_string(), "<dir>"))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::Fakes;
    use super::*;
    use crate::interrupt::{Interrupt, is_interrupted};

    fn kind(f: &Fakes) -> Kind<'_> {
        Kind::new(
            &f.sh,
            f.bin("kind"),
            "mirror-e2e",
            f.dir.path().join("kubeconfig"),
            &Interrupt::default(),
        )
    }

    fn short(calls: Vec<String>) -> Vec<String> {
        calls
            .iter()
            .map(|c| c.split(" --").next().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn docker_down_is_reported_before_anything_else() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_DOCKER_DOWN", "1");
        let err = docker_is_running(&f.sh, &Interrupt::default())
            .expect_err("docker down")
            .to_string();
        assert!(err.contains("needs a running Docker engine"), "{err}");
        assert_names_both_ways_without_docker(&err);
        assert_eq!(f.calls(), ["docker --version", "docker info"]);
    }

    /// Issue 24 §4: without Docker, both ways on are named, each a command that runs.
    fn assert_names_both_ways_without_docker(err: &str) {
        for way in [
            "`cargo xtask e2e --cluster kwok`",
            "`cargo xtask e2e --local`",
        ] {
            assert!(err.contains(way), "{way} is not named: {err}");
        }
    }

    #[test]
    fn docker_missing_is_reported() {
        let f = Fakes::new();
        f.sh.set_var("PATH", "/nonexistent");
        let err = docker_is_running(&f.sh, &Interrupt::default())
            .expect_err("no docker")
            .to_string();
        assert!(err.contains("no `docker` command was found"), "{err}");
        assert_names_both_ways_without_docker(&err);
    }

    #[test]
    fn ctrl_c_during_the_docker_check_ends_it_as_an_interruption() {
        // An engine that does not answer makes `docker info` hang; Ctrl-C must end it, and
        // say "interrupted" (exit 130), not "Docker is down".
        let f = Fakes::new();
        let interrupt = Interrupt::default();
        let watcher = f.interrupt_during("docker info", &interrupt);
        let start = std::time::Instant::now();
        let err = docker_is_running(&f.sh, &interrupt).expect_err("interrupted");
        watcher.join().expect("watcher");
        assert!(is_interrupted(&err), "{err:#}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn create_uses_the_private_kubeconfig_and_pinned_image() {
        let f = Fakes::new();
        let attempts = kind(&f)
            .create(
                Path::new("manifests/kind/cluster.yaml"),
                "kindest/node:v1.36.1@sha256:ab",
            )
            .expect("created");
        assert_eq!(attempts, 1);
        assert_eq!(
            f.calls(),
            [
                "kind get clusters",
                "kind create cluster --name mirror-e2e --config manifests/kind/cluster.yaml --image kindest/node:v1.36.1@sha256:ab --kubeconfig <dir>/kubeconfig --wait 180s"
            ]
        );
    }

    #[test]
    fn create_failing_twice_retries_after_kinds_own_cleanup_then_succeeds() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CREATE_FAILS", "2");
        let attempts = kind(&f)
            .create(Path::new("c.yaml"), "img@sha256:ab")
            .expect("third attempt");
        assert_eq!(attempts, 3);
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "kind get clusters",
                "kind create cluster",
                "kind get clusters",
                "kind create cluster"
            ]
        );
    }

    #[test]
    fn a_cluster_that_appears_after_a_failed_attempt_is_left_alone() {
        // Our attempt fails (kind removes it); meanwhile another run creates a cluster of
        // the name. Nothing proves it is ours: no delete, no retry over it.
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CREATE_FAILS", "1");
        f.sh.set_var("FAKE_KIND_APPEARS_ON_FAILURE", "1");
        let k = kind(&f);
        let err = format!(
            "{:#}",
            k.create(Path::new("c.yaml"), "i").expect_err("stops")
        );
        assert!(err.contains("exists now; it is left as it is"), "{err}");
        assert!(!k.started.get(), "nothing of this run's to delete");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "kind get clusters"
            ]
        );
    }

    #[test]
    fn create_gives_up_after_the_last_attempt() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CREATE_FAILS", "99");
        let err = format!(
            "{:#}",
            kind(&f)
                .create(Path::new("c.yaml"), "i")
                .expect_err("gives up")
        );
        assert!(
            err.starts_with("create kind cluster mirror-e2e (attempt 5 of 5)")
                && err.contains("it said:\n  ERROR: failed to create cluster: failed to init node"),
            "{err}"
        );
        assert_eq!(
            f.calls()
                .iter()
                .filter(|c| c.starts_with("kind create"))
                .count(),
            5
        );
    }

    #[test]
    fn a_cluster_that_exists_before_the_run_is_never_deleted() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let err = format!(
            "{:#}",
            kind(&f)
                .create(Path::new("c.yaml"), "i")
                .expect_err("in the way")
        );
        assert!(
            err.contains("exists already")
                && err.contains("--reuse")
                && err.contains("`kind delete cluster --name mirror-e2e`"),
            "{err}"
        );
        assert_eq!(
            f.calls(),
            ["kind get clusters"],
            "nothing created, nothing deleted"
        );
    }

    #[test]
    fn a_cluster_another_run_creates_meanwhile_is_not_retried_or_deleted() {
        let f = Fakes::new();
        let k = kind(&f);
        // The look finds nothing; by the time kind creates, another run's cluster is there.
        let listed = k.exists().expect("listed");
        assert!(!listed);
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let err = format!(
            "{:#}",
            k.create(Path::new("c.yaml"), "i").expect_err("taken")
        );
        assert!(err.contains("exists already"), "{err}");
        f.assert_deleted_nothing();
    }

    #[test]
    fn the_fake_replays_kinds_already_exists_failure() {
        // What `create` relies on when a parallel run wins the race: kind's own words.
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let bin = f.bin("kind");
        let out = cmd!(f.sh, "{bin} create cluster --name mirror-e2e")
            .quiet()
            .ignore_status()
            .output()
            .expect("ran");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"mirror-e2e\"\n"
        );
    }

    #[test]
    fn ctrl_c_during_create_ends_kind_and_retries_nothing() {
        let f = Fakes::new();
        let k = kind(&f);
        let watcher = f.interrupt_during("kind create", &k.interrupt);
        let start = std::time::Instant::now();
        let err = k.create(Path::new("c.yaml"), "i").expect_err("interrupted");
        watcher.join().expect("watcher");
        assert!(is_interrupted(&err), "{err:#}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert!(k.started.get(), "a half-created cluster is this run's");
        assert_eq!(
            short(f.calls()),
            ["kind get clusters", "kind create cluster"]
        );
    }

    #[test]
    fn ctrl_c_before_create_starts_nothing_and_claims_nothing() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let k = kind(&f);
        k.interrupt.trigger();
        let err = k.create(Path::new("c.yaml"), "i").expect_err("interrupted");
        assert!(is_interrupted(&err), "{err:#}");
        assert!(!k.started.get());
        assert!(f.calls().is_empty(), "{:?}", f.calls());
    }

    #[test]
    fn reuse_finds_the_cluster_and_writes_a_private_kubeconfig() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "other\nmirror-e2e");
        let k = kind(&f);
        assert!(k.exists().expect("listed"));
        k.write_kubeconfig().expect("written");
        assert_eq!(
            std::fs::read_to_string(&k.kubeconfig).expect("kubeconfig"),
            "apiVersion: v1"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&k.kubeconfig)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            f.calls(),
            ["kind get clusters", "kind get kubeconfig --name mirror-e2e"]
        );
    }

    #[test]
    fn istioctl_targets_the_given_cluster_only() {
        let f = Fakes::new();
        let istioctl = Istioctl {
            sh: &f.sh,
            bin: f.bin("istioctl"),
            kubeconfig: Some(PathBuf::from("/k/config")),
            context: Some("kind-mirror-e2e".into()),
            hub: Some("gcr.io/istio-release".into()),
            interrupt: Interrupt::default(),
        };
        istioctl
            .install(Path::new("manifests/istio/operator.yaml"))
            .expect("installed");
        let out = f.dir.path().join("routes.json");
        istioctl.productpage_routes("test", &out).expect("routes");
        assert_eq!(
            f.calls(),
            [
                "istioctl install -y --kubeconfig /k/config --context kind-mirror-e2e -f manifests/istio/operator.yaml --set hub=gcr.io/istio-release",
                "istioctl proxy-config routes deploy/productpage-v1 -n test -o json --kubeconfig /k/config --context kind-mirror-e2e"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out).expect("routes"),
            r#"[{"name": "9080"}]"#
        );
    }
}

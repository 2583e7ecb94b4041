//! The kind cluster and Istio installation of cluster mode, through the `kind`, `istioctl`
//! and `docker` command lines.
//!
//! The user's kubeconfig is never touched: kind writes the cluster's credentials to a private
//! file, and every command is pointed at it explicitly.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// How often `kind create cluster` is tried, as Istio's CI does on kind.
pub const CREATE_ATTEMPTS: u32 = 5;

/// kind needs a running Docker engine: say so before anything is created.
pub fn docker_is_running(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "docker --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        bail!(
            "cluster mode needs Docker for kind, and no `docker` command was found; install Docker, or run `cargo xtask e2e --local`"
        );
    }
    // `docker info` exits non-zero when no engine answers; a client alone is not enough.
    match cmd!(sh, "docker info")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
    {
        Ok(()) => Ok(()),
        Err(_) => bail!(
            "cluster mode needs a running Docker engine for kind, and `docker info` reached none; start Docker (or check DOCKER_HOST), or run `cargo xtask e2e --local`"
        ),
    }
}

/// One kind cluster.
pub struct Kind<'a> {
    pub sh: &'a Shell,
    pub bin: PathBuf,
    pub name: String,
    /// The private kubeconfig kind writes the cluster's credentials to.
    pub kubeconfig: PathBuf,
}

impl Kind<'_> {
    /// Whether a cluster of this name exists.
    pub fn exists(&self) -> anyhow::Result<bool> {
        let (bin, sh) = (&self.bin, self.sh);
        let clusters = cmd!(sh, "{bin} get clusters")
            .read()
            .context("list kind clusters")?;
        Ok(clusters.lines().any(|l| l.trim() == self.name))
    }

    /// Creates the cluster, retrying a failed creation after deleting what it left.
    /// Returns the attempts it took.
    pub fn create(&self, config: &Path, image: &str) -> anyhow::Result<u32> {
        let (bin, sh, name, kubeconfig) = (&self.bin, self.sh, &self.name, &self.kubeconfig);
        for attempt in 1..=CREATE_ATTEMPTS {
            let created = cmd!(sh, "{bin} create cluster --name {name} --config {config} --image {image} --kubeconfig {kubeconfig} --wait 180s").run();
            match created {
                Ok(()) => return Ok(attempt),
                Err(e) if attempt < CREATE_ATTEMPTS => {
                    eprintln!(
                        "kind create cluster failed (attempt {attempt} of {CREATE_ATTEMPTS}): {e}; deleting what it left and retrying"
                    );
                    self.delete()
                        .context("delete the partial cluster before retrying")?;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("create kind cluster {name} ({CREATE_ATTEMPTS} attempts)")
                    });
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Writes an existing cluster's credentials to the private kubeconfig.
    pub fn write_kubeconfig(&self) -> anyhow::Result<()> {
        let (bin, sh, name) = (&self.bin, self.sh, &self.name);
        let text = cmd!(sh, "{bin} get kubeconfig --name {name}")
            .read()
            .context("read the kind cluster's kubeconfig")?;
        write_private(&self.kubeconfig, &text)
    }

    /// `kind export logs` into `dir`.
    pub fn export_logs(&self, dir: &Path) -> anyhow::Result<()> {
        let (bin, sh, name) = (&self.bin, self.sh, &self.name);
        cmd!(sh, "{bin} export logs {dir} --name {name}")
            .run()
            .context("export kind logs")
    }

    /// Deletes the cluster.
    pub fn delete(&self) -> anyhow::Result<()> {
        let (bin, sh, name, kubeconfig) = (&self.bin, self.sh, &self.name, &self.kubeconfig);
        cmd!(
            sh,
            "{bin} delete cluster --name {name} --kubeconfig {kubeconfig}"
        )
        .run()
        .context("delete kind cluster")
    }
}

/// istioctl against one cluster.
pub struct Istioctl<'a> {
    pub sh: &'a Shell,
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
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
        cmd!(sh, "{bin} install -y {target...} -f {operator}")
            .run()
            .context("install istio")
    }

    /// The Envoy routes of productpage's sidecar, for evidence.
    pub fn productpage_routes(&self, namespace: &str, out: &Path) -> anyhow::Result<()> {
        let (bin, sh, target) = (&self.bin, self.sh, self.target());
        let json = cmd!(
            sh,
            "{bin} proxy-config routes deploy/productpage-v1 -n {namespace} -o json {target...}"
        )
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
    //! Fake `docker`, `kind` and `istioctl` executables that append their arguments to a log
    //! and behave as the `FAKE_*` variables say.

    use super::*;

    pub struct Fakes {
        pub dir: tempfile::TempDir,
        pub sh: Shell,
    }

    const SCRIPT: &str = r#"#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >> "$FAKE_DIR/calls.log"
case "$tool $1 $2" in
  "docker info "*) [ -z "$FAKE_DOCKER_DOWN" ] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; } ;;
  "kind create cluster")
    n=$(cat "$FAKE_DIR/creates" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/creates"
    if [ "$n" -le "${FAKE_KIND_CREATE_FAILS:-0}" ]; then echo "ERROR: failed to create cluster" >&2; exit 1; fi ;;
  "kind get clusters") [ -z "$FAKE_KIND_CLUSTERS" ] || echo "$FAKE_KIND_CLUSTERS" ;;
  "kind get kubeconfig") echo "apiVersion: v1" ;;
  "istioctl install "*) [ -z "$FAKE_ISTIOCTL_FAILS" ] || { echo "Error: failed to install" >&2; exit 1; } ;;
  "istioctl proxy-config routes") echo '[{"name": "9080"}]' ;;
esac
"#;

    impl Fakes {
        pub fn new() -> Fakes {
            let dir = tempfile::tempdir().expect("tempdir");
            for tool in ["docker", "kind", "istioctl"] {
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

    fn kind(f: &Fakes) -> Kind<'_> {
        Kind {
            sh: &f.sh,
            bin: f.bin("kind"),
            name: "mirror-e2e".into(),
            kubeconfig: f.dir.path().join("kubeconfig"),
        }
    }

    #[test]
    fn docker_down_is_reported_before_anything_else() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_DOCKER_DOWN", "1");
        let err = docker_is_running(&f.sh)
            .expect_err("docker down")
            .to_string();
        assert!(
            err.contains("needs a running Docker engine") && err.contains("--local"),
            "{err}"
        );
        assert_eq!(f.calls(), ["docker --version", "docker info"]);
    }

    #[test]
    fn docker_missing_is_reported() {
        let f = Fakes::new();
        f.sh.set_var("PATH", "/nonexistent");
        let err = docker_is_running(&f.sh).expect_err("no docker").to_string();
        assert!(err.contains("no `docker` command was found"), "{err}");
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
                "kind create cluster --name mirror-e2e --config manifests/kind/cluster.yaml --image kindest/node:v1.36.1@sha256:ab --kubeconfig <dir>/kubeconfig --wait 180s"
            ]
        );
    }

    #[test]
    fn create_failing_twice_deletes_and_retries_then_succeeds() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CREATE_FAILS", "2");
        let attempts = kind(&f)
            .create(Path::new("c.yaml"), "img@sha256:ab")
            .expect("third attempt");
        assert_eq!(attempts, 3);
        let calls: Vec<String> = f
            .calls()
            .iter()
            .map(|c| c.split(" --").next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(
            calls,
            [
                "kind create cluster",
                "kind delete cluster",
                "kind create cluster",
                "kind delete cluster",
                "kind create cluster"
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
            err.starts_with("create kind cluster mirror-e2e (5 attempts)"),
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
        };
        istioctl
            .install(Path::new("manifests/istio/operator.yaml"))
            .expect("installed");
        let out = f.dir.path().join("routes.json");
        istioctl.productpage_routes("test", &out).expect("routes");
        assert_eq!(
            f.calls(),
            [
                "istioctl install -y --kubeconfig /k/config --context kind-mirror-e2e -f manifests/istio/operator.yaml",
                "istioctl proxy-config routes deploy/productpage-v1 -n test -o json --kubeconfig /k/config --context kind-mirror-e2e"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out).expect("routes"),
            r#"[{"name": "9080"}]"#
        );
    }
}

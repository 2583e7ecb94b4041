//! The control plane's binaries, built from pinned Go modules into the tool cache.
//!
//! No release site is reachable from every machine this runs on (air-gapped CI, this
//! project's own), but the Go module proxy is. Each wrapper module next to this file
//! (`kubernetes/`, `etcd/`, `kwok/`, `helm/`, `istio-<minor>/`) requires one upstream module at its pinned version;
//! its `go.sum` is the lock, and `-mod=readonly` makes the go command refuse anything the
//! lock does not name. A build goes to a fresh directory and is renamed into place, so an
//! interrupted or failed build leaves nothing a later run could mistake for a binary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::interrupt::{Interrupt, Output};
use crate::paths;

/// One wrapper module and the binaries built from it.
pub struct GoBuild {
    /// The wrapper's directory under `xtask/src/cluster/kwok/`, also the cache name.
    pub module: &'static str,
    /// The upstream module and version the wrapper pins (what `tools` shows).
    pub upstream: &'static str,
    pub version: &'static str,
    /// Binary name and the package it is built from.
    pub binaries: &'static [(&'static str, &'static str)],
    /// Variables set at link time (`-X package.var=value`).
    pub link_vars: &'static [(&'static str, &'static str)],
}

/// The Kubernetes release the control plane runs: kind v0.32.0's default node image
/// (kindest/node:v1.36.1), so `--cluster kwok` and `--cluster kind` run one version.
pub const KUBERNETES: GoBuild = GoBuild {
    module: "kubernetes",
    upstream: "k8s.io/kubernetes",
    version: "v1.36.1",
    binaries: &[
        ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
        (
            "kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
        ),
        ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ],
    // Without these the binaries say v0.0.0-master (hack/lib/version.sh sets the same).
    link_vars: &[
        ("k8s.io/component-base/version.gitVersion", "v1.36.1"),
        ("k8s.io/component-base/version.gitMajor", "1"),
        ("k8s.io/component-base/version.gitMinor", "36"),
        ("k8s.io/component-base/version.gitTreeState", "clean"),
    ],
};

/// etcd: the version k8s.io/kubernetes v1.36.1's go.mod pins for its etcd client.
pub const ETCD: GoBuild = GoBuild {
    module: "etcd",
    upstream: "go.etcd.io/etcd/server/v3",
    version: "v3.6.8",
    binaries: &[("etcd", "mirror-e2e/etcd")],
    link_vars: &[],
};

/// kwok: simulates nodes and pods with its upstream stages (built against Kubernetes
/// v0.36.1 libraries, the control plane's own).
pub const KWOK: GoBuild = GoBuild {
    module: "kwok",
    upstream: "sigs.k8s.io/kwok",
    version: "v0.8.0",
    binaries: &[("kwok", "sigs.k8s.io/kwok/cmd/kwok")],
    // pkg/consts already says 0.8.0 in the module's source.
    link_vars: &[],
};

/// helm: renders istiod's chart from the pinned Istio module (`helm template`), so the
/// cluster gets istiod's objects as Istio's own chart makes them.
pub const HELM: GoBuild = GoBuild {
    module: "helm",
    upstream: "helm.sh/helm/v4",
    version: "v4.3.2",
    binaries: &[("helm", "helm.sh/helm/v4/cmd/helm")],
    // The source says only "v4.3" (internal/version); the release build sets the patch.
    link_vars: &[("helm.sh/helm/v4/internal/version.version", "v4.3.2")],
};

/// istiod and istioctl from the commit `ISTIO_MODULES` pins for 1.31 (kwok.rs): the same
/// source as the chart and CRDs the cluster gets. Built only for `--istiod real`.
pub const ISTIOD_1_31: GoBuild = GoBuild {
    module: "istio-1.31",
    upstream: "istio.io/istio",
    version: "v0.0.0-20260827124520-eed52ebb66ad",
    binaries: ISTIOD_BINARIES,
    // What Istio's own build sets (common/scripts/report_build_info.sh); without them the
    // version reads "unknown". A branch commit, not a release: Makefile.core.mk names such
    // a build `$(cat VERSION)-dev`, and the revision is the pseudo-version's commit.
    link_vars: &[
        ("istio.io/istio/pkg/version.buildVersion", "1.31-dev"),
        (
            "istio.io/istio/pkg/version.buildGitRevision",
            "eed52ebb66ad",
        ),
        ("istio.io/istio/pkg/version.buildStatus", "Clean"),
        (
            "istio.io/istio/pkg/version.buildTag",
            "v0.0.0-20260827124520-eed52ebb66ad",
        ),
    ],
};

/// istiod and istioctl from the release-1.30 branch commit `ISTIO_MODULES` pins for 1.30.
/// Its wrapper replaces three of istio.io/istio's pins the module proxy does not serve
/// (istio.io/api and client-go, go-control-plane, agentgateway's API) with the nearest that
/// it does; the wrapper's go.mod says which and why.
pub const ISTIOD_1_30: GoBuild = GoBuild {
    module: "istio-1.30",
    upstream: "istio.io/istio",
    version: "v0.0.0-20260826214018-9739e10eb9d7",
    binaries: ISTIOD_BINARIES,
    link_vars: &[
        ("istio.io/istio/pkg/version.buildVersion", "1.30-dev"),
        (
            "istio.io/istio/pkg/version.buildGitRevision",
            "9739e10eb9d7",
        ),
        ("istio.io/istio/pkg/version.buildStatus", "Clean"),
        (
            "istio.io/istio/pkg/version.buildTag",
            "v0.0.0-20260826214018-9739e10eb9d7",
        ),
    ],
};

const ISTIOD_BINARIES: &[(&str, &str)] = &[
    (
        "pilot-discovery",
        "istio.io/istio/pilot/cmd/pilot-discovery",
    ),
    ("istioctl", "istio.io/istio/istioctl/cmd/istioctl"),
];

/// Every pinned istiod build, newest first (`cargo xtask tools --install istiod` builds
/// them all).
pub const ISTIODS: [&GoBuild; 2] = [&ISTIOD_1_31, &ISTIOD_1_30];

/// Every pinned build, as `cargo xtask tools` lists them: what `--cluster kwok` needs, then
/// istiod.
pub const ALL: [&GoBuild; 6] = [&ETCD, &KWOK, &HELM, &KUBERNETES, &ISTIOD_1_31, &ISTIOD_1_30];

impl GoBuild {
    /// The wrapper module's directory in this checkout.
    pub fn source_dir(&self) -> PathBuf {
        paths::project_root()
            .join("xtask/src/cluster/kwok")
            .join(self.module)
    }

    /// The directory its binaries are cached in: named by the version and a digest of the
    /// wrapper (go.mod, go.sum, main.go) and the link flags, so a changed pin never reuses
    /// an old build.
    pub fn cache_dir(&self, cache: &Path) -> anyhow::Result<PathBuf> {
        let mut hash = Sha256::new();
        for file in ["go.mod", "go.sum", "main.go"] {
            let path = self.source_dir().join(file);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    hash.update(file.as_bytes());
                    hash.update(&bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == "main.go" => {}
                Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
            }
        }
        hash.update(self.ldflags().as_bytes());
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(cache.join("go-builds").join(format!(
            "{}-{}-{}",
            self.module,
            self.version,
            &digest[..12]
        )))
    }

    /// `-ldflags`: stripped, with the link variables.
    fn ldflags(&self) -> String {
        let mut flags = vec!["-s".to_owned(), "-w".to_owned()];
        for (var, value) in self.link_vars {
            flags.push(format!("-X {var}={value}"));
        }
        flags.join(" ")
    }

    /// The build log's path: named in every failure, kept after success.
    pub fn log_path(&self, cache: &Path) -> PathBuf {
        cache
            .join("build-logs")
            .join(format!("{}-{}.log", self.module, self.version))
    }

    /// Whether every binary is in the cache.
    pub fn is_built(&self, cache: &Path) -> anyhow::Result<bool> {
        Ok(self.is_built_in(&self.cache_dir(cache)?))
    }

    fn is_built_in(&self, dir: &Path) -> bool {
        self.binaries
            .iter()
            .all(|(name, _)| dir.join(name).is_file())
    }

    /// The cached binaries' directory, building them first when they are missing.
    pub fn ensure(&self, sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<PathBuf> {
        let cache = paths::cache_dir();
        let dir = self.cache_dir(&cache)?;
        if self.is_built_in(&dir) {
            return Ok(dir);
        }
        if self.upstream == KUBERNETES.upstream {
            check_kubernetes_replaces(sh).context("check the Kubernetes wrapper module")?;
        }
        self.build(sh, interrupt, &cache, &dir)
            .with_context(|| format!("build {} {}", self.upstream, self.version))?;
        Ok(dir)
    }

    fn build(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        cache: &Path,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let go = go_command(sh)?;
        let log = self.log_path(cache);
        let parent = dir.parent().context("cache directory has no parent")?;
        sh.create_dir(parent)?;
        sh.create_dir(log.parent().context("log path has no parent")?)?;
        let partial = parent.join(format!(
            ".{}.partial-{}",
            dir.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            std::process::id()
        ));
        let _ = sh.remove_path(&partial);
        sh.create_dir(&partial)?;
        let packages: Vec<&str> = self.binaries.iter().map(|(_, p)| *p).collect();
        let ldflags = self.ldflags();
        let source = self.source_dir();
        let _cd = sh.push_dir(&source);
        let out = format!("{}/", partial.display());
        let build = cmd!(
            sh,
            "{go} build -v -trimpath -ldflags {ldflags} -o {out} {packages...}"
        )
        .env("CGO_ENABLED", "0")
        // The wrapper's go.sum is the lock: refuse to add to it or to resolve anything new.
        .env("GOFLAGS", "-mod=readonly")
        // Build with the Go that is installed; never fetch a toolchain behind the user's back.
        .env("GOTOOLCHAIN", "local");
        eprintln!(
            "building {} {} from the Go module proxy (a cold build takes tens of minutes on 2 cores; later runs reuse it); log: {}",
            self.upstream,
            self.version,
            log.display()
        );
        let started = Instant::now();
        let built = interrupt.run(
            build,
            Output::Log {
                path: log.clone(),
                what: format!("{} {}", self.module, self.version),
            },
        );
        if let Err(e) = built {
            let _ = sh.remove_path(&partial);
            if crate::interrupt::is_interrupted(&e) {
                return Err(e);
            }
            bail!("{e}\nthe whole build log is {}", log.display());
        }
        for (name, _) in self.binaries {
            if !partial.join(name).is_file() {
                let _ = sh.remove_path(&partial);
                bail!("go build made no {name} (log: {})", log.display());
            }
        }
        if dir.exists() {
            sh.remove_path(dir)?;
        }
        std::fs::rename(&partial, dir)
            .with_context(|| format!("move the build into {}", dir.display()))?;
        eprintln!(
            "built {} {} in {:.0?}: {}",
            self.upstream,
            self.version,
            started.elapsed(),
            dir.display()
        );
        Ok(())
    }
}

/// The go command, or an error saying how to get one.
fn go_command(sh: &Shell) -> anyhow::Result<String> {
    let go = std::env::var("GO").unwrap_or_else(|_| "go".to_owned());
    let version = cmd!(sh, "{go} env GOVERSION")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| {
            anyhow::anyhow!(
                "no Go toolchain found (`{go}`): --cluster kwok builds Kubernetes, etcd and kwok from their pinned Go modules; install Go 1.26 or newer (or set GO to its go command)"
            )
        })?;
    if !go_is_at_least(&version, (1, 26)) {
        bail!("{go} is {version}; the pinned modules need Go 1.26 or newer");
    }
    Ok(go)
}

/// Whether a `go1.X.Y` version string is at least `min` (major, minor).
fn go_is_at_least(version: &str, min: (u32, u32)) -> bool {
    let Some(rest) = version.trim().strip_prefix("go") else {
        return false;
    };
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(a), Some(b)) if (a, b) >= min)
}

/// The staging modules a k8s.io/kubernetes go.mod redirects to `./staging/...`, with the
/// published version each resolves to (`v1.36.1` -> `v0.36.1`). Those directories are not
/// in the module zip, so a wrapper must replace every one of them (kubernetes issue 79384).
pub fn staging_replaces(
    upstream_go_mod: &str,
    version: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let staging_version = version
        .strip_prefix("v1.")
        .map(|rest| format!("v0.{rest}"))
        .with_context(|| format!("{version} is not a v1.X.Y Kubernetes version"))?;
    let mut replaces = Vec::new();
    for line in upstream_go_mod.lines() {
        let line = line.trim().trim_start_matches("replace").trim();
        let Some((module, target)) = line.split_once("=>") else {
            continue;
        };
        if target.trim().starts_with("./staging/") {
            replaces.push((module.trim().to_owned(), staging_version.clone()));
        }
    }
    if replaces.is_empty() {
        bail!("the go.mod of k8s.io/kubernetes {version} redirects no module to ./staging");
    }
    Ok(replaces)
}

/// The `replace` lines a wrapper's go.mod holds, as (module, version).
pub fn wrapper_replaces(wrapper_go_mod: &str) -> Vec<(String, String)> {
    wrapper_go_mod
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("replace").trim();
            let (module, target) = line.split_once("=>")?;
            let mut target = target.split_whitespace();
            let (_path, version) = (target.next()?, target.next()?);
            Some((module.trim().to_owned(), version.to_owned()))
        })
        .collect()
}

/// What `go mod download -json` says of one module version: its go.mod and source tree.
struct Downloaded {
    go_mod: PathBuf,
    dir: PathBuf,
}

/// Downloads `module@version` into the Go module cache (verified against the checksum
/// database as the go command does) and says where it is.
fn download_module(sh: &Shell, module: &str, version: &str) -> anyhow::Result<Downloaded> {
    let go = go_command(sh)?;
    let at = format!("{module}@{version}");
    let json = cmd!(sh, "{go} mod download -json {at}")
        .env("GOTOOLCHAIN", "local")
        .quiet()
        .ignore_status()
        .read()
        .with_context(|| format!("go mod download {at}"))?;
    let field = |name: &str| {
        json.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("\"{name}\": \""))
                .and_then(|rest| rest.strip_suffix("\",").or_else(|| rest.strip_suffix('"')))
                .map(str::to_owned)
        })
    };
    if let Some(error) = field("Error") {
        bail!("go mod download {at}: {error}");
    }
    match (field("GoMod"), field("Dir")) {
        (Some(go_mod), Some(dir)) => Ok(Downloaded {
            go_mod: go_mod.into(),
            dir: dir.into(),
        }),
        _ => bail!("go mod download {at} said neither where its go.mod nor its source is:\n{json}"),
    }
}

/// The source tree of `module@version` in the Go module cache (downloaded if missing).
pub fn module_dir(sh: &Shell, module: &str, version: &str) -> anyhow::Result<PathBuf> {
    Ok(download_module(sh, module, version)?.dir)
}

/// Checks the Kubernetes wrapper's replace list against the one derived from upstream's
/// go.mod (read through `go mod download`, so from the proxy or the module cache).
fn check_kubernetes_replaces(sh: &Shell) -> anyhow::Result<()> {
    let upstream = download_module(sh, KUBERNETES.upstream, KUBERNETES.version)?;
    let upstream = sh.read_file(&upstream.go_mod)?;
    let derived = staging_replaces(&upstream, KUBERNETES.version)?;
    let wrapper_path = KUBERNETES.source_dir().join("go.mod");
    let wrapper = sh.read_file(&wrapper_path)?;
    let mut have = wrapper_replaces(&wrapper);
    have.sort();
    let mut want = derived;
    want.sort();
    if have != want {
        bail!(
            "{} replaces {:?}, but k8s.io/kubernetes {} redirects {:?} to ./staging; regenerate the replace block from upstream's go.mod",
            wrapper_path.display(),
            have,
            KUBERNETES.version,
            want
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nrequire (\n\tk8s.io/api v0.0.0\n\tgithub.com/spf13/cobra v1.10.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/streaming => ./staging/src/k8s.io/streaming\n)\n";

    #[test]
    fn every_staging_module_is_replaced_by_its_published_version() {
        let replaces = staging_replaces(UPSTREAM, "v1.36.1").expect("derived");
        assert_eq!(
            replaces,
            vec![
                ("k8s.io/api".to_owned(), "v0.36.1".to_owned()),
                ("k8s.io/streaming".to_owned(), "v0.36.1".to_owned())
            ]
        );
        assert!(staging_replaces("module x\n", "v1.36.1").is_err());
        assert!(staging_replaces(UPSTREAM, "1.36.1").is_err());
    }

    #[test]
    fn the_committed_wrapper_replaces_staging_modules_only_at_the_pinned_version() {
        let wrapper = std::fs::read_to_string(KUBERNETES.source_dir().join("go.mod"))
            .expect("read the wrapper");
        let replaces = wrapper_replaces(&wrapper);
        // k8s.io/kubernetes v1.36 has 33 staging modules (1.34/1.35: 31, plus cri-streaming
        // and streaming); every one resolves to v0.36.1.
        assert_eq!(replaces.len(), 33, "{replaces:?}");
        assert!(
            replaces
                .iter()
                .all(|(m, v)| m.starts_with("k8s.io/") && v == "v0.36.1")
        );
        assert!(wrapper.contains(&format!("\tk8s.io/kubernetes {}", KUBERNETES.version)));
    }

    #[test]
    fn each_istiod_is_built_from_the_module_the_cluster_gets_its_chart_from() {
        for pinned in crate::cluster::kwok::ISTIO_MODULES {
            let build = pinned.istiod;
            assert_eq!(build.version, pinned.version, "{}", pinned.minor);
            assert_eq!(build.module, format!("istio-{}", pinned.minor));
            let wrapper = std::fs::read_to_string(build.source_dir().join("go.mod"))
                .expect("read the wrapper");
            assert!(
                wrapper.contains(&format!("\tistio.io/istio {} ", build.version)),
                "the {} wrapper requires another istio.io/istio",
                pinned.minor
            );
            let sum = std::fs::read_to_string(build.source_dir().join("go.sum")).expect("go.sum");
            assert!(sum.contains(&format!("istio.io/istio {} h1:", build.version)));
            // The version variables name the pseudo-version's commit and the minor's -dev.
            let commit = build.version.rsplit('-').next().expect("commit");
            assert!(
                build
                    .link_vars
                    .iter()
                    .any(|(var, value)| { var.ends_with(".buildGitRevision") && *value == commit })
            );
            let dev = format!("{}-dev", pinned.minor);
            assert!(
                build
                    .link_vars
                    .iter()
                    .any(|(var, value)| var.ends_with(".buildVersion") && *value == dev)
            );
            for (_, package) in build.binaries {
                assert!(
                    wrapper.contains(&format!("\t{package}\n")),
                    "{package} is no tool"
                );
            }
        }
    }

    #[test]
    fn go_versions_compare_by_major_and_minor() {
        assert!(go_is_at_least("go1.26.8", (1, 26)));
        assert!(go_is_at_least("go1.27rc1", (1, 26)));
        assert!(!go_is_at_least("go1.25.3", (1, 26)));
        assert!(!go_is_at_least("devel", (1, 26)));
    }

    #[test]
    fn a_changed_lock_names_a_new_cache_directory() {
        let cache = Path::new("/cache");
        let dir = KWOK.cache_dir(cache).expect("digest");
        assert!(dir.starts_with("/cache/go-builds"));
        assert!(dir.to_string_lossy().contains("kwok-v0.8.0-"));
        let other = GoBuild {
            link_vars: &[("example.com/v.Version", "x")],
            ..KWOK
        };
        assert_ne!(other.cache_dir(cache).expect("digest"), dir);
    }
}

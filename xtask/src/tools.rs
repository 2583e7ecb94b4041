//! `cargo xtask tools`: the pinned tools, where they are cached, and installing them (the
//! fetching and verifying is `provision.rs`'s).

use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::Shell;

use crate::download::{self, Lock};
use crate::interrupt::Interrupt;
use crate::provision::{
    ENVOY, ensure, envoy, envoy_cache_path, istioctl_asset, kind_asset, lock_path,
};
use crate::{flags, paths, versions};

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

//! Verified downloads of release binaries into the cache, recorded in `tools.lock`.
//!
//! A download is accepted only when its sha256 equals the release's published checksum
//! file, and, once `tools.lock` has an entry for the asset, that entry too: a later
//! download that disagrees with the lock is refused and nothing is installed. The first
//! download of an asset records its hash in the lock, to be committed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::interrupt::{Interrupt, Output};

/// Where release assets come from (overridable for tests and mirrors).
pub const DOWNLOAD_BASE_ENV: &str = "MIRROR_E2E_DOWNLOAD_BASE";
const DEFAULT_BASE: &str = "https://github.com";

/// How a downloaded asset becomes an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpack {
    /// The asset is the binary.
    Binary,
    /// A `.tar.gz` holding the binary at this path.
    TarGz(&'static str),
}

/// One release asset of a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Tool name, e.g. `kind`.
    pub tool: &'static str,
    /// Release version.
    pub version: String,
    /// Asset file name, e.g. `kind-linux-amd64`.
    pub file: String,
    /// Path of the asset under the download base.
    pub path: String,
    /// Path of its published checksum file.
    pub checksum_path: String,
    /// How to get the executable out of it.
    pub unpack: Unpack,
}

/// The download base: `MIRROR_E2E_DOWNLOAD_BASE`, or GitHub.
pub fn download_base() -> String {
    std::env::var(DOWNLOAD_BASE_ENV).unwrap_or_else(|_| DEFAULT_BASE.to_owned())
}

/// `linux`/`darwin` and `amd64`/`arm64` for this machine.
pub fn platform() -> anyhow::Result<(&'static str, &'static str)> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        other => bail!("no release binaries are pinned for {other}"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => bail!("no release binaries are pinned for {other}"),
    };
    Ok((os, arch))
}

/// kind's binary for this platform.
pub fn kind_asset(version: &str, (os, arch): (&str, &str)) -> Asset {
    let file = format!("kind-{os}-{arch}");
    let path = format!("/kubernetes-sigs/kind/releases/download/{version}/{file}");
    Asset {
        tool: "kind",
        version: version.to_owned(),
        checksum_path: format!("{path}.sha256sum"),
        path,
        file,
        unpack: Unpack::Binary,
    }
}

/// istioctl's archive for this platform. Istio names macOS `osx`, and its Intel archive has no
/// architecture suffix (istio/istio release/downloadIstioCtl.sh: `without_arch` on Darwin
/// unless arm64).
pub fn istioctl_asset(version: &str, (os, arch): (&str, &str)) -> Asset {
    let file = match (os, arch) {
        ("darwin", "arm64") => format!("istioctl-{version}-osx-arm64.tar.gz"),
        ("darwin", _) => format!("istioctl-{version}-osx.tar.gz"),
        _ => format!("istioctl-{version}-{os}-{arch}.tar.gz"),
    };
    let path = format!("/istio/istio/releases/download/{version}/{file}");
    Asset {
        tool: "istioctl",
        version: version.to_owned(),
        checksum_path: format!("{path}.sha256"),
        path,
        file,
        unpack: Unpack::TarGz("istioctl"),
    }
}

/// `tools.lock`: one line per asset, `<tool> <version> <file> <sha256>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lock {
    entries: Vec<(String, String, String, String)>,
}

impl Lock {
    /// Reads the lock; a missing file is an empty lock.
    pub fn read(path: &Path) -> anyhow::Result<Lock> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let mut lock = Lock::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [tool, version, file, hash] if is_sha256(hash) => lock.entries.push((
                    (*tool).into(),
                    (*version).into(),
                    (*file).into(),
                    (*hash).into(),
                )),
                _ => bail!(
                    "{}:{}: expected `<tool> <version> <file> <sha256>`",
                    path.display(),
                    n + 1
                ),
            }
        }
        Ok(lock)
    }

    /// The locked hash of an asset.
    pub fn hash(&self, asset: &Asset) -> Option<&str> {
        self.entries
            .iter()
            .find(|(t, v, f, _)| t == asset.tool && *v == asset.version && *f == asset.file)
            .map(|e| e.3.as_str())
    }

    /// Appends an entry to the lock file.
    fn record(path: &Path, asset: &Asset, hash: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(
            file,
            "{} {} {} {hash}",
            asset.tool, asset.version, asset.file
        )
        .with_context(|| format!("write {}", path.display()))
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where an asset's executable lives in the cache.
pub fn cached_binary(cache: &Path, asset: &Asset) -> PathBuf {
    let name = match asset.unpack {
        Unpack::Binary => asset.tool,
        Unpack::TarGz(inner) => inner,
    };
    cache
        .join(format!("{}-{}", asset.tool, asset.version))
        .join(name)
}

/// The executable of `asset`: from the cache when its recorded hash still matches the lock,
/// otherwise downloaded, verified, recorded and unpacked. Ctrl-C (the run's `interrupt`)
/// ends a download at once and leaves nothing behind.
pub fn ensure(
    sh: &Shell,
    asset: &Asset,
    base: &str,
    cache: &Path,
    lock_path: &Path,
    interrupt: &Interrupt,
) -> anyhow::Result<PathBuf> {
    let lock = Lock::read(lock_path)?;
    let dir = cache.join(format!("{}-{}", asset.tool, asset.version));
    let binary = cached_binary(cache, asset);
    let stamp = dir.join(".sha256");
    if binary.is_file() {
        let cached = std::fs::read_to_string(&stamp).unwrap_or_default();
        match lock.hash(asset) {
            Some(locked) if locked == cached.trim() => return Ok(binary),
            None if is_sha256(cached.trim()) => {
                Lock::record(lock_path, asset, cached.trim())?;
                return Ok(binary);
            }
            _ => eprintln!(
                "{} {}: cache does not match tools.lock; downloading again",
                asset.tool, asset.version
            ),
        }
    }
    sh.create_dir(cache)?;
    let partial = cache.join(format!(
        ".{}-{}.partial-{}",
        asset.tool,
        asset.version,
        std::process::id()
    ));
    let _ = sh.remove_path(&partial);
    sh.create_dir(&partial)?;
    let result = fetch_and_verify(sh, asset, base, &partial, lock.hash(asset), interrupt);
    let hash = match result {
        Ok(hash) => hash,
        Err(e) => {
            let _ = sh.remove_path(&partial);
            return Err(e);
        }
    };
    if let Err(e) = unpack(sh, asset, &partial) {
        let _ = sh.remove_path(&partial);
        return Err(e);
    }
    sh.write_file(partial.join(".sha256"), &hash)?;
    let _ = sh.remove_path(&dir);
    std::fs::rename(&partial, &dir).with_context(|| format!("move into {}", dir.display()))?;
    if lock.hash(asset).is_none() {
        Lock::record(lock_path, asset, &hash)?;
        eprintln!(
            "{} {}: recorded sha256 {hash} in {} (commit it)",
            asset.tool,
            asset.version,
            lock_path.display()
        );
    }
    Ok(binary)
}

fn fetch_and_verify(
    sh: &Shell,
    asset: &Asset,
    base: &str,
    dir: &Path,
    locked: Option<&str>,
    interrupt: &Interrupt,
) -> anyhow::Result<String> {
    let file = dir.join(&asset.file);
    let sums = dir.join("published.sha256");
    let url = format!("{base}{}", asset.path);
    let sums_url = format!("{base}{}", asset.checksum_path);
    eprintln!("downloading {url}");
    interrupt
        .run(
            cmd!(
                sh,
                "curl --fail --silent --show-error --location --output {file} {url}"
            ),
            Output::Relay,
        )
        .with_context(|| format!("download {url}"))?;
    interrupt
        .run(
            cmd!(
                sh,
                "curl --fail --silent --show-error --location --output {sums} {sums_url}"
            ),
            Output::Relay,
        )
        .with_context(|| format!("download {sums_url}"))?;
    let published = sh.read_file(&sums)?;
    let published = published
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !is_sha256(&published) {
        bail!("{sums_url} holds no sha256");
    }
    let actual = sha256_file(&file)?;
    if actual != published {
        bail!(
            "{} {}: sha256 {actual} does not match the published {published}; refusing to install it",
            asset.tool,
            asset.version
        );
    }
    if let Some(locked) = locked
        && locked != actual
    {
        bail!(
            "{} {}: sha256 {actual} does not match tools.lock ({locked}); refusing to install it. If the release was re-published on purpose, remove its line from tools.lock",
            asset.tool,
            asset.version
        );
    }
    Ok(actual)
}

fn unpack(sh: &Shell, asset: &Asset, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join(&asset.file);
    match asset.unpack {
        Unpack::Binary => {
            std::fs::rename(&file, dir.join(asset.tool)).context("place binary")?;
        }
        Unpack::TarGz(inner) => {
            cmd!(sh, "tar -xzf {file} -C {dir}")
                .run()
                .with_context(|| format!("unpack {}", asset.file))?;
            if !dir.join(inner).is_file() {
                bail!("{} has no {inner}", asset.file);
            }
            let _ = sh.remove_path(&file);
        }
    }
    let binary = dir.join(match asset.unpack {
        Unpack::Binary => asset.tool,
        Unpack::TarGz(inner) => inner,
    });
    make_executable(&binary)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// A loopback HTTP server serving fixed bodies by path; 404 otherwise.
    fn serve(files: HashMap<String, Vec<u8>>) -> String {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let addr = server.server_addr().to_ip().expect("ip address");
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let response = match files.get(request.url()) {
                    Some(body) => tiny_http::Response::from_data(body.clone()),
                    None => {
                        tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404)
                    }
                };
                let _ = request.respond(response);
            }
        });
        format!("http://{addr}")
    }

    fn sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    struct DownloadFixture {
        sh: Shell,
        _dir: tempfile::TempDir,
        base: String,
        cache: PathBuf,
        lock: PathBuf,
        asset: Asset,
    }

    fn fixture(binary: &[u8], published: &str) -> DownloadFixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let asset = kind_asset("v9.9.9", ("linux", "amd64"));
        let files = HashMap::from([
            (asset.path.clone(), binary.to_vec()),
            (
                asset.checksum_path.clone(),
                format!("{published}  {}\n", asset.file).into_bytes(),
            ),
        ]);
        DownloadFixture {
            sh: Shell::new().expect("shell"),
            base: serve(files),
            cache: dir.path().join("cache"),
            lock: dir.path().join("tools.lock"),
            _dir: dir,
            asset,
        }
    }

    fn ensure_in(f: &DownloadFixture) -> anyhow::Result<PathBuf> {
        ensure(
            &f.sh,
            &f.asset,
            &f.base,
            &f.cache,
            &f.lock,
            &Interrupt::default(),
        )
    }

    #[test]
    fn downloads_verifies_records_and_then_uses_the_cache() {
        let body = b"#!/bin/sh\necho kind\n";
        let f = fixture(body, &sha256(body));
        let bin = ensure_in(&f).expect("download succeeds");
        assert_eq!(std::fs::read(&bin).expect("binary"), body);
        let lock = std::fs::read_to_string(&f.lock).expect("lock written");
        assert_eq!(
            lock,
            format!("kind v9.9.9 kind-linux-amd64 {}\n", sha256(body))
        );
        // Second use: from the cache, lock unchanged.
        assert_eq!(ensure_in(&f).expect("cached"), bin);
        assert_eq!(std::fs::read_to_string(&f.lock).expect("lock"), lock);
    }

    #[test]
    fn a_checksum_mismatch_installs_nothing() {
        let f = fixture(b"tampered", &sha256(b"original"));
        let err = ensure_in(&f).expect_err("mismatch refused").to_string();
        assert!(err.contains("does not match the published"), "{err}");
        assert!(
            !cached_binary(&f.cache, &f.asset).exists(),
            "no binary may be installed"
        );
        assert!(!f.lock.exists(), "nothing is recorded");
        let leftovers: Vec<_> = std::fs::read_dir(&f.cache).expect("cache").collect();
        assert!(
            leftovers.is_empty(),
            "no partial download left: {leftovers:?}"
        );
    }

    #[test]
    fn a_download_that_disagrees_with_the_lock_is_refused() {
        let body = b"new release body";
        let f = fixture(body, &sha256(body));
        std::fs::write(
            &f.lock,
            format!(
                "kind v9.9.9 kind-linux-amd64 {}\n",
                sha256(b"what we locked")
            ),
        )
        .expect("lock");
        let err = ensure_in(&f)
            .expect_err("lock mismatch refused")
            .to_string();
        assert!(err.contains("does not match tools.lock"), "{err}");
        assert!(!cached_binary(&f.cache, &f.asset).exists());
    }

    #[test]
    fn a_missing_asset_is_a_clear_error() {
        let f = fixture(b"x", &sha256(b"x"));
        let asset = kind_asset("v0.0.1", ("linux", "amd64"));
        let err = format!(
            "{:#}",
            ensure(
                &f.sh,
                &asset,
                &f.base,
                &f.cache,
                &f.lock,
                &Interrupt::default()
            )
            .expect_err("404")
        );
        assert!(
            err.contains("download http://127.0.0.1:") && err.contains("v0.0.1/kind-linux-amd64"),
            "{err}"
        );
    }

    #[test]
    fn lock_lines_are_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tools.lock");
        std::fs::write(&path, "# comment\nkind v1 kind-linux-amd64 nothex\n").expect("write");
        let err = Lock::read(&path).expect_err("bad line").to_string();
        assert!(
            err.ends_with("tools.lock:2: expected `<tool> <version> <file> <sha256>`"),
            "{err}"
        );
    }

    #[test]
    fn asset_paths_follow_the_release_layout() {
        let a = istioctl_asset("1.31.1", ("linux", "amd64"));
        assert_eq!(
            a.path,
            "/istio/istio/releases/download/1.31.1/istioctl-1.31.1-linux-amd64.tar.gz"
        );
        assert_eq!(
            a.checksum_path,
            "/istio/istio/releases/download/1.31.1/istioctl-1.31.1-linux-amd64.tar.gz.sha256"
        );
        // Intel macOS archives carry no architecture; Apple silicon ones say arm64.
        assert_eq!(
            istioctl_asset("1.31.1", ("darwin", "amd64")).file,
            "istioctl-1.31.1-osx.tar.gz"
        );
        assert_eq!(
            istioctl_asset("1.31.1", ("darwin", "arm64")).file,
            "istioctl-1.31.1-osx-arm64.tar.gz"
        );
        let k = kind_asset("v0.32.0", ("darwin", "arm64"));
        assert_eq!(
            k.path,
            "/kubernetes-sigs/kind/releases/download/v0.32.0/kind-darwin-arm64"
        );
        assert_eq!(k.checksum_path, format!("{}.sha256sum", k.path));
    }

    #[test]
    fn ctrl_c_during_a_download_ends_it_as_an_interruption_and_leaves_nothing() {
        // A server that takes the request, has Ctrl-C pressed, and answers 404 only after
        // a long while: the download must end at once, interrupted (exit 130, not 1).
        let dir = tempfile::tempdir().expect("tempdir");
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind loopback");
        let base = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let interrupt = Interrupt::default();
        let trigger = interrupt.clone();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Ok(request) = server.recv() {
                trigger.trigger();
                // A bound, not a synchronisation: the old code waits this out.
                let _ = finished.recv_timeout(std::time::Duration::from_secs(10));
                let _ = request.respond(tiny_http::Response::empty(404));
            }
        });
        let (cache, lock) = (dir.path().join("cache"), dir.path().join("tools.lock"));
        let asset = kind_asset("v9.9.9", ("linux", "amd64"));
        let start = std::time::Instant::now();
        let err = ensure(
            &Shell::new().expect("shell"),
            &asset,
            &base,
            &cache,
            &lock,
            &interrupt,
        )
        .expect_err("interrupted");
        let _ = done.send(());
        assert!(crate::interrupt::is_interrupted(&err), "{err:#}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let leftovers: Vec<_> = std::fs::read_dir(&cache).expect("cache").collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(!lock.exists());
    }
}

//! Where things are: the project root and the tool cache.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cache for downloaded tools: `$MIRROR_E2E_CACHE`, else `$XDG_CACHE_HOME/mirror-e2e`,
/// else `~/.cache/mirror-e2e`, else `target/tools` in the project.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MIRROR_E2E_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("mirror-e2e");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/mirror-e2e"),
        None => project_root().join("target/tools"),
    }
}

/// A path given on the command line, made absolute against the directory the user ran
/// `cargo xtask` from (xtask itself works from the project root).
pub fn from_invocation(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_owned())
}

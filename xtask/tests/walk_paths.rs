//! Black-box: what `xtask e2e --local --istio-upgrade` prints names only files that are
//! there when it ends (issue 24 §4: a walk that passed printed its comparison.txt's path,
//! then removed the walk's directory). With --keep the comparison stays, and is named.
//!
//! Needs Envoy (ENVOY_BIN), like the e2e crate's suite tests; `cargo xtask test` sets it.
#![cfg(unix)]

use mirror_e2e_contract::env;

use std::path::Path;
use std::process::Command;

/// The walk's output (stdout and stderr) with the artifacts under `root`.
fn walk(root: &Path, extra: &[&str]) -> String {
    let envoy = std::env::var_os(env::ENVOY_BIN)
        .expect("ENVOY_BIN is not set: `cargo xtask tools --install envoy`, then set it");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["e2e", "--local", "--istio-upgrade", "1.30.5..1.31.1"])
        .args(extra)
        .env(env::ENVOY_BIN, envoy)
        .env(env::ARTIFACTS_ROOT, root)
        .output()
        .expect("run xtask");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    said
}

/// Every path under `root` that `said` names.
fn paths_named<'a>(said: &'a str, root: &Path) -> Vec<&'a str> {
    let root = root.to_str().expect("utf-8");
    said.match_indices(root)
        .map(|(at, _)| {
            let rest = &said[at..];
            let end = rest
                .find(|c: char| c.is_whitespace() || ")`;,".contains(c))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn a_walk_names_no_file_it_then_removes_and_names_the_comparison_it_keeps() {
    let root = tempfile::tempdir().expect("tempdir");
    let said = walk(root.path(), &[]);
    assert!(
        said.contains("artifacts: removed (the walk passed"),
        "{said}"
    );
    for path in paths_named(&said, root.path()) {
        assert!(
            Path::new(path).exists(),
            "printed, then removed: {path}\n{said}"
        );
    }

    let kept = tempfile::tempdir().expect("tempdir");
    let said = walk(kept.path(), &["--keep"]);
    let comparisons: Vec<&str> = paths_named(&said, kept.path())
        .into_iter()
        .filter(|p| p.ends_with("/comparison.txt"))
        .collect();
    assert!(
        !comparisons.is_empty(),
        "the kept comparison is not named:\n{said}"
    );
    for path in comparisons {
        assert!(Path::new(path).is_file(), "{path}\n{said}");
    }
}

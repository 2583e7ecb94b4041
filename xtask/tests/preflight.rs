//! Black-box: input a cluster run cannot use stops `cargo xtask e2e --cluster kwok` before
//! any provider acts (issue 24 §2): no cluster is created, nothing is built for it, and the
//! exit code says whose fault it is (1: the manifests are wrong, 2: usage).

use mirror_e2e_contract::env;

use std::path::{Path, PathBuf};
use std::process::Command;

fn project_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// A copy of the project's manifests with `edit` applied to the file `name`.
fn manifests_with(name: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    copy(&project_manifests(), dir.path());
    let file = dir.path().join(name);
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, edit(&text)).expect("write");
    dir
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `xtask e2e --cluster kwok --cluster-name NAME ARGS`: exit code, stderr, and whether a
/// directory of the cluster appeared.
fn kwok_run(name: &str, args: &[&str]) -> (Option<i32>, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["e2e", "--cluster", "kwok", "--cluster-name", name])
        .args(args)
        .env_remove(env::CI)
        .output()
        .expect("run xtask");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kwok")
        .join(name);
    // Lint's findings go to stdout, the verdict to stderr.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said, dir.exists())
}

#[test]
fn a_yaml_syntax_error_stops_the_run_before_any_cluster() {
    let manifests = manifests_with("routing/virtual-service.yaml", |t| {
        t.replace("  hosts:\n", "  hosts: [\n")
    });
    let name = format!("preflight-syntax-{}", std::process::id());
    let (code, stderr, created) = kwok_run(
        &name,
        &["--manifests", manifests.path().to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("virtual-service.yaml:"), "{stderr}");
    assert!(!created, "no cluster for wrong input");
}

#[test]
fn a_misspelled_expectations_field_and_an_unknown_subset_stop_the_run_before_any_cluster() {
    for (from, to) in [("served_by:", "servd_by:"), ("{v1: 100}", "{v9: 100}")] {
        let manifests = manifests_with("expectations.yaml", |t| t.replacen(from, to, 1));
        let name = format!("preflight-expect-{}", std::process::id());
        let (code, stderr, created) = kwok_run(
            &name,
            &["--manifests", manifests.path().to_str().expect("utf-8")],
        );
        assert_eq!(code, Some(1), "{from}: {stderr}");
        assert!(stderr.contains("expectations.yaml:"), "{from}: {stderr}");
        assert!(!created, "no cluster for wrong input");
    }
}

#[test]
fn a_missing_manifests_directory_and_an_unknown_reuse_name_are_usage_errors() {
    let name = format!("preflight-missing-{}", std::process::id());
    let (code, stderr, created) = kwok_run(&name, &["--manifests", "/nonexistent/manifests"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/manifests"), "{stderr}");
    assert!(!created);
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "e2e",
            "--cluster",
            "kwok",
            "--reuse",
            "no-such-cluster-here",
        ])
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--reuse no-such-cluster-here: no running kwok cluster"),
        "{stderr}"
    );
}

//! Black-box: every row of the exit-code table (`e2e::exit::EXIT_CODES`) from the real
//! `mirror-e2e local`, and the class each run's summary.md says it ended in. Row 130
//! (interrupted) is `process_hygiene.rs`'s Ctrl-C and SIGTERM tests.
//!
//! Needs Envoy (ENVOY_BIN), like the suite's other tests; `cargo xtask test` sets it.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};

fn envoy() -> PathBuf {
    match std::env::var_os(ENVOY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ENVOY_BIN_ENV} is not set: {HOW_TO_GET_ENVOY}"),
    }
}

fn project_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// `mirror-e2e local ARGS` with its runs under `root`: the exit code, stderr, and the
/// summary.md of the one run it wrote (kept with --keep), if any.
fn local(root: &Path, envoy: &Path, args: &[&str]) -> (Option<i32>, String, Option<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .arg("local")
        .arg("--envoy")
        .arg(envoy)
        .arg("--keep")
        .arg("--artifacts-root")
        .arg(root)
        .args(args)
        .env_remove("MIRROR_E2E_PATIENCE")
        .output()
        .expect("run mirror-e2e");
    let summary = std::fs::read_dir(root).ok().and_then(|runs| {
        runs.filter_map(Result::ok)
            .find_map(|run| std::fs::read_to_string(run.path().join("summary.md")).ok())
    });
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        summary,
    )
}

/// A copy of the project's manifests with the tester route matching `Tester`.
fn broken_routing() -> tempfile::TempDir {
    manifests_with("exact: tester", "exact: Tester")
}

/// A copy of the project's manifests with `from` replaced by `to` in every file.
fn manifests_with(from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in walk(&project_manifests()) {
        let target = dir
            .path()
            .join(entry.strip_prefix(project_manifests()).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let text = std::fs::read_to_string(&entry).expect("read");
        std::fs::write(&target, text.replace(from, to)).expect("write");
    }
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

#[test]
fn exit_0_when_every_selected_check_passed() {
    let root = tempfile::tempdir().expect("dir");
    let manifests = project_manifests();
    let (code, stderr, summary) = local(
        root.path(),
        &envoy(),
        &["--manifests", manifests.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let summary = summary.expect("a summary");
    assert!(
        summary.contains("; exit 0 (every selected check passed)"),
        "{summary}"
    );
}

#[test]
fn exit_1_when_a_check_failed_not_libtests_101() {
    let root = tempfile::tempdir().expect("dir");
    let manifests = broken_routing();
    let (code, stderr, summary) = local(
        root.path(),
        &envoy(),
        &[
            "--manifests",
            manifests.path().to_str().expect("utf-8"),
            "--patience",
            "1",
            "--",
            "--exact",
            "routing::tester_served_by_v2",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let summary = summary.expect("a summary");
    assert!(summary.contains("; exit 1 (a check failed"), "{summary}");
}

#[test]
fn exit_1_when_the_manifests_under_test_have_lint_errors() {
    let root = tempfile::tempdir().expect("dir");
    let manifests = tempfile::tempdir().expect("dir");
    std::fs::write(
        manifests.path().join("vs.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrorPercentage: {value: 150}}]}\n",
    )
    .expect("write");
    let (code, stderr, summary) = local(
        root.path(),
        &envoy(),
        &["--manifests", manifests.path().to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("lint error"), "{stderr}");
    assert!(
        summary
            .expect("a summary")
            .contains("; exit 1 (a check failed"),
        "the manifests are wrong: retrying cannot help"
    );
}

/// Issue 23: the new user's mirror to `mirror.test` (not expanded by istiod: no cluster,
/// nothing mirrored on the real istiod) passed lint and all 7 local checks. Now lint stops
/// it, and with `--allow-lint-errors` the mirror check fails as on a cluster.
#[test]
fn a_mirror_to_a_namespace_qualified_host_fails_locally_as_on_istiod() {
    let manifests = manifests_with("host: mirror\n", "host: mirror.test\n");
    let dir = manifests.path().to_str().expect("utf-8");
    let root = tempfile::tempdir().expect("dir");
    let (code, stderr, _) = local(root.path(), &envoy(), &["--manifests", dir]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("virtual-service.yaml:")
            && stderr.contains("host `mirror.test` names no Service"),
        "{stderr}"
    );
    let root = tempfile::tempdir().expect("dir");
    let (code, stderr, summary) = local(
        root.path(),
        &envoy(),
        &[
            "--manifests",
            dir,
            "--allow-lint-errors",
            "--patience",
            "2",
            "--",
            "--exact",
            "mirror::tester_requests_mirrored_with_end_user",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        summary.expect("a summary").contains("FAIL"),
        "nothing reaches the mirror"
    );
}

/// What local mode cannot translate exactly stops it before anything starts, with exit 2,
/// file and line, and the way on; `--allow-lint-errors` does not change that.
#[test]
fn exit_2_when_local_mode_cannot_model_the_routing() {
    let manifests = manifests_with("", "");
    std::fs::write(
        manifests.path().join("routing").join("second.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: also-reviews}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v2}}]}]}\n",
    )
    .expect("write");
    let root = tempfile::tempdir().expect("dir");
    let (code, stderr, _) = local(
        root.path(),
        &envoy(),
        &[
            "--manifests",
            manifests.path().to_str().expect("utf-8"),
            "--allow-lint-errors",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(".yaml:")
            && stderr.contains("also-reviews")
            && stderr.contains("local-unsupported")
            && stderr.contains("--cluster kwok"),
        "{stderr}"
    );
}

/// Issue 24: `timeout` and `retries`, which most VirtualServices carry, stopped local mode.
/// Now the shipped routing with both (istiod's route timeout and retry policy, on the
/// sidecar's routes of reviews) runs locally and passes every check.
#[test]
fn the_shipped_routing_with_a_timeout_and_retries_runs_in_local_mode() {
    let manifests = manifests_with(
        "      mirrorPercentage:\n        value: 100.0\n",
        "      mirrorPercentage:\n        value: 100.0\n      timeout: 10s\n      retries:\n        attempts: 3\n        perTryTimeout: 2s\n        retryOn: gateway-error,connect-failure,503\n",
    );
    let dir = manifests.path().to_str().expect("utf-8");
    let routing = std::fs::read_to_string(
        manifests
            .path()
            .join("routing")
            .join("virtual-service.yaml"),
    )
    .expect("read");
    assert!(
        routing.contains("timeout: 10s") && routing.contains("perTryTimeout: 2s"),
        "the fixture carries both: {routing}"
    );
    let root = tempfile::tempdir().expect("dir");
    let (code, stderr, summary) = local(root.path(), &envoy(), &["--manifests", dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        summary
            .expect("a summary")
            .contains("; exit 0 (every selected check passed)"),
        "{stderr}"
    );
    // What Envoy was given: the route's own timeout and retry policy.
    let applied = std::fs::read_dir(root.path())
        .expect("runs")
        .filter_map(Result::ok)
        .find_map(|run| {
            std::fs::read_to_string(run.path().join("applied").join("routes-v1.json")).ok()
        })
        .expect("the applied routes");
    assert!(
        applied.contains("\"timeout\": \"10s\"")
            && applied.contains("\"per_try_timeout\": \"2s\"")
            && applied.contains("\"num_retries\": 3"),
        "{applied}"
    );
}

/// A misspelled field is refused by local mode as the API server's Strict field validation
/// refuses it, `--allow-lint-errors` or not: exit 2, naming file, line and the field.
/// Before, `--allow-lint-errors` let it run without the field, which a cluster never does.
#[test]
fn exit_2_for_a_misspelled_field_even_with_allow_lint_errors() {
    let manifests = manifests_with(
        "      mirrorPercentage:\n        value: 100.0\n",
        "      mirrorPercentage:\n        value: 100.0\n      timout: 10s\n",
    );
    for extra in [&[][..], &["--allow-lint-errors"]] {
        let root = tempfile::tempdir().expect("dir");
        let mut args = vec!["--manifests", manifests.path().to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        let (code, stderr, _) = local(root.path(), &envoy(), &args);
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("Strict field validation")
                && stderr.contains("virtual-service.yaml:25: error[unknown-field]: VirtualService reviews: spec.http[0].timout: unknown field"),
            "{extra:?}: {stderr}"
        );
    }
}

#[test]
fn exit_2_on_usage_errors() {
    let root = tempfile::tempdir().expect("dir");
    let (code, stderr, _) = local(root.path(), &envoy(), &["--no-such-flag"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr, summary) = local(root.path(), &envoy(), &["--", "nosuchcheck"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("matches no check") && summary.is_none(),
        "{stderr}"
    );
}

#[test]
fn exit_3_when_the_environment_failed() {
    // An Envoy that exits at once: the machine's tools failed, not the mesh.
    let root = tempfile::tempdir().expect("dir");
    let manifests = project_manifests();
    let (code, stderr, summary) = local(
        root.path(),
        Path::new("/bin/false"),
        &["--manifests", manifests.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        summary
            .expect("a summary")
            .contains("; exit 3 (the environment failed)"),
        "{stderr}"
    );
}

#[test]
fn help_shows_the_exit_codes() {
    for args in [
        &["--help"][..],
        &["local", "--help"],
        &["cluster", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
            .args(args)
            .output()
            .expect("run mirror-e2e");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(e2e::exit::EXIT_CODES), "{args:?}: {help}");
    }
}

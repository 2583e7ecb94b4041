//! What the local-mode integration tests share: a run of the suite on a real Envoy over
//! the project's manifests or an edited copy of them. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::local::LocalOptions;
use e2e::report::RunReport;
use e2e::report::live::LiveReport;
use e2e::run::{RunOutcome, new_run_id, run_local};
use e2e::suite::{Spec, harness_arguments};

pub fn envoy() -> PathBuf {
    match std::env::var_os(ENVOY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ENVOY_BIN_ENV} is not set: {HOW_TO_GET_ENVOY}"),
    }
}

pub fn project_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Runs the suite (or the checks `harness` selects) with a short patience.
pub fn run(
    manifests: &Path,
    istio: &str,
    harness: &[&str],
    patience: Duration,
) -> (RunOutcome, tempfile::TempDir) {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let opts = options(manifests, istio, patience, &artifacts);
    let outcome = run_with(&opts, harness).expect("mesh starts");
    (outcome, artifacts)
}

/// Local options for a run of `manifests` into `artifacts`.
pub fn options(
    manifests: &Path,
    istio: &str,
    patience: Duration,
    artifacts: &tempfile::TempDir,
) -> LocalOptions {
    LocalOptions {
        manifests: manifests.to_owned(),
        istio: istio.parse().expect("version"),
        envoy: envoy(),
        artifacts: artifacts.path().join("run"),
        patience,
        mirror_host: "mirror".into(),
        host: "reviews".into(),
        run_id: new_run_id(),
        concurrency: e2e::suite::DEFAULT_CONCURRENCY,
        allow_lint_errors: false,
        workloads: Vec::new(),
        process_groups: Default::default(),
        run_started: std::time::Instant::now(),
    }
}

/// Runs the suite (or the checks `harness` selects) with `opts`.
pub fn run_with(opts: &LocalOptions, harness: &[&str]) -> Result<RunOutcome, e2e::run::RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let args: Vec<String> = harness.iter().map(|s| (*s).to_owned()).collect();
    let mut args = harness_arguments(&args);
    // The inner harness writes straight to stdout, past cargo's capture; keep it as evidence.
    std::fs::create_dir_all(&opts.artifacts).expect("artifacts dir");
    args.logfile = Some(opts.artifacts.join("harness.log").display().to_string());
    // As `mirror-e2e local` does: the expectations beside the manifests, else the tutorial's.
    let spec = Spec::for_manifests(&opts.manifests, None).expect("expectations");
    run_local(&runtime, opts, spec, &args, &LiveReport::default())
}

pub fn failed(report: &RunReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect()
}

/// A copy of the project's manifests with one edit to the VirtualService under test.
pub fn mutated(from: &str, to: &str) -> tempfile::TempDir {
    mutated_file("routing/virtual-service.yaml", from, to)
}

/// A copy of the project's manifests with `from` replaced by `to` in `file`.
pub fn mutated_file(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&project_manifests(), dir.path());
    let vs = dir.path().join(file);
    let text = std::fs::read_to_string(&vs).expect("virtual service");
    assert!(
        text.contains(from),
        "the mutation must change something: `{from}` not in {}",
        vs.display()
    );
    std::fs::write(&vs, text.replace(from, to)).expect("write mutation");
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The project's manifests with the VirtualService changed (`from` -> `to`) and the
/// expectations beside them replaced by `expectations`: a user's own scenario.
pub fn scenario(from: &str, to: &str, expectations: &str) -> tempfile::TempDir {
    let dir = mutated(from, to);
    std::fs::write(dir.path().join("expectations.yaml"), expectations).expect("expectations");
    dir
}

/// The tutorial's expectations with `tester`'s mirrored share and `anonymous`'s split.
pub fn expectations(anonymous_served_by: &str, tester_mirrored: &str) -> String {
    format!(
        "service: reviews\nmirror: mirror\nidentities:\n  anonymous:\n    served_by: {anonymous_served_by}\n    mirrored: 0\n  tester:\n    served_by: {{v2: 100}}\n    mirrored: {tester_mirrored}\n    mirror_sees: {{end-user: tester}}\n"
    )
}

/// The project's manifests as they are, with the expectations beside them replaced.
pub fn with_expectations(expectations: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&project_manifests(), dir.path());
    std::fs::write(dir.path().join("expectations.yaml"), expectations).expect("expectations");
    dir
}

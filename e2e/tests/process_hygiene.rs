//! No run leaves Envoy behind: interrupting the runner (Ctrl-C) or killing it outright ends
//! Envoy too, and an interrupted run exits non-zero and says where its evidence is.
//!
//! Needs Envoy (ENVOY_BIN), like the local suite tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::wait::poll_until;

fn envoy() -> PathBuf {
    match std::env::var_os(ENVOY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ENVOY_BIN_ENV} is not set: {HOW_TO_GET_ENVOY}"),
    }
}

/// Starts a long local run (a generous patience and a slow check) in `root`.
fn start_run(root: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .args(["local", "--patience", "60", "--manifests"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests"))
        .arg("--envoy")
        .arg(envoy())
        .arg("--artifacts-root")
        .arg(root)
        .args(["--", "--exact", "mirror::percentage_within_tolerance"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mirror-e2e")
}

/// Envoy's admin address, once it is written in the one run directory under `root`.
fn envoy_admin(root: &Path) -> String {
    block_on(poll_until(
        "Envoy's admin address file",
        Duration::from_secs(20),
        || async {
            let found = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path().join("envoy-admin-address.txt"))
                .find_map(|p| {
                    std::fs::read_to_string(p)
                        .ok()
                        .filter(|a| !a.trim().is_empty())
                });
            Ok(found.map(|a| a.trim().to_owned()))
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (bounded) until nothing accepts connections on `addr`.
fn assert_port_closes(addr: &str) {
    block_on(poll_until(
        &format!("Envoy to stop listening on {addr}"),
        Duration::from_secs(10),
        || async {
            match std::net::TcpStream::connect(addr) {
                Ok(_) => Err("still accepting connections".to_owned()),
                Err(_) => Ok(Some(())),
            }
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[allow(unsafe_code)]
fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[test]
fn ctrl_c_ends_envoy_exits_non_zero_and_points_at_the_evidence() {
    interrupted_by(libc::SIGINT);
}

#[test]
fn sigterm_from_xtask_is_handled_as_ctrl_c() {
    // xtask ends its child with SIGTERM when Ctrl-C reached xtask alone.
    interrupted_by(libc::SIGTERM);
}

fn interrupted_by(sig: i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = start_run(dir.path());
    let admin = envoy_admin(dir.path());
    signal(&run, sig);
    let output = {
        let status = run.wait().expect("runner exits");
        let mut stderr = String::new();
        std::io::Read::read_to_string(run.stderr.as_mut().expect("stderr"), &mut stderr)
            .expect("stderr");
        (status, stderr)
    };
    assert_eq!(output.0.code(), Some(130), "{}", output.1);
    assert!(
        output.1.contains("interrupted: partial evidence kept in"),
        "{}",
        output.1
    );
    assert_port_closes(&admin);
    // The interrupted run leaves its reports, saying it was interrupted.
    let summary = std::fs::read_dir(dir.path())
        .expect("run root")
        .filter_map(Result::ok)
        .map(|e| e.path().join("summary.txt"))
        .find(|p| p.is_file())
        .expect("an interrupted run writes summary.txt");
    let text = std::fs::read_to_string(summary).expect("summary");
    assert!(
        text.contains("stopped before its checks finished: interrupted (Ctrl-C)"),
        "{text}"
    );
}

#[test]
fn killing_the_runner_outright_still_ends_envoy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = start_run(dir.path());
    let admin = envoy_admin(dir.path());
    signal(&run, libc::SIGKILL);
    run.wait().expect("runner exits");
    assert_port_closes(&admin);
}

#[test]
fn an_envoy_that_exits_at_startup_is_reported_at_once_with_what_it_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(
        &bootstrap,
        r#"{"static_resources": {"listeners": [{"name": 7}]}}"#,
    )
    .expect("write bootstrap");
    let start = std::time::Instant::now();
    let err = block_on(e2e::envoy::process::Envoy::start(
        &envoy(),
        &bootstrap,
        &dir.path().join("envoy.log"),
        Duration::from_secs(30),
    ))
    .err()
    .expect("Envoy refuses the bootstrap")
    .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "reported after {:?}, not at once",
        start.elapsed()
    );
    assert!(err.starts_with("Envoy exited during startup"), "{err}");
    // Envoy's own words about the bootstrap, not an empty tail.
    assert!(err.to_lowercase().contains("listener"), "{err}");
}

/// Whether any process runs with `marker` in its command line.
fn process_with(marker: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .find(|c| c.contains(marker) && !c.contains("process_hygiene"))
}

#[test]
fn ctrl_c_ends_user_workloads_and_what_they_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The workload starts a child of its own (the marked sleep) and then serves.
    let marker = format!("600.{}", std::process::id());
    let mut run = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .args(["local", "--patience", "60", "--manifests"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests"))
        .arg("--envoy")
        .arg(envoy())
        .arg("--artifacts-root")
        .arg(dir.path())
        .arg("--workload")
        .arg(format!(
            "details-v1=sh -c 'sleep {marker} & exec python3 -m http.server --bind 127.0.0.1 {{port}}'"
        ))
        .args(["--", "--exact", "mirror::percentage_within_tolerance"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mirror-e2e");
    let admin = envoy_admin(dir.path());
    block_on(poll_until(
        "the workload's child to run",
        Duration::from_secs(20),
        || async { Ok(process_with(&marker).map(|_| ())) },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    signal(&run, libc::SIGINT);
    let status = run.wait().expect("runner exits");
    assert_eq!(status.code(), Some(130));
    assert_port_closes(&admin);
    block_on(poll_until(
        "the workload's child to be gone",
        Duration::from_secs(10),
        || async {
            match process_with(&marker) {
                Some(p) => Err(format!("still running: {p}")),
                None => Ok(Some(())),
            }
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_runner_whose_starter_has_exited_already_stops_at_once() {
    // xtask died between spawning the runner and the runner's PR_SET_PDEATHSIG: no signal
    // will ever come, so the runner must notice by itself that its parent is not xtask.
    let gone = Command::new("true").spawn().expect("spawn true");
    let gone_pid = gone.id();
    let _ = gone.wait_with_output().expect("true exits");
    let out = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .arg("lint")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests"))
        .env(e2e::parent::PARENT_PID_ENV, gone_pid.to_string())
        .output()
        .expect("run mirror-e2e");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {gone_pid}) has exited already")),
        "{stderr}"
    );
    // Started by its real parent, it runs as ever.
    let out = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .arg("lint")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests"))
        .env(e2e::parent::PARENT_PID_ENV, std::process::id().to_string())
        .output()
        .expect("run mirror-e2e");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

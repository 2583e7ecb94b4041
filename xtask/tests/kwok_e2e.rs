//! Black-box, on a real control plane: `xtask e2e --cluster kwok` stopped by Ctrl-C while
//! its suite runs ends every process of the run (the control plane, istiod, the node's data
//! plane, Envoy, the pods' stand-ins), deletes the cluster it created, and exits 130; so
//! does an upgrade walk with the real istiods, stopped after a hop replaced istiod.
//!
//! Needs the pinned control-plane binaries, the istiods and Envoy; `cargo xtask
//! test-control-plane` provides them and runs this.
#![cfg(unix)]

use mirror_e2e_contract::env;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long the run may take to reach its checks, and to end after Ctrl-C: bounds, not
/// synchronisation.
const BOUND: Duration = Duration::from_secs(240);

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// Every process whose command line holds `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn ctrl_c_while_the_suite_runs_ends_every_process_of_the_run_and_exits_130() {
    // The suite's phase line "checks" says the run is mid-suite, with its data plane up.
    interrupted_when("run", &[], |line| line.ends_with("] checks"));
}

#[test]
fn ctrl_c_while_the_suite_runs_after_a_hop_ends_the_walks_istiod_and_data_plane_and_exits_130() {
    // After this line the walk's second suite starts, under the second istiod, with the
    // node's data plane (a component of its own) reconnected to it.
    interrupted_when("walk", &["--istio-upgrade", "1.30.5..1.31.1"], |line| {
        line.contains("istiod replaced: ready, and every proxy reconnected")
    });
}

/// Runs `xtask e2e --cluster kwok` with `extra` arguments on a cluster named for this test
/// process and `tag` (the tests run side by side), presses Ctrl-C (SIGINT to its
/// process group, as a terminal does) at the first stderr line `at` accepts, and checks
/// that it exits 130 leaving no process and no directory of its cluster, and no process
/// of its run.
fn interrupted_when(tag: &str, extra: &[&str], at: impl Fn(&str) -> bool) {
    let envoy = std::env::var_os(env::ENVOY_BIN)
        .expect("ENVOY_BIN is not set: `cargo xtask tools --install envoy`, then set it");
    let name = format!("kwok-ctrl-c-{}-{tag}", std::process::id());
    let artifacts = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args([
            "e2e",
            "--cluster",
            "kwok",
            "--cluster-name",
            &name,
            "--patience",
            "120",
        ])
        .args(extra)
        .env(env::ENVOY_BIN, envoy)
        // Not CI: a failed run would keep its cluster, but an interrupted one never does.
        .env_remove(env::CI)
        .env(env::ARTIFACTS_ROOT, artifacts.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own process group, as a terminal's foreground job: Ctrl-C reaches all of it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut xtask = command.spawn().expect("start xtask");
    let group = Pid::from_raw(i32::try_from(xtask.id()).expect("pid fits"));
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = xtask.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut run_id = None;
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(host) = line.split("ingress host ").nth(1) {
                    run_id = host.split('.').next().map(str::to_owned);
                }
                let now = at(&line);
                seen.push(line);
                if now {
                    break;
                }
            }
            Err(_) => {
                let _ = killpg(group, Signal::SIGKILL);
                panic!(
                    "the run never reached the line awaited within {BOUND:?}:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    // A walk's suites run quietly; a single run's says its run id.
    assert!(
        run_id.is_some() || !extra.is_empty(),
        "the suite names its run (ingress host):\n{}",
        seen.join("\n")
    );
    killpg(group, Signal::SIGINT).expect("Ctrl-C");
    let (status_tx, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(xtask.wait());
    });
    let status = status
        .recv_timeout(BOUND)
        .expect("xtask ends within the bound after Ctrl-C")
        .expect("wait");
    // The pipe closes once every process that shared it has exited.
    let rest: Vec<String> = std::iter::from_fn(|| lines.recv_timeout(BOUND).ok()).collect();
    let said = [seen, rest].concat().join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    let cluster_dir = project_root().join("target/kwok").join(&name);
    assert_eq!(
        processes_naming(&cluster_dir.display().to_string()),
        Vec::<String>::new(),
        "a process of the cluster is left:\n{said}"
    );
    // A walk's suite runs quietly (its output in suite.log): every process of the run
    // names the artifacts directory or, for a single run, its run id.
    for needle in [artifacts.path().display().to_string()]
        .into_iter()
        .chain(run_id)
    {
        assert_eq!(
            processes_naming(&needle),
            Vec::<String>::new(),
            "a process of the run (its Envoy, the suite) is left:\n{said}"
        );
    }
    assert!(
        !cluster_dir.exists(),
        "the cluster the run created is left after Ctrl-C:\n{said}"
    );
}

//! Black-box: the real `xtask e2e --local`, ended the two ways a CI cancel or an operator
//! ends it. SIGTERM behaves as Ctrl-C (the suite is ended, xtask exits 130); `kill -9` of
//! xtask still ends the suite, which would otherwise run on as an orphan.
//!
//! Needs Envoy (ENVOY_BIN), like the e2e crate's suite tests; `cargo xtask test` sets it.
#![cfg(unix)]

use mirror_e2e_contract::env;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long everything may take to end after the signal; a bound, not a synchronisation.
const BOUND: Duration = Duration::from_secs(60);

/// Starts `xtask e2e --local` whose `details-v1` workload writes to the fifo `started` in
/// `dir` when it runs and then serves, so the suite is mid-run once the fifo is read.
fn start(dir: &Path) -> Child {
    let envoy = std::env::var_os(env::ENVOY_BIN)
        .expect("ENVOY_BIN is not set: `cargo xtask tools --install envoy`, then set it");
    let fifo = dir.join("started");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["e2e", "--local", "--patience", "60", "--workload"])
        .arg(format!(
            "details-v1=sh -c 'echo started > {}; exec python3 -m http.server --bind 127.0.0.1 {{port}}'",
            fifo.display()
        ))
        .args(["--", "--exact", "mirror::percentage_within_tolerance"])
        .env(env::ENVOY_BIN, envoy)
        .env(env::ARTIFACTS_ROOT, dir.join("runs"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xtask")
}

/// A run in `dir` whose suite is mid-run: its workload has started (the workload's open
/// of the fifo blocks until then).
fn mid_run(dir: &Path) -> Child {
    let xtask = start(dir);
    std::fs::read_to_string(dir.join("started")).expect("read the fifo");
    xtask
}

/// Everything xtask, the suite and Envoy wrote to the stderr they share, once the last
/// of them has exited (the pipe closes then), or None if that takes longer than [`BOUND`].
fn stderr_when_all_exited(child: &mut Child) -> Option<String> {
    let mut stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx.recv_timeout(BOUND).ok()
}

fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    kill(Pid::from_raw(pid), signal).expect("kill");
}

#[test]
fn sigterm_to_xtask_ends_the_suite_and_exits_130() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut xtask = mid_run(dir.path());
    signal(&xtask, Signal::SIGTERM);
    let status = xtask.wait().expect("xtask exits");
    let stderr = stderr_when_all_exited(&mut xtask)
        .expect("the suite still runs after xtask was terminated");
    assert_eq!(status.code(), Some(130), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("interrupted: partial evidence kept in"),
        "the suite handled it as Ctrl-C:\n{stderr}"
    );
}

#[test]
fn killing_xtask_outright_ends_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut xtask = mid_run(dir.path());
    signal(&xtask, Signal::SIGKILL);
    xtask.wait().expect("xtask exits");
    let stderr = stderr_when_all_exited(&mut xtask)
        .expect("the suite ran on as an orphan after xtask was killed");
    // It ended as on Ctrl-C (workloads ended, reports written), not by finishing its run.
    assert!(
        stderr.contains("interrupted: partial evidence kept in"),
        "{stderr}"
    );
}

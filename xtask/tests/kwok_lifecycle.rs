//! Black-box, on a real control plane: what `xtask e2e --cluster kwok` leaves behind.
//! A kept cluster records how it was prepared, and a `--reuse` of it in another mode is
//! refused at once (exit 2, both modes named) with nothing started; a reuse run that fails
//! ends the istiod it started there; a run whose node data plane cannot start writes its
//! report, exits 3 and leaves no process; the commands the kept cluster's message prints
//! work as printed; one clock runs from xtask's first phase line through the suite's.
//!
//! Needs the pinned control-plane binaries, istiod and Envoy; `cargo xtask
//! test-control-plane` provides them and runs this.
#![cfg(unix)]

use mirror_e2e_contract::env;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a run may take: a bound, not synchronisation.
const BOUND: Duration = Duration::from_secs(240);

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// Every process whose command line holds `needle`, as `pid: command line`.
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
    found.sort();
    found
}

/// What a run said (stderr) and how it ended.
struct Ran {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `xtask ARGS` to its end (killed, with its process group, past [`BOUND`]).
fn xtask(args: &[&str], artifacts: &Path) -> Ran {
    let envoy = std::env::var_os(env::ENVOY_BIN)
        .expect("ENVOY_BIN is not set: `cargo xtask tools --install envoy`, then set it");
    xtask_with_envoy(args, artifacts, Path::new(&envoy))
}

/// [`xtask`] with `envoy` as the node's Envoy.
fn xtask_with_envoy(args: &[&str], artifacts: &Path, envoy: &Path) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .env(env::ENVOY_BIN, envoy)
        // Not CI: keeping on failure is the default, as on a laptop.
        .env_remove(env::CI)
        .env(env::ARTIFACTS_ROOT, artifacts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let started = Instant::now();
    let mut child = command.spawn().expect("start xtask");
    let group = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let mut stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    // The pipe closes when the last process that shares it has exited.
    let Ok(stderr) = rx.recv_timeout(BOUND) else {
        let _ = killpg(group, Signal::SIGKILL);
        panic!("xtask {args:?} did not end within {BOUND:?}");
    };
    let status = child.wait().expect("wait");
    Ran {
        code: status.code(),
        stderr,
        took: started.elapsed(),
    }
}

/// The printed command after `label` in a kept cluster's message.
fn printed_command<'a>(said: &'a str, label: &str) -> &'a str {
    said.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` command printed:\n{said}"))
}

/// The seconds of every `[  12.3s] phase` line, in order, checked for one format.
fn stamps(said: &str) -> Vec<f64> {
    said.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (stamp, _) = rest.split_once("s] ")?;
            Some(stamp)
        })
        .map(|stamp| {
            assert!(
                stamp.len() == 7
                    && stamp
                        .trim_start()
                        .split_once('.')
                        .is_some_and(|(_, f)| f.len() == 1),
                "a phase line in another format: [{stamp}s]\n{said}"
            );
            stamp.trim().parse().expect("seconds")
        })
        .collect()
}

/// Deletes the cluster `name` (`xtask kwok delete`), whatever the test found.
struct DeletedOnDrop(String);

impl Drop for DeletedOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["kwok", "delete", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_kept_cluster_reused_in_another_mode_is_refused_at_once_and_nothing_starts() {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let name = format!("lifecycle-modes-{}", std::process::id());
    let cluster = DeletedOnDrop(name.clone());
    let dir = project_root().join("target/kwok").join(&name);
    let kept = xtask(
        &[
            "e2e",
            "--cluster",
            "kwok",
            "--istiod",
            "translation",
            "--keep",
            "--cluster-name",
            &name,
            "--patience",
            "120",
        ],
        artifacts.path(),
    );
    assert_eq!(kept.code, Some(0), "{}", kept.stderr);
    assert!(
        kept.stderr.contains(&format!(
            "kept kwok cluster {name} ({}), prepared for --istiod translation",
            dir.display()
        )),
        "{}",
        kept.stderr
    );

    // One clock: the suite's phase lines go on from xtask's, in its format.
    let seconds = stamps(&kept.stderr);
    assert!(
        seconds.len() >= 4 && seconds.windows(2).all(|w| w[0] <= w[1]),
        "the phase lines restart or go back: {seconds:?}\n{}",
        kept.stderr
    );

    // The printed commands work as printed: pasted into a shell, the first lists the
    // run's pods through the kept kubeconfig, inside the cluster's namespaces.
    let look = printed_command(&kept.stderr, "look at it:");
    let out = Command::new("sh").args(["-c", look]).output().expect("sh");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("productpage-v1"),
        "`{look}`: {}{listed}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reuse = printed_command(&kept.stderr, "run again on it:");
    assert_eq!(
        reuse,
        format!("cargo xtask e2e --cluster kwok --reuse {name} --istiod translation")
    );

    let before = processes_naming(&dir.display().to_string());
    // --istiod real (kwok's default) on a cluster prepared for the translation. The
    // patience bounds the old behaviour (a wait for SDS that never ends), not the refusal.
    let refused = xtask(
        &[
            "e2e",
            "--cluster",
            "kwok",
            "--reuse",
            &name,
            "--patience",
            "60",
        ],
        artifacts.path(),
    );
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "prepared for --istiod translation, Istio 1.31.1 and this run asks for --istiod real"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.took < Duration::from_secs(30),
        "refused only after {:?}",
        refused.took
    );
    assert_eq!(
        processes_naming(&dir.display().to_string()),
        before,
        "the refused run started or ended a process of the cluster"
    );
    drop(cluster);
    assert_eq!(
        processes_naming(&dir.display().to_string()),
        Vec::<String>::new()
    );
}

#[test]
fn a_failing_run_on_a_reused_cluster_ends_the_istiod_it_started() {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let name = format!("lifecycle-istiod-{}", std::process::id());
    let _cluster = DeletedOnDrop(name.clone());
    let dir = project_root().join("target/kwok").join(&name);
    let kept = xtask(
        &[
            "e2e",
            "--cluster",
            "kwok",
            "--keep",
            "--cluster-name",
            &name,
            "--patience",
            "120",
            "--",
            "--exact",
            "routing::anonymous_served_by_v1",
        ],
        artifacts.path(),
    );
    assert_eq!(kept.code, Some(0), "{}", kept.stderr);
    // The kept cluster's istiod is the cluster's; end it, as a crash would, so the next
    // run starts one of its own. `nsenter` ends with the program it waits for.
    let istiods = || -> Vec<String> {
        processes_naming(&dir.display().to_string())
            .into_iter()
            .filter(|p| p.contains("pilot-discovery"))
            .collect()
    };
    for process in istiods() {
        let pid: i32 = process
            .split(':')
            .next()
            .expect("pid")
            .parse()
            .expect("pid");
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !istiods().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the kept istiod did not end after SIGKILL: {:?}",
            istiods()
        );
        std::thread::yield_now();
    }
    // A run that starts istiod and then fails: a filter that selects no check.
    let failed = xtask(
        &[
            "e2e",
            "--cluster",
            "kwok",
            "--reuse",
            &name,
            "--patience",
            "120",
            "--",
            "--exact",
            "no::such::check",
        ],
        artifacts.path(),
    );
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("istiod ready in"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        istiods(),
        Vec::<String>::new(),
        "the istiod the run started outlived it:\n{}",
        failed.stderr
    );
    assert!(
        KwokHolder::runs(&dir),
        "the reused cluster itself must keep running"
    );
}

#[test]
fn a_data_plane_that_never_starts_stops_the_run_with_its_report_and_no_process_left() {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let name = format!("lifecycle-envoy-{}", std::process::id());
    let _cluster = DeletedOnDrop(name.clone());
    let dir = project_root().join("target/kwok").join(&name);
    // An "Envoy" that exits at once: the node's data plane cannot start.
    let failed = xtask_with_envoy(
        &[
            "e2e",
            "--cluster",
            "kwok",
            "--istiod",
            "translation",
            "--cluster-name",
            &name,
            "--on-failure",
            "delete",
            "--patience",
            "60",
        ],
        artifacts.path(),
        Path::new("/bin/false"),
    );
    assert_eq!(
        failed.code,
        Some(3),
        "the environment's failure:\n{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .contains("the node's data plane did not start"),
        "{}",
        failed.stderr
    );
    let run_id = failed
        .stderr
        .split("ingress host ")
        .nth(1)
        .and_then(|h| h.split('.').next())
        .expect("the suite names its run")
        .to_owned();
    let summary = artifacts.path().join(&run_id).join("summary.md");
    assert!(
        std::fs::read_to_string(&summary).is_ok_and(|md| md.contains("did not start")),
        "no summary.md saying why: {}\n{}",
        summary.display(),
        failed.stderr
    );
    for needle in [dir.display().to_string(), run_id] {
        assert_eq!(
            processes_naming(&needle),
            Vec::<String>::new(),
            "a process of the run is left:\n{}",
            failed.stderr
        );
    }
    assert!(!dir.exists(), "--on-failure delete: {}", failed.stderr);
}

/// The cluster's holder, as `target/kwok/<name>/holder` records it.
struct KwokHolder;

impl KwokHolder {
    fn runs(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join("holder"))
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned))
            .is_some_and(|pid| Path::new("/proc").join(pid).exists())
    }
}

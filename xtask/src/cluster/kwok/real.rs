//! The provider against real processes: the pinned binaries (built on first use), a real
//! control plane. `cargo xtask test-control-plane` runs these.

use super::*;

const PATIENCE: Duration = Duration::from_secs(120);

fn binaries(sh: &Shell) -> Binaries {
    Binaries::ensure(sh, &Interrupt::default()).expect("the pinned control-plane binaries")
}

/// Every process whose command line names `dir` (the cluster's components do).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn a_cluster_of_the_same_name_that_runs_before_the_run_is_never_deleted() {
    let sh = Shell::new().expect("shell");
    let bins = binaries(&sh);
    let name = format!("real-exists-{}", std::process::id());
    let first = KwokCluster::create(&sh, &name, &bins, &Interrupt::default(), PATIENCE)
        .expect("the first cluster");
    let second = KwokCluster::create(&sh, &name, &bins, &Interrupt::default(), PATIENCE);
    let err = second
        .err()
        .expect("a second create of the same name is refused");
    assert!(err.to_string().contains("--reuse"), "{err:#}");
    let found = KwokCluster::find(&name)
        .expect("look")
        .expect("the first cluster still runs");
    assert_eq!(found.holder.pid, first.holder.pid);
    assert!(
        !processes_naming(&first.dir).is_empty(),
        "its components still run"
    );
    first.delete(&sh).expect("delete");
    assert!(KwokCluster::find(&name).expect("look").is_none());
}

#[test]
fn ctrl_c_during_create_leaves_no_process_of_the_cluster() {
    let sh = Shell::new().expect("shell");
    let bins = binaries(&sh);
    let name = format!("real-ctrl-c-{}", std::process::id());
    let dir = clusters_dir().join(&name);
    let interrupt = Interrupt::default();
    let presser = {
        let interrupt = interrupt.clone();
        let apiserver_log = dir.join("logs/kube-apiserver.log");
        std::thread::spawn(move || {
            // Press Ctrl-C once the API server has started: mid-create, with etcd and
            // the API server running and the rest still to come.
            let started = crate::poll::poll_until("the API server's log", PATIENCE, None, |_| {
                Ok(apiserver_log.exists().then_some(()))
            });
            interrupt.trigger();
            started.expect("the API server starts");
        })
    };
    let created = KwokCluster::create(&sh, &name, &bins, &interrupt, PATIENCE);
    presser.join().expect("presser");
    let err = created.err().expect("Ctrl-C stops the create");
    assert!(crate::interrupt::is_interrupted(&err), "{err:#}");
    assert!(KwokCluster::find(&name).expect("look").is_none());
    assert_eq!(processes_naming(&dir), Vec::<String>::new());
    assert!(
        !dir.exists(),
        "the half-created cluster's directory is left"
    );
}

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use mirror_e2e_contract::new_run_id;

use super::*;
use crate::cluster::fakes::Fakes;
use crate::e2e::walk::walk;
use crate::interrupt::is_interrupted;

fn setup(f: &Fakes) -> (Kind<'_>, Istioctl<'_>, KindPlan, Runner) {
    let kubeconfig = f.dir.path().join("kubeconfig");
    let interrupt = Interrupt::default();
    (
        Kind::new(
            &f.sh,
            f.bin("kind"),
            "mirror-e2e",
            kubeconfig.clone(),
            &interrupt,
        ),
        Istioctl {
            sh: &f.sh,
            bin: f.bin("istioctl"),
            kubeconfig: Some(kubeconfig),
            context: None,
            hub: None,
            interrupt: interrupt.clone(),
        },
        KindPlan {
            config: "cluster.yaml".into(),
            operator: "operator.yaml".into(),
            node_image: "kindest/node:v1.36.1@sha256:ab",
            reuse: false,
            keep: false,
            keep_on_failure: false,
            artifacts: f.dir.path().join("artifacts"),
            namespace: "test".into(),
            clock: Stopwatch::start(),
        },
        Runner {
            bin: f.bin("mirror-e2e"),
            interrupt,
            output: crate::interrupt::Output::Relay,
        },
    )
}

/// The runner's node check and suite, as the real run passes them: `mirror-e2e
/// nodes-ready` and `mirror-e2e cluster` (the fake logs them).
fn nodes<'a>(f: &'a Fakes, runner: &'a Runner) -> impl FnOnce() -> anyhow::Result<()> + 'a {
    move || runner.run(&f.sh, &["nodes-ready".to_owned()])
}

fn suite<'a>(
    f: &'a Fakes,
    runner: &'a Runner,
) -> impl FnOnce(&[(String, f64)]) -> anyhow::Result<()> + 'a {
    move |_| runner.run(&f.sh, &["cluster".to_owned(), "--run-id".to_owned()])
}

fn short(calls: Vec<String>) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            c.split(" --")
                .next()
                .unwrap_or("")
                .split(" -f")
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn a_passing_run_creates_waits_installs_runs_and_deletes_in_that_order() {
    let f = Fakes::new();
    let (kind, istioctl, plan, runner) = setup(&f);
    let mut ran = false;
    run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |phases| {
        ran = phases
            .iter()
            .map(|(n, _)| n.as_str())
            .eq(["create cluster", "install istio"]);
        Ok(())
    })
    .expect("passes");
    assert!(ran, "the suite gets the create and install timings");
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "mirror-e2e nodes-ready",
            "istioctl install -y",
            "kind delete cluster"
        ]
    );
}

#[test]
fn nodes_that_never_get_ready_stop_the_run_before_istio() {
    let f = Fakes::new();
    let (kind, istioctl, plan, _) = setup(&f);
    let err = run_on_kind(
        &kind,
        &istioctl,
        &plan,
        || bail!("timed out after 300s waiting for every node to be Ready"),
        |_| panic!("the suite must not run"),
    )
    .expect_err("fails");
    assert!(
        format!("{err:#}").contains("every node to be Ready"),
        "{err:#}"
    );
    assert!(!f.calls().iter().any(|c| c.starts_with("istioctl install")));
    assert_eq!(
        f.calls().last().map(|c| &c[..19]),
        Some("kind delete cluster")
    );
}

#[test]
fn istioctl_failing_collects_diagnostics_and_deletes_in_ci() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_ISTIOCTL_FAILS", "1");
    let (kind, istioctl, plan, runner) = setup(&f);
    let err = format!(
        "{:#}",
        run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| panic!(
            "the suite must not run"
        ))
        .expect_err("fails")
    );
    assert!(
        err.contains("install istio") && err.contains("Error: failed to install"),
        "{err}"
    );
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "mirror-e2e nodes-ready",
            "istioctl install -y",
            "kind export logs <dir>/artifacts/diagnostics/kind-logs",
            "istioctl proxy-config routes deploy/productpage-v1 -n test -o json",
            "kind delete cluster"
        ]
    );
    assert!(
        plan.artifacts
            .join("diagnostics/productpage-routes.json")
            .is_file()
    );
}

#[test]
fn a_failure_before_the_suite_deletes_the_cluster_even_under_keep_and_keep_on_failure() {
    // Issue 24 §2: keeping is for inspecting a mesh that misbehaved; a cluster whose
    // Istio never installed has none. Its diagnostics are still collected first.
    let f = Fakes::new();
    f.sh.set_var("FAKE_ISTIOCTL_FAILS", "1");
    let (kind, istioctl, mut plan, runner) = setup(&f);
    plan.keep = true;
    plan.keep_on_failure = true;
    run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
        panic!("the suite must not run")
    })
    .expect_err("fails");
    let calls = short(f.calls());
    assert_eq!(
        calls.last().map(String::as_str),
        Some("kind delete cluster"),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("kind export logs")),
        "{calls:?}"
    );
}

#[test]
fn a_failed_run_keeps_the_cluster_when_asked() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_SUITE_FAILS", "1");
    let (kind, istioctl, mut plan, runner) = setup(&f);
    plan.keep_on_failure = true;
    run_on_kind(
        &kind,
        &istioctl,
        &plan,
        nodes(&f, &runner),
        suite(&f, &runner),
    )
    .expect_err("fails");
    f.assert_deleted_nothing();
}

#[test]
fn a_cluster_kept_from_an_earlier_run_is_neither_used_nor_deleted_without_reuse() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let (kind, istioctl, plan, runner) = setup(&f);
    let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
        panic!("the suite must not run")
    })
    .expect_err("in the way");
    assert!(format!("{err:#}").contains("--reuse"), "{err:#}");
    assert_eq!(f.calls(), ["kind get clusters"]);
}

#[test]
fn reuse_skips_creation_installation_and_deletion() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let (kind, istioctl, mut plan, runner) = setup(&f);
    plan.reuse = true;
    run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| Ok(())).expect("passes");
    assert_eq!(
        short(f.calls()),
        ["kind get clusters", "kind get kubeconfig"]
    );
}

#[test]
fn reuse_without_a_cluster_creates_one() {
    let f = Fakes::new();
    let (kind, istioctl, mut plan, runner) = setup(&f);
    plan.reuse = true;
    run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| Ok(())).expect("passes");
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind get clusters",
            "kind create cluster",
            "mirror-e2e nodes-ready",
            "istioctl install -y",
            "kind delete cluster"
        ]
    );
}

/// Runs a kind run whose `call` blocks until Ctrl-C, which comes as soon as it started.
/// Returns the error, the calls made, and how long the run took.
fn interrupted_during(call: &str, keep: bool) -> (anyhow::Error, Vec<String>, Duration) {
    let f = Fakes::new();
    let (kind, istioctl, mut plan, runner) = setup(&f);
    plan.keep = keep;
    plan.keep_on_failure = true;
    let watcher = f.interrupt_during(call, &kind.interrupt);
    let start = Instant::now();
    let err = run_on_kind(
        &kind,
        &istioctl,
        &plan,
        nodes(&f, &runner),
        suite(&f, &runner),
    )
    .expect_err("interrupted");
    let took = start.elapsed();
    watcher.join().expect("watcher");
    (err, short(f.calls()), took)
}

#[test]
fn ctrl_c_in_each_phase_ends_the_child_starts_nothing_and_deletes_the_cluster() {
    let create = ["kind get clusters", "kind create cluster"];
    for (call, ran) in [
        ("kind create", &create[..]),
        (
            "mirror-e2e nodes-ready",
            &[
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
            ][..],
        ),
        (
            "istioctl install",
            &[
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
            ][..],
        ),
        (
            "mirror-e2e cluster",
            &[
                "kind get clusters",
                "kind create cluster",
                "mirror-e2e nodes-ready",
                "istioctl install -y",
                "mirror-e2e cluster",
            ][..],
        ),
    ] {
        let (err, calls, took) = interrupted_during(call, false);
        assert!(is_interrupted(&err), "{call}: {err:#}");
        assert!(took < Duration::from_secs(5), "{call}: took {took:?}");
        let mut expected: Vec<&str> = ran.to_vec();
        // No diagnostics after Ctrl-C (they take minutes); even a half-created cluster
        // is this run's to delete; keep-on-failure does not apply to an interruption.
        expected.push("kind delete cluster");
        assert_eq!(calls, expected, "{call}");
    }
}

#[test]
fn ctrl_c_before_the_create_deletes_no_cluster_that_was_there() {
    // Ctrl-C noted during the Docker check or a download, before `kind create`: the
    // cluster of the name (kept from an earlier run) was never looked at, is not this
    // run's, and must survive.
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let (kind, istioctl, plan, runner) = setup(&f);
    kind.interrupt.trigger();
    let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
        panic!("the suite must not run")
    })
    .expect_err("interrupted");
    assert!(is_interrupted(&err), "{err:#}");
    f.assert_deleted_nothing();
}

#[test]
fn every_run_gets_a_kind_cluster_name_of_its_own() {
    let (a, b) = (cluster_name(&new_run_id()), cluster_name(&new_run_id()));
    assert_ne!(a, b, "two runs, two clusters");
    for name in [&a, &b] {
        assert!(name.starts_with("mirror-e2e-2"), "{name}");
        // kind's own rule for a name, and its length warning.
        assert!(name.len() <= 50, "{name}");
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "{name}"
        );
    }
    use clap::Parser;
    // A kept cluster's name is what --reuse takes back.
    let e2e = flags::E2e::parse(&["--reuse", &a]);
    assert_eq!(e2e.reuse.as_deref(), Some(a.as_str()));
    for bad in ["Mirror", "a_b", ""] {
        assert!(
            flags::Xtask::try_parse_from(["cargo xtask", "e2e", "--reuse", bad]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn ctrl_c_with_keep_keeps_the_cluster() {
    let (err, calls, _) = interrupted_during("mirror-e2e cluster", true);
    assert!(is_interrupted(&err));
    assert!(
        !calls.iter().any(|c| c.starts_with("kind delete")),
        "{calls:?}"
    );
}

/// A kind-mode walk over `spec` with the fake tools: one istioctl per release (each a
/// copy of the fake, named `istioctl-<version>`), the suite as `mirror-e2e cluster
/// --istio <version>`, the comparison as `mirror-e2e compare`.
fn kind_walk(f: &Fakes, spec: &str) -> anyhow::Result<()> {
    let (kind, _, plan, runner) = setup(f);
    let path = versions::upgrade_path(spec).expect("walk");
    let istioctls: Vec<Istioctl<'_>> = path
        .iter()
        .map(|r| {
            let bin = f.dir.path().join(format!("istioctl-{}", r.version));
            std::fs::copy(f.bin("istioctl"), &bin).expect("copy fake");
            Istioctl {
                sh: &f.sh,
                bin,
                kubeconfig: None,
                context: None,
                hub: None,
                interrupt: kind.interrupt.clone(),
            }
        })
        .collect();
    run_on_kind(&kind, &istioctls[0], &plan, nodes(f, &runner), |_| {
        walk(
            &path,
            |i| {
                let mut args = vec![
                    "cluster".to_owned(),
                    "--istio".into(),
                    path[i].version.into(),
                ];
                if i > 0 {
                    args.push("--restart-workloads".into());
                }
                runner.run(&f.sh, &args)
            },
            |i| istioctls[i].install(Path::new("operator.yaml")),
            |ran| runner.run(&f.sh, &["compare".to_owned(), format!("{ran} runs")]),
        )
    })
}

#[test]
fn a_two_minor_walk_installs_restarts_runs_and_compares_hop_by_hop() {
    let f = Fakes::new();
    kind_walk(&f, "1.29.9..1.31.1").expect("passes");
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "mirror-e2e nodes-ready",
            "istioctl-1.29.9 install -y",
            "mirror-e2e cluster",
            "istioctl-1.30.5 install -y",
            "mirror-e2e cluster",
            "istioctl-1.31.1 install -y",
            "mirror-e2e cluster",
            "mirror-e2e compare 3 runs",
            "kind delete cluster"
        ]
    );
    let restarts = f
        .calls()
        .iter()
        .filter(|c| c.contains("--restart-workloads"))
        .count();
    assert_eq!(
        restarts, 2,
        "every run after an install restarts the workloads"
    );
}

#[test]
fn a_failing_middle_hop_stops_the_walk_naming_the_hop() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_SUITE_FAILS_ON", "1.30.5");
    let err = format!("{:#}", kind_walk(&f, "1.29.9..1.31.1").expect_err("fails"));
    assert!(
        err.starts_with("hop 1 of 2, 1.29.9 -> 1.30.5 (upgrade): the suite failed on 1.30.5"),
        "{err}"
    );
    let calls = short(f.calls());
    assert!(
        !calls.iter().any(|c| c.starts_with("istioctl-1.31.1")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"mirror-e2e compare 2 runs".to_owned()),
        "the runs made are compared: {calls:?}"
    );
}

#[test]
fn ctrl_c_during_the_first_run_of_a_walk_installs_nothing_more() {
    let f = Fakes::new();
    let (kind, istioctl, plan, runner) = setup(&f);
    let watcher = f.interrupt_during("mirror-e2e cluster", &kind.interrupt);
    let path = versions::upgrade_path("1.29.9..1.31.1").expect("walk");
    let err = run_on_kind(&kind, &istioctl, &plan, nodes(&f, &runner), |_| {
        walk(
            &path,
            |_| runner.run(&f.sh, &["cluster".to_owned()]),
            |_| istioctl.install(Path::new("operator.yaml")),
            |_| runner.run(&f.sh, &["compare".to_owned()]),
        )
    })
    .expect_err("interrupted");
    watcher.join().expect("watcher");
    assert!(is_interrupted(&err), "{err:#}");
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "mirror-e2e nodes-ready",
            "istioctl install -y",
            "mirror-e2e cluster",
            "kind delete cluster"
        ]
    );
}

#[test]
fn the_suites_arguments_on_kind_are_what_mirror_e2e_reads() {
    use clap::Parser;
    use mirror_e2e_contract::args::{RunnerCli, RunnerCommand};
    let f = Fakes::new();
    let (kind, ..) = setup(&f);
    let e2e = flags::E2e::parse(&[
        "--patience",
        "2.5",
        "--bookinfo-hub",
        "mirror.example/bookinfo",
        "--echo-hub",
        "mirror.example/echo",
        "--keep",
        "--",
        "mirror::",
        "--exact",
    ]);
    let release = versions::istio_release(Some("1.30.5")).expect("pinned");
    let phases = [("create cluster".to_owned(), 41.25)];
    let args = e2e.kind_suite_args(
        &kind,
        release,
        "20261125-193314-a3f0",
        &phases,
        Stopwatch::start(),
    );
    let argv = RunnerCommand::Cluster(Box::new(args.clone())).to_args();
    let read =
        RunnerCli::try_parse_from(std::iter::once("mirror-e2e".to_owned()).chain(argv.clone()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let RunnerCommand::Cluster(read) = read.command else {
        panic!("{argv:?} is not `cluster`");
    };
    let mut read = *read;
    // What the environment may fill in where xtask passes nothing (ENVOY_BIN,
    // MIRROR_E2E_ARTIFACTS_ROOT), and the clock's reading, passed to the millisecond.
    read.data_plane.envoy.clone_from(&args.data_plane.envoy);
    read.suite
        .artifacts_root
        .clone_from(&args.suite.artifacts_root);
    assert!(
        read.suite.elapsed.abs_diff(args.suite.elapsed) < Duration::from_millis(1),
        "{argv:?}"
    );
    read.suite.elapsed = args.suite.elapsed;
    assert_eq!(read, args, "{argv:?}");
    assert_eq!(
        read.target.kubeconfig.as_deref(),
        Some(kind.kubeconfig.as_path())
    );
    assert_eq!(read.istio.as_deref(), Some("1.30.5"));
    assert_eq!(
        read.bookinfo_hub.as_deref(),
        Some("mirror.example/bookinfo")
    );
    assert_eq!(read.echo_hub.as_deref(), Some("mirror.example/echo"));
    assert_eq!(read.suite.patience, Some(Duration::from_millis(2500)));
    assert_eq!(
        read.phases,
        [("create cluster".to_owned(), Duration::from_millis(41_250))]
    );
    assert!(read.suite.keep);
    assert_eq!(read.suite.harness, ["mirror::", "--exact"]);
}

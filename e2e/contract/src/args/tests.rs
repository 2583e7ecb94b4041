use std::time::Duration;

use clap::Parser;

use super::*;

/// `x` on a command line and back: what mirror-e2e parses from what xtask passes.
fn round_trip(x: RunnerCommand) {
    let args = x.to_args();
    let parsed =
        RunnerCli::try_parse_from(std::iter::once("mirror-e2e".to_owned()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(parsed.command, x, "{args:?}");
}

fn target() -> KubeTarget {
    KubeTarget {
        kubeconfig: Some("/tmp/k config".into()),
        context: Some("ctx".into()),
    }
}

fn suite() -> SuiteArgs {
    SuiteArgs {
        manifests: "/m".into(),
        expectations: Some("/e.yaml".into()),
        artifacts_root: Some("/runs".into()),
        keep: true,
        allow_lint_errors: true,
        concurrency: 7,
        patience: Some(Duration::from_millis(2500)),
        elapsed: Duration::from_millis(12_345),
        harness: vec!["mirror::".into(), "--exact".into()],
    }
}

fn data_plane() -> DataPlaneArgs {
    DataPlaneArgs {
        node: Some("kwok-node-0".into()),
        envoy: Some("/bin/envoy".into()),
        node_logs: Some("/pods".into()),
        workloads: vec![
            "reviews-v1=python3 -m http.server {port}".into(),
            "a=b".into(),
        ],
        istiod_xds: Some("127.0.0.1:15010".parse().expect("address")),
        istiod_debug: Some("127.0.0.1:15014".parse().expect("address")),
        workload_dir: Some("/here".into()),
    }
}

#[test]
fn lint_round_trips() {
    round_trip(RunnerCommand::Lint(LintArgs {
        paths: vec!["a".into(), "-b".into()],
        format: LintFormat::Json,
        expectations: Some("x.yaml".into()),
    }));
}

#[test]
fn local_round_trips() {
    round_trip(RunnerCommand::Local(Box::new(LocalArgs {
        istio: Some("1.27.9".into()),
        envoy: Some("/bin/envoy".into()),
        workload: WorkloadArgs {
            workloads: vec!["productpage=./pp {port}".into()],
            workload_dir: Some("/w".into()),
        },
        suite: suite(),
    })));
}

#[test]
fn cluster_round_trips() {
    round_trip(RunnerCommand::Cluster(Box::new(ClusterArgs {
        target: target(),
        namespace: "test-1".into(),
        delete_namespace: true,
        allow_cluster_scoped: true,
        ingress: "http://10.0.0.1:8080".into(),
        data_plane: data_plane(),
        node_proxies: false,
        control_plane: Some("istiod 1.31".into()),
        version_label: Some("1.27.9 played by istiod 1.30".into()),
        bookinfo_hub: Some("hub/b".into()),
        echo_hub: Some("hub/e".into()),
        revision: Some("canary".into()),
        bookinfo_tag: Some("1.20.3".into()),
        restart_workloads: true,
        istio: Some("1.30.5".into()),
        run_id: Some("20261125-193314-a3f0".into()),
        phases: vec![
            ("create cluster".into(), Duration::from_millis(41_250)),
            ("install istio".into(), Duration::from_millis(1)),
        ],
        suite: suite(),
    })));
    // --node-proxies excludes --node: its own case. What the environment can fill in
    // (ENVOY_BIN, MIRROR_E2E_PATIENCE, MIRROR_E2E_ARTIFACTS_ROOT) is given, so the case
    // reads the same wherever the tests run.
    round_trip(RunnerCommand::Cluster(Box::new(ClusterArgs {
        node_proxies: true,
        data_plane: DataPlaneArgs {
            envoy: Some("/bin/envoy".into()),
            ..DataPlaneArgs::default()
        },
        suite: suite(),
        ..ClusterArgs::default()
    })));
}

#[test]
fn nodes_ready_round_trips() {
    round_trip(RunnerCommand::NodesReady(NodesReadyArgs {
        target: target(),
        patience: Some(Duration::from_secs(42)),
    }));
}

#[test]
fn install_round_trips() {
    round_trip(RunnerCommand::Install(InstallArgs {
        target: target(),
        namespace: "istio-system".into(),
        patience: Some(Duration::from_millis(1500)),
        only_kinds: vec!["Namespace".into(), "Deployment".into()],
        files: vec!["/a.yaml".into(), "/b".into()],
    }));
}

#[test]
fn parity_round_trips() {
    round_trip(RunnerCommand::Parity(Box::new(ParityArgs {
        kubeconfig: "/k".into(),
        istiod_xds: "127.0.0.1:15010".parse().expect("address"),
        istiod_debug: "127.0.0.1:15014".parse().expect("address"),
        envoy: "/envoy".into(),
        istio: Some("1.29.3".into()),
        version_label: Some("label".into()),
        manifests: vec!["/m1".into(), "/m2".into()],
        variants: Some("/v".into()),
        generated: 9,
        seed: 77,
        out: "/out".into(),
        patience: Some(Duration::from_secs(61)),
    })));
}

#[test]
fn parity_table_round_trips() {
    round_trip(RunnerCommand::ParityTable(ParityTableArgs {
        results: vec!["/a.json".into(), "/b.json".into()],
        out: Some("/t.md".into()),
    }));
}

#[test]
fn no_istiod_round_trips() {
    round_trip(RunnerCommand::NoIstiod(target()));
}

#[test]
fn node_round_trips() {
    round_trip(RunnerCommand::Node(Box::new(NodeArgs {
        target: target(),
        namespace: "ns".into(),
        ingress: "http://10.0.0.2:8080".into(),
        istio: Some("1.28.4".into()),
        dir: "/node".into(),
        patience: Some(Duration::from_secs(9)),
        data_plane: data_plane(),
    })));
}

#[test]
fn proxies_synced_round_trips() {
    round_trip(RunnerCommand::ProxiesSynced(ProxiesSyncedArgs {
        istiod_debug: "127.0.0.1:1".parse().expect("address"),
        istiod_xds: "127.0.0.1:2".parse().expect("address"),
        node_dir: "/node".into(),
        patience: Some(Duration::from_secs(3)),
    }));
}

#[test]
fn compare_round_trips() {
    round_trip(RunnerCommand::Compare(CompareArgs {
        runs: vec!["/1".into(), "/2".into(), "/3".into()],
        out: Some("/c.txt".into()),
        transient: true,
    }));
}

#[test]
fn every_subcommand_has_its_round_trip() {
    use clap::CommandFactory;
    let names: Vec<String> = RunnerCli::command()
        .get_subcommands()
        .map(|c| c.get_name().replace('-', "_"))
        .collect();
    let source = include_str!("tests.rs");
    for name in names {
        assert!(
            source.contains(&format!("fn {name}_round_trips()")),
            "no round trip for {name}"
        );
    }
}

//! A run of the suite: `mirror-e2e local` and `mirror-e2e cluster`, and how each ends
//! (its report, its artifacts kept or removed, its exit code).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use e2e::cluster::{
    ClusterOptions, ClusterScoped, CreatedObjects, InstalledIstiod, Proxies, installed_istio,
};
use e2e::envoy::process::HOW_TO_GET_ENVOY;
use e2e::exit::Exit;
use e2e::local::LocalOptions;
use e2e::report::RunReport;
use e2e::report::live::LiveReport;
use e2e::run::{ClusterRun, RunOutcome, run_cluster, run_local};
use e2e::suite::{self, DEFAULT_CONCURRENCY, Spec, harness_arguments};
use mirror_e2e_contract::args::{ClusterArgs, LocalArgs};
use mirror_e2e_contract::new_run_id;

use super::node::{NodeSite, start_node_agent};
use super::{absolute, client, istio_version, runtime, stop_requested, workloads};
use e2e::workload::ProcessGroups;

/// The behaviour under test (`Spec::for_manifests`) and the checks the harness selects, or
/// how this process ends before anything starts: a bad expectations file or a filter that
/// selects nothing (exit 2), or `--list` done.
fn spec_to_run(
    manifests: &std::path::Path,
    expectations: Option<&std::path::Path>,
    harness: &libtest_mimic::Arguments,
) -> Result<Spec, ExitCode> {
    let spec = Spec::for_manifests(manifests, expectations).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(Exit::Usage)
    })?;
    if harness.list {
        return Err(libtest_mimic::run(harness, suite::listing(&spec)).exit_code());
    }
    match selects_nothing(harness, &spec) {
        Some(code) => Err(code),
        None => Ok(spec),
    }
}

/// Fails, before anything starts, when the harness arguments select no check.
fn selects_nothing(harness: &libtest_mimic::Arguments, spec: &Spec) -> Option<ExitCode> {
    if !suite::selected(harness, spec).is_empty() {
        return None;
    }
    let filter = harness
        .filter
        .as_deref()
        .map_or_else(|| "given".to_owned(), |f| format!("`{f}`"));
    eprintln!(
        "error: the filter {filter}{} matches no check; the checks are:\n  {}",
        if harness.exact { " (--exact)" } else { "" },
        spec.check_names().join("\n  ")
    );
    Some(Exit::Usage.into())
}

/// Where runs keep their evidence unless told (`--artifacts-root`, `MIRROR_E2E_ARTIFACTS_ROOT`).
const ARTIFACTS_ROOT: &str = "target/e2e";
/// Locally, routes reach Envoy in milliseconds and Envoy starts in under 0.1 s, so 5 s is
/// ample and a broken route fails fast.
const LOCAL_PATIENCE: Duration = Duration::from_secs(5);
/// Every wait for a cluster; the checks retry for a tenth of it.
const CLUSTER_PATIENCE: Duration = Duration::from_secs(300);

pub(crate) fn local(args: LocalArgs) -> ExitCode {
    let LocalArgs {
        istio,
        envoy,
        workload,
        suite: args,
    } = args;
    let istio = istio_version(istio.as_deref());
    let workloads = workloads(&workload.workloads, workload.workload_dir.as_ref());
    let run_started = e2e::progress::run_started(args.elapsed);
    let harness = harness_arguments(&args.harness);
    let spec = match spec_to_run(&args.manifests, args.expectations.as_deref(), &harness) {
        Ok(spec) => spec,
        Err(code) => return code,
    };
    let Some(envoy) = envoy else {
        eprintln!("error: --envoy: no Envoy binary given: {HOW_TO_GET_ENVOY}");
        return Exit::Environment.into();
    };
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let run_id = new_run_id();
    let artifacts = args
        .artifacts_root
        .unwrap_or_else(|| ARTIFACTS_ROOT.into())
        .join(&run_id);
    let live = LiveReport::default();
    let groups = ProcessGroups::default();
    let opts = LocalOptions {
        manifests: args.manifests,
        istio,
        envoy,
        artifacts: artifacts.clone(),
        patience: args.patience.unwrap_or(LOCAL_PATIENCE),
        mirror_host: spec.mirror.clone(),
        host: spec.host.clone(),
        run_id: run_id.clone(),
        concurrency: usize::try_from(args.concurrency).unwrap_or(DEFAULT_CONCURRENCY),
        allow_lint_errors: args.allow_lint_errors,
        run_started,
        workloads,
        process_groups: groups.clone(),
    };
    // Ctrl-C: Envoy dies with us (PR_SET_PDEATHSIG) and the workloads live in this process;
    // what is left is to say where the evidence is and exit non-zero.
    exit_on_ctrl_c(&runtime, artifacts.clone(), live.clone(), groups);
    finish(
        run_local(&runtime, &opts, spec, &harness, &live),
        &artifacts,
        args.keep,
    )
}

pub(crate) fn cluster(args: ClusterArgs) -> ExitCode {
    let expected_istio = args.istio.as_deref().map(|v| istio_version(Some(v)));
    let patience = args.suite.patience.unwrap_or(CLUSTER_PATIENCE);
    let run_started = e2e::progress::run_started(args.suite.elapsed);
    let harness = harness_arguments(&args.suite.harness);
    let spec = match spec_to_run(
        &args.suite.manifests,
        args.suite.expectations.as_deref(),
        &harness,
    ) {
        Ok(spec) => spec,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    let artifacts = args
        .suite
        .artifacts_root
        .clone()
        .unwrap_or_else(|| ARTIFACTS_ROOT.into())
        .join(&run_id);
    let (client, istiod, context) = match connect(&runtime, &args) {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let host = format!("{run_id}.mirror-e2e.test");
    eprintln!(
        "cluster: {context}; Istio {} (from its {}; {}/{}, revision {}); namespace {}; ingress host {host}",
        istiod.version,
        istiod.version_from,
        istiod.namespace,
        istiod.name,
        istiod.revision,
        args.namespace
    );
    if let Some(expected) = expected_istio
        && expected != istiod.version
    {
        eprintln!(
            "error: --istio {expected}: the cluster runs Istio {}",
            istiod.version
        );
        return Exit::Environment.into();
    }
    let process_groups = ProcessGroups::default();
    let node_agent = match start_node_agent(
        &runtime,
        &client,
        &NodeSite {
            namespace: &args.namespace,
            ingress: &args.ingress,
            patience,
            process_groups: &process_groups,
        },
        &args.data_plane,
        istiod.version,
        &artifacts.join("node"),
    ) {
        Ok(agent) => agent,
        Err(e) => {
            // The run stops before its checks: its report says why, as every run's does.
            let report = RunReport {
                run_id: run_id.clone(),
                mode: "cluster".into(),
                istio: istiod.version.to_string(),
                phases: args.phases.clone(),
                notes: control_plane_note(&args),
                error: Some(format!("the node's data plane did not start: {e}")),
                stopped_as: Some(Exit::Environment),
                ..RunReport::default()
            };
            return finish_stopped_early(&report, &artifacts);
        }
    };
    let notes = control_plane_note(&args);
    let site = RunSite {
        host,
        istiod,
        patience,
        mirror: spec.mirror.clone(),
        run_id: run_id.clone(),
        artifacts: artifacts.clone(),
    };
    let run = cluster_run(args, site, notes, run_started);
    let live = LiveReport::default();
    on_ctrl_c(&runtime, &client, &run, &live, process_groups);
    let keep = run.keep;
    let outcome = run_cluster(&runtime, client, &run, spec, &run_id, &harness, &live);
    if let Some(agent) = node_agent
        && let Err(e) = runtime.block_on(agent.shutdown())
    {
        eprintln!("error: {e}");
        let _ = finish(outcome, &artifacts, keep);
        return Exit::Environment.into();
    }
    finish(outcome, &artifacts, keep)
}

/// A client for the run's cluster and the Istio installed there, with the cluster's name
/// for messages; on failure, the exit code (the error said).
fn connect(
    runtime: &tokio::runtime::Runtime,
    args: &ClusterArgs,
) -> Result<(kube::Client, InstalledIstiod, String), ExitCode> {
    let context = format!(
        "kubeconfig {}, context {}",
        args.target
            .kubeconfig
            .as_ref()
            .map_or("(default)".to_owned(), |p| p.display().to_string()),
        args.target.context.as_deref().unwrap_or("(current)")
    );
    let client = runtime
        .block_on(client(
            args.target.kubeconfig.as_deref(),
            args.target.context.clone(),
        ))
        .map_err(|e| {
            eprintln!("error: connect to the cluster ({context}): {e}");
            ExitCode::from(Exit::Environment)
        })?;
    let istiod = runtime
        .block_on(installed_istio(&client, args.revision.as_deref()))
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(Exit::Environment)
        })?;
    Ok((client, istiod, context))
}

/// What the run found out before it is described: its host, the cluster's istiod, its
/// patience, the mirror, its id and its artifacts.
struct RunSite {
    host: String,
    istiod: InstalledIstiod,
    patience: Duration,
    mirror: String,
    run_id: String,
    artifacts: PathBuf,
}

/// The cluster run that `args` ask for, at `site`.
fn cluster_run(
    args: ClusterArgs,
    site: RunSite,
    notes: Vec<String>,
    run_started: std::time::Instant,
) -> ClusterRun {
    ClusterRun {
        cluster: ClusterOptions {
            namespace: args.namespace,
            ingress: args.ingress,
            host: site.host,
            istiod: site.istiod,
            bookinfo_hub: args.bookinfo_hub,
            echo_hub: args.echo_hub,
            bookinfo_tag: args.bookinfo_tag,
            restart_workloads: args.restart_workloads,
            patience: site.patience,
            mirror: site.mirror,
            run_id: site.run_id,
            // A namespace of the run's own means a cluster the run does not own.
            cluster_scoped: match (args.delete_namespace, args.allow_cluster_scoped) {
                (false, _) => ClusterScoped::Apply,
                (true, false) => ClusterScoped::Refuse,
                (true, true) => ClusterScoped::ApplyAndDelete,
            },
            created: CreatedObjects::default(),
            proxies: if args.data_plane.node.is_some() || args.node_proxies {
                Proxies::Node
            } else {
                Proxies::Injected
            },
        },
        manifests: args.suite.manifests,
        artifacts: site.artifacts,
        notes,
        version_label: args.version_label,
        delete_namespace: args.delete_namespace,
        keep: args.suite.keep,
        earlier_phases: args.phases,
        concurrency: usize::try_from(args.suite.concurrency).unwrap_or(DEFAULT_CONCURRENCY),
        allow_lint_errors: args.suite.allow_lint_errors,
        run_started,
    }
}

/// On Ctrl-C: a namespace this run created goes too (unless kept), and what it created
/// cluster-wide, then exit non-zero at once: the deletion is asked for, not waited for
/// (Kubernetes finishes it). Otherwise as every run: say where the evidence is.
fn on_ctrl_c(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    run: &ClusterRun,
    live: &LiveReport,
    process_groups: ProcessGroups,
) {
    if run.delete_namespace && !run.keep {
        let client = client.clone();
        let namespace = run.cluster.namespace.clone();
        let created = run.cluster.created.clone();
        let artifacts = run.artifacts.clone();
        let live = live.clone();
        runtime.spawn(async move {
            if stop_requested().await {
                eprintln!("\ninterrupted: deleting namespace {namespace}");
                if let Err(e) = e2e::cluster::delete_created(&client, &created).await {
                    eprintln!("error: {e}");
                }
                match e2e::cluster::request_namespace_deletion(&client, &namespace).await {
                    Ok(()) => eprintln!(
                        "namespace {namespace} is being deleted (`kubectl get namespace {namespace}` shows when it is gone)"
                    ),
                    Err(e) => eprintln!("error: {e}"),
                }
                process_groups.kill_all();
                live.write_stopped("interrupted (Ctrl-C)");
                eprintln!("partial evidence kept in {}", absolute(&artifacts).display());
                std::process::exit(130);
            }
        });
    } else {
        exit_on_ctrl_c(runtime, run.artifacts.clone(), live.clone(), process_groups);
    }
}

/// What configured the mesh's proxies, for the report.
fn control_plane_note(args: &ClusterArgs) -> Vec<String> {
    if let Some(text) = &args.control_plane {
        return vec![format!("control plane: {text}")];
    }
    match (&args.data_plane.node, args.data_plane.istiod_xds) {
        (Some(node), Some(xds)) => vec![format!(
            "control plane: the real istiod (xDS {xds}) configured node {node}'s proxies over ADS"
        )],
        (Some(node), None) => vec![format!(
            "control plane: this project's translation (e2e/model/src/envoy/config.rs) configured node {node}'s proxies; istiod does not run"
        )],
        (None, _) => Vec::new(),
    }
}

/// On Ctrl-C: say where the evidence is and exit non-zero. Child processes die with us;
/// what a cluster run created is cleaned up by xtask, which outlives this process.
pub(crate) fn exit_on_ctrl_c(
    runtime: &tokio::runtime::Runtime,
    artifacts: PathBuf,
    live: LiveReport,
    process_groups: ProcessGroups,
) {
    runtime.spawn(async move {
        if stop_requested().await {
            process_groups.kill_all();
            live.write_stopped("interrupted (Ctrl-C)");
            eprintln!(
                "\ninterrupted: partial evidence kept in {}",
                absolute(&artifacts).display()
            );
            std::process::exit(130);
        }
    });
}

/// Writes the report of a run that stopped before its checks, says why and where it is,
/// and exits in the report's class.
fn finish_stopped_early(report: &RunReport, artifacts: &std::path::Path) -> ExitCode {
    let written = std::fs::create_dir_all(artifacts)
        .map_err(|e| format!("create {}: {e}", artifacts.display()))
        .and_then(|()| report.write(artifacts).map_err(|e| e.to_string()));
    eprintln!(
        "error: {}",
        report.error.as_deref().unwrap_or("stopped early")
    );
    match written {
        Ok(()) => {
            e2e::report::append_step_summary(&report.summary_md());
            eprintln!("artifacts: {}", absolute(artifacts).display());
        }
        Err(e) => eprintln!("error: {e}"),
    }
    report.exit().into()
}

pub(crate) fn finish(
    outcome: Result<RunOutcome, e2e::run::RunError>,
    artifacts: &std::path::Path,
    keep: bool,
) -> ExitCode {
    // The job page of a CI run shows each run's summary (GITHUB_STEP_SUMMARY), passing,
    // failing or stopped early alike.
    let summary_md = match &outcome {
        Ok(o) => Some(o.report.summary_md()),
        Err(_) => std::fs::read_to_string(artifacts.join("summary.md")).ok(),
    };
    if let Some(md) = summary_md {
        e2e::report::append_step_summary(&md);
    }
    match outcome {
        Ok(outcome) => {
            if outcome.report.passed() && !keep {
                let _ = std::fs::remove_dir_all(&outcome.artifacts);
                println!("\nartifacts: removed (all checks passed; --keep keeps them)");
            } else {
                println!("\nartifacts: {}", absolute(&outcome.artifacts).display());
            }
            print!("\n{}", outcome.report.summary());
            outcome.report.exit().into()
        }
        Err(e) => {
            eprintln!("error: {e}");
            if artifacts.exists() {
                eprintln!("artifacts: {}", absolute(artifacts).display());
            }
            e.exit().into()
        }
    }
}

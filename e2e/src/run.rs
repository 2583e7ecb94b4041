//! One run of the suite: start the mesh, run the trials, collect evidence, write the report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Conclusion};
use tokio::runtime::Runtime;

use crate::cluster::{self, ClusterError, ClusterMesh, ClusterOptions};
use crate::lint;
use crate::local::{LocalError, LocalMesh, LocalOptions};
use crate::manifest::ManifestSet;
use crate::mesh::Mesh;
use crate::progress::Progress;
use crate::report::{CheckResult, ReportError, RunReport};
use crate::retry::RetryPolicy;
use crate::suite::{self, Spec, Suite};

/// Errors that stop a run before or around its checks (a failing check is not one).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Local mode could not start.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The cluster could not be prepared or cleaned up.
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Deploying or waiting failed before any check ran.
    #[error("{source} (evidence in {})", evidence.display())]
    Deploy {
        /// Why.
        #[source]
        source: Box<ClusterError>,
        /// Where the evidence is.
        evidence: PathBuf,
    },
}

impl From<ClusterError> for RunError {
    fn from(e: ClusterError) -> Self {
        RunError::Cluster(Box::new(e))
    }
}

/// What a finished run produced.
pub struct RunOutcome {
    /// The report (also written to the artifacts directory).
    pub report: RunReport,
    /// libtest-mimic's conclusion (its exit code is the run's).
    pub conclusion: Conclusion,
    /// Where the evidence is.
    pub artifacts: PathBuf,
}

/// A fresh run id: the UTC time and a few random hex digits, e.g. `20261125-193314-a3f0`.
pub fn new_run_id() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    let noise =
        (u64::from(std::process::id()) << 20) ^ u64::from(now.subsec_nanosecond().unsigned_abs());
    format!("{}-{:04x}", now.strftime("%Y%m%d-%H%M%S"), noise & 0xffff)
}

/// Runs the trials over a mesh; gives the mesh back for evidence and shutdown.
fn run_trials<M: Mesh + Send + Sync + 'static>(
    runtime: &Runtime,
    suite: Suite<M>,
    args: &Arguments,
    progress: &mut Progress,
) -> (Conclusion, Vec<CheckResult>, Option<M>) {
    let suite = Arc::new(suite);
    let results = Arc::new(Mutex::new(Vec::new()));
    progress.phase("checks");
    let trials = suite::trials(suite.clone(), runtime.handle().clone(), results.clone());
    let conclusion = progress.suspend(|| libtest_mimic::run(args, trials));
    let checks = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    (
        conclusion,
        checks,
        Arc::try_unwrap(suite).ok().map(|s| s.mesh),
    )
}

/// Runs the suite in local mode. Returns an error only when the mesh could not start; a
/// failing check is a report with failures.
pub fn run_local(
    runtime: &Runtime,
    opts: &LocalOptions,
    spec: Spec,
    args: &Arguments,
) -> Result<RunOutcome, RunError> {
    let run_id = &opts.run_id;
    let mut progress = Progress::new();
    progress.phase("read manifests");
    let set = ManifestSet::load(std::slice::from_ref(&opts.manifests)).map_err(LocalError::from)?;
    let mesh = runtime.block_on(LocalMesh::start(opts, &set, &mut progress))?;
    let (conclusion, checks, mesh) = run_trials(
        runtime,
        Suite::new(mesh, spec, RetryPolicy::istio(opts.patience), run_id)
            .with_concurrency(opts.concurrency),
        args,
        &mut progress,
    );
    progress.phase("collect evidence");
    let stopped = mesh.map_or(Ok(()), |m| runtime.block_on(m.shutdown()));
    let report = RunReport {
        run_id: run_id.to_owned(),
        mode: "local".into(),
        istio: opts.istio.to_string(),
        notes: lint_notes(&set),
        phases: progress.finish(),
        checks,
    };
    report.write(&opts.artifacts)?;
    stopped?;
    Ok(RunOutcome {
        report,
        conclusion,
        artifacts: opts.artifacts.clone(),
    })
}

/// What a cluster run needs besides [`ClusterOptions`].
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// Mesh options.
    pub cluster: ClusterOptions,
    /// Manifests directory.
    pub manifests: PathBuf,
    /// Where the evidence goes.
    pub artifacts: PathBuf,
    /// Delete the namespace at the end (it was created for this run); kept when `keep`.
    pub delete_namespace: bool,
    /// Keep what the run created.
    pub keep: bool,
    /// Phases timed before this process (cluster creation, Istio installation).
    pub earlier_phases: Vec<(String, std::time::Duration)>,
    /// Requests of one batch in flight at once.
    pub concurrency: usize,
}

/// The checks' retry in cluster mode: a tenth of the patience, which is sized for rollouts
/// and image pulls (300 s by default gives Istio's own 30 s for config propagation).
fn check_retry_policy(patience: std::time::Duration) -> RetryPolicy {
    RetryPolicy::istio(patience / 10)
}

/// Runs the suite against a cluster whose API `client` reaches.
pub fn run_cluster(
    runtime: &Runtime,
    client: kube::Client,
    run: &ClusterRun,
    spec: Spec,
    run_id: &str,
    args: &Arguments,
) -> Result<RunOutcome, RunError> {
    let mut progress = Progress::new();
    let set = ManifestSet::load(std::slice::from_ref(&run.manifests)).map_err(|e| {
        ClusterError::Manifests {
            path: run.manifests.display().to_string(),
            message: e.to_string(),
        }
    })?;
    if let Some(e) = set.syntax_errors.first() {
        return Err(ClusterError::Manifests {
            path: run.manifests.display().to_string(),
            message: e.to_string(),
        }
        .into());
    }
    std::fs::create_dir_all(&run.artifacts).map_err(|e| ReportError {
        path: run.artifacts.clone(),
        message: e.to_string(),
    })?;
    let mut report = RunReport {
        run_id: run_id.to_owned(),
        mode: "cluster".into(),
        istio: run.cluster.istiod.version.to_string(),
        notes: lint_notes(&set),
        ..RunReport::default()
    };
    let deployed = runtime.block_on(ClusterMesh::deploy(
        client.clone(),
        &set,
        run.cluster.clone(),
        &mut progress,
    ));
    let (conclusion, passed) = match deployed {
        Ok(mesh) => {
            let (conclusion, checks, _mesh) = run_trials(
                runtime,
                Suite::new(mesh, spec, check_retry_policy(run.cluster.patience), run_id)
                    .with_concurrency(run.concurrency),
                args,
                &mut progress,
            );
            report.checks = checks;
            let passed = report.passed();
            (Ok(conclusion), passed)
        }
        Err(e) => {
            report.notes.push(format!("deploy failed: {e}"));
            (Err(e), false)
        }
    };
    if !passed {
        progress.phase("collect evidence");
        let notes = runtime.block_on(cluster::evidence::collect(
            &client,
            &run.cluster.namespace,
            &run.artifacts.join("evidence"),
        ));
        report.notes.extend(notes);
    }
    let cleanup = if run.delete_namespace && !run.keep {
        progress.phase("delete namespace");
        runtime.block_on(cluster::delete_namespace(
            &client,
            &run.cluster.namespace,
            run.cluster.patience,
        ))
    } else {
        Ok(())
    };
    report.phases = run
        .earlier_phases
        .iter()
        .cloned()
        .chain(progress.finish())
        .collect();
    report.write(&run.artifacts)?;
    let conclusion = conclusion.map_err(|source| RunError::Deploy {
        source: Box::new(source),
        evidence: run.artifacts.clone(),
    })?;
    // A cleanup failure is a failure of the run, reported after the checks' outcome.
    cleanup?;
    Ok(RunOutcome {
        report,
        conclusion,
        artifacts: run.artifacts.clone(),
    })
}

/// Lint errors in the manifests under test, as report notes: a failing check is easier to
/// read next to "the mirror host names no Service".
fn lint_notes(set: &ManifestSet) -> Vec<String> {
    lint::lint(set)
        .into_iter()
        .filter(|f| f.severity == lint::Severity::Error)
        .map(|f| format!("lint: {f}"))
        .collect()
}

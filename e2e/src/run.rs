//! One run of the suite: start the mesh, run the trials, collect evidence, write the report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Conclusion};
use tokio::runtime::Runtime;

use crate::cluster::{self, ClusterError, ClusterMesh, ClusterOptions};
use crate::exit::Exit;
use crate::lint;
use crate::local::{LocalError, LocalMesh, LocalOptions};
use crate::manifest::ManifestSet;
use crate::mesh::Mesh;
use crate::progress::Progress;
use crate::report::live::LiveReport;
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
    /// Local mode cannot model what the manifests ask for (it never runs something else
    /// than istiod would; nothing has started).
    #[error("local mode cannot run these manifests as istiod would:\n{findings}")]
    LocalUnsupported {
        /// The findings, one a line.
        findings: String,
    },
    /// The manifests have fields their kind's schema does not declare: the API server's
    /// Strict field validation (`kubectl apply`'s default) refuses the object, so local
    /// mode does too, `--allow-lint-errors` or not (nothing has started).
    #[error(
        "local mode refuses fields the schema does not declare, as the API server's Strict field validation does (--allow-lint-errors or not):\n{findings}"
    )]
    UnknownFields {
        /// lint's `unknown-field` findings (file, line, object, path), one a line.
        findings: String,
    },
    /// The manifests under test have lint errors (the run does not start).
    #[error(
        "the manifests under test have {}; fix them, or pass --allow-lint-errors to run anyway:\n{findings}",
        crate::report::plural(*count, "lint error", "lint errors")
    )]
    Lint {
        /// How many.
        count: usize,
        /// The findings, one a line.
        findings: String,
    },
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

impl RunError {
    /// The class of the failure, for the exit code: manifests that are wrong fail the run as
    /// a check would (retrying cannot help), a machine or cluster that failed is the
    /// environment.
    pub fn exit(&self) -> Exit {
        match self {
            RunError::Lint { .. }
            | RunError::Local(
                LocalError::Invalid { .. }
                | LocalError::Translate(_)
                | LocalError::NoMirror { .. }
                | LocalError::Denied { .. },
            ) => Exit::CheckFailed,
            RunError::Local(LocalError::Manifest(_))
            | RunError::LocalUnsupported { .. }
            | RunError::UnknownFields { .. } => Exit::Usage,
            RunError::Cluster(e) | RunError::Deploy { source: e, .. } => cluster_exit(e),
            _ => Exit::Environment,
        }
    }
}

/// The class of a cluster failure: a document the server refuses, or one the run may not
/// apply, is the manifests' fault; anything else is the cluster's.
fn cluster_exit(e: &ClusterError) -> Exit {
    match e {
        ClusterError::Manifests { .. }
        | ClusterError::UnservedKind { .. }
        | ClusterError::ClusterScoped { .. }
        | ClusterError::UndeclaredField { .. } => Exit::CheckFailed,
        _ => Exit::Environment,
    }
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
    /// libtest-mimic's conclusion (the exit code comes from the report's class).
    pub conclusion: Conclusion,
    /// Where the evidence is.
    pub artifacts: PathBuf,
}

/// A fresh run id (the contract's one format, shared with xtask).
pub use mirror_e2e_contract::new_run_id;

/// Runs the trials over a mesh; gives the mesh back for evidence and shutdown.
fn run_trials<M: Mesh + Send + Sync + 'static>(
    runtime: &Runtime,
    suite: Suite<M>,
    args: &Arguments,
    progress: &mut Progress,
    live: &LiveReport,
) -> (Conclusion, Vec<CheckResult>, Option<M>) {
    let suite = Arc::new(suite);
    let results = Arc::new(Mutex::new(Vec::new()));
    progress.phase("checks");
    let trials = suite::trials(
        suite.clone(),
        runtime.handle().clone(),
        results.clone(),
        live,
    );
    let conclusion = progress.suspend(|| libtest_mimic::run(args, trials));
    let checks = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    (
        conclusion,
        checks,
        Arc::try_unwrap(suite).ok().map(|s| s.mesh),
    )
}

/// Reads the manifests and refuses lint errors unless allowed: a misspelled field would
/// otherwise pass locally (the local mode would never see it) while a cluster rejects it.
/// Warnings go into the report: one may say why a check failed (a rule that can never match).
fn read_manifests(
    path: &Path,
    spec: &Spec,
    allow_lint_errors: bool,
    local: bool,
    report: &mut RunReport,
) -> Result<ManifestSet, RunError> {
    let set = ManifestSet::load(&[path.to_owned()]).map_err(LocalError::from)?;
    let (unsupported, findings): (Vec<lint::Finding>, Vec<lint::Finding>) = lint::lint(&set)
        .into_iter()
        .partition(|f| f.code == lint::local_support::CODE);
    // `--allow-lint-errors` or not: a cluster never takes such an object, and local mode
    // never runs what istiod would not. (A cluster mode's server refuses it by itself.)
    let unknown: Vec<String> = findings
        .iter()
        .filter(|f| f.code == lint::UNKNOWN_FIELD)
        .map(ToString::to_string)
        .collect();
    if local && !unknown.is_empty() {
        return Err(RunError::UnknownFields {
            findings: unknown.join("\n"),
        });
    }
    if local && !unsupported.is_empty() {
        let findings: Vec<String> = unsupported.iter().map(ToString::to_string).collect();
        return Err(RunError::LocalUnsupported {
            findings: findings.join("\n"),
        });
    }
    let (errors, warnings): (Vec<lint::Finding>, Vec<lint::Finding>) = findings
        .into_iter()
        .partition(|f| f.severity == lint::Severity::Error);
    report
        .notes
        .extend(warnings.iter().map(|w| format!("lint: {w}")));
    // The expectations against the routing: a run whose intent and routing disagree says so.
    report
        .notes
        .extend(spec.warnings.iter().map(|w| format!("lint: {w}")));
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if errors.is_empty() {
        return Ok(set);
    }
    if !allow_lint_errors {
        return Err(RunError::Lint {
            count: errors.len(),
            findings: errors.join("\n"),
        });
    }
    report.notes.extend(
        errors
            .iter()
            .map(|e| format!("lint (allowed by --allow-lint-errors): {e}")),
    );
    Ok(set)
}

/// Writes the report of a run that ended with `e` before its checks finished, and gives
/// `e` back: every run that got as far as its directory leaves a report.
fn stopped_early(
    mut report: RunReport,
    live: &LiveReport,
    progress: Progress,
    dir: &Path,
    e: RunError,
) -> RunError {
    report.error = Some(e.to_string());
    report.stopped_as = Some(e.exit());
    report.phases.extend(progress.finish());
    if let Err(w) = report.write(dir) {
        eprintln!("error: {w}");
    }
    live.clear();
    e
}

fn create_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        RunError::Report(ReportError {
            path: dir.to_owned(),
            message: e.to_string(),
        })
    })
}

/// Runs the suite in local mode. Returns an error when the run could not get to its checks
/// (its report says why); a failing check is a report with failures. `live` holds the
/// report in progress for a Ctrl-C handler.
pub fn run_local(
    runtime: &Runtime,
    opts: &LocalOptions,
    spec: Spec,
    args: &Arguments,
    live: &LiveReport,
) -> Result<RunOutcome, RunError> {
    let run_id = &opts.run_id;
    create_dir(&opts.artifacts)?;
    let mut progress = Progress::since(opts.run_started);
    let (not_run, selection) = suite::left_out(args, &spec);
    let mut report = RunReport {
        run_id: run_id.to_owned(),
        mode: "local".into(),
        istio: opts.istio.to_string(),
        not_run,
        selection,
        ..RunReport::default()
    };
    live.start(&opts.artifacts, &report);
    progress.phase("read manifests");
    let set = match read_manifests(
        &opts.manifests,
        &spec,
        opts.allow_lint_errors,
        true,
        &mut report,
    ) {
        Ok(set) => set,
        Err(e) => return Err(stopped_early(report, live, progress, &opts.artifacts, e)),
    };
    let mesh = match runtime.block_on(LocalMesh::start(opts, &set, &mut progress)) {
        Ok(mesh) => mesh,
        Err(e) => {
            return Err(stopped_early(
                report,
                live,
                progress,
                &opts.artifacts,
                e.into(),
            ));
        }
    };
    let (conclusion, checks, mesh) = run_trials(
        runtime,
        // Local mode writes the routing before Envoy starts: nothing propagates.
        Suite::new(
            mesh,
            spec,
            RetryPolicy::istio(opts.patience).settled(),
            run_id,
        )
        .with_concurrency(opts.concurrency),
        args,
        &mut progress,
        live,
    );
    progress.phase("collect evidence");
    let stopped = mesh.map_or(Ok(()), |m| runtime.block_on(m.shutdown()));
    report.phases = progress.finish();
    report.checks = checks;
    if let Err(e) = &stopped {
        report.error = Some(format!("stopping the local mesh: {e}"));
    }
    report.write(&opts.artifacts)?;
    live.clear();
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
    /// Notes from before the run, for its report (which control plane configures the mesh).
    pub notes: Vec<String>,
    /// What ran, when something other than the release played it (the report's
    /// [`RunReport::version_label`]).
    pub version_label: Option<String>,
    /// Delete the namespace at the end (it was created for this run); kept when `keep`.
    pub delete_namespace: bool,
    /// Keep what the run created.
    pub keep: bool,
    /// Phases timed before this process (cluster creation, Istio installation).
    pub earlier_phases: Vec<(String, std::time::Duration)>,
    /// Requests of one batch in flight at once.
    pub concurrency: usize,
    /// Run even when the manifests have lint errors.
    pub allow_lint_errors: bool,
    /// When the run began: its progress lines count from here (`progress::run_started`).
    pub run_started: std::time::Instant,
}

/// The checks' retry in cluster mode: a tenth of the patience, which is sized for rollouts
/// and image pulls (300 s by default gives Istio's own 30 s for config propagation).
fn check_retry_policy(patience: std::time::Duration) -> RetryPolicy {
    RetryPolicy::istio(patience / 10)
}

/// Deletes the run's namespace and what it created cluster-wide (its custom resources
/// first), unless the namespace is not the run's or is kept.
#[allow(clippy::result_large_err)] // ClusterError, as the deletions return it; once per run.
fn clean_up(
    runtime: &Runtime,
    client: &kube::Client,
    run: &ClusterRun,
    progress: &mut Progress,
) -> Result<(), ClusterError> {
    if !run.delete_namespace || run.keep {
        return Ok(());
    }
    progress.phase("delete namespace");
    runtime.block_on(async {
        let created = cluster::delete_created(client, &run.cluster.created).await;
        let namespace =
            cluster::delete_namespace(client, &run.cluster.namespace, run.cluster.patience).await;
        created.and(namespace)
    })
}

/// Runs the suite against a cluster whose API `client` reaches; `live` holds the report in
/// progress for a Ctrl-C handler.
pub fn run_cluster(
    runtime: &Runtime,
    client: kube::Client,
    run: &ClusterRun,
    spec: Spec,
    run_id: &str,
    args: &Arguments,
    live: &LiveReport,
) -> Result<RunOutcome, RunError> {
    create_dir(&run.artifacts)?;
    let mut progress = Progress::since(run.run_started);
    let (not_run, selection) = suite::left_out(args, &spec);
    let mut report = RunReport {
        run_id: run_id.to_owned(),
        mode: "cluster".into(),
        istio: run.cluster.istiod.version.to_string(),
        phases: run.earlier_phases.clone(),
        not_run,
        selection,
        notes: run.notes.clone(),
        version_label: run.version_label.clone(),
        ..RunReport::default()
    };
    live.start(&run.artifacts, &report);
    progress.phase("read manifests");
    let set = match read_manifests(
        &run.manifests,
        &spec,
        run.allow_lint_errors,
        false,
        &mut report,
    ) {
        Ok(set) if set.syntax_errors.is_empty() => set,
        Ok(set) => {
            let e = ClusterError::Manifests {
                path: run.manifests.display().to_string(),
                message: set
                    .syntax_errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            return Err(stopped_early(
                report,
                live,
                progress,
                &run.artifacts,
                e.into(),
            ));
        }
        Err(e) => return Err(stopped_early(report, live, progress, &run.artifacts, e)),
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
                live,
            );
            report.checks = checks;
            let passed = report.passed();
            (Ok(conclusion), passed)
        }
        Err(e) => {
            report.error = Some(format!("deploy failed: {e}"));
            report.stopped_as = Some(cluster_exit(&e));
            (Err(e), false)
        }
    };
    if !passed {
        progress.phase("collect evidence");
        let notes = runtime.block_on(cluster::evidence::collect(
            &client,
            &run.cluster.namespace,
            &run.cluster.istiod.namespace,
            &run.artifacts.join("evidence"),
        ));
        report.notes.extend(notes);
    }
    let cleanup = clean_up(runtime, &client, run, &mut progress);
    report.phases.extend(progress.finish());
    if let Err(e) = &cleanup {
        report.error.get_or_insert_with(|| format!("cleanup: {e}"));
    }
    report.write(&run.artifacts)?;
    live.clear();
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

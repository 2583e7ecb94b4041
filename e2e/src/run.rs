//! One run of the suite: start the mesh, run the trials, collect evidence, write the report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Conclusion};
use tokio::runtime::Runtime;

use crate::lint;
use crate::local::{LocalError, LocalMesh, LocalOptions};
use crate::manifest::ManifestSet;
use crate::progress::Progress;
use crate::report::RunReport;
use crate::retry::RetryPolicy;
use crate::suite::{self, Spec, Suite};

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
    let now = jiff::Timestamp::now();
    let noise =
        (u64::from(std::process::id()) << 20) ^ u64::from(now.subsec_nanosecond().unsigned_abs());
    format!("{}-{:04x}", now.strftime("%Y%m%d-%H%M%S"), noise & 0xffff)
}

/// Runs the suite in local mode. Returns an error only when the mesh could not start; a
/// failing check is a report with failures.
pub fn run_local(
    runtime: &Runtime,
    opts: &LocalOptions,
    spec: Spec,
    run_id: &str,
    args: &Arguments,
) -> Result<RunOutcome, LocalError> {
    let mut progress = Progress::new();
    let mesh = runtime.block_on(LocalMesh::start(opts, &mut progress))?;
    let mut report = RunReport {
        run_id: run_id.to_owned(),
        mode: "local".into(),
        istio: opts.istio.to_string(),
        notes: lint_notes(&opts.manifests),
        ..RunReport::default()
    };
    let suite = Arc::new(Suite::new(
        mesh,
        spec,
        RetryPolicy::istio(opts.patience),
        run_id,
    ));
    let results = Arc::new(Mutex::new(Vec::new()));
    progress.phase("checks");
    let trials = suite::trials(suite.clone(), runtime.handle().clone(), results.clone());
    let conclusion = progress.suspend(|| libtest_mimic::run(args, trials));
    progress.phase("collect evidence");
    let stopped = match Arc::try_unwrap(suite) {
        Ok(suite) => runtime.block_on(suite.mesh.shutdown()),
        Err(_) => Ok(()),
    };
    report.phases = progress.finish();
    report.checks = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    report
        .write(&opts.artifacts)
        .map_err(|e| LocalError::Write {
            path: e.path.clone(),
            source: std::io::Error::other(e.message),
        })?;
    stopped?;
    Ok(RunOutcome {
        report,
        conclusion,
        artifacts: opts.artifacts.clone(),
    })
}

/// Lint errors in the manifests under test, as report notes: a failing check is easier to
/// read next to "the mirror host names no Service".
fn lint_notes(manifests: &Path) -> Vec<String> {
    let Ok(set) = ManifestSet::load(&[manifests.to_owned()]) else {
        return Vec::new();
    };
    lint::lint(&set)
        .into_iter()
        .filter(|f| f.severity == lint::Severity::Error)
        .map(|f| format!("lint: {f}"))
        .collect()
}

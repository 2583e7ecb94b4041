//! The report of the run in progress, as a handle the run gives its suite and its Ctrl-C
//! handler: an interrupted run writes its report too, with the checks that finished.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{CheckResult, RunReport};

/// Shared by the run (which starts and clears it), the suite (which adds each finished
/// check) and a Ctrl-C handler (which writes it). Each run has its own: two runs in one
/// process (tests) never see each other's checks.
#[derive(Debug, Clone, Default)]
pub struct LiveReport(Arc<Mutex<Option<(PathBuf, RunReport)>>>);

impl LiveReport {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(PathBuf, RunReport)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A run started writing into `dir`.
    pub fn start(&self, dir: &Path, report: &RunReport) {
        *self.lock() = Some((dir.to_owned(), report.clone()));
    }

    /// A check finished.
    pub fn check_done(&self, result: &CheckResult) {
        if let Some((_, report)) = self.lock().as_mut() {
            report.checks.push(result.clone());
        }
    }

    /// The checks finished so far.
    pub fn checks(&self) -> Vec<CheckResult> {
        self.lock()
            .as_ref()
            .map(|(_, report)| report.checks.clone())
            .unwrap_or_default()
    }

    /// The run wrote its own report.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// Writes the report of the run in progress as interrupted by `why`; returns where.
    pub fn write_stopped(&self, why: &str) -> Option<PathBuf> {
        let (dir, mut report) = self.lock().take()?;
        report.error = Some(why.to_owned());
        report.stopped_as = Some(crate::exit::Exit::Interrupted);
        report.write(&dir).ok()?;
        Some(dir)
    }
}

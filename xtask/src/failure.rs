//! How a failed command reads: the run's own error first, then what its cleanup added
//! (`CleanupFailed`, `render`). A leaf: the cluster lifetime raises it, the runner and
//! `main` print it.

/// A run that failed, and whose cleanup failed too. Its source is the run's error, so the
/// run's kind (interrupted, the suite's exit code) still classifies it; [`render`] puts
/// the cleanup after the run's own error, which is the news.
#[derive(Debug)]
pub struct CleanupFailed {
    run: anyhow::Error,
    cleanup: String,
}

impl CleanupFailed {
    /// `run`'s error, with `cleanup`'s added.
    pub fn new(run: anyhow::Error, cleanup: &anyhow::Error) -> CleanupFailed {
        CleanupFailed {
            run,
            cleanup: format!("{cleanup:#}"),
        }
    }
}

impl std::fmt::Display for CleanupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "and the cleanup failed too: {}", self.cleanup)
    }
}

impl std::error::Error for CleanupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.run.as_ref())
    }
}

/// `errors` (an error chain, or part of one) as one line: the run's messages first,
/// joined by `: `, then what its cleanup added.
pub fn render<'a>(errors: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let (cleanup, run): (Vec<_>, Vec<_>) = errors.partition(|c| c.is::<CleanupFailed>());
    let mut text = run
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    for c in cleanup {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&c.to_string());
    }
    text
}

//! Progress of a run: the current phase and elapsed time. A spinner on a terminal, plain
//! timestamped lines elsewhere (CI logs), and the phase timings for the report either way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Phase tracker.
pub struct Progress {
    start: Instant,
    current: Option<(String, Instant)>,
    spinner: Option<ProgressBar>,
    phases: Vec<(String, Duration)>,
}

impl Progress {
    /// A tracker that draws a spinner only when stderr is a terminal and `CI` is unset.
    pub fn new() -> Progress {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let spinner = interactive.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            start: Instant::now(),
            current: None,
            spinner,
            phases: Vec::new(),
        }
    }

    /// Ends the current phase (if any) and starts `name`.
    pub fn phase(&mut self, name: &str) {
        self.finish_phase();
        match &self.spinner {
            Some(bar) => bar.set_message(name.to_owned()),
            None => eprintln!("[{:>8.3}s] {name}", self.start.elapsed().as_secs_f64()),
        }
        self.current = Some((name.to_owned(), Instant::now()));
    }

    /// Prints a line without disturbing the spinner.
    pub fn println(&self, line: &str) {
        match &self.spinner {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Runs `f` with the spinner hidden, for work that prints its own lines.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.spinner {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn finish_phase(&mut self) {
        if let Some((name, started)) = self.current.take() {
            self.phases.push((name, started.elapsed()));
        }
    }

    /// Ends the last phase, clears the spinner and returns every phase's duration.
    pub fn finish(mut self) -> Vec<(String, Duration)> {
        self.finish_phase();
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        std::mem::take(&mut self.phases)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

//! Progress of a run: the current phase and elapsed time. A spinner on a terminal, plain
//! timestamped lines elsewhere (CI logs), and the phase timings for the report either way.
//! The clock is the run's: when xtask started the run, its reading at spawn comes as
//! `--elapsed`, and every line goes on from xtask's own (`[   12.3s] phase`, one format).

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
    /// A tracker that draws a spinner only when stderr is a terminal and `CI` is unset,
    /// for a run that starts now.
    pub fn new() -> Progress {
        Progress::since(Instant::now())
    }

    /// A tracker for the run that began at `started` (before this process, when xtask
    /// started it: its lines go on from xtask's).
    pub fn since(started: Instant) -> Progress {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let spinner = interactive.then(|| {
            let bar = ProgressBar::new_spinner().with_elapsed(started.elapsed());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            start: started,
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
            None => eprintln!("{}", phase_line(self.start.elapsed(), name)),
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

/// A phase's line: the run's clock, then the phase (xtask's `Stopwatch` prints the same).
pub fn phase_line(elapsed: Duration, name: &str) -> String {
    format!("[{:>7.1}s] {name}", elapsed.as_secs_f64())
}

/// When the run began, for a process that started `elapsed` into it (`--elapsed`).
pub fn run_started(elapsed: Duration) -> Instant {
    let now = Instant::now();
    now.checked_sub(elapsed).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_line_goes_on_from_the_clock_of_the_run_that_started_this_process() {
        assert_eq!(
            phase_line(Duration::from_millis(12_345), "checks"),
            "[   12.3s] checks"
        );
        assert_eq!(
            phase_line(Duration::ZERO, "read manifests"),
            "[    0.0s] read manifests"
        );
        // Started 42 s into the run: the clock reads at least that.
        let progress = Progress::since(run_started(Duration::from_secs(42)));
        assert!(progress.start.elapsed() >= Duration::from_secs(42));
        assert!(phase_line(progress.start.elapsed(), "x").starts_with("[   42."));
    }
}

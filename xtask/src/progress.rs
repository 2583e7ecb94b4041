//! Progress of long work xtask waits for (a cold Go build): what, how far, how long.
//!
//! On a terminal one line is redrawn every second; elsewhere (CI logs, `CI` set) a plain
//! line is printed every 30 seconds, so a log shows the work is alive without flooding it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The phases of a long command, each printed as `[   12.3s] what` from the command's start.
/// For `e2e`, the run's one clock: the suite gets its reading as `--elapsed` and goes on
/// from it in the same format (`e2e::progress::phase_line`).
#[derive(Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Prints the phase `what` that begins now.
    pub fn step(&self, what: &str) {
        eprintln!("{}", phase_line(self.0.elapsed(), what));
    }

    /// The clock's reading, which a `mirror-e2e` that starts now gets as `--elapsed`, so
    /// its phase lines go on from this clock.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Shows the progress of a child that writes to a log file until stopped.
pub struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
    interactive: bool,
}

impl Ticker {
    /// Starts showing `what` and the line count of `log`.
    pub fn start(what: String, log: PathBuf) -> Ticker {
        let interactive = std::io::stderr().is_terminal()
            && std::env::var_os(mirror_e2e_contract::env::CI).is_none();
        let period = if interactive {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(30)
        };
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let (lock, changed) = &*flag;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let (next, _) = changed
                    .wait_timeout_while(stopped, period, |s| !*s)
                    .unwrap_or_else(|e| e.into_inner());
                stopped = next;
                if *stopped {
                    return;
                }
                let line = status_line(&what, line_count(&log), started.elapsed());
                let mut err = std::io::stderr().lock();
                let _ = if interactive {
                    write!(err, "\r\x1b[K{line}")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
        });
        Ticker {
            stop,
            thread,
            interactive,
        }
    }

    /// Stops the display (and clears the redrawn line on a terminal).
    pub fn stop(self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
        if self.interactive {
            eprint!("\r\x1b[K");
        }
    }
}

/// A phase's line, as the suite prints its own (`e2e::progress::phase_line`).
fn phase_line(elapsed: Duration, what: &str) -> String {
    format!("[{:>7.1}s] {what}", elapsed.as_secs_f64())
}

fn status_line(what: &str, lines: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    format!(
        "{what}: {lines} lines logged, {}m{:02}s",
        secs / 60,
        secs % 60
    )
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

/// The last `n` lines of a log file (none when it cannot be read).
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_line_has_the_suites_format_and_the_suite_gets_the_clocks_reading() {
        assert_eq!(
            phase_line(Duration::from_millis(12_345), "create kwok cluster a"),
            "[   12.3s] create kwok cluster a"
        );
        let clock = Stopwatch(Instant::now() - Duration::from_secs(7));
        use mirror_e2e_contract::args::{LocalArgs, RunnerCommand, SuiteArgs};
        let args = RunnerCommand::Local(Box::new(LocalArgs {
            suite: SuiteArgs {
                elapsed: clock.elapsed(),
                ..SuiteArgs::default()
            },
            ..LocalArgs::default()
        }))
        .to_args();
        let at = args
            .iter()
            .position(|a| a == "--elapsed")
            .expect("--elapsed");
        let secs: f64 = args[at + 1].parse().expect("seconds");
        assert!((7.0..8.0).contains(&secs), "{secs}");
    }

    #[test]
    fn the_status_names_the_work_its_lines_and_its_time() {
        assert_eq!(
            status_line("kubernetes v1.36.1", 523, Duration::from_secs(252)),
            "kubernetes v1.36.1: 523 lines logged, 4m12s"
        );
    }

    #[test]
    fn the_last_lines_of_a_log_are_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("build.log");
        std::fs::write(&log, "a\nb\nc\n").expect("write");
        assert_eq!(last_lines(&log, 2), vec!["b", "c"]);
        assert!(last_lines(&dir.path().join("missing"), 2).is_empty());
    }
}

//! Ctrl-C, and the external programs it must stop.
//!
//! The contract (docs/cluster-modes.md, "Interrupting a run"): on Ctrl-C the running child (kind, istioctl,
//! the suite) is ended at once, nothing new starts, what the run created is cleaned up
//! (unless kept), and xtask exits 130 after its child has exited. A terminal sends SIGINT
//! to the whole foreground process group, but `kill -INT <xtask>` or a CI runner's cancel
//! reaches xtask alone, so xtask ends the child itself: SIGTERM (which no shell left
//! ignored, unlike SIGINT for background jobs), then SIGKILL after [`GRACE`], or at once
//! on a second signal. SIGTERM and SIGHUP reaching xtask count as Ctrl-C (ctrlc's
//! `termination` feature): a CI cancel sends SIGINT, then SIGTERM about 7.5 s later, then
//! kills, and the cleanup after the child must fit in that window.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use xshell::Cmd;

/// How long a child may take to exit after SIGTERM before it is killed. Short: every child
/// (kind, istioctl, curl, the suite) exits at once on SIGTERM, and after a CI cancel's
/// SIGINT the cleanup (`kind delete`) must still finish before the runner kills xtask
/// about 10 s later.
pub const GRACE: Duration = Duration::from_secs(3);

/// How many of a child's last stderr lines an error quotes.
const TAIL: usize = 12;

/// The error of a run that was interrupted; `main` exits 130 on it.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Whether an error chain says the run was interrupted.
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Interrupted>())
}

/// A child that ran and failed: its status and the last lines it wrote to stderr.
#[derive(Debug)]
pub struct Failed {
    /// The program, as the user would type it (no arguments).
    pub program: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Its last stderr lines (empty when its stderr went to the terminal).
    pub stderr_tail: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exited with {}", self.program, self.status)?;
        if !self.stderr_tail.is_empty() {
            write!(f, "; it said:\n  {}", self.stderr_tail.join("\n  "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Failed {}

#[derive(Default)]
struct InterruptState {
    /// How many times Ctrl-C (or SIGTERM, SIGHUP) came; a second one kills the child at once.
    signals: u32,
    /// Exit statuses of children waited for, by pid.
    exited: Vec<(u32, std::io::Result<ExitStatus>)>,
}

/// Where Ctrl-C is noted and children are run so that it stops them. Cloning shares it.
#[derive(Clone, Default)]
pub struct Interrupt {
    shared: Arc<(Mutex<InterruptState>, Condvar)>,
}

/// How a child's output reaches the user.
#[derive(Clone, PartialEq, Eq)]
pub enum Output {
    /// The child writes to this terminal itself (progress bars, colours).
    Terminal,
    /// Lines pass through xtask, which keeps the last stderr lines for the error (and,
    /// in tests, lets the harness capture them).
    Relay,
    /// Nothing is shown (a probe such as `docker info`); the last stderr lines are kept
    /// for the error.
    Quiet,
    /// Both streams go to a log file (a long build's output, too much for a terminal);
    /// while it runs, xtask shows `what`, the lines logged so far and the time taken.
    Log {
        path: std::path::PathBuf,
        what: String,
    },
}

impl Interrupt {
    /// Notes Ctrl-C, SIGTERM and SIGHUP for every holder of this `Interrupt`, from a
    /// signal handler.
    pub fn install_ctrl_c(&self) -> anyhow::Result<()> {
        let this = self.clone();
        ctrlc::set_handler(move || this.trigger()).context("install the Ctrl-C handler")
    }

    /// Marks the run interrupted and wakes whoever waits for a child.
    pub fn trigger(&self) {
        self.lock().signals += 1;
        self.shared.1.notify_all();
    }

    /// Whether Ctrl-C came.
    pub fn is_set(&self) -> bool {
        self.lock().signals > 0
    }

    /// Fails with [`Interrupted`] once Ctrl-C came: call it before starting anything new.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.is_set() {
            Err(Interrupted.into())
        } else {
            Ok(())
        }
    }

    fn lock(&self) -> MutexGuard<'_, InterruptState> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `cmd` to its end, or until Ctrl-C, which ends it (SIGTERM, then SIGKILL after
    /// [`GRACE`]) and fails with [`Interrupted`] once it has exited.
    pub fn run(&self, cmd: Cmd<'_>, output: Output) -> anyhow::Result<()> {
        self.check()?;
        let mut command = Command::from(cmd);
        let program = command.get_program().to_string_lossy().into_owned();
        let mut ticker = None;
        match &output {
            Output::Terminal => {}
            Output::Relay => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::Quiet => {
                command.stdout(Stdio::null()).stderr(Stdio::piped());
            }
            Output::Log { path, what } => {
                let log = std::fs::File::create(path)
                    .with_context(|| format!("create {}", path.display()))?;
                let log_err = log.try_clone().context("share the log file")?;
                command.stdout(log).stderr(log_err);
                ticker = Some(crate::progress::Ticker::start(what.clone(), path.clone()));
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {program}"))?;
        let pid = child.id();
        let relays = relay(&mut child, output == Output::Relay);
        let waiter = self.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            waiter.lock().exited.push((pid, status));
            waiter.shared.1.notify_all();
        });
        let status = self.wait_for(pid);
        let mut stderr_tail: Vec<String> = relays
            .into_iter()
            .filter_map(|r| r.join().ok())
            .flatten()
            .collect();
        if let (Some(ticker), Output::Log { path, .. }) = (ticker, &output) {
            ticker.stop();
            stderr_tail = crate::progress::last_lines(path, TAIL);
        }
        let status = status.with_context(|| format!("wait for {program}"))?;
        if self.is_set() {
            return Err(Interrupted.into());
        }
        if status.success() {
            Ok(())
        } else {
            Err(Failed {
                program,
                status,
                stderr_tail,
            }
            .into())
        }
    }

    /// Waits for child `pid` to exit; on Ctrl-C ends it first: SIGTERM, then SIGKILL after
    /// [`GRACE`] or as soon as a second signal comes.
    fn wait_for(&self, pid: u32) -> std::io::Result<ExitStatus> {
        let (_, changed) = &*self.shared;
        let mut state = self.lock();
        let (mut termed, mut killed) = (false, false);
        loop {
            if let Some(i) = state.exited.iter().position(|(p, _)| *p == pid) {
                return state.exited.swap_remove(i).1;
            }
            if state.signals > 1 && !killed {
                // No SIGTERM after this: the pid may be reaped and reused any moment.
                (termed, killed) = (true, true);
                eprintln!("a second interrupt: killing the child (pid {pid}) now");
                terminate(pid, StopSignal::Kill);
                continue;
            }
            if state.signals > 0 && !termed {
                termed = true;
                terminate(pid, StopSignal::Term);
                let (next, waited) = changed
                    .wait_timeout_while(state, GRACE, |s| {
                        s.signals < 2 && !s.exited.iter().any(|(p, _)| *p == pid)
                    })
                    .unwrap_or_else(|e| e.into_inner());
                state = next;
                if waited.timed_out() && !killed {
                    killed = true;
                    eprintln!(
                        "the child (pid {pid}) did not exit within {GRACE:?} of SIGTERM; killing it"
                    );
                    terminate(pid, StopSignal::Kill);
                }
                continue;
            }
            state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Copies a child's piped stdout and stderr to ours line by line (through `println!` and
/// `eprintln!`, which a test harness captures) when `echo`; the stderr thread returns the
/// last lines.
fn relay(child: &mut Child, echo: bool) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    fn lines(
        from: impl Read + Send + 'static,
        to_stderr: bool,
        echo: bool,
    ) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let mut tail = VecDeque::with_capacity(TAIL);
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                if to_stderr {
                    if echo {
                        eprintln!("{line}");
                    }
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                } else {
                    println!("{line}");
                }
            }
            tail.into()
        })
    }
    let mut threads = Vec::new();
    if let Some(out) = child.stdout.take() {
        threads.push(lines(out, false, echo));
    }
    if let Some(err) = child.stderr.take() {
        threads.push(lines(err, true, echo));
    }
    threads
}

enum StopSignal {
    Term,
    Kill,
}

#[cfg(unix)]
fn terminate(pid: u32, signal: StopSignal) {
    use nix::sys::signal::{Signal as S, kill};
    use nix::unistd::Pid;
    let signal = match signal {
        StopSignal::Term => S::SIGTERM,
        StopSignal::Kill => S::SIGKILL,
    };
    if let Ok(pid) = i32::try_from(pid) {
        // It may have exited on its own in the meantime: nothing to do then.
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

#[cfg(not(unix))]
fn terminate(pid: u32, _signal: StopSignal) {
    // Windows has no SIGTERM: ask taskkill to end the child's tree.
    let _ = Command::new("taskkill")
        .args(["/PID", &pid.to_string(), "/T", "/F"])
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use xshell::{Shell, cmd};

    #[test]
    fn a_failing_child_reports_its_status_and_last_words() {
        let sh = Shell::new().expect("shell");
        let err = Interrupt::default()
            .run(
                cmd!(
                    sh,
                    "sh -c 'echo progress; echo \"ERROR: no luck\" >&2; exit 3'"
                ),
                Output::Relay,
            )
            .expect_err("fails");
        let failed = err.downcast_ref::<Failed>().expect("a Failed");
        assert_eq!(failed.status.code(), Some(3));
        assert_eq!(failed.stderr_tail, ["ERROR: no luck"]);
        assert!(
            err.to_string().contains("it said:\n  ERROR: no luck"),
            "{err}"
        );
    }

    /// Runs `sh -c SCRIPT FIFO`, whose SCRIPT writes to the fifo `$0` once it runs (the open
    /// blocks until read), and presses Ctrl-C `presses` times as soon as it has. Returns the
    /// error, how long the run took, and the interrupt.
    fn interrupted(script: &str, presses: u32) -> (anyhow::Error, Duration, Interrupt) {
        let sh = Shell::new().expect("shell");
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("started");
        cmd!(sh, "mkfifo {fifo}").run().expect("mkfifo");
        let interrupt = Interrupt::default();
        let trigger = interrupt.clone();
        let fifo_reader = fifo.clone();
        let watcher = std::thread::spawn(move || {
            std::fs::read_to_string(fifo_reader).expect("read fifo");
            for _ in 0..presses {
                trigger.trigger();
            }
        });
        let start = Instant::now();
        let err = interrupt
            .run(cmd!(sh, "sh -c {script} {fifo}"), Output::Relay)
            .expect_err("interrupted");
        let took = start.elapsed();
        watcher.join().expect("watcher");
        (err, took, interrupt)
    }

    #[test]
    fn ctrl_c_ends_a_running_child_at_once_and_nothing_starts_after() {
        let (err, took, interrupt) = interrupted("echo started > \"$0\"; exec sleep 600", 1);
        assert!(is_interrupted(&err), "{err:#}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let sh = Shell::new().expect("shell");
        let again = interrupt.run(cmd!(sh, "true"), Output::Relay);
        assert!(
            again.is_err_and(|e| is_interrupted(&e)),
            "nothing new starts"
        );
    }

    #[test]
    fn a_second_interrupt_kills_a_child_that_ignores_sigterm_at_once() {
        // A CI cancel: SIGINT, then SIGTERM ~7.5 s later, then a kill ~2.5 s after that.
        // The grace alone must leave the cleanup most of that window.
        assert!(GRACE <= Duration::from_secs(3), "{GRACE:?}");
        // An ignored SIGTERM survives exec: this child only ends by SIGKILL.
        let (err, took, _) = interrupted("trap '' TERM; echo started > \"$0\"; exec sleep 600", 2);
        assert!(is_interrupted(&err), "{err:#}");
        assert!(took < GRACE, "{took:?}");
    }
}

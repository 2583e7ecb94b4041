//! The namespaces a kwok cluster runs in, and the one process that holds them.
//!
//! `unshare --user --map-root-user --net --pid --fork --kill-child` starts the holder: a
//! `sleep infinity` that is PID 1 of a new PID namespace, inside a new user and network
//! namespace. Every component joins all three with `nsenter`. When the holder ends, the
//! kernel ends every process of its PID namespace, so deleting a cluster is one SIGKILL
//! and no component can outlive it. No root is needed where unprivileged user namespaces
//! are allowed; root works everywhere.
//!
//! `holder` in the cluster's directory records the `unshare` process's pid and start time,
//! so a later run finds a kept cluster and never mistakes a recycled pid for it.

use std::collections::HashMap;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::poll::poll_until;

/// The process holding a cluster's namespaces, and the components started in them.
pub struct Holder {
    /// The `unshare` process.
    pub pid: u32,
    /// Its start time (field 22 of /proc/<pid>/stat), recorded against pid reuse.
    start_time: u64,
    /// The PID-1 process inside (the one `nsenter` targets).
    inner: u32,
    /// Components this process started: name -> child (to report one that exits).
    children: Mutex<HashMap<String, Child>>,
    /// The `unshare` child, when this process started it (to reap it).
    own: Mutex<Option<Child>>,
}

const RECORD: &str = "holder";

/// How long a component started in the cluster lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// As long as the cluster: kept with it, ended with its holder (etcd, the API server,
    /// the istiod of a cluster the run created).
    Cluster,
    /// As long as the run that started it, however the run ends, SIGKILL included: what a
    /// run starts in a cluster it reused (its istiod), and the run's own node agent.
    Run,
}

impl Holder {
    /// Starts a holder for the cluster in `dir` and records it there.
    pub fn start(sh: &Shell, dir: &Path) -> anyhow::Result<Holder> {
        let mut command = Command::from(cmd!(
            sh,
            "unshare --user --map-root-user --net --pid --fork --kill-child sleep infinity"
        ));
        // Its own process group: a terminal's Ctrl-C reaches xtask, which decides what
        // happens to the cluster (deleted unless kept), not the cluster's processes.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start unshare (util-linux) to create the cluster's namespaces")?;
        let pid = child.id();
        let mut holder = Holder {
            pid,
            start_time: 0,
            inner: 0,
            children: Mutex::new(HashMap::new()),
            own: Mutex::new(Some(child)),
        };
        // unshare forks its PID-1 child at once; wait (bounded) until it is there.
        let inner = poll_until(
            "unshare to start the process inside its namespaces",
            Duration::from_secs(10),
            None,
            |seen| {
                // unshare's child writes the namespace's uid and gid maps and then execs
                // `sleep`; until then nsenter into it fails ("setgid failed: Invalid
                // argument"). A child that runs `sleep` has its maps.
                if let Some(inner) = first_child(pid)
                    && command_name(inner).as_deref() == Some("sleep")
                {
                    return Ok(Some(inner));
                }
                let mut own = holder.own.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(own) = own.as_mut()
                    && let Ok(Some(status)) = own.try_wait()
                {
                    let mut said = String::new();
                    if let Some(mut err) = own.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut err, &mut said);
                    }
                    bail!(
                        "unshare exited ({status}) before creating the namespaces: {}\n(--cluster kwok needs user namespaces: as root, or with unprivileged user namespaces enabled, e.g. sysctl kernel.unprivileged_userns_clone=1)",
                        said.trim()
                    );
                }
                *seen = format!("unshare (pid {pid}) has no child yet");
                Ok(None)
            },
        );
        holder.inner = match inner {
            Ok(inner) => inner,
            Err(e) => {
                let _ = holder.stop();
                return Err(e);
            }
        };
        holder.start_time = start_time(pid).context("read the holder's start time")?;
        std::fs::write(
            dir.join(RECORD),
            format!("{} {} {}\n", holder.pid, holder.start_time, holder.inner),
        )
        .with_context(|| format!("record the holder in {}", dir.display()))?;
        Ok(holder)
    }

    /// The holder recorded in `dir`, if it still runs (the same process, not a recycled pid).
    pub fn read(dir: &Path) -> anyhow::Result<Option<Holder>> {
        let path = dir.join(RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let fields: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: expected `pid start-time inner-pid`", path.display()))?;
        let [pid, started, inner] = fields[..] else {
            bail!("{}: expected `pid start-time inner-pid`", path.display());
        };
        let (Ok(pid), Ok(inner)) = (u32::try_from(pid), u32::try_from(inner)) else {
            bail!("{}: a pid out of range", path.display());
        };
        if start_time(pid).ok() != Some(started) {
            return Ok(None);
        }
        Ok(Some(Holder {
            pid,
            start_time: started,
            inner,
            children: Mutex::new(HashMap::new()),
            own: Mutex::new(None),
        }))
    }

    /// `nsenter`'s arguments into the holder's namespaces.
    fn enter(&self, with_pid: bool) -> Vec<String> {
        let mut args = vec![
            format!("--target={}", self.inner),
            "--user".into(),
            "--net".into(),
        ];
        if with_pid {
            args.push("--pid".into());
        }
        args
    }

    /// `nsenter`'s arguments that run a program in the cluster's user and network namespace
    /// (not its PID namespace: the program is the run's, not the cluster's).
    pub fn nsenter_args(&self) -> Vec<String> {
        let mut args = self.enter(false);
        args.push("--".into());
        args
    }

    /// Runs a short command in the namespaces and fails with what it said.
    pub fn run(&self, sh: &Shell, args: &[&str]) -> anyhow::Result<()> {
        let enter = self.nsenter_args();
        cmd!(sh, "nsenter {enter...} {args...}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("run `{}` in the cluster's namespaces", args.join(" ")))
    }

    /// GETs `url` from inside the namespaces (curl, at most 2 s, `tls` its certificate
    /// arguments): Ok when it answers below 400, else what curl said.
    pub fn http_ok(&self, sh: &Shell, url: &str, tls: &[String]) -> Result<(), String> {
        let enter = self.nsenter_args();
        match cmd!(
            sh,
            "nsenter {enter...} curl --silent --show-error --fail --max-time 2 {tls...} {url}"
        )
        .quiet()
        .ignore_status()
        .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Starts a component of the cluster in all three namespaces, its output going to `log`.
    pub fn spawn(&self, log: &Path, program: &Path, args: &[String]) -> anyhow::Result<()> {
        self.spawn_with(log, program, args, &[], None, Lifetime::Cluster)
    }

    /// `spawn` with environment variables added to xtask's and, if given, its own working
    /// directory (a program that writes relative paths, as istiod does, writes there), living
    /// as long as `lifetime` says.
    pub fn spawn_with(
        &self,
        log: &Path,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        cwd: Option<&Path>,
        lifetime: Lifetime,
    ) -> anyhow::Result<()> {
        let name = program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("share the log file")?;
        let mut command = match lifetime {
            Lifetime::Cluster => Command::new("nsenter"),
            // setpriv (util-linux, as nsenter) sets the parent-death signal and execs: nsenter
            // dies with this process, and the program with nsenter (PR_SET_PDEATHSIG does not
            // cross nsenter's fork into the PID namespace on its own).
            Lifetime::Run => {
                let mut command = Command::new("setpriv");
                command.args(["--pdeathsig", "KILL", "--", "nsenter"]);
                command
            }
        };
        command.args(self.enter(true)).arg("--");
        if lifetime == Lifetime::Run {
            command.args(["setpriv", "--pdeathsig", "KILL", "--"]);
        }
        command
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .with_context(|| format!("start {name} in the cluster's namespaces"))?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, child);
        Ok(())
    }

    /// Ends the component `name` this process started, and waits until it has: the next
    /// one of that name can take its ports. SIGTERM goes to the program itself, not to the
    /// `nsenter` that started it (which dies of SIGTERM at once, while the program may
    /// still be draining; nsenter waits for it and exits with its status). What has not
    /// ended within `grace` gets SIGKILL. Returns how the program ended.
    pub fn stop_child(
        &self,
        name: &str,
        grace: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::Pid;
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut child) = children.remove(name) else {
            bail!("no {name} was started by this run");
        };
        let nsenter = child.id();
        let group = Pid::from_raw(i32::try_from(nsenter).context("pid out of range")?);
        match child_of(nsenter) {
            Some(program) => {
                let pid = i32::try_from(program).context("pid out of range")?;
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            // Not forked yet, or already gone: the group is all there is.
            None => {
                let _ = killpg(group, Signal::SIGTERM);
            }
        }
        let ended = |child: &mut Child, limit, what: &str| {
            poll_until(what, limit, None, |seen| {
                *seen = "still running".to_owned();
                child.try_wait().with_context(|| format!("wait for {name}"))
            })
        };
        match ended(&mut child, grace, &format!("{name} to end after SIGTERM")) {
            Ok(status) => Ok(status),
            Err(_) => {
                eprintln!("{name} did not end within {grace:?} of SIGTERM: sending SIGKILL");
                let _ = killpg(group, Signal::SIGKILL);
                ended(
                    &mut child,
                    Duration::from_secs(10),
                    &format!("{name} to end after SIGKILL"),
                )
            }
        }
    }

    /// Ends every component this process started, as [`Holder::stop_child`] does, and
    /// leaves the rest of the cluster running: what a run started in a cluster it reused
    /// (istiod) ends with the run, the cluster's own processes do not.
    pub fn stop_started(&self, grace: Duration) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut failed = Vec::new();
        for name in names {
            if let Err(e) = self.stop_child(&name, grace) {
                failed.push(format!("{e:#}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("{}", failed.join("; "))
        }
    }

    /// How a component this process started ended, if it has.
    pub fn exited(&self, name: &str) -> Option<std::process::ExitStatus> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children.get_mut(name)?.try_wait().ok().flatten()
    }

    /// Ends the holder, and with it every process of the cluster; waits until it is gone.
    pub fn stop(&self) -> anyhow::Result<()> {
        if start_time(self.pid).ok() == Some(self.start_time) || self.start_time == 0 {
            use nix::sys::signal::{Signal, kill};
            use nix::unistd::Pid;
            let pid = i32::try_from(self.pid).context("pid out of range")?;
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // The components die with the PID namespace; reap the ones this process started
        // so none is left a zombie, bounded in case the kernel is slow to end them.
        let limit = Duration::from_secs(10);
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for (name, child) in children.iter_mut() {
            let pid = child.id();
            poll_until(
                &format!("{name} (pid {pid}) to end with its cluster"),
                limit,
                None,
                |seen| {
                    *seen = "still running".to_owned();
                    Ok(match child.try_wait() {
                        Ok(Some(_)) | Err(_) => Some(()),
                        Ok(None) => None,
                    })
                },
            )?;
        }
        if let Some(own) = self.own.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            // SIGKILL cannot be ignored: this returns as soon as the kernel has ended it.
            let _ = own.wait();
            return Ok(());
        }
        // Another run's holder: not our child to wait for; watch it go.
        poll_until(
            &format!(
                "the cluster's holder (pid {}) to end after SIGKILL",
                self.pid
            ),
            limit,
            None,
            |seen| {
                *seen = "still running".to_owned();
                Ok((start_time(self.pid).ok() != Some(self.start_time)).then_some(()))
            },
        )
    }
}

/// A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat).
fn start_time(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in stat")?;
    after
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .context("no start time in stat")
}

/// The first process whose parent is `pid` (field 4 of /proc/<pid>/stat).
fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let candidate: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(candidate)
        })
}

/// The command name of `pid` (/proc/<pid>/comm).
fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_owned())
}

/// The first child of `pid`, from /proc/<pid>/task/<pid>/children.
fn first_child(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
fn record_path(dir: &Path) -> PathBuf {
    dir.join(RECORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let me = start_time(std::process::id()).expect("own stat");
        assert!(me > 0);
    }

    #[test]
    fn a_record_whose_process_is_gone_is_no_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        // pid 1 exists but did not start at tick 1: a recycled pid is not the holder.
        std::fs::write(record_path(dir.path()), "1 1 1\n").expect("write");
        assert!(Holder::read(dir.path()).expect("read").is_none());
        std::fs::write(record_path(dir.path()), "garbage\n").expect("write");
        let err = Holder::read(dir.path())
            .err()
            .expect("a malformed record is an error");
        assert!(
            err.to_string()
                .contains("expected `pid start-time inner-pid`"),
            "{err}"
        );
        assert!(
            Holder::read(&dir.path().join("none"))
                .expect("read")
                .is_none()
        );
    }

    #[test]
    fn ending_the_holder_ends_every_process_in_its_namespaces() {
        let sh = Shell::new().expect("shell");
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Holder::start(&sh, dir.path()).expect("namespaces");
        let log = dir.path().join("sleep.log");
        holder
            .spawn(&log, Path::new("/bin/sleep"), &["1000".to_owned()])
            .expect("spawn");
        assert!(holder.exited("sleep").is_none());
        let found = Holder::read(dir.path()).expect("read").expect("recorded");
        assert_eq!(found.pid, holder.pid);
        holder.stop().expect("stop");
        assert!(
            holder.exited("sleep").is_some(),
            "the component outlived its cluster"
        );
        assert!(Holder::read(dir.path()).expect("read").is_none());
    }

    #[test]
    fn a_run_on_a_found_cluster_ends_what_it_started_there_and_nothing_else() {
        let sh = Shell::new().expect("shell");
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Holder::start(&sh, dir.path()).expect("namespaces");
        // The cluster's own component, started by the run that created it.
        holder
            .spawn(
                &dir.path().join("own.log"),
                Path::new("/bin/sleep"),
                &["1000".to_owned()],
            )
            .expect("spawn");
        // A later run finds the cluster and starts a component of its own (istiod).
        let found = Holder::read(dir.path()).expect("read").expect("recorded");
        let sleep = dir.path().join("sleep");
        std::os::unix::fs::symlink("/bin/sleep", &sleep).expect("link");
        found
            .spawn(&dir.path().join("run.log"), &sleep, &["1001".to_owned()])
            .expect("spawn");
        found
            .stop_started(Duration::from_secs(5))
            .expect("stop what the run started");
        assert!(
            found.exited("sleep").is_none(),
            "nothing is left to ask about"
        );
        assert!(
            found.children.lock().expect("lock").is_empty(),
            "the run's component was not ended"
        );
        assert!(
            holder.exited("sleep").is_none(),
            "the cluster's own component was ended"
        );
        holder.stop().expect("stop");
    }

    /// Kills the `nsenter` that started `name` (as the kernel kills it when xtask dies, by
    /// its parent-death signal) and says whether the program it ran is still alive after
    /// a bounded wait for it to go.
    fn survives_its_nsenter(holder: &Holder, name: &str) -> bool {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let nsenter = holder.children.lock().expect("lock")[name].id();
        let program = poll_until(
            "the program under nsenter",
            Duration::from_secs(5),
            None,
            |_| Ok(child_of(nsenter)),
        )
        .expect("forked");
        kill(
            Pid::from_raw(i32::try_from(nsenter).expect("pid")),
            Signal::SIGKILL,
        )
        .expect("kill");
        let gone = poll_until("the program to end", Duration::from_secs(5), None, |seen| {
            let state = std::fs::read_to_string(format!("/proc/{program}/stat")).ok();
            *seen = state.clone().unwrap_or_default();
            // Gone, or a zombie its parent has not reaped.
            Ok(state
                .is_none_or(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .then_some(()))
        });
        gone.is_err()
    }

    #[test]
    fn a_component_of_the_run_dies_with_it_and_one_of_the_cluster_does_not() {
        let sh = Shell::new().expect("shell");
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Holder::start(&sh, dir.path()).expect("namespaces");
        let sleep = |name: &str| {
            let link = dir.path().join(name);
            std::os::unix::fs::symlink("/bin/sleep", &link).expect("link");
            link
        };
        let (run, cluster) = (sleep("run-bound"), sleep("cluster-bound"));
        let log = dir.path().join("sleep.log");
        holder
            .spawn_with(&log, &run, &["1002".to_owned()], &[], None, Lifetime::Run)
            .expect("spawn");
        holder
            .spawn_with(
                &log,
                &cluster,
                &["1003".to_owned()],
                &[],
                None,
                Lifetime::Cluster,
            )
            .expect("spawn");
        assert!(
            !survives_its_nsenter(&holder, "run-bound"),
            "a component of the run outlived the process that started it"
        );
        assert!(
            survives_its_nsenter(&holder, "cluster-bound"),
            "a component of the cluster died with the run that started it"
        );
        holder.stop().expect("stop");
    }
}

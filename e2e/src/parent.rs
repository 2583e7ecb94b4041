//! The runner ends with the xtask that started it, however xtask ends.
//!
//! xtask ends its child itself on Ctrl-C or SIGTERM, but a `kill -9` of xtask (or a crash)
//! leaves no one to do it: the suite would run on as an orphan to the end of its run. xtask
//! passes its pid in [`PARENT_PID_ENV`]; the runner asks the kernel for SIGTERM when its
//! parent dies (`PR_SET_PDEATHSIG`, as Envoy gets SIGKILL when the runner dies), and handles
//! that SIGTERM as Ctrl-C: workloads ended, reports written, the run's namespace deleted.

/// The variable xtask sets to its own pid for the `mirror-e2e` it starts (xtask's
/// `runner.rs` names the same variable).
pub const PARENT_PID_ENV: &str = mirror_e2e_contract::env::PARENT_PID;

/// Arranges for SIGTERM when the parent dies, and fails when the parent is not `parent`
/// any more: it died before the request, so the signal will never come (the kernel only
/// signals on a death after the request). Note the kernel signals when the parent *thread*
/// that spawned this process ends; xtask spawns from the thread that waits for the run.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn end_with_parent(parent: u32) -> Result<(), String> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } == -1 {
        return Err(format!(
            "ask to end with the parent: {}",
            std::io::Error::last_os_error()
        ));
    }
    check_parent(parent)
}

/// Elsewhere only the check is possible: a parent already gone is noticed at start.
#[cfg(not(target_os = "linux"))]
pub fn end_with_parent(parent: u32) -> Result<(), String> {
    check_parent(parent)
}

#[cfg(unix)]
fn check_parent(parent: u32) -> Result<(), String> {
    let now = std::os::unix::process::parent_id();
    if now == parent {
        Ok(())
    } else {
        Err(format!(
            "the process that started mirror-e2e (pid {parent}) has exited already (parent is now pid {now}); stopping"
        ))
    }
}

#[cfg(not(unix))]
fn check_parent(_parent: u32) -> Result<(), String> {
    Ok(())
}

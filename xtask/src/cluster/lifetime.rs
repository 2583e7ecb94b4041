//! A cluster's lifetime, written once for every provider: bring it up (create it, or take
//! the one `--reuse` names), run, then keep or delete it as `keep::fate` says (a cluster
//! this run did not create is never deleted; what the run started in it ends), and report
//! the run's error first with the cleanup's added (`failure::CleanupFailed`). kwokctl's
//! `Runtime` is the model: a provider is one type implementing [`Provider`] (kind, kwok, an
//! existing cluster).

use crate::cluster::keep;
use crate::failure::CleanupFailed;
use crate::interrupt::Interrupt;

/// One way to get a cluster, as the lifetime needs it.
pub trait Provider {
    /// What messages call it, e.g. `kind cluster mirror-e2e-20261125-193314-a3f0`.
    fn describe(&self) -> String;
    /// Creates the cluster, or takes the one to reuse. A failure that is not an
    /// interruption leaves nothing of this run's behind (the provider cleans up after
    /// itself); after an interruption, [`Provider::created_by_this_run`] says what is.
    fn up(&mut self) -> anyhow::Result<()>;
    /// Whether this run created the cluster (even half-way): only then may it delete it.
    fn created_by_this_run(&self) -> bool;
    /// Deletes the cluster this run created (cleanup: runs even after Ctrl-C).
    fn delete(&self) -> anyhow::Result<()>;
    /// Ends what the run started in a cluster it did not create; the cluster's own stay.
    fn end_reused(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// After a failure that is not an interruption: what to keep for the user first
    /// (logs), reported as it goes, never failing the run further.
    fn diagnose(&self) {}
    /// What to tell the user about a kept cluster: where it is, how to reuse or delete it.
    fn kept(&self) -> String;
}

/// Brings `cluster` up, runs `run` (which notes on the tracker when its suite starts),
/// then keeps or deletes the cluster as `request` and the run's ending say, and returns
/// the run's result with a cleanup failure added to it (the run's error first).
pub fn with_cluster<P: Provider, T>(
    cluster: &mut P,
    request: keep::Request,
    interrupt: &Interrupt,
    run: impl FnOnce(&P, &keep::Tracker) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tracker = keep::Tracker::default();
    let outcome = match cluster.up() {
        Ok(()) => run(cluster, &tracker),
        // Nothing of this run's is left: the provider's own cleanup ran.
        Err(e) if !interrupt.is_set() => return Err(e),
        Err(e) => Err(e),
    };
    let interrupted = interrupt.is_set();
    let ending = keep::ending(&outcome, interrupted, tracker.stage());
    if outcome.is_err() && !interrupted {
        cluster.diagnose();
    }
    let cleanup = leave(cluster, request, ending);
    match (outcome, cleanup) {
        (Ok(value), cleanup) => cleanup.map(|()| value),
        (Err(e), Ok(())) => Err(e),
        (Err(run), Err(c)) => Err(CleanupFailed::new(run, &c).into()),
    }
}

/// Keeps or deletes a cluster the run created; ends the run's part in one it reused.
fn leave<P: Provider>(
    cluster: &P,
    request: keep::Request,
    ending: keep::Ending,
) -> anyhow::Result<()> {
    if !cluster.created_by_this_run() {
        return cluster.end_reused();
    }
    match keep::fate(request, ending) {
        keep::Fate::Keep => {
            eprintln!("{}", cluster.kept());
            Ok(())
        }
        keep::Fate::DeleteAnyway(why) => {
            eprintln!("deleting {}: {why}", cluster.describe());
            cluster.delete()
        }
        keep::Fate::Delete => cluster.delete(),
    }
}

#[cfg(test)]
mod tests;

//! Whether a cluster the run created outlives the run. Keeping is for inspecting a mesh
//! that misbehaved: a suite that failed (kept by `--keep`, or on failure outside CI), or any
//! run with `--keep`. A run that failed before its suite ran (create, nodes Ready, Istio's
//! install, istiod's start) has no mesh to inspect: its cluster is deleted even when keeping
//! was asked, and the run says why. Only what the run created is ever deleted; the callers
//! hold that rule (`Kind::started`, `KwokCluster::created_by_this_run`).

use std::cell::Cell;

use crate::flags::OnFailure;

/// How far a run got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    /// Making the cluster ready: create, nodes Ready, Istio's install, istiod's start.
    #[default]
    Setup,
    /// The suite had started (for a walk: its first run, and every hop after it).
    Suite,
}

/// Where a run is, noted as it goes: `suite_starts` just before the suite runs.
#[derive(Default)]
pub struct Tracker(Cell<Stage>);

impl Tracker {
    /// The suite starts now: a failure from here on is the mesh's to inspect.
    pub fn suite_starts(&self) {
        self.0.set(Stage::Suite);
    }

    pub fn stage(&self) -> Stage {
        self.0.get()
    }
}

/// What the user asked for a cluster the run created.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// `--keep`: keep it whatever the outcome.
    pub keep: bool,
    /// Keep it after a failure: `--on-failure keep`, or the default outside CI.
    pub on_failure: bool,
}

impl Request {
    /// From `--keep` and `--on-failure` (unset: keep on a laptop, delete when `CI` is set).
    pub fn from_flags(keep: bool, on_failure: Option<OnFailure>) -> Request {
        Request {
            keep,
            on_failure: on_failure.map_or(
                std::env::var_os(mirror_e2e_contract::env::CI).is_none(),
                |p| p == OnFailure::Keep,
            ),
        }
    }
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Passed,
    Failed(Stage),
    Interrupted(Stage),
}

/// What becomes of the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Delete,
    /// Deleted although keeping was asked; the reason, for the run to say.
    DeleteAnyway(String),
}

/// The cluster's fate after a run that ended so, as `request` asked.
pub fn fate(request: Request, ending: Ending) -> Fate {
    let asked = if request.keep {
        "--keep"
    } else {
        "keeping on failure (--on-failure keep, the default outside CI)"
    };
    let anyway = |what: &str| {
        Fate::DeleteAnyway(format!(
            "{what} before the suite ran, so there is no mesh to inspect; {asked} keeps a cluster whose suite ran"
        ))
    };
    match ending {
        Ending::Passed if request.keep => Fate::Keep,
        Ending::Passed => Fate::Delete,
        // Keeping on failure is for failures; an interruption keeps only with --keep.
        Ending::Interrupted(Stage::Suite) if request.keep => Fate::Keep,
        Ending::Interrupted(Stage::Setup) if request.keep => anyway("the run was interrupted"),
        Ending::Interrupted(_) => Fate::Delete,
        Ending::Failed(Stage::Suite) if request.keep || request.on_failure => Fate::Keep,
        Ending::Failed(Stage::Suite) => Fate::Delete,
        Ending::Failed(Stage::Setup) if request.keep || request.on_failure => {
            anyway("the run failed")
        }
        Ending::Failed(Stage::Setup) => Fate::Delete,
    }
}

/// The ending of a run whose outcome is `outcome`, interrupted or not, at `stage`.
pub fn ending<T>(outcome: &anyhow::Result<T>, interrupted: bool, stage: Stage) -> Ending {
    match outcome {
        Ok(_) => Ending::Passed,
        Err(_) if interrupted => Ending::Interrupted(stage),
        Err(_) => Ending::Failed(stage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKED: [Request; 3] = [
        Request {
            keep: true,
            on_failure: false,
        },
        Request {
            keep: false,
            on_failure: true,
        },
        Request {
            keep: true,
            on_failure: true,
        },
    ];
    const NOTHING: Request = Request {
        keep: false,
        on_failure: false,
    };

    #[test]
    fn a_failure_before_the_suite_deletes_the_cluster_even_when_keeping_was_asked() {
        for request in ASKED {
            let Fate::DeleteAnyway(why) = fate(request, Ending::Failed(Stage::Setup)) else {
                panic!("{request:?}: kept a cluster whose suite never ran");
            };
            assert!(
                why.starts_with(
                    "the run failed before the suite ran, so there is no mesh to inspect; "
                ),
                "{why}"
            );
            let asked = if request.keep {
                "--keep"
            } else {
                "--on-failure keep"
            };
            assert!(why.contains(asked), "{request:?}: {why}");
        }
        assert_eq!(fate(NOTHING, Ending::Failed(Stage::Setup)), Fate::Delete);
    }

    #[test]
    fn a_failed_suite_keeps_the_cluster_when_asked_and_only_then() {
        for request in ASKED {
            assert_eq!(
                fate(request, Ending::Failed(Stage::Suite)),
                Fate::Keep,
                "{request:?}"
            );
        }
        assert_eq!(fate(NOTHING, Ending::Failed(Stage::Suite)), Fate::Delete);
    }

    #[test]
    fn a_pass_keeps_only_with_keep_and_an_interruption_only_with_keep_in_the_suite() {
        let keep = ASKED[0];
        let on_failure = ASKED[1];
        assert_eq!(fate(keep, Ending::Passed), Fate::Keep);
        assert_eq!(fate(on_failure, Ending::Passed), Fate::Delete);
        assert_eq!(fate(keep, Ending::Interrupted(Stage::Suite)), Fate::Keep);
        assert_eq!(
            fate(on_failure, Ending::Interrupted(Stage::Suite)),
            Fate::Delete
        );
        assert!(matches!(
            fate(keep, Ending::Interrupted(Stage::Setup)),
            Fate::DeleteAnyway(why) if why.starts_with("the run was interrupted before the suite ran")
        ));
        assert_eq!(
            fate(on_failure, Ending::Interrupted(Stage::Setup)),
            Fate::Delete
        );
    }

    #[test]
    fn the_stage_is_setup_until_the_suite_starts() {
        let tracker = Tracker::default();
        assert_eq!(tracker.stage(), Stage::Setup);
        let failed: anyhow::Result<()> = Err(anyhow::anyhow!("install istio"));
        assert_eq!(
            ending(&failed, false, tracker.stage()),
            Ending::Failed(Stage::Setup)
        );
        tracker.suite_starts();
        assert_eq!(
            ending(&failed, true, tracker.stage()),
            Ending::Interrupted(Stage::Suite)
        );
        assert_eq!(ending(&Ok(()), false, tracker.stage()), Ending::Passed);
    }
}

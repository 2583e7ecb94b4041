use std::cell::RefCell;

use super::*;
use crate::failure::render;
use crate::interrupt::{Interrupted, is_interrupted};
use crate::runner::Reported;

/// A provider that does nothing but note what it was asked.
#[derive(Default)]
struct Fake {
    /// Reuse a cluster instead of creating one.
    reuse: bool,
    /// `up` fails (after creating half of it, unless reusing).
    up_fails: bool,
    delete_fails: bool,
    created: bool,
    calls: RefCell<Vec<&'static str>>,
}

impl Provider for Fake {
    fn describe(&self) -> String {
        "fake cluster f".into()
    }

    fn up(&mut self) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("up");
        self.created = !self.reuse;
        if self.up_fails {
            anyhow::bail!("create fake cluster f");
        }
        Ok(())
    }

    fn created_by_this_run(&self) -> bool {
        self.created
    }

    fn delete(&self) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("delete");
        if self.delete_fails {
            anyhow::bail!("delete fake cluster f: it would not go");
        }
        Ok(())
    }

    fn end_reused(&self) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("end reused");
        Ok(())
    }

    fn diagnose(&self) {
        self.calls.borrow_mut().push("diagnose");
    }

    fn kept(&self) -> String {
        self.calls.borrow_mut().push("kept");
        "kept fake cluster f".into()
    }
}

const NOTHING: keep::Request = keep::Request {
    keep: false,
    on_failure: false,
};
const KEEP: keep::Request = keep::Request {
    keep: true,
    on_failure: false,
};
const ON_FAILURE: keep::Request = keep::Request {
    keep: false,
    on_failure: true,
};

/// A run that starts its suite, then ends as `end` says.
fn suite(
    end: Result<(), &'static str>,
) -> impl FnOnce(&Fake, &keep::Tracker) -> anyhow::Result<u32> {
    move |f, tracker| {
        f.calls.borrow_mut().push("run");
        tracker.suite_starts();
        end.map(|()| 7).map_err(|e| anyhow::anyhow!(e))
    }
}

fn calls(f: &Fake) -> Vec<&'static str> {
    f.calls.borrow().clone()
}

#[test]
fn a_created_cluster_is_deleted_after_a_pass_and_the_runs_value_returned() {
    let mut f = Fake::default();
    let value =
        with_cluster(&mut f, NOTHING, &Interrupt::default(), suite(Ok(()))).expect("passes");
    assert_eq!(value, 7);
    assert_eq!(calls(&f), ["up", "run", "delete"]);
}

#[test]
fn a_reused_cluster_is_never_deleted_only_what_the_run_started_ends() {
    for end in [Ok(()), Err("suite failed")] {
        let mut f = Fake {
            reuse: true,
            ..Fake::default()
        };
        let _ = with_cluster(&mut f, NOTHING, &Interrupt::default(), suite(end));
        let mut expected = vec!["up", "run"];
        if end.is_err() {
            expected.push("diagnose");
        }
        expected.push("end reused");
        assert_eq!(calls(&f), expected, "{end:?}");
    }
}

#[test]
fn a_failed_suite_is_kept_when_asked_a_failed_setup_never_a_pass_only_with_keep() {
    let mut f = Fake::default();
    with_cluster(
        &mut f,
        ON_FAILURE,
        &Interrupt::default(),
        suite(Err("check failed")),
    )
    .expect_err("fails");
    assert_eq!(calls(&f), ["up", "run", "diagnose", "kept"]);

    let mut f = Fake::default();
    with_cluster(&mut f, KEEP, &Interrupt::default(), |f, _| {
        f.calls.borrow_mut().push("run");
        Err::<(), _>(anyhow::anyhow!("install istio"))
    })
    .expect_err("fails");
    assert_eq!(
        calls(&f),
        ["up", "run", "diagnose", "delete"],
        "no mesh to inspect"
    );

    let mut f = Fake::default();
    with_cluster(&mut f, KEEP, &Interrupt::default(), suite(Ok(()))).expect("passes");
    assert_eq!(calls(&f), ["up", "run", "kept"]);
}

#[test]
fn a_failed_up_leaves_the_cleanup_to_the_provider_unless_interrupted() {
    let mut f = Fake {
        up_fails: true,
        ..Fake::default()
    };
    let err = with_cluster(&mut f, KEEP, &Interrupt::default(), suite(Ok(()))).expect_err("fails");
    assert_eq!(err.to_string(), "create fake cluster f");
    assert_eq!(calls(&f), ["up"]);

    // Ctrl-C during the create: what it started is this run's, deleted even under --keep.
    let mut f = Fake {
        up_fails: true,
        ..Fake::default()
    };
    let interrupt = Interrupt::default();
    interrupt.trigger();
    with_cluster(&mut f, KEEP, &interrupt, suite(Ok(()))).expect_err("interrupted");
    assert_eq!(calls(&f), ["up", "delete"]);
}

#[test]
fn an_interrupted_suite_is_not_diagnosed_and_kept_only_with_keep() {
    for (request, last) in [(KEEP, "kept"), (ON_FAILURE, "delete")] {
        let mut f = Fake::default();
        let interrupt = Interrupt::default();
        let err = with_cluster(&mut f, request, &interrupt, |f, tracker| {
            f.calls.borrow_mut().push("run");
            tracker.suite_starts();
            interrupt.trigger();
            Err::<(), _>(anyhow::Error::new(Interrupted).context("mirror-e2e cluster"))
        })
        .expect_err("interrupted");
        assert!(is_interrupted(&err), "{err:#}");
        assert_eq!(calls(&f), ["up", "run", last], "{request:?}");
    }
}

#[test]
fn a_failed_run_whose_delete_fails_reports_both_the_runs_error_first() {
    let mut f = Fake {
        delete_fails: true,
        ..Fake::default()
    };
    let err = with_cluster(&mut f, NOTHING, &Interrupt::default(), |_, tracker| {
        tracker.suite_starts();
        Err::<(), _>(anyhow::anyhow!("istiod exited").context("Istio 1.31.1: compare"))
    })
    .expect_err("fails");
    let said = render(err.chain());
    assert_eq!(
        said,
        "Istio 1.31.1: compare: istiod exited; and the cleanup failed too: delete fake cluster f: it would not go"
    );
    // A passing run whose delete fails fails with the delete's error alone.
    let mut f = Fake {
        delete_fails: true,
        ..Fake::default()
    };
    let err = with_cluster(&mut f, NOTHING, &Interrupt::default(), suite(Ok(())))
        .expect_err("the delete failed");
    assert_eq!(
        render(err.chain()),
        "delete fake cluster f: it would not go"
    );
}

#[test]
fn the_runs_kind_still_classifies_it_when_the_cleanup_failed_too() {
    let mut f = Fake {
        delete_fails: true,
        ..Fake::default()
    };
    let err = with_cluster(&mut f, NOTHING, &Interrupt::default(), |_, tracker| {
        tracker.suite_starts();
        Err::<(), _>(anyhow::Error::new(Reported { code: 1 }).context("hop 1 of 2"))
    })
    .expect_err("fails");
    let (contexts, code) = Reported::contexts(&err).expect("the suite's failure");
    assert_eq!(code, 1);
    assert_eq!(
        contexts,
        "hop 1 of 2; and the cleanup failed too: delete fake cluster f: it would not go"
    );
}

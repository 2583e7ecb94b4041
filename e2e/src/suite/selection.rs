//! Which checks a run runs: the harness arguments (libtest's filters, `--list`, `--exact`),
//! what a filter leaves out, and the trials the harness runs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Handle;

use super::{Spec, Suite, prerequisites};
use crate::mesh::Mesh;
use crate::report::CheckResult;
use crate::report::live::LiveReport;

/// The harness arguments a run gets: the user's, but always one thread, because the checks
/// share one mesh and some of them change it.
pub fn harness_arguments(args: &[String]) -> Arguments {
    let mut args =
        Arguments::from_iter(std::iter::once("mirror-e2e".to_owned()).chain(args.iter().cloned()));
    args.test_threads = Some(1);
    // One line per check comes from the summary at the end; the harness shows a dot per
    // check while they run (unless the user asks for a format).
    if args.format.is_none() {
        args.quiet = true;
    }
    args
}

/// The checks the harness arguments select, as libtest does: the filter is a substring of
/// the name (the whole name with `--exact`), and `--skip` removes matches; `--ignored`
/// selects none (no check is ignored).
pub fn selected(args: &Arguments, spec: &Spec) -> Vec<String> {
    spec.check_names()
        .into_iter()
        .filter(|name| match &args.filter {
            None => true,
            Some(f) if args.exact => name == f,
            Some(f) => name.contains(f.as_str()),
        })
        .filter(|name| {
            !args.skip.iter().any(|s| {
                if args.exact {
                    name == s
                } else {
                    name.contains(s.as_str())
                }
            })
        })
        .filter(|_| !args.ignored)
        .collect()
}

/// The checks the harness arguments leave out, and how they select, when they leave some
/// out: `(["mirror::..."], Some("filter `routing::`"))`. A report names both, so a partial
/// run never reads as a complete one.
pub fn left_out(args: &Arguments, spec: &Spec) -> (Vec<String>, Option<String>) {
    let chosen = selected(args, spec);
    let not_run: Vec<String> = spec
        .check_names()
        .into_iter()
        .filter(|c| !chosen.contains(c))
        .collect();
    if not_run.is_empty() {
        return (not_run, None);
    }
    let mut how = Vec::new();
    if let Some(f) = &args.filter {
        how.push(format!(
            "{} `{f}`",
            if args.exact { "--exact" } else { "filter" }
        ));
    }
    for s in &args.skip {
        how.push(format!("--skip `{s}`"));
    }
    if args.ignored {
        how.push("--ignored".to_owned());
    }
    (not_run, Some(how.join(", ")))
}

/// The trials, without a mesh: enough for `--list`.
pub fn listing(spec: &Spec) -> Vec<Trial> {
    spec.check_names()
        .into_iter()
        .map(|name| Trial::test(name, || Ok(())))
        .collect()
}

/// The trials over a running suite; each records its [`CheckResult`] into `results` and
/// reports it to the run's `live` report as it finishes.
pub fn trials<M: Mesh + Send + Sync + 'static>(
    suite: Arc<Suite<M>>,
    runtime: Handle,
    results: Arc<Mutex<Vec<CheckResult>>>,
    live: &LiveReport,
) -> Vec<Trial> {
    suite
        .spec
        .checks()
        .into_iter()
        .map(|check| {
            let (suite, runtime, results, live) = (
                suite.clone(),
                runtime.clone(),
                results.clone(),
                live.clone(),
            );
            Trial::test(check.name.clone(), move || {
                let start = Instant::now();
                let name = check.name.as_str();
                let blocked = prerequisites::blocked_by(
                    &check.needs,
                    &results.lock().unwrap_or_else(|e| e.into_inner()),
                );
                let result = match blocked {
                    Some(root) => CheckResult::blocked(name, &root, &suite.spec.expects(&check)),
                    None => {
                        let outcome = runtime.block_on(suite.run_check(&check));
                        suite.result_of(&check, outcome, start)
                    }
                };
                let (passed, message) = (result.passed, result.message.clone());
                live.check_done(&result);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(result);
                if passed {
                    Ok(())
                } else {
                    Err(Failed::from(message))
                }
            })
        })
        .collect()
}

//! The CI workflows under `ci/workflows/` may only call xtask commands and flags that exist,
//! with Istio versions the table supports, and their matrix must be the table.

use std::path::Path;

use clap::Parser;
use serde_yaml::Value;

use crate::{flags, paths, versions};

/// One `cargo xtask ...` invocation found in a workflow's `run:` steps.
#[derive(Debug, Clone)]
struct Invocation {
    place: String,
    args: Vec<String>,
}

/// The `cargo xtask` invocations of a workflow, with `${{ matrix.istio }}` expanded to every
/// value of the default matrix list.
fn invocations(file: &str, text: &str) -> Result<Vec<Invocation>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_mapping)
        .ok_or(format!("{file}: no jobs"))?;
    let mut out = Vec::new();
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap_or("?");
        let matrix = matrix_istio(job);
        for (i, step) in job
            .get("steps")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(run) = step.get("run").and_then(Value::as_str) else {
                continue;
            };
            let step_name = step
                .get("name")
                .and_then(Value::as_str)
                .map_or(format!("step {i}"), str::to_owned);
            for line in run.lines().filter(|l| l.contains("cargo xtask")) {
                let rest = line.split("cargo xtask").nth(1).unwrap_or("");
                let expansions: Vec<String> = if rest.contains("${{ matrix.istio }}") {
                    if matrix.is_empty() {
                        return Err(format!(
                            "{file}: job {job_name}: uses matrix.istio without a matrix list"
                        ));
                    }
                    matrix
                        .iter()
                        .map(|v| rest.replace("${{ matrix.istio }}", v))
                        .collect()
                } else {
                    vec![rest.to_owned()]
                };
                for expanded in expansions {
                    if expanded.contains("${{") {
                        return Err(format!(
                            "{file}: job {job_name}, {step_name}: unexpanded expression in `{}`",
                            line.trim()
                        ));
                    }
                    out.push(Invocation {
                        place: format!("{file}: job {job_name}, {step_name}"),
                        args: arguments(&expanded),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// What a shell variable stands for: its value is known only when the step runs. `0` is
/// accepted by a flag that takes a number, a text or a path; not by `--istio`, whose
/// versions are written out so that they are checked here.
const AT_RUN_TIME: &str = "0";

/// The arguments of a command line after its `cargo xtask`: its words up to the first shell
/// operator (`|`, `;`, `&`, a redirection, or the `)` that ends an `echo "... (replay:
/// cargo xtask ...)"`), without their quotes, a `$variable` standing as [`AT_RUN_TIME`].
fn arguments(rest: &str) -> Vec<String> {
    rest.split(['|', ';', '&', '<', '>', ')'])
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|word| match word.trim_matches(['"', '\'']) {
            variable if variable.starts_with('$') => AT_RUN_TIME.to_owned(),
            word => word.to_owned(),
        })
        .collect()
}

/// The job's `matrix.istio` values: a literal list, or the default JSON list of a
/// `fromJSON(... || '[...]')` expression.
fn matrix_istio(job: &Value) -> Vec<String> {
    let Some(istio) = job
        .get("strategy")
        .and_then(|s| s.get("matrix"))
        .and_then(|m| m.get("istio"))
    else {
        return Vec::new();
    };
    if let Some(list) = istio.as_sequence() {
        return list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    let expr = istio.as_str().unwrap_or("");
    let Some(default) = expr.rsplit("'[").next().filter(|_| expr.contains("'[")) else {
        return Vec::new();
    };
    let list = format!("[{}", default.split("]'").next().unwrap_or(""));
    serde_yaml::from_str::<Vec<String>>(&format!("{list}]")).unwrap_or_default()
}

/// Checks one invocation against the CLI and the version table.
fn check(inv: &Invocation) -> Result<(), String> {
    let argv = std::iter::once("cargo xtask".to_owned()).chain(inv.args.iter().cloned());
    let parsed = flags::Xtask::try_parse_from(argv).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or("").to_owned();
        format!(
            "{}: `cargo xtask {}` is not accepted by the CLI: {first}",
            inv.place,
            inv.args.join(" ")
        )
    })?;
    if let flags::Command::E2e(e2e) = parsed.command {
        let place = |e: anyhow::Error| format!("{}: {e}", inv.place);
        if let Some(v) = &e2e.istio {
            versions::istio_release(Some(v)).map_err(place)?;
        }
        if let Some(u) = &e2e.istio_upgrade {
            versions::upgrade_path(u).map_err(place)?;
        }
    }
    Ok(())
}

fn workflows() -> Vec<(String, String)> {
    let dir = paths::project_root().join("ci/workflows");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            (
                relative(p),
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
            )
        })
        .collect()
}

fn relative(p: &Path) -> String {
    p.strip_prefix(paths::project_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[test]
fn every_workflow_calls_only_commands_and_flags_that_exist() {
    let mut found = 0;
    let mut errors = Vec::new();
    for (file, text) in workflows() {
        match invocations(&file, &text) {
            Ok(invs) => {
                found += invs.len();
                errors.extend(invs.iter().filter_map(|i| check(i).err()));
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(
        found >= 3,
        "expected the nightly, upgrade and pull-request invocations, found {found}"
    );
}

#[test]
fn the_nightly_matrix_is_the_version_table_and_the_upgrade_is_previous_to_newest() {
    let (_, text) = workflows()
        .into_iter()
        .find(|(f, _)| f.ends_with("nightly.yml"))
        .expect("ci/workflows/nightly.yml");
    let invs: Vec<Invocation> = invocations("nightly.yml", &text)
        .expect("parses")
        .into_iter()
        .filter(|i| i.args.first().is_some_and(|c| c == "e2e"))
        .collect();
    let mut tested: Vec<String> = invs
        .iter()
        .filter_map(|i| flag_value(&i.args, "--istio"))
        .collect();
    tested.sort();
    let mut table: Vec<String> = versions::ISTIO_RELEASES
        .iter()
        .map(|r| r.version.to_owned())
        .collect();
    table.sort();
    assert_eq!(
        tested, table,
        "the e2e matrix must run every supported Istio version"
    );
    let upgrade: Vec<String> = invs
        .iter()
        .filter_map(|i| flag_value(&i.args, "--istio-upgrade"))
        .collect();
    let expected = format!(
        "{}..{}",
        versions::ISTIO_RELEASES[1].version,
        versions::ISTIO_RELEASES[0].version
    );
    assert_eq!(
        upgrade,
        [expected],
        "the upgrade job runs the previous release to the newest"
    );
}

/// The commands whose runs write evidence under the artifacts root: `e2e`, and `test`
/// (its local run and upgrade walk).
const WRITES_EVIDENCE: &[&str] = &["cargo xtask e2e", "cargo xtask test"];

/// Every job keeps what it uploads apart from older runs': no cache restores a directory the
/// job uploads, nor `target/e2e` where the suite runs (a cache of `target` must exclude
/// them); the suite writes into `MIRROR_E2E_ARTIFACTS_ROOT` set on its step, and the job
/// uploads that directory (and beside it only directories of this run, such as parity's
/// `target/parity`). Returns how many jobs ran the suite.
fn evidence_is_this_runs_only(file: &str, text: &str) -> Result<usize, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut errors = Vec::new();
    let mut suites = 0;
    for (name, job) in doc
        .get("jobs")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or("?");
        let steps: Vec<&Value> = job
            .get("steps")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .collect();
        let uses = |s: &&Value, action: &str| {
            s.get("uses")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with(action))
        };
        let caches: Vec<Vec<&str>> = steps
            .iter()
            .filter(|s| uses(s, "actions/cache"))
            .map(|cache| {
                cache
                    .get("with")
                    .and_then(|w| w.get("path"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .lines()
                    .map(|p| p.trim().trim_end_matches('/'))
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .collect();
        let restored = |dir: &str| caches.iter().any(|paths| restores(paths, dir));
        let uploaded: Vec<&str> = steps
            .iter()
            .filter(|s| uses(s, "actions/upload-artifact"))
            .filter_map(|s| s.get("with")?.get("path")?.as_str())
            .map(|p| p.trim_end_matches('/'))
            .collect();
        let suite = steps.iter().find(|s| {
            s.get("run")
                .and_then(Value::as_str)
                .is_some_and(|r| WRITES_EVIDENCE.iter().any(|c| r.contains(c)))
        });
        let mut root = None;
        if let Some(suite) = suite {
            suites += 1;
            if restored("target/e2e") {
                errors.push(format!("{file}: job {name}: the cache restores target/e2e, so older runs' evidence comes back; exclude it (`!target/e2e`)"));
            }
            root = suite
                .get("env")
                .and_then(|e| e.get("MIRROR_E2E_ARTIFACTS_ROOT"))
                .and_then(Value::as_str)
                .map(|r| r.trim_end_matches('/'));
            match root {
                None => errors.push(format!("{file}: job {name}: the suite's step sets no MIRROR_E2E_ARTIFACTS_ROOT, so it writes into target/e2e with whatever was there")),
                Some(root) if !uploaded.contains(&root) => errors.push(format!(
                    "{file}: job {name}: uploads {uploaded:?}, not the run's directory {root}"
                )),
                Some(_) => {}
            }
        }
        for path in uploaded.iter().filter(|p| Some(**p) != root) {
            if *path == "target/e2e" || restored(path) {
                errors.push(format!(
                    "{file}: job {name}: uploads {path}, where older runs' files are (target/e2e, or a cache restores it): upload the run's own directory"
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors.join("\n"))
    }
}

/// Whether a cache of `paths` (actions/cache's list, `!` excluding) brings back any of `dir`:
/// a path that holds it or lies inside it, unless an exclusion holds all of it.
fn restores(paths: &[&str], dir: &str) -> bool {
    let holds =
        |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    let excluded = paths
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .any(|x| holds(x, dir));
    !excluded
        && paths
            .iter()
            .filter(|p| !p.starts_with('!'))
            .any(|p| holds(p, dir) || holds(dir, p))
}

#[test]
fn every_job_uploads_its_own_evidence_and_caches_none() {
    let mut errors = Vec::new();
    for (file, text) in workflows() {
        match evidence_is_this_runs_only(&file, &text) {
            // Every workflow here runs the suite somewhere: one the check finds nothing in
            // would escape it.
            Ok(0) => errors.push(format!("{file}: no job runs {WRITES_EVIDENCE:?}")),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_evidence_check_rejects_the_old_pull_request_workflow() {
    // ci/workflows/pull-request.yml at 7a325d9: the whole target cached, target/e2e uploaded.
    let before = "jobs:\n  test:\n    steps:\n      - uses: actions/checkout@v7\n      - uses: actions/cache@v5\n        with:\n          path: |\n            ~/.cargo/registry\n            ~/.cargo/git\n            ~/.cache/mirror-e2e\n            target\n          key: test\n      - name: cargo xtask test\n        run: cargo xtask test\n      - name: Upload local e2e evidence\n        if: always()\n        uses: actions/upload-artifact@v7\n        with:\n          name: local-e2e\n          path: target/e2e/\n";
    let err = evidence_is_this_runs_only("pull-request.yml", before).expect_err("rejected");
    assert!(
        err.contains("job test: the cache restores target/e2e")
            && err.contains("job test: the suite's step sets no MIRROR_E2E_ARTIFACTS_ROOT"),
        "{err}"
    );
}

#[test]
fn the_evidence_check_rejects_a_cached_target_and_a_shared_directory() {
    // The nightly's e2e job as it was: the whole target cached, target/e2e uploaded.
    let before = "jobs:\n  e2e:\n    steps:\n      - uses: actions/cache@v5\n        with:\n          path: |\n            ~/.cargo/registry\n            target\n      - run: cargo xtask e2e --istio 1.31.1\n      - uses: actions/upload-artifact@v7\n        with:\n          path: target/e2e/\n";
    let err = evidence_is_this_runs_only("nightly.yml", before).expect_err("rejected");
    assert!(
        err.contains("restores target/e2e") && err.contains("sets no MIRROR_E2E_ARTIFACTS_ROOT"),
        "{err}"
    );
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[test]
fn the_checker_rejects_unknown_commands_flags_and_versions() {
    let workflow =
        |run: &str| format!("jobs:\n  j:\n    steps:\n      - name: s\n        run: {run}\n");
    for (run, expected) in [
        ("cargo xtask e2e --fast", "not accepted by the CLI"),
        ("cargo xtask deploy", "not accepted by the CLI"),
        ("cargo xtask e2e --istio 1.2.3", "not a supported version"),
        (
            "cargo xtask e2e --istio-upgrade 1.31.1..1.31.1",
            "the same version",
        ),
        (
            "cargo xtask e2e --istio-upgrade 1.31.1..1.26.0",
            "not a supported version",
        ),
    ] {
        let invs = invocations("w.yml", &workflow(run)).expect("parses");
        let err = check(&invs[0]).expect_err(run);
        assert!(
            err.contains(expected) && err.starts_with("w.yml: job j, s:"),
            "{run}: {err}"
        );
    }
    let matrix = "jobs:\n  j:\n    strategy:\n      matrix:\n        istio: ${{ fromJSON(inputs.v || '[\"1.31.1\", \"9.9.9\"]') }}\n    steps:\n      - run: cargo xtask e2e --istio ${{ matrix.istio }}\n";
    let invs = invocations("w.yml", matrix).expect("parses");
    assert_eq!(invs.len(), 2, "one invocation per matrix value");
    assert!(check(&invs[1]).is_err(), "9.9.9 is not supported");
}

#[test]
fn a_shell_variable_stands_for_a_value_and_an_echoed_command_ends_with_its_parenthesis() {
    let workflow = "jobs:\n  j:\n    steps:\n      - name: s\n        run: |\n          echo \"patience: $secs (replay: cargo xtask parity --patience $secs)\" | tee -a \"$GITHUB_STEP_SUMMARY\"\n          cargo xtask parity --istio 1.31.1 --patience \"$secs\"\n          cargo xtask e2e --istio \"$version\"\n";
    let invs = invocations("w.yml", workflow).expect("parses");
    let args: Vec<&[String]> = invs.iter().map(|i| i.args.as_slice()).collect();
    assert_eq!(
        args,
        [
            &["parity", "--patience", AT_RUN_TIME][..],
            &["parity", "--istio", "1.31.1", "--patience", AT_RUN_TIME],
            &["e2e", "--istio", AT_RUN_TIME],
        ]
    );
    check(&invs[0]).expect("the echoed replay command exists");
    check(&invs[1]).expect("the command exists");
    let err = check(&invs[2]).expect_err("a version must be written out");
    assert!(err.contains("not a supported version"), "{err}");
}

#[test]
fn an_upload_beside_the_runs_directory_must_be_this_runs_own() {
    let job = |cache: &str| {
        format!(
            "jobs:\n  kwok:\n    steps:\n      - uses: actions/cache@v5\n        with:\n          path: |\n            ~/.cargo/registry\n            target\n            !target/e2e\n{cache}      - name: suite\n        env:\n          MIRROR_E2E_ARTIFACTS_ROOT: ${{{{ runner.temp }}}}/e2e\n        run: cargo xtask e2e --cluster kwok\n      - run: cargo xtask parity\n      - uses: actions/upload-artifact@v7\n        with:\n          path: ${{{{ runner.temp }}}}/e2e/\n      - uses: actions/upload-artifact@v7\n        with:\n          path: target/parity/\n"
        )
    };
    assert_eq!(
        evidence_is_this_runs_only("pr.yml", &job("            !target/parity\n")),
        Ok(1),
        "target/parity excluded from the cache is this run's"
    );
    let err = evidence_is_this_runs_only("pr.yml", &job("")).expect_err("older results");
    assert!(
        err.contains("job kwok: uploads target/parity, where older runs' files are"),
        "{err}"
    );
}

//! `cargo xtask bench`: wall time of `cargo xtask e2e --local` after the build, as medians.
//!
//! A benchmark, not a timed test: it reports numbers and fails only when a run fails.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::interrupt::Interrupt;
use crate::runner::nested_cargo;
use crate::{flags, paths, provision};

impl flags::Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // No Ctrl-C handler here: Ctrl-C ends the benchmark, children and all, as a whole.
        provision::envoy(sh, &Interrupt::default()).context("provision envoy")?;
        // Warm up with the exact command: building the packages together unifies features
        // differently from `cargo xtask` alone, and the first timed run would compile.
        nested_cargo(cmd!(sh, "cargo xtask e2e --local"))
            .quiet()
            .ignore_stdout()
            .run()
            .context("warm-up run (build and one untimed run)")?;
        let root = paths::project_root()
            .join("target/bench")
            .join(format!("{}", std::process::id()));
        let mut walls = Vec::new();
        // In run order, as the runs report them.
        let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
        let mut failures = 0;
        let mut retried = 0;
        let mut slowest: Option<(f64, String)> = None;
        for i in 0..self.runs {
            let dir = root.join(i.to_string());
            let start = Instant::now();
            let ok = nested_cargo(cmd!(sh, "cargo xtask e2e --local --keep"))
                .env(mirror_e2e_contract::env::ARTIFACTS_ROOT, &dir)
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok();
            walls.push(start.elapsed());
            if !ok {
                failures += 1;
                eprintln!("run {i} failed; its artifacts are under {}", dir.display());
            }
            let summary = read_summary(sh, &dir);
            let in_phases: f64 = summary.phases.iter().map(|(_, s)| s).sum();
            let wall = walls.last().map_or(0.0, Duration::as_secs_f64);
            if slowest.as_ref().is_none_or(|(w, _)| wall > *w) {
                slowest = Some((
                    wall,
                    format!(
                        "{wall:.3}s wall, {in_phases:.3}s in the suite's phases, the rest in cargo and xtask"
                    ),
                ));
            }
            for (name, secs) in summary.phases {
                match phases.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, all)) => all.push(secs),
                    None => phases.push((name, vec![secs])),
                }
            }
            for (check, attempts) in summary.retried {
                eprintln!(
                    "run {i}: {check}: a retried step took {attempts} attempts (3 passes in a row needed)"
                );
                retried += 1;
            }
        }
        walls.sort();
        let median = |v: &[Duration]| v[v.len() / 2];
        println!(
            "cargo xtask e2e --local, {} runs: median {:.3}s, min {:.3}s, max {:.3}s",
            walls.len(),
            median(&walls).as_secs_f64(),
            walls[0].as_secs_f64(),
            walls[walls.len() - 1].as_secs_f64()
        );
        for (name, mut secs) in phases {
            secs.sort_by(f64::total_cmp);
            println!("  {name:<28} median {:.3}s", secs[secs.len() / 2]);
        }
        if let Some((_, what)) = &slowest {
            println!("slowest run: {what}");
        }
        println!("checks that passed only after retrying: {retried}");
        println!("{} passed, {failures} failed", self.runs - failures);
        if failures > 0 {
            bail!("{failures} of {} runs failed", self.runs);
        }
        let _ = sh.remove_path(&root);
        Ok(())
    }
}

/// Phase timings, and checks that needed more than three attempts, from the `summary.txt`
/// of the one run under `dir`.
fn read_summary(sh: &Shell, dir: &std::path::Path) -> RunSummary {
    let Ok(entries) = sh.read_dir(dir) else {
        return RunSummary::default();
    };
    let Some(summary) = entries
        .into_iter()
        .map(|run| run.join("summary.txt"))
        .find(|p| p.is_file())
    else {
        return RunSummary::default();
    };
    let text = sh.read_file(summary).unwrap_or_default();
    let phases = text
        .lines()
        .skip_while(|l| *l != "phases:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (name, secs) = l.trim().rsplit_once(' ')?;
            Some((
                name.trim().to_owned(),
                secs.trim().trim_end_matches('s').parse().ok()?,
            ))
        })
        .collect();
    // `  PASS <name> (<secs>s, <n> attempts)` and, in its message, `... after <n> attempts`
    // (a restore step): more than three attempts means something was retried.
    let mut retried = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("PASS ") {
            current = rest.split(' ').next().unwrap_or("").to_owned();
        }
        for part in line.split("after ").skip(1) {
            let attempts = part.split(' ').next().and_then(|n| n.parse::<u32>().ok());
            if let Some(n) =
                attempts.filter(|n| *n > 3 && part.split(' ').nth(1) == Some("attempts"))
            {
                retried.push((current.clone(), n));
            }
        }
        if let Some(n) = line
            .strip_prefix("PASS ")
            .and_then(|rest| rest.split(", ").nth(1))
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 3)
        {
            retried.push((current.clone(), n));
        }
    }
    RunSummary { phases, retried }
}

/// What the bench reads from one run's summary.
#[derive(Default)]
struct RunSummary {
    /// Phase name and seconds.
    phases: Vec<(String, f64)>,
    /// Checks that needed more than three attempts, with their attempts.
    retried: Vec<(String, u32)>,
}

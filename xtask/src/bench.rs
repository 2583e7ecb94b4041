//! `cargo xtask bench`: wall time of `cargo xtask e2e --local` after the build, as medians.
//!
//! A benchmark, not a timed test: it reports numbers and fails only when a run fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{flags, paths, tools};

impl flags::Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        tools::envoy(sh).context("provision envoy")?;
        cmd!(sh, "cargo build --quiet --package e2e --package xtask")
            .run()
            .context("build")?;
        let root = paths::project_root()
            .join("target/bench")
            .join(format!("{}", std::process::id()));
        let mut walls = Vec::new();
        let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut failures = 0;
        for i in 0..self.runs {
            let dir = root.join(i.to_string());
            let start = Instant::now();
            let ok = cmd!(sh, "cargo xtask e2e --local --keep")
                .env("MIRROR_E2E_ARTIFACTS_ROOT", &dir)
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
            for (name, secs) in read_phases(sh, &dir) {
                phases.entry(name).or_default().push(secs);
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
        println!("{} passed, {failures} failed", self.runs - failures);
        if failures > 0 {
            bail!("{failures} of {} runs failed", self.runs);
        }
        let _ = sh.remove_path(&root);
        Ok(())
    }
}

/// Phase timings from the `summary.txt` of the one run under `dir`.
fn read_phases(sh: &Shell, dir: &std::path::Path) -> Vec<(String, f64)> {
    let Ok(entries) = sh.read_dir(dir) else {
        return Vec::new();
    };
    let Some(summary) = entries
        .into_iter()
        .map(|run| run.join("summary.txt"))
        .find(|p| p.is_file())
    else {
        return Vec::new();
    };
    let text = sh.read_file(summary).unwrap_or_default();
    text.lines()
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
        .collect()
}

//! `cargo xtask parity`: the real istiod as the oracle for local mode's translation, for
//! each pinned Istio version.
//!
//! One kwok cluster; for each version, Istio's CRDs and istiod's objects as that release's
//! chart renders them (`prepare`), the previous istiod stopped and the version's own started
//! (its minor's pinned istiod, or the oldest one with Istio's compatibility profile for an
//! older minor), then `mirror-e2e parity --istio VERSION --version-label LABEL` inside the
//! cluster's namespaces (the label says what played the version: `kwok::version_label`):
//! the shipped manifests and the corpus in `e2e/tests/fixtures/parity/`, each compared
//! route by route with the translation emulating that version (`e2e/src/parity.rs`). Each
//! version's results go to `target/parity/<version>/parity.json`; `mirror-e2e parity-table`
//! joins them into one table, a column per version. The cluster is deleted at the end
//! unless `--keep` (`lifetime::with_cluster`: a failed delete is added to a failed run's
//! error, never in its place).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use mirror_e2e_contract::args::{ParityArgs, ParityTableArgs, RunnerCommand};
use xshell::Shell;

use crate::cluster::keep;
use crate::cluster::kwok::istiod::address;
use crate::cluster::kwok::{self, Binaries, KwokProvider, KwokUp};
use crate::cluster::lifetime::with_cluster;
use crate::interrupt::Interrupt;
use crate::runner::{Reported, Runner};
use crate::versions::IstioRelease;
use crate::{flags, paths, versions};

/// How long each phase of one version took, for the speed target (a version in 20 s).
struct Timings {
    version: &'static str,
    prepare: Duration,
    /// The previous istiod stopped and this version's ready.
    istiod: Duration,
    compare: Duration,
}

impl Timings {
    fn line(&self) -> String {
        format!(
            "{}: prepare {:.1}s, istiod swap {:.1}s, compare {:.1}s, total {:.1}s",
            self.version,
            self.prepare.as_secs_f64(),
            self.istiod.as_secs_f64(),
            self.compare.as_secs_f64(),
            (self.prepare + self.istiod + self.compare).as_secs_f64()
        )
    }
}

impl flags::Parity {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let clock = crate::progress::Stopwatch::start();
        let step = |name: &str| clock.step(name);
        let patience = Duration::from_secs(self.patience);
        let releases = releases(&self.istio)?;
        let variants = self.variants(&paths::project_root())?;
        let columns: Vec<String> = releases
            .iter()
            .map(|r| kwok::version_label(r.version))
            .collect::<anyhow::Result<_>>()?;
        let bins = Binaries::ensure(sh, &interrupt)?;
        // Every istiod the versions need, before the cluster exists: a cold build is long,
        // and one that fails should stop the run before anything was started.
        let pilot_discoveries: Vec<PathBuf> = releases
            .iter()
            .map(|r| kwok::istiod::pilot_discovery(sh, &interrupt, r.version))
            .collect::<anyhow::Result<_>>()?;
        let envoy = crate::provision::envoy(sh, &interrupt).context("provision envoy")?;
        let runner = Runner::build(sh, &interrupt)?;
        let root = paths::project_root();
        let out = root.join("target/parity");
        let name = format!("mirror-e2e-parity-{}", std::process::id());
        step(&format!("create kwok cluster {name}"));
        // With --keep the cluster stays whatever the outcome: the comparison runs from the
        // first step, so every failure is one to inspect.
        let request = keep::Request {
            keep: self.keep,
            on_failure: false,
        };
        let how = KwokUp::create(name, &bins, &interrupt, patience);
        let mut provider = KwokProvider::new(sh, how);
        let outcome = with_cluster(&mut provider, request, &interrupt, |p, tracker| {
            tracker.suite_starts();
            let cluster = p.cluster()?;
            let mut running = kwok::istiod::Succession::default();
            let mut results = Vec::new();
            let mut timings = Vec::new();
            for ((release, pilot_discovery), column) in
                releases.iter().zip(&pilot_discoveries).zip(&columns)
            {
                let version = release.version;
                step(&format!(
                    "Istio {column}: Istio's CRDs and istiod's objects, then its istiod"
                ));
                let installed = running.install(
                    sh,
                    cluster,
                    &runner,
                    &bins,
                    release,
                    pilot_discovery,
                    &interrupt,
                    patience,
                )?;
                step(&format!(
                    "Istio {version}: compare istiod's routes with the translation's"
                ));
                let phase = Instant::now();
                let dir = fresh_dir(&out.join(version))?;
                let args = RunnerCommand::Parity(Box::new(ParityArgs {
                    kubeconfig: cluster.kubeconfig(),
                    istiod_xds: address(kwok::istiod::XDS)?,
                    istiod_debug: address(kwok::istiod::DEBUG)?,
                    envoy: envoy.clone(),
                    istio: Some(version.into()),
                    version_label: Some(column.clone()),
                    out: dir.clone(),
                    patience: Some(patience),
                    ..variants.clone()
                }))
                .to_args();
                let result = dir.join("parity.json");
                match runner.inside(&cluster.holder.nsenter_args()).run(sh, &args) {
                    Ok(()) => {}
                    // A difference (exit 1 with its results written) is this version's
                    // column; the next versions still run, and the merged table fails.
                    Err(e) if differs(&e) && result.is_file() => {}
                    Err(e) => return Err(e),
                }
                results.push(result);
                let timing = Timings {
                    version,
                    prepare: installed.prepare,
                    istiod: installed.swap,
                    compare: phase.elapsed(),
                };
                step(&timing.line());
                timings.push(timing);
            }
            eprintln!("per version:");
            for timing in &timings {
                eprintln!("  {}", timing.line());
            }
            step("the table of every version (also in target/parity/parity.md)");
            let table = RunnerCommand::ParityTable(ParityTableArgs {
                results,
                out: Some(out.join("parity.md")),
            });
            runner.run(sh, &table.to_args())
        });
        step("done");
        outcome
    }
}

impl flags::Parity {
    /// What `mirror-e2e parity` compares (its arguments' `manifests`, `variants`,
    /// `generated`, `seed`; the rest is per version): the user's manifests, or generated
    /// cases, or else the shipped manifests and the corpus.
    fn variants(&self, root: &std::path::Path) -> anyhow::Result<ParityArgs> {
        let mut args = ParityArgs {
            kubeconfig: PathBuf::new(),
            istiod_xds: address(kwok::istiod::XDS)?,
            istiod_debug: address(kwok::istiod::DEBUG)?,
            envoy: PathBuf::new(),
            istio: None,
            version_label: None,
            manifests: Vec::new(),
            variants: None,
            generated: 0,
            seed: 1,
            out: PathBuf::new(),
            patience: None,
        };
        if let Some(dir) = &self.manifests {
            // Checked before a cluster exists: a typo costs nothing.
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("--manifests {}", dir.display()))?;
            args.manifests.push(dir);
        }
        if let Some(n) = self.generated {
            args.generated = n;
            args.seed = self.seed;
        }
        if args.manifests.is_empty() && self.generated.is_none() {
            args.manifests.push(root.join("manifests"));
            args.variants = Some(root.join("e2e/tests/fixtures/parity"));
        }
        Ok(args)
    }
}

/// `dir`, empty: another run's results must not pass for this one's.
fn fresh_dir(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir.to_owned())
}

/// Whether `mirror-e2e parity` failed because a variant differs (exit 1), not for want of
/// something it needed (2, 3, ...).
fn differs(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Reported>().is_some_and(|r| r.code == 1)
}

/// The releases `--istio` names, in the order given (once each), or every pinned one.
fn releases(wanted: &[String]) -> anyhow::Result<Vec<&'static IstioRelease>> {
    if wanted.is_empty() {
        return Ok(versions::ISTIO_RELEASES.iter().collect());
    }
    let mut releases: Vec<&'static IstioRelease> = Vec::new();
    for version in wanted {
        let release = versions::istio_release(Some(version))?;
        if !releases.iter().any(|r| r.version == release.version) {
            releases.push(release);
        }
    }
    Ok(releases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_release_by_default_else_the_ones_named_once_each() {
        let all: Vec<&str> = releases(&[])
            .expect("all")
            .iter()
            .map(|r| r.version)
            .collect();
        let pinned: Vec<&str> = versions::ISTIO_RELEASES.iter().map(|r| r.version).collect();
        assert_eq!(all, pinned);
        let named = ["1.27.9", "1.31.1", "1.27.9"].map(str::to_owned);
        let some: Vec<&str> = releases(&named)
            .expect("named")
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(some, ["1.27.9", "1.31.1"]);
        let err = releases(&["1.26.0".to_owned()]).expect_err("not pinned");
        assert!(err.to_string().contains("--istio 1.26.0"), "{err:#}");
    }

    #[test]
    fn only_a_difference_lets_the_next_version_run() {
        assert!(differs(&Reported { code: 1 }.into()));
        assert!(!differs(&Reported { code: 2 }.into()));
        assert!(!differs(&anyhow::anyhow!("istiod exited")));
    }
}

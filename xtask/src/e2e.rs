//! `cargo xtask e2e`: provisions what the suite needs and runs it.
//!
//! Local mode: Envoy from the tool cache, then `mirror-e2e local`. Cluster mode on kind:
//! Docker check, pinned tools, `kind create cluster` (retried), `istioctl install`, then
//! `mirror-e2e cluster`; on failure kind's logs and productpage's sidecar routes join the
//! run's evidence; the cluster is deleted unless kept. On an existing cluster: a namespace of
//! the run's own, deleted at the end; nothing else is created or changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::cluster::{Istioctl, Kind, docker_is_running};
use crate::flags::{ClusterKind, OnFailure};
use crate::{flags, paths, tools, versions};

/// The kind cluster's name.
const CLUSTER_NAME: &str = "mirror-e2e";

impl flags::E2e {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.local {
            return match &self.istio_upgrade {
                Some(spec) => self.run_local_upgrade(sh, spec),
                None => self.run_local(sh),
            };
        }
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = interrupted.clone();
        // Ctrl-C reaches the child too and ends it; xtask stays to clean up what it created.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        let result = match (self.cluster, &self.istio_upgrade) {
            (ClusterKind::Kind, Some(spec)) => self.run_kind_upgrade(sh, spec),
            (ClusterKind::Kind, None) => self.run_kind(sh),
            (ClusterKind::Existing, None) => self.run_existing(sh),
            (ClusterKind::Existing, Some(_)) => {
                bail!(
                    "--istio-upgrade needs a cluster of the run's own: use it with --local or --cluster kind"
                )
            }
        };
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted; cleaned up what the run created (unless kept)");
        }
        result
    }

    fn run_local(self, sh: &Shell) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        self.local_suite(sh, release.version, None)
            .context("local e2e run failed (see the report above)")
    }

    /// One local run of the suite emulating `istio`; with `artifacts_root`, kept there.
    fn local_suite(
        &self,
        sh: &Shell,
        istio: &str,
        artifacts_root: Option<&Path>,
    ) -> anyhow::Result<()> {
        let envoy = tools::envoy(sh).context("provision envoy")?;
        let manifests = paths::from_invocation(&self.manifests);
        let patience: Vec<String> = self
            .patience
            .iter()
            .flat_map(|p| ["--patience".to_owned(), p.clone()])
            .collect();
        let keep = (self.keep || artifacts_root.is_some()).then_some("--keep");
        let root: Vec<String> = artifacts_root
            .iter()
            .flat_map(|r| ["--artifacts-root".to_owned(), r.display().to_string()])
            .collect();
        let harness = &self.harness;
        cmd!(
            sh,
            "cargo run --quiet --package e2e --bin mirror-e2e -- local --envoy {envoy} --manifests {manifests} --istio {istio} {patience...} {keep...} {root...} -- {harness...}"
        )
        .run()
        .map_err(Into::into)
    }

    fn run_local_upgrade(&self, sh: &Shell, spec: &str) -> anyhow::Result<()> {
        let (from, to) = versions::istio_upgrade(spec)?;
        let root = paths::project_root()
            .join("target/e2e")
            .join(format!("upgrade-{}", run_id()));
        let (before, after) = (root.join("before"), root.join("after"));
        upgrade_steps(
            |side| match side {
                Side::Before => self.local_suite(sh, from.version, Some(&before)),
                Side::After => self.local_suite(sh, to.version, Some(&after)),
            },
            || Ok(()),
            || compare_runs(sh, &root),
        )
    }

    fn run_kind(&self, sh: &Shell) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let run_id = run_id();
        let artifacts = paths::project_root().join("target/e2e").join(&run_id);
        let (kind, plan) = self.kind_run(sh, release.node_image.image, artifacts, self.reuse)?;
        let istioctl = istioctl(
            sh,
            tools::ensure(sh, &tools::istioctl_asset(release.version)?)?,
            &kind,
        );
        run_on_kind(&kind, &istioctl, &plan, |phases| {
            let args = self.kind_suite_args(&kind, release, &run_id, phases);
            run_suite(sh, &args, &self.harness)
        })
    }

    fn run_kind_upgrade(&self, sh: &Shell, spec: &str) -> anyhow::Result<()> {
        let (from, to) = versions::istio_upgrade(spec)?;
        let node_image = versions::shared_node_image(from, to)?;
        let run_id = run_id();
        let runs = paths::project_root()
            .join("target/e2e")
            .join(format!("upgrade-{run_id}"));
        // An upgrade needs a cluster that starts on FROM: never a reused one.
        let (kind, plan) = self.kind_run(sh, node_image.image, runs.clone(), false)?;
        let istioctl_from = istioctl(
            sh,
            tools::ensure(sh, &tools::istioctl_asset(from.version)?)?,
            &kind,
        );
        let istioctl_to = istioctl(
            sh,
            tools::ensure(sh, &tools::istioctl_asset(to.version)?)?,
            &kind,
        );
        let suite = |phases: &[(String, f64)], side: Side| {
            let (release, dir) = match side {
                Side::Before => (from, runs.join("before")),
                Side::After => (to, runs.join("after")),
            };
            let mut args = self.kind_suite_args(&kind, release, &run_id, phases);
            args.extend(["--artifacts-root".to_owned(), dir.display().to_string()]);
            // Both runs' reports stay for the comparison; the common arguments carry
            // --keep already when the user asked for it.
            if !self.keep {
                args.push("--keep".into());
            }
            if side == Side::After {
                args.push("--restart-workloads".into());
            }
            run_suite(sh, &args, &self.harness)
        };
        run_on_kind(&kind, &istioctl_from, &plan, |phases| {
            upgrade_steps(
                |side| suite(if side == Side::Before { phases } else { &[] }, side),
                || {
                    istioctl_to
                        .install(&plan.operator)
                        .context("upgrade istio in place")
                },
                || compare_runs(sh, &runs),
            )
        })
    }

    /// Checks Docker, provisions kind, and plans a run on the project's kind cluster.
    fn kind_run<'a>(
        &self,
        sh: &'a Shell,
        node_image: &'static str,
        artifacts: PathBuf,
        reuse: bool,
    ) -> anyhow::Result<(Kind<'a>, KindPlan)> {
        docker_is_running(sh)?;
        let root = paths::project_root();
        let kind = Kind {
            sh,
            bin: tools::ensure(sh, &tools::kind_asset()?)?,
            name: CLUSTER_NAME.into(),
            kubeconfig: root
                .join("target/kind")
                .join(format!("{CLUSTER_NAME}.kubeconfig")),
        };
        let plan = KindPlan {
            config: root.join("manifests/kind/cluster.yaml"),
            operator: root.join("manifests/istio/operator.yaml"),
            node_image,
            reuse,
            keep: self.keep,
            keep_on_failure: self
                .on_failure
                .map_or(std::env::var_os("CI").is_none(), |p| p == OnFailure::Keep),
            artifacts,
            namespace: "test".into(),
        };
        Ok((kind, plan))
    }

    /// `mirror-e2e cluster` arguments for a run of `release` on the kind cluster.
    fn kind_suite_args(
        &self,
        kind: &Kind<'_>,
        release: &versions::IstioRelease,
        run_id: &str,
        phases: &[(String, f64)],
    ) -> Vec<String> {
        let mut args = vec![
            "--kubeconfig".to_owned(),
            kind.kubeconfig.display().to_string(),
            "--namespace".into(),
            "test".into(),
            "--ingress".into(),
            "http://127.0.0.1:30080".into(),
            "--bookinfo-hub".into(),
            release.bookinfo_hub.into(),
            "--bookinfo-tag".into(),
            release.bookinfo_tag.into(),
            "--istio".into(),
            release.version.into(),
        ];
        args.extend(self.common_suite_args(run_id));
        for (name, secs) in phases {
            args.extend(["--phase".to_owned(), format!("{name}={secs:.3}")]);
        }
        args
    }

    fn run_existing(&self, sh: &Shell) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        if self.install_istio {
            let istioctl = Istioctl {
                sh,
                bin: tools::ensure(sh, &tools::istioctl_asset(release.version)?)?,
                kubeconfig: self.kubeconfig.as_deref().map(paths::from_invocation),
                context: self.context.clone(),
            };
            istioctl.install(&paths::project_root().join("manifests/istio/operator.yaml"))?;
        }
        let run_id = run_id();
        let mut args = vec![
            "--namespace".to_owned(),
            format!("test-{run_id}"),
            "--delete-namespace".into(),
            "--ingress".into(),
            self.ingress.clone(),
        ];
        if let Some(k) = &self.kubeconfig {
            args.extend([
                "--kubeconfig".to_owned(),
                paths::from_invocation(k).display().to_string(),
            ]);
        }
        if let Some(c) = &self.context {
            args.extend(["--context".to_owned(), c.clone()]);
        }
        if self.istio.is_some() {
            args.extend(["--istio".to_owned(), release.version.to_owned()]);
        }
        args.extend(self.common_suite_args(&run_id));
        run_suite(sh, &args, &self.harness)
    }

    fn common_suite_args(&self, run_id: &str) -> Vec<String> {
        let mut args = vec![
            "--manifests".to_owned(),
            paths::from_invocation(&self.manifests)
                .display()
                .to_string(),
            "--run-id".into(),
            run_id.to_owned(),
        ];
        if self.keep {
            args.push("--keep".into());
        }
        if let Some(p) = &self.patience {
            args.extend(["--patience".to_owned(), p.clone()]);
        }
        args
    }
}

/// A run id for both xtask's and the suite's artifacts: seconds since the epoch and the pid.
fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}-{:x}", std::process::id())
}

/// istioctl pointed at the kind cluster's private kubeconfig.
fn istioctl<'a>(sh: &'a Shell, bin: PathBuf, kind: &Kind<'_>) -> Istioctl<'a> {
    Istioctl {
        sh,
        bin,
        kubeconfig: Some(kind.kubeconfig.clone()),
        context: None,
    }
}

/// Which run of an upgrade check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

/// The upgrade check: run, upgrade, run again, compare. Both runs and the comparison happen
/// even when the first run fails, so the report shows everything; any failure fails it.
pub fn upgrade_steps(
    mut run: impl FnMut(Side) -> anyhow::Result<()>,
    upgrade: impl FnOnce() -> anyhow::Result<()>,
    compare: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let before = run(Side::Before);
    upgrade()?;
    let after = run(Side::After);
    let compared = compare();
    before.context("the suite failed before the upgrade")?;
    after.context("the suite failed after the upgrade")?;
    compared
}

fn compare_runs(sh: &Shell, root: &Path) -> anyhow::Result<()> {
    let (before, after, out) = (
        root.join("before"),
        root.join("after"),
        root.join("comparison.txt"),
    );
    cmd!(
        sh,
        "cargo run --quiet --package e2e --bin mirror-e2e -- compare {before} {after} --out {out}"
    )
    .run()
    .with_context(|| {
        format!(
            "the runs differ beyond intended behaviour changes (see {})",
            out.display()
        )
    })
}

fn run_suite(sh: &Shell, args: &[String], harness: &[String]) -> anyhow::Result<()> {
    cmd!(
        sh,
        "cargo run --quiet --package e2e --bin mirror-e2e -- cluster {args...} -- {harness...}"
    )
    .run()
    .context("cluster e2e run failed (see the report above)")
}

/// What a kind run does besides running the suite.
pub struct KindPlan {
    pub config: PathBuf,
    pub operator: PathBuf,
    pub node_image: &'static str,
    pub reuse: bool,
    pub keep: bool,
    pub keep_on_failure: bool,
    pub artifacts: PathBuf,
    pub namespace: String,
}

/// Creates (or reuses) the cluster, installs Istio on a new one, runs `suite`, collects
/// diagnostics on failure, and deletes a cluster it created unless it is to be kept.
pub fn run_on_kind(
    kind: &Kind<'_>,
    istioctl: &Istioctl<'_>,
    plan: &KindPlan,
    suite: impl FnOnce(&[(String, f64)]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut phases = Vec::new();
    let started = Instant::now();
    let reused = plan.reuse && kind.exists()?;
    if reused {
        eprintln!(
            "reusing kind cluster {} (Istio as installed there)",
            kind.name
        );
        kind.write_kubeconfig()?;
    } else {
        eprintln!(
            "[{:>7.1}s] create kind cluster {}",
            started.elapsed().as_secs_f64(),
            kind.name
        );
        let attempts = kind.create(&plan.config, plan.node_image)?;
        if attempts > 1 {
            eprintln!("kind cluster created after {attempts} attempts");
        }
        phases.push(("create cluster".to_owned(), started.elapsed().as_secs_f64()));
    }
    let outcome = if reused {
        suite(&phases)
    } else {
        let install = Instant::now();
        eprintln!("[{:>7.1}s] install istio", started.elapsed().as_secs_f64());
        istioctl.install(&plan.operator).and_then(|()| {
            phases.push(("install istio".to_owned(), install.elapsed().as_secs_f64()));
            suite(&phases)
        })
    };
    if outcome.is_err() {
        collect_diagnostics(kind, istioctl, plan);
    }
    let keep = plan.keep || (outcome.is_err() && plan.keep_on_failure);
    let cleanup = if reused || keep {
        if keep {
            eprintln!(
                "kept kind cluster {}; kubeconfig {}; delete it with `kind delete cluster --name {}`",
                kind.name,
                kind.kubeconfig.display(),
                kind.name
            );
        }
        Ok(())
    } else {
        kind.delete()
    };
    match (outcome, cleanup) {
        (Ok(()), cleanup) => cleanup,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("and the cleanup failed too: {c:#}"))),
    }
}

fn collect_diagnostics(kind: &Kind<'_>, istioctl: &Istioctl<'_>, plan: &KindPlan) {
    let dir = plan.artifacts.join("diagnostics");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("diagnostics: create {}: {e}", dir.display());
        return;
    }
    if let Err(e) = kind.export_logs(&dir.join("kind-logs")) {
        eprintln!("diagnostics: {e:#}");
    }
    if let Err(e) =
        istioctl.productpage_routes(&plan.namespace, &dir.join("productpage-routes.json"))
    {
        eprintln!("diagnostics: {e:#}");
    }
    eprintln!("diagnostics: {}", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fakes::Fakes;

    fn setup(f: &Fakes) -> (Kind<'_>, Istioctl<'_>, KindPlan) {
        let kubeconfig = f.dir.path().join("kubeconfig");
        (
            Kind {
                sh: &f.sh,
                bin: f.bin("kind"),
                name: "mirror-e2e".into(),
                kubeconfig: kubeconfig.clone(),
            },
            Istioctl {
                sh: &f.sh,
                bin: f.bin("istioctl"),
                kubeconfig: Some(kubeconfig),
                context: None,
            },
            KindPlan {
                config: "cluster.yaml".into(),
                operator: "operator.yaml".into(),
                node_image: "kindest/node:v1.36.1@sha256:ab",
                reuse: false,
                keep: false,
                keep_on_failure: false,
                artifacts: f.dir.path().join("artifacts"),
                namespace: "test".into(),
            },
        )
    }

    fn short(calls: Vec<String>) -> Vec<String> {
        calls
            .iter()
            .map(|c| {
                c.split(" --")
                    .next()
                    .unwrap_or("")
                    .split(" -f")
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_passing_run_creates_installs_runs_and_deletes_in_that_order() {
        let f = Fakes::new();
        let (kind, istioctl, plan) = setup(&f);
        let mut ran = false;
        run_on_kind(&kind, &istioctl, &plan, |phases| {
            ran = phases
                .iter()
                .map(|(n, _)| n.as_str())
                .eq(["create cluster", "install istio"]);
            Ok(())
        })
        .expect("passes");
        assert!(ran, "the suite gets the create and install timings");
        assert_eq!(
            short(f.calls()),
            [
                "kind create cluster",
                "istioctl install -y",
                "kind delete cluster"
            ]
        );
    }

    #[test]
    fn istioctl_failing_collects_diagnostics_and_deletes_in_ci() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_ISTIOCTL_FAILS", "1");
        let (kind, istioctl, plan) = setup(&f);
        let err = format!(
            "{:#}",
            run_on_kind(&kind, &istioctl, &plan, |_| panic!(
                "the suite must not run"
            ))
            .expect_err("fails")
        );
        assert!(err.contains("install istio"), "{err}");
        assert_eq!(
            short(f.calls()),
            [
                "kind create cluster",
                "istioctl install -y",
                "kind export logs <dir>/artifacts/diagnostics/kind-logs",
                "istioctl proxy-config routes deploy/productpage-v1 -n test -o json",
                "kind delete cluster"
            ]
        );
        assert!(
            plan.artifacts
                .join("diagnostics/productpage-routes.json")
                .is_file()
        );
    }

    #[test]
    fn a_failed_run_keeps_the_cluster_when_asked() {
        let f = Fakes::new();
        let (kind, istioctl, mut plan) = setup(&f);
        plan.keep_on_failure = true;
        run_on_kind(&kind, &istioctl, &plan, |_| bail!("2 checks failed")).expect_err("fails");
        assert!(
            !f.calls().iter().any(|c| c.starts_with("kind delete")),
            "{:?}",
            f.calls()
        );
    }

    #[test]
    fn reuse_skips_creation_installation_and_deletion() {
        let f = Fakes::new();
        f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
        let (kind, istioctl, mut plan) = setup(&f);
        plan.reuse = true;
        run_on_kind(&kind, &istioctl, &plan, |_| Ok(())).expect("passes");
        assert_eq!(
            short(f.calls()),
            ["kind get clusters", "kind get kubeconfig"]
        );
    }

    #[test]
    fn the_upgrade_check_runs_installs_upgrades_restarts_and_compares_in_order() {
        let f = Fakes::new();
        std::fs::copy(f.bin("istioctl"), f.dir.path().join("istioctl-1.31.1")).expect("copy fake");
        let (kind, istioctl_from, plan) = setup(&f);
        let istioctl_to = Istioctl {
            sh: &f.sh,
            bin: f.dir.path().join("istioctl-1.31.1"),
            kubeconfig: None,
            context: None,
        };
        let log = |line: &str| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(f.dir.path().join("calls.log"))
                .expect("log");
            writeln!(file, "{line}").expect("write log");
        };
        run_on_kind(&kind, &istioctl_from, &plan, |_| {
            upgrade_steps(
                |side| {
                    log(&format!("suite {side:?}"));
                    Ok(())
                },
                || istioctl_to.install(&plan.operator),
                || {
                    log("compare");
                    Ok(())
                },
            )
        })
        .expect("passes");
        assert_eq!(
            short(f.calls()),
            [
                "kind create cluster",
                "istioctl install -y",
                "suite Before",
                "istioctl-1.31.1 install -y",
                "suite After",
                "compare",
                "kind delete cluster"
            ]
        );
    }

    #[test]
    fn a_failing_first_run_still_upgrades_runs_again_compares_and_fails() {
        let mut steps = Vec::new();
        let steps_ref = std::cell::RefCell::new(&mut steps);
        let err = upgrade_steps(
            |side| {
                steps_ref.borrow_mut().push(format!("{side:?}"));
                if side == Side::Before {
                    bail!("1 check failed")
                } else {
                    Ok(())
                }
            },
            || {
                steps_ref.borrow_mut().push("upgrade".into());
                Ok(())
            },
            || {
                steps_ref.borrow_mut().push("compare".into());
                Ok(())
            },
        )
        .expect_err("fails");
        assert!(
            format!("{err:#}").starts_with("the suite failed before the upgrade"),
            "{err:#}"
        );
        assert_eq!(steps, ["Before", "upgrade", "After", "compare"]);
    }

    #[test]
    fn reuse_without_a_cluster_creates_one() {
        let f = Fakes::new();
        let (kind, istioctl, mut plan) = setup(&f);
        plan.reuse = true;
        run_on_kind(&kind, &istioctl, &plan, |_| Ok(())).expect("passes");
        assert_eq!(
            short(f.calls()),
            [
                "kind get clusters",
                "kind create cluster",
                "istioctl install -y",
                "kind delete cluster"
            ]
        );
    }
}

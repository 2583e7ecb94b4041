//! `--cluster existing`: a cluster that already runs Istio (or gets it with
//! `--install-istio`, never over another control plane). Nothing is created but the run's
//! own namespace, `test-<run-id>`, deleted at the end; cluster-scoped documents are refused
//! unless `--allow-cluster-scoped`.

use xshell::Shell;

use crate::cluster::Istioctl;
use crate::cluster::lifetime::{Provider, with_cluster};
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths, tools, versions};

impl flags::E2e {
    pub(crate) fn run_existing(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: crate::progress::Stopwatch,
    ) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let runner = Runner::build(sh, interrupt)?;
        let mut target = Vec::new();
        if let Some(k) = &self.kubeconfig {
            target.extend([
                "--kubeconfig".to_owned(),
                paths::from_invocation(k).display().to_string(),
            ]);
        }
        if let Some(c) = &self.context {
            target.extend(["--context".to_owned(), c.clone()]);
        }
        if self.install_istio {
            // Never over someone else's control plane: the runner refuses when any istiod
            // runs (and says "forbidden" when it may not look).
            let mut check = vec!["no-istiod".to_owned()];
            check.extend(target.iter().cloned());
            runner.run(sh, &check)?;
            let istioctl = Istioctl {
                sh,
                bin: tools::ensure(sh, &tools::istioctl_asset(release.version)?, interrupt)?,
                kubeconfig: self.kubeconfig.as_deref().map(paths::from_invocation),
                context: self.context.clone(),
                hub: self.istio_hub.clone(),
                interrupt: interrupt.clone(),
            };
            istioctl.install(&paths::project_root().join("manifests/istio/operator.yaml"))?;
        }
        let run_id = mirror_e2e_contract::new_run_id();
        let mut args = vec![
            "cluster".to_owned(),
            "--namespace".into(),
            format!("test-{run_id}"),
            "--delete-namespace".into(),
            "--ingress".into(),
            self.ingress
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:30080".into()),
            "--run-id".into(),
            run_id,
        ];
        args.extend(target);
        if self.allow_cluster_scoped {
            args.push("--allow-cluster-scoped".into());
        }
        if let Some(r) = &self.revision {
            args.extend(["--revision".to_owned(), r.clone()]);
        }
        if let Some(hub) = &self.bookinfo_hub {
            args.extend(["--bookinfo-hub".to_owned(), hub.clone()]);
        }
        if self.istio.is_some() {
            args.extend(["--istio".to_owned(), release.version.to_owned()]);
        }
        let mut cluster = ExistingCluster;
        with_cluster(
            &mut cluster,
            self.keep_request(),
            interrupt,
            |_, tracker| {
                args.extend(self.common_suite_args(clock));
                args.push("--".into());
                args.extend(self.harness.iter().cloned());
                tracker.suite_starts();
                runner.run(sh, &args)
            },
        )
    }
}

/// Someone else's cluster in the one lifetime: there before the run, never created nor
/// deleted by it. The run's namespace is the suite's to delete (`--delete-namespace`).
struct ExistingCluster;

impl Provider for ExistingCluster {
    fn describe(&self) -> String {
        "the existing cluster".into()
    }

    fn up(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn created_by_this_run(&self) -> bool {
        false
    }

    fn delete(&self) -> anyhow::Result<()> {
        anyhow::bail!("an existing cluster is not the run's to delete")
    }

    fn kept(&self) -> String {
        String::new()
    }
}

//! `--cluster existing`: a cluster that already runs Istio (or gets it with
//! `--install-istio`, never over another control plane). Nothing is created but the run's
//! own namespace, `test-<run-id>`, deleted at the end; cluster-scoped documents are refused
//! unless `--allow-cluster-scoped`.

use xshell::Shell;

use mirror_e2e_contract::args::{ClusterArgs, KubeTarget, RunnerCommand};

use crate::cluster::Istioctl;
use crate::cluster::lifetime::{Provider, with_cluster};
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths, provision, versions};

impl flags::E2e {
    pub(crate) fn run_existing(
        &self,
        sh: &Shell,
        interrupt: &Interrupt,
        clock: crate::progress::Stopwatch,
    ) -> anyhow::Result<()> {
        let release = versions::istio_release(self.istio.as_deref())?;
        let runner = Runner::build(sh, interrupt)?;
        let target = KubeTarget {
            kubeconfig: self.kubeconfig.as_deref().map(paths::from_invocation),
            context: self.context.clone(),
        };
        if self.install_istio {
            // Never over someone else's control plane: the runner refuses when any istiod
            // runs (and says "forbidden" when it may not look).
            runner.run(sh, &RunnerCommand::NoIstiod(target.clone()).to_args())?;
            let istioctl = Istioctl {
                sh,
                bin: provision::ensure(
                    sh,
                    &provision::istioctl_asset(release.version)?,
                    interrupt,
                )?,
                kubeconfig: self.kubeconfig.as_deref().map(paths::from_invocation),
                context: self.context.clone(),
                hub: self.istio_hub.clone(),
                interrupt: interrupt.clone(),
            };
            istioctl.install(&paths::project_root().join("manifests/istio/operator.yaml"))?;
        }
        let run_id = mirror_e2e_contract::new_run_id();
        let mut cluster = ExistingCluster;
        with_cluster(
            &mut cluster,
            self.keep_request(),
            interrupt,
            |_, tracker| {
                let args = ClusterArgs {
                    target,
                    namespace: format!("test-{run_id}"),
                    delete_namespace: true,
                    allow_cluster_scoped: self.allow_cluster_scoped,
                    ingress: self
                        .ingress
                        .clone()
                        .unwrap_or_else(|| "http://127.0.0.1:30080".into()),
                    run_id: Some(run_id.clone()),
                    revision: self.revision.clone(),
                    bookinfo_hub: self.bookinfo_hub.clone(),
                    echo_hub: self.echo_hub.clone(),
                    istio: self.istio.is_some().then(|| release.version.to_owned()),
                    suite: self.suite_args(clock),
                    ..ClusterArgs::default()
                };
                tracker.suite_starts();
                runner.run(sh, &RunnerCommand::Cluster(Box::new(args)).to_args())
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

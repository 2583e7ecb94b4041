//! What a kwok cluster needs before the suite: the node, Istio's CRDs and kwok's `Logs` CRD,
//! then istiod's objects per revision as Istio's chart renders them (`helm template`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mirror_e2e_contract::args::{InstallArgs, KubeTarget, NodesReadyArgs, RunnerCommand};
use xshell::{Shell, cmd};

use super::{Binaries, KwokCluster, istio_source};
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{paths, versions};

/// Makes a new kwok cluster one the suite can run on: the node (then every node Ready),
/// Istio's CRDs and kwok's `Logs` CRD, and istiod's objects as Istio's chart renders them
/// for `release`, one control plane per revision of `revisions` ("" is the default), with
/// the chart values `chart_values` (`key=value`, as `helm --set` takes them).
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    sh: &Shell,
    cluster: &KwokCluster,
    runner: &Runner,
    bins: &Binaries,
    release: &versions::IstioRelease,
    revisions: &[&str],
    chart_values: &[&str],
    interrupt: &Interrupt,
    patience: Duration,
) -> anyhow::Result<()> {
    let istio = istio_source(sh, release.version)?;
    eprintln!(
        "Istio {}: CRDs and istiod's chart from istio.io/istio {}, {}{}",
        release.version,
        istio.module.version,
        istio.module.provenance,
        istio
            .compatibility
            .as_ref()
            .map(|minor| format!("; rendered with compatibilityVersion={minor}"))
            .unwrap_or_default()
    );
    let chart_values: Vec<String> = chart_values
        .iter()
        .map(|v| (*v).to_owned())
        .chain(istio.chart_values())
        .collect();
    let inside = runner.inside(&cluster.holder.nsenter_args());
    let target = KubeTarget {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
    };
    let install = |files: &[PathBuf], only: &[&str]| -> anyhow::Result<()> {
        let install = RunnerCommand::Install(InstallArgs {
            target: target.clone(),
            namespace: "default".into(),
            patience: Some(patience),
            only_kinds: only.iter().map(|k| (*k).to_owned()).collect(),
            files: files.to_vec(),
        });
        inside.run(sh, &install.to_args())
    };
    interrupt.check()?;
    // kwok's `Logs`: its kubelet endpoint serves `pods/log` from the files they name (the
    // data plane of `e2e --cluster kwok` makes one per pod).
    install(
        &[
            paths::project_root().join("xtask/src/cluster/kwok/node.yaml"),
            istio.crds.clone(),
            bins.kwok_source
                .join("kustomize/crd/bases/kwok.x-k8s.io_logs.yaml"),
        ],
        &[],
    )
    .context("install the kwok node, Istio's CRDs and kwok's Logs CRD")?;
    let mut files = vec![cluster.dir.join("istio-system.yaml")];
    std::fs::write(
        &files[0],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
    )
    .with_context(|| format!("write {}", files[0].display()))?;
    for revision in revisions {
        let rendered = cluster.dir.join(match *revision {
            "" => "istiod.yaml".to_owned(),
            r => format!("istiod-{r}.yaml"),
        });
        render_istiod(
            sh,
            bins,
            &istio.discovery_chart,
            release.version,
            revision,
            &chart_values,
            &rendered,
        )?;
        files.push(rendered);
    }
    install(
        &files,
        &[
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
        ],
    )
    .context("install istiod's objects")?;
    let ready = RunnerCommand::NodesReady(NodesReadyArgs {
        target,
        patience: Some(patience),
    });
    inside
        .run(sh, &ready.to_args())
        .context("wait for the kwok node")
}

/// `helm template` of istiod's chart from the pinned Istio module, as Istio's Helm install
/// renders it for the release's images (`revision` "" is the default revision).
fn render_istiod(
    sh: &Shell,
    bins: &Binaries,
    chart: &Path,
    version: &str,
    revision: &str,
    chart_values: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    let helm = &bins.helm;
    let tag = format!("global.tag={version}");
    let revision = format!("revision={revision}");
    let values: Vec<String> = chart_values
        .iter()
        .flat_map(|v| ["--set".to_owned(), v.clone()])
        .collect();
    let rendered = cmd!(
        sh,
        "{helm} template istiod {chart} --namespace istio-system --set global.hub=docker.io/istio --set {tag} --set {revision} {values...}"
    )
    .quiet()
    .read()
    .context("render istiod's chart with helm")?;
    std::fs::write(out, rendered).with_context(|| format!("write {}", out.display()))
}

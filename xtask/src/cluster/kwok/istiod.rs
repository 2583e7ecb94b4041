//! `--istiod real`: a pinned istiod (pilot-discovery, `binaries::ISTIODS`) as a process of
//! the kwok cluster, configured as Istio's chart renders its Deployment.
//!
//! In a pod, istiod gets the chart's container args and env, the `istio` ConfigMap mounted
//! as its mesh config, and a network namespace of its own. Here it gets the same args, the
//! env values the chart writes literally (the downward-API ones filled in as the kubelet
//! would), the ConfigMap's `mesh` and `meshNetworks` as files, and the cluster's namespace,
//! which it shares with the node's proxies: its debug port moves off 8080, where the ingress
//! gateway's listener goes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_yaml::Value;
use xshell::Shell;

use super::{KwokCluster, Lifetime};
use crate::interrupt::Interrupt;

/// istiod's plaintext xDS port (`--grpcAddr`, the chart's `grpc-xds` 15010), where the
/// node's proxies connect over ADS.
pub const XDS: &str = "127.0.0.1:15010";
/// istiod's HTTP debug and readiness server (`--httpAddr`; 8080 in its pod, but here the
/// ingress gateway's listener binds 0.0.0.0:8080 in the same namespace).
pub const DEBUG: &str = "127.0.0.1:15080";

/// One of istiod's addresses ([`XDS`], [`DEBUG`]), as the suite takes it.
pub fn address(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    text.parse()
        .with_context(|| format!("istiod's address {text}"))
}
/// The chart values `--istiod real` renders istiod with: no Prometheus stats provider in the
/// mesh config (its `istio.stats` filter is not in upstream Envoy builds), and no auto mTLS:
/// no workload has a certificate (no istio-agent serves SDS), and a cluster with auto mTLS
/// waits for the `default` and `ROOTCA` secrets forever, so the proxies never warm (seen:
/// `sds.default.update_success: 0`, no listener after CDS).
pub const CHART_VALUES: &[&str] = &[
    "telemetry.v2.prometheus.enabled=false",
    "meshConfig.enableAutoMtls=false",
];
/// What upstream Envoy builds need from istiod: none of Istio's own filters (istio-proxy
/// has them, upstream Envoy does not). Istio's own switches, set as istiod's env.
pub const UPSTREAM_ENVOY_ENV: &[(&str, &str)] = &[
    ("PILOT_ENABLE_METADATA_EXCHANGE", "false"),
    ("PILOT_ENABLE_ALPN_FILTER", "false"),
];

/// What the chart renders for istiod's container, and its mesh config.
#[derive(Debug, PartialEq)]
pub struct ChartIstiod {
    /// The container's args after `discovery` (the subcommand).
    pub args: Vec<String>,
    /// Env vars with a literal value; `valueFrom` ones are filled in by `start`.
    pub env: Vec<(String, String)>,
    /// The `istio` ConfigMap's `mesh` and `meshNetworks`.
    pub mesh: String,
    pub mesh_networks: String,
}

impl ChartIstiod {
    /// Reads istiod's Deployment and the mesh ConfigMap (`istio`, or `istio-<revision>`)
    /// from `helm template`'s output.
    pub fn from_rendered(rendered: &str, revision: &str) -> anyhow::Result<ChartIstiod> {
        let (deployment, configmap) = match revision {
            "" => ("istiod".to_owned(), "istio".to_owned()),
            r => (format!("istiod-{r}"), format!("istio-{r}")),
        };
        let mut container = None;
        let mut data = None;
        // helm separates its documents with `---` lines.
        for (i, doc) in rendered.split("\n---").enumerate() {
            let doc: Value = serde_yaml::from_str(doc)
                .with_context(|| format!("parse document {} of the rendered chart", i + 1))?;
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            if kind == "Deployment" && name == deployment {
                container = doc["spec"]["template"]["spec"]["containers"]
                    .as_sequence()
                    .and_then(|c| c.iter().find(|c| c["name"] == "discovery"))
                    .cloned();
            } else if kind == "ConfigMap" && name == configmap {
                data = Some(doc["data"].clone());
            }
        }
        let container = container.with_context(|| {
            format!("the chart rendered no Deployment {deployment} with a container `discovery`")
        })?;
        let data = data.with_context(|| format!("the chart rendered no ConfigMap {configmap}"))?;
        let mut args: Vec<String> = container["args"]
            .as_sequence()
            .map(|a| a.iter().filter_map(scalar).collect())
            .unwrap_or_default();
        if args.first().map(String::as_str) != Some("discovery") {
            bail!("istiod's container args do not start with `discovery`: {args:?}");
        }
        args.remove(0);
        let env = container["env"]
            .as_sequence()
            .map(|e| {
                e.iter()
                    .filter_map(|v| Some((v["name"].as_str()?.to_owned(), scalar(&v["value"])?)))
                    .collect()
            })
            .unwrap_or_default();
        let text = |key: &str| {
            data[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("ConfigMap {configmap} has no {key}"))
        };
        Ok(ChartIstiod {
            args,
            env,
            mesh: text("mesh")?,
            mesh_networks: text("meshNetworks")?,
        })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The running istiod: where the proxies and the suite reach it.
pub struct RunningIstiod {
    pub xds: &'static str,
    pub debug: &'static str,
    /// Its log.
    pub log: PathBuf,
}

impl RunningIstiod {
    /// Ends this istiod (as a Deployment's rollout ends its pod: SIGTERM, then SIGKILL
    /// after a grace period) and keeps its log as `pilot-discovery-<label>.log`; the
    /// proxies stay and reconnect to the next one.
    pub fn stop(self, cluster: &KwokCluster, label: &str) -> anyhow::Result<()> {
        cluster
            .holder
            .stop_child("pilot-discovery", Duration::from_secs(5))
            .context("stop istiod")?;
        // How it ended is not the walk's concern: the next istiod and the proxies are.
        let kept = self
            .log
            .with_file_name(format!("pilot-discovery-{label}.log"));
        std::fs::rename(&self.log, &kept)
            .with_context(|| format!("keep istiod's log as {}", kept.display()))
    }
}

/// istiod of one release after another on one cluster (an upgrade walk's hops, parity's
/// versions): each [`Succession::install`] applies the release's CRDs and istiod's objects
/// (server-side apply, safe again on the same cluster), stops the running istiod (its log
/// kept as `pilot-discovery-<version>.log`) and starts the release's.
#[derive(Default)]
pub struct Succession {
    running: Option<(RunningIstiod, &'static str)>,
}

/// How long an [`Succession::install`] took.
pub struct IstiodInstalled {
    /// The release's CRDs and istiod's objects.
    pub prepare: Duration,
    /// From stopping the old istiod to the new one's `/ready`.
    pub swap: Duration,
}

impl Succession {
    /// Installs `release` and runs `pilot_discovery` (its istiod) in place of the last.
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &mut self,
        sh: &Shell,
        cluster: &KwokCluster,
        runner: &crate::runner::Runner,
        bins: &super::Binaries,
        release: &'static crate::versions::IstioRelease,
        pilot_discovery: &Path,
        interrupt: &Interrupt,
        patience: Duration,
    ) -> anyhow::Result<IstiodInstalled> {
        let started = Instant::now();
        super::prepare(
            sh,
            cluster,
            runner,
            bins,
            release,
            &[""],
            CHART_VALUES,
            interrupt,
            patience,
        )?;
        let prepare = started.elapsed();
        let swapping = Instant::now();
        if let Some((old, version)) = self.running.take() {
            old.stop(cluster, version)?;
        }
        let istiod = start(
            sh,
            cluster,
            pilot_discovery,
            &cluster.dir.join("istiod.yaml"),
            interrupt,
            Instant::now() + patience,
        )?;
        self.running = Some((istiod, release.version));
        Ok(IstiodInstalled {
            prepare,
            swap: swapping.elapsed(),
        })
    }
}

/// The pinned pilot-discovery that plays Istio `version` (its minor's, or the oldest one
/// with a compatibility profile), built on first use.
pub fn pilot_discovery(
    sh: &Shell,
    interrupt: &Interrupt,
    version: &str,
) -> anyhow::Result<PathBuf> {
    let (module, _) = super::istio_module(version)?;
    let dir = module
        .istiod
        .ensure(sh, interrupt)
        .with_context(|| format!("provision istiod {}", module.minor))?;
    Ok(dir.join("pilot-discovery"))
}

/// Starts istiod in the cluster (unless one already answers there: a reused cluster's) and
/// waits until its `/ready` says so.
pub fn start(
    sh: &Shell,
    cluster: &KwokCluster,
    pilot_discovery: &Path,
    rendered: &Path,
    interrupt: &Interrupt,
    deadline: Instant,
) -> anyhow::Result<RunningIstiod> {
    let running = RunningIstiod {
        xds: XDS,
        debug: DEBUG,
        log: cluster.log("pilot-discovery"),
    };
    let ready = || {
        cluster
            .holder
            .http_ok(sh, &format!("http://{DEBUG}/ready"), &[])
    };
    if ready().is_ok() {
        eprintln!("istiod already runs in kwok cluster {}", cluster.name);
        return Ok(running);
    }
    let text = std::fs::read_to_string(rendered)
        .with_context(|| format!("read {}", rendered.display()))?;
    let chart = ChartIstiod::from_rendered(&text, "")
        .with_context(|| format!("istiod as {} renders it", rendered.display()))?;
    let dir = cluster.dir.join("istiod");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mesh = dir.join("mesh");
    let networks = dir.join("meshNetworks");
    std::fs::write(&mesh, &chart.mesh).with_context(|| format!("write {}", mesh.display()))?;
    std::fs::write(&networks, &chart.mesh_networks)
        .with_context(|| format!("write {}", networks.display()))?;
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let mut args = vec!["discovery".to_owned()];
    args.extend(chart.args);
    args.extend([
        format!("--kubeconfig={kubeconfig}"),
        format!("--meshConfig={}", mesh.display()),
        format!("--networksConfig={}", networks.display()),
        format!("--httpAddr={DEBUG}"),
        format!("--grpcAddr={XDS}"),
    ]);
    let mut env: Vec<(String, String)> = chart
        .env
        .into_iter()
        // The chart's points at a Secret's mount for a remote cluster; here the private one.
        .filter(|(k, _)| k != "KUBECONFIG")
        .collect();
    env.extend(
        [
            ("POD_NAME", "istiod-kwok"),
            ("POD_NAMESPACE", "istio-system"),
            ("SERVICE_ACCOUNT", "istiod"),
            ("KUBECONFIG", kubeconfig.as_str()),
        ]
        .into_iter()
        .chain(UPSTREAM_ENVOY_ENV.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    interrupt.check()?;
    // Its working directory is its own: istiod writes its DNS certificates to the relative
    // ./var/run/secrets/istio-dns.
    cluster
        .holder
        .spawn_with(
            &running.log,
            pilot_discovery,
            &args,
            &env,
            Some(&dir),
            // A reused cluster's istiod is this run's: it must not outlive it.
            if cluster.created_by_this_run {
                Lifetime::Cluster
            } else {
                Lifetime::Run
            },
        )
        .context("start istiod")?;
    let started = Instant::now();
    cluster.wait_for(
        "istiod to answer /ready",
        deadline,
        interrupt,
        &["pilot-discovery"],
        ready,
    )?;
    eprintln!(
        "istiod ready in {:.1?} (xDS {XDS}, debug http://{DEBUG}, log {})",
        started.elapsed(),
        running.log.display()
    );
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: values
data:
  mesh: not this one
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
data:
  meshNetworks: |-
    networks: {}
  mesh: |-
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
    rootNamespace: istio-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod
spec:
  template:
    spec:
      containers:
        - name: discovery
          args:
          - "discovery"
          - --monitoringAddr=:15014
          - --keepaliveMaxServerConnectionAge
          - "30m"
          env:
          - name: REVISION
            value: "default"
          - name: POD_NAME
            valueFrom:
              fieldRef:
                fieldPath: metadata.name
          - name: PILOT_TRACE_SAMPLING
            value: 1
"#;

    #[test]
    fn istiod_gets_the_charts_args_literal_env_and_mesh_config() {
        let chart = ChartIstiod::from_rendered(RENDERED, "").expect("parsed");
        assert_eq!(
            chart.args,
            [
                "--monitoringAddr=:15014",
                "--keepaliveMaxServerConnectionAge",
                "30m"
            ]
        );
        assert_eq!(
            chart.env,
            [
                ("REVISION".to_owned(), "default".to_owned()),
                ("PILOT_TRACE_SAMPLING".to_owned(), "1".to_owned())
            ]
        );
        assert!(chart.mesh.starts_with("defaultConfig:\n"), "{}", chart.mesh);
        assert!(chart.mesh.contains("rootNamespace: istio-system"));
        assert_eq!(chart.mesh_networks, "networks: {}");
    }

    #[test]
    fn a_revision_reads_its_own_objects_and_a_missing_one_is_named() {
        let err = ChartIstiod::from_rendered(RENDERED, "canary").expect_err("no canary");
        assert!(err.to_string().contains("istiod-canary"), "{err:#}");
        let no_mesh = RENDERED.replace("name: istio\n", "name: other\n");
        let err = ChartIstiod::from_rendered(&no_mesh, "").expect_err("no mesh");
        assert!(err.to_string().contains("ConfigMap istio"), "{err:#}");
    }
}

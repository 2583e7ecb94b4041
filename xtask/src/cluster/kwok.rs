//! `--cluster kwok`: a real Kubernetes control plane as local processes, without Docker.
//!
//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from pinned Go
//! modules, `binaries.rs`) and kwok, which plays the nodes and pods with its upstream
//! stages. Everything runs inside namespaces the cluster owns (`netns.rs`): a network
//! namespace, so pod addresses from a private range are real addresses that no traffic
//! outside the run can reach, and a PID namespace, so ending one process (the holder)
//! ends every process of the cluster, whatever state the run was in.
//!
//! The cluster lives in `target/kwok/<name>/`: its PKI, private kubeconfig, etcd data and
//! one log per component. Only a cluster this run created is ever deleted.

pub mod binaries;
mod finish;
mod istio_source;
pub mod istiod;
mod netns;
mod pki;
mod prepare;
pub mod prepared;
#[cfg(all(test, feature = "control-plane"))]
mod real;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::Shell;

use crate::interrupt::Interrupt;
use crate::paths;

pub use finish::{KwokProvider, KwokUp, shell_line};
#[cfg(test)]
pub use istio_source::ISTIO_MODULES;
pub use istio_source::{IstioSource, istio_module, istio_source, version_label};
pub use netns::{Holder, Lifetime};
pub use prepare::prepare;

/// Where the API server listens, inside the cluster's network namespace.
pub const API_SERVER: &str = "https://127.0.0.1:6443";
/// Pod addresses kwok hands out (a private range, inside the cluster's namespace only).
pub const POD_CIDR: &str = "10.244.0.1/16";
/// Service addresses; does not overlap the pods'.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The node kwok plays, and the address its kubelet-style endpoint answers on.
pub const NODE_NAME: &str = "kwok-node-0";
pub const NODE_IP: &str = "10.250.0.1";
/// Where the node's ingress gateway listens (kind maps its NodePort 30080 to the host; here
/// the node's own address, inside the cluster's network namespace).
pub const INGRESS: &str = "http://10.250.0.1:30080";
/// Where the ingress gateway listens with `--istiod real`: istiod gives it a listener on the
/// Gateway's own port (8080, on every address), there being no gateway Service to map it.
pub const INGRESS_ISTIOD: &str = "http://10.250.0.1:8080";
/// The pod range, every address of which is local inside the cluster's network namespace:
/// the node's data plane listens on each pod's own address.
const POD_RANGE: &str = "10.244.0.0/16";
const KUBELET_PORT: &str = "10250";

/// A kwok cluster's directory and, while it runs, its holder process.
pub struct KwokCluster {
    pub name: String,
    pub dir: PathBuf,
    pub holder: Holder,
    /// Whether this run started it (only then may the run delete it).
    pub created_by_this_run: bool,
}

/// The pinned binaries, built or found in the cache.
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kwok: PathBuf,
    pub helm: PathBuf,
    /// kwok's module source, for its upstream stage files.
    pub kwok_source: PathBuf,
}

impl Binaries {
    /// Builds what is missing (a cold build takes long; progress and a log are shown).
    pub fn ensure(sh: &Shell, interrupt: &Interrupt) -> anyhow::Result<Binaries> {
        let etcd = binaries::ETCD.ensure(sh, interrupt)?;
        let kwok = binaries::KWOK.ensure(sh, interrupt)?;
        let helm = binaries::HELM.ensure(sh, interrupt)?;
        let kubernetes = binaries::KUBERNETES.ensure(sh, interrupt)?;
        Ok(Binaries {
            etcd: etcd.join("etcd"),
            kube_apiserver: kubernetes.join("kube-apiserver"),
            kube_controller_manager: kubernetes.join("kube-controller-manager"),
            kube_scheduler: kubernetes.join("kube-scheduler"),
            kwok: kwok.join("kwok"),
            helm: helm.join("helm"),
            kwok_source: binaries::module_dir(sh, binaries::KWOK.upstream, binaries::KWOK.version)?,
        })
    }
}

/// The names of the clusters kept under `dir`, sorted (running or not).
fn kept_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Why `--reuse NAME` cannot reuse: no running cluster has the name; what runs instead.
fn reuse_refusal(name: &str, running: &[String]) -> String {
    let running = if running.is_empty() {
        "none runs".to_owned()
    } else {
        format!("running: {}", running.join(", "))
    };
    format!(
        "--reuse {name}: no running kwok cluster has that name ({running}; `cargo xtask kwok list`); drop --reuse to create one"
    )
}

/// The directory every kwok cluster of this checkout lives in.
pub fn clusters_dir() -> PathBuf {
    paths::project_root().join("target/kwok")
}

impl KwokCluster {
    /// The cluster `name` if its holder still runs.
    /// The running cluster `--reuse NAME` names; a name with no running cluster is a usage
    /// error listing those that run (a typo must not create a new cluster).
    pub fn reuse(name: &str) -> anyhow::Result<KwokCluster> {
        if let Some(cluster) = KwokCluster::find(name)? {
            return Ok(cluster);
        }
        let running: Vec<String> = kept_names(&clusters_dir())
            .into_iter()
            .filter(|n| KwokCluster::find(n).ok().flatten().is_some())
            .collect();
        Err(crate::flags::Usage(reuse_refusal(name, &running)).into())
    }

    pub fn find(name: &str) -> anyhow::Result<Option<KwokCluster>> {
        let dir = clusters_dir().join(name);
        Ok(Holder::read(&dir)?.map(|holder| KwokCluster {
            name: name.to_owned(),
            dir,
            holder,
            created_by_this_run: false,
        }))
    }

    /// The private kubeconfig (valid inside the cluster's network namespace).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{component}.log"))
    }

    /// Creates the cluster `name`: refuses when one of that name runs (naming `--reuse`),
    /// and deletes what it started when any step fails or Ctrl-C comes.
    pub fn create(
        sh: &Shell,
        name: &str,
        bins: &Binaries,
        interrupt: &Interrupt,
        patience: Duration,
    ) -> anyhow::Result<KwokCluster> {
        if Self::find(name)?.is_some() {
            bail!(
                "a kwok cluster named {name} already runs (target/kwok/{name}); use it with --reuse, or delete it with `cargo xtask kwok delete {name}`"
            );
        }
        interrupt.check()?;
        let dir = clusters_dir().join(name);
        if dir.exists() {
            // A directory without a running holder: a cluster that ended (host restart,
            // kill -9 of its holder). Nothing in it runs; start afresh.
            sh.remove_path(&dir)
                .with_context(|| format!("remove the ended cluster's {}", dir.display()))?;
        }
        sh.create_dir(dir.join("logs"))?;
        sh.create_dir(dir.join("pki"))?;
        let holder = Holder::start(sh, &dir).context("create the cluster's namespaces")?;
        let cluster = KwokCluster {
            name: name.to_owned(),
            dir,
            holder,
            created_by_this_run: true,
        };
        match cluster.start_control_plane(sh, bins, interrupt, patience) {
            Ok(()) => Ok(cluster),
            Err(e) => {
                // Only what this call created is removed: the holder it started takes every
                // process of the cluster with it.
                if let Err(d) = cluster.delete(sh) {
                    eprintln!("error: delete the half-created kwok cluster {name}: {d:#}");
                }
                Err(e)
            }
        }
    }

    /// The cluster's network namespace: loopback up, the node's address, and the whole pod
    /// range local.
    fn local_network(&self, sh: &Shell) -> anyhow::Result<()> {
        self.holder.run(sh, &["ip", "link", "set", "lo", "up"])?;
        // The node's address: kwok's kubelet-style endpoint answers here and the API server
        // reaches it for pod logs. Not loopback: the node proxy refuses any address that is
        // not global unicast (pkg/registry/core/node/strategy.go, isProxyableHostname).
        self.holder.run(
            sh,
            &["ip", "addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"],
        )?;
        self.holder
            .run(sh, &["ip", "route", "add", "local", POD_RANGE, "dev", "lo"])?;
        Ok(())
    }

    fn start_control_plane(
        &self,
        sh: &Shell,
        bins: &Binaries,
        interrupt: &Interrupt,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let files = pki::PkiFiles::in_dir(&self.dir.join("pki"));
        files
            .generate()
            .context("generate the cluster's certificates")?;
        pki::write(
            &self.kubeconfig(),
            &files.kubeconfig(&self.name, API_SERVER),
            true,
        )?;
        self.local_network(sh)?;

        let etcd_data = self.dir.join("etcd");
        let deadline = Instant::now() + patience;
        interrupt.check()?;
        self.holder.spawn(
            &self.log("etcd"),
            &bins.etcd,
            &[
                "--name=mirror-e2e".into(),
                format!("--data-dir={}", etcd_data.display()),
                "--listen-client-urls=http://127.0.0.1:2379".into(),
                "--advertise-client-urls=http://127.0.0.1:2379".into(),
                "--listen-peer-urls=http://127.0.0.1:2380".into(),
                "--initial-advertise-peer-urls=http://127.0.0.1:2380".into(),
                "--initial-cluster=mirror-e2e=http://127.0.0.1:2380".into(),
                // A test cluster's data is disposable (envtest does the same).
                "--unsafe-no-fsync".into(),
                "--quota-backend-bytes=4294967296".into(),
            ],
        )?;
        interrupt.check()?;
        let p = |p: &Path| p.display().to_string();
        self.holder.spawn(
            &self.log("kube-apiserver"),
            &bins.kube_apiserver,
            &apiserver_args(&files),
        )?;
        self.wait_for(
            "the API server to answer /readyz",
            deadline,
            interrupt,
            &["kube-apiserver", "etcd"],
            || {
                self.holder.http_ok(
                    sh,
                    &format!("{API_SERVER}/readyz"),
                    &[
                        "--cacert".into(),
                        p(&files.ca_cert),
                        "--cert".into(),
                        p(&files.admin_cert),
                        "--key".into(),
                        p(&files.admin_key),
                    ],
                )
            },
        )?;
        let kubeconfig = p(&self.kubeconfig());
        interrupt.check()?;
        self.holder.spawn(
            &self.log("kube-controller-manager"),
            &bins.kube_controller_manager,
            &[
                format!("--kubeconfig={kubeconfig}"),
                // Nothing scrapes it; no port of the run's own to keep track of.
                "--secure-port=0".into(),
                format!("--root-ca-file={}", p(&files.ca_cert)),
                format!(
                    "--service-account-private-key-file={}",
                    p(&files.service_account_key)
                ),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
            ],
        )?;
        interrupt.check()?;
        self.holder.spawn(
            &self.log("kube-scheduler"),
            &bins.kube_scheduler,
            &[
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=10259".into(),
                "--leader-elect=false".into(),
            ],
        )?;
        interrupt.check()?;
        let kwok_args = kwok_args(bins, &files, &kubeconfig);
        self.holder
            .spawn(&self.log("kwok"), &bins.kwok, &kwok_args)?;
        Ok(())
    }

    /// Polls `probe` until it succeeds, a component exits, Ctrl-C, or the deadline: a
    /// bounded, named wait that reports what it saw last.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Instant,
        interrupt: &Interrupt,
        components: &[&str],
        probe: impl Fn() -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let limit = deadline.saturating_duration_since(Instant::now());
        crate::poll::poll_until(what, limit, Some(interrupt), |seen| {
            match probe() {
                Ok(()) => return Ok(Some(())),
                Err(e) => *seen = e,
            }
            for component in components {
                if let Some(status) = self.holder.exited(component) {
                    bail!(
                        "{component} exited ({status}) while waiting for {what}; its log ({}) ends:\n  {}",
                        self.log(component).display(),
                        crate::progress::last_lines(&self.log(component), 12).join("\n  ")
                    );
                }
            }
            Ok(None)
        })
    }

    /// Ends every process of a cluster the user names (`cargo xtask kwok delete NAME`) and
    /// removes its directory: their explicit request, the only way a found cluster goes.
    pub fn delete_on_request(self, sh: &Shell) -> anyhow::Result<()> {
        KwokCluster {
            created_by_this_run: true,
            ..self
        }
        .delete(sh)
    }

    /// Ends every process of the cluster and removes its directory: only for a cluster this
    /// run created (a found one is someone's, kept on purpose).
    pub fn delete(&self, sh: &Shell) -> anyhow::Result<()> {
        if !self.created_by_this_run {
            bail!(
                "the kwok cluster {} was not created by this run; it is not deleted",
                self.name
            );
        }
        self.holder.stop()?;
        sh.remove_path(&self.dir)
            .with_context(|| format!("remove {}", self.dir.display()))
    }
}

/// kwok's flags: the node it plays, its kubelet endpoint, and kwokctl's default stages.
fn kwok_args(bins: &Binaries, files: &pki::PkiFiles, kubeconfig: &str) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let stages = bins.kwok_source.join("kustomize/stage");
    let mut kwok_args = vec![
        format!("--kubeconfig={kubeconfig}"),
        "--manage-all-nodes=true".into(),
        format!("--cidr={POD_CIDR}"),
        format!("--node-ip={NODE_IP}"),
        format!("--node-name={NODE_NAME}"),
        format!("--node-port={KUBELET_PORT}"),
        format!("--server-address={NODE_IP}:{KUBELET_PORT}"),
        format!("--tls-cert-file={}", p(&files.serving_cert)),
        format!("--tls-private-key-file={}", p(&files.serving_key)),
        "--node-lease-duration-seconds=40".into(),
        // Pods' logs come from `Logs` objects the node's data plane writes.
        "--enable-crds=Logs".into(),
    ];
    // kwokctl's defaults: nodes initialise fast and renew a lease; pods are Ready at once.
    for stage in [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ] {
        kwok_args.push(format!("--config={}", p(&stages.join(stage))));
    }
    kwok_args
}

/// kube-apiserver's flags: its certificates, the service range, RBAC, and kwok's kubelet
/// endpoint as where pod logs come from.
fn apiserver_args(files: &pki::PkiFiles) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        "--etcd-servers=http://127.0.0.1:2379".into(),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        "--secure-port=6443".into(),
        format!("--tls-cert-file={}", p(&files.serving_cert)),
        format!("--tls-private-key-file={}", p(&files.serving_key)),
        format!("--client-ca-file={}", p(&files.ca_cert)),
        format!(
            "--service-account-key-file={}",
            p(&files.service_account_pub)
        ),
        format!(
            "--service-account-signing-key-file={}",
            p(&files.service_account_key)
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=Node,RBAC".into(),
        // The API server advertises a loopback address: no Endpoints for it.
        "--endpoint-reconciler-type=none".into(),
        // For pod logs, the API server is kwok's kubelet client.
        format!("--kubelet-client-certificate={}", p(&files.admin_cert)),
        format!("--kubelet-client-key={}", p(&files.admin_key)),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--allow-privileged=true".into(),
    ]
}

impl crate::flags::Kwok {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self.action {
            crate::flags::KwokAction::List => {
                let dir = clusters_dir();
                let names = kept_names(&dir);
                if names.is_empty() {
                    println!("no kwok cluster in {}", dir.display());
                }
                for name in names {
                    let state = match KwokCluster::find(&name)? {
                        Some(c) => format!("running (holder pid {})", c.holder.pid),
                        None => "ended (its directory is left)".to_owned(),
                    };
                    println!("{name}\t{state}\t{}", dir.join(&name).display());
                }
                Ok(())
            }
            crate::flags::KwokAction::Delete { name } => {
                let dir = clusters_dir().join(&name);
                match KwokCluster::find(&name)? {
                    Some(cluster) => cluster
                        .delete_on_request(sh)
                        .with_context(|| format!("delete kwok cluster {name}"))?,
                    None if dir.exists() => sh
                        .remove_path(&dir)
                        .with_context(|| format!("remove {}", dir.display()))?,
                    None => bail!(
                        "no kwok cluster named {name} in {} (`cargo xtask kwok list` shows them)",
                        clusters_dir().display()
                    ),
                }
                println!("deleted kwok cluster {name}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_reuse_name_no_cluster_has_is_refused_naming_those_that_run() {
        assert_eq!(
            reuse_refusal("typo", &["mirror-e2e-a".into(), "mine".into()]),
            "--reuse typo: no running kwok cluster has that name (running: mirror-e2e-a, mine; `cargo xtask kwok list`); drop --reuse to create one"
        );
        assert!(reuse_refusal("typo", &[]).contains("(none runs;"));
        let dir = tempfile::tempdir().expect("dir");
        for name in ["b", "a"] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        std::fs::write(dir.path().join("file"), "").expect("write");
        assert_eq!(kept_names(dir.path()), ["a", "b"]);
    }

    use super::*;

    #[test]
    fn each_release_is_played_by_its_minors_istiod_or_the_oldest_with_its_profile() {
        let played =
            |v: &str| istio_module(v).map(|(m, compat)| (m.minor, compat.unwrap_or_default()));
        assert_eq!(played("1.31.1").expect("1.31"), ("1.31", String::new()));
        assert_eq!(played("1.30.5").expect("1.30"), ("1.30", String::new()));
        // No 1.27 commit is served: 1.30's istiod with Istio's 1.27 profile plays it.
        assert_eq!(played("1.27.9").expect("1.27"), ("1.30", "1.27".to_owned()));
        assert_eq!(played("1.29.9").expect("1.29"), ("1.30", "1.29".to_owned()));
        // Newer than every pinned module: nothing can play it.
        let err = played("1.32.0").expect_err("1.32");
        assert!(err.to_string().contains("pinned: 1.31, 1.30"), "{err:#}");
    }

    #[test]
    fn a_profile_is_a_chart_value_and_the_report_says_who_plays_the_release() {
        let source = |compatibility: Option<&str>| IstioSource {
            crds: PathBuf::new(),
            discovery_chart: PathBuf::new(),
            module: &ISTIO_MODULES[1],
            compatibility: compatibility.map(str::to_owned),
        };
        assert!(source(None).chart_values().is_empty());
        assert_eq!(
            source(Some("1.27")).chart_values(),
            ["compatibilityVersion=1.27"]
        );
        assert!(source(None).describe().starts_with(
            "istiod 1.30-dev-9739e10eb9d7 (istio.io/istio v0.0.0-20260826214018-9739e10eb9d7)"
        ));
        assert!(
            source(Some("1.27"))
                .describe()
                .contains("with compatibilityVersion=1.27")
        );
    }
}

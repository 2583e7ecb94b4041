//! `mirror-e2e`'s command line, one struct per subcommand xtask runs. mirror-e2e parses
//! them (`RunnerCli`); xtask fills them and passes `to_args()`, so a flag renamed on one
//! side is a compile error on the other. Defaults that depend on the suite (the Istio
//! release, a mode's patience) are `None` here and resolved by mirror-e2e.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env;
use crate::exit::RUNNER_TABLE;
use crate::patience::{parse_elapsed, parse_seconds, seconds_arg};

mod argv;
mod node;
#[cfg(test)]
mod tests;

use argv::Argv;
pub use node::{DataPlaneArgs, NodeArgs, ProxiesSyncedArgs};

/// Proves Istio traffic mirroring works: offline analysis and the mirroring suite.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "mirror-e2e", version, after_help = RUNNER_TABLE)]
pub struct RunnerCli {
    /// What to do.
    #[command(subcommand)]
    pub command: RunnerCommand,
}

/// The subcommands of `mirror-e2e`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum RunnerCommand {
    /// Analyze manifests offline; exit 1 when any error is found.
    Lint(LintArgs),
    /// Run the suite on a real Envoy configured from the manifests (no Docker).
    #[command(after_help = RUNNER_TABLE)]
    Local(Box<LocalArgs>),
    /// Deploy the manifests to a cluster with Istio and run the suite there.
    #[command(after_help = RUNNER_TABLE)]
    Cluster(Box<ClusterArgs>),
    /// Wait until the cluster has nodes and every one is Ready (`kind create --wait` only
    /// warns when its wait runs out).
    NodesReady(NodesReadyArgs),
    /// Server-side apply what a provisioned cluster needs before the suite (Istio's CRDs, a
    /// kwok node): CRDs first, each awaited until Established, then the rest.
    Install(InstallArgs),
    /// Compare istiod's routes with local mode's translation, variant by variant, on a
    /// cluster whose istiod answers at --istiod-xds (run by `cargo xtask parity`); exit 1
    /// when any variant differs.
    Parity(Box<ParityArgs>),
    /// Join the `parity.json` of several `mirror-e2e parity` runs (one Istio version each)
    /// into one table, a column per version; exit 1 when any variant differs.
    ParityTable(ParityTableArgs),
    /// Succeed only when the cluster runs no istiod: `--install-istio` asks this first, so it
    /// never installs over someone else's control plane.
    NoIstiod(KubeTarget),
    /// Play a kwok node's data plane (`--node`) until SIGTERM or Ctrl-C, apart from any run
    /// of the suite: an upgrade walk keeps the proxies while it replaces istiod. Exit 1 when
    /// a proxy rejected istiod's configuration.
    Node(Box<NodeArgs>),
    /// Wait until every proxy a node's data plane runs (`<node-dir>/proxies`) is connected
    /// to istiod and has ACKed its configuration (istiod's `/debug/syncz`); exit 1 on a
    /// rejection or when the patience runs out.
    ProxiesSynced(ProxiesSyncedArgs),
    /// Compare the runs of an upgrade walk, each with the one before, check by check; exit 1
    /// on any change that is not a known, intended behaviour change.
    Compare(CompareArgs),
}

impl RunnerCommand {
    /// The command line that parses back to this command (without the program's name).
    pub fn to_args(&self) -> Vec<String> {
        let (name, mut argv) = match self {
            RunnerCommand::Lint(a) => ("lint", a.argv()),
            RunnerCommand::Local(a) => ("local", a.argv()),
            RunnerCommand::Cluster(a) => ("cluster", a.argv()),
            RunnerCommand::NodesReady(a) => ("nodes-ready", a.argv()),
            RunnerCommand::Install(a) => ("install", a.argv()),
            RunnerCommand::Parity(a) => ("parity", a.argv()),
            RunnerCommand::ParityTable(a) => ("parity-table", a.argv()),
            RunnerCommand::NoIstiod(a) => ("no-istiod", a.argv()),
            RunnerCommand::Node(a) => ("node", a.argv()),
            RunnerCommand::ProxiesSynced(a) => ("proxies-synced", a.argv()),
            RunnerCommand::Compare(a) => ("compare", a.argv()),
        };
        argv.0.insert(0, name.to_owned());
        argv.0
    }
}

/// Which cluster: a kubeconfig and a context of it (both read only; the current context is
/// never changed).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the file's current context, which is never changed).
    #[arg(long)]
    pub context: Option<String>,
}

impl KubeTarget {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        self.extend(&mut a);
        a
    }

    fn extend(&self, a: &mut Argv) {
        a.opt_path("--kubeconfig", self.kubeconfig.as_ref());
        a.opt("--context", self.context.as_ref());
    }
}

/// How `mirror-e2e lint` prints its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// One finding per line.
    #[default]
    Text,
    /// An array of objects with file, line, severity, code and message.
    Json,
}

/// `mirror-e2e lint`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LintArgs {
    /// Files or directories of YAML manifests.
    #[arg(default_value = "manifests")]
    pub paths: Vec<PathBuf>,
    /// How findings are printed: `text`, one per line, or `json`, an array of objects
    /// with file, line, severity, code and message (for `cargo xtask analyze`).
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    pub format: LintFormat,
    /// The expectations file to check against the manifests (default: each directory's
    /// `expectations.yaml`).
    #[arg(long, value_name = "FILE")]
    pub expectations: Option<PathBuf>,
}

impl LintArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        if self.format != LintFormat::Text {
            a.value("--format", "json");
        }
        a.opt_path("--expectations", self.expectations.as_ref());
        a.paths(&self.paths);
        a
    }
}

/// What every run of the suite takes, locally or on a cluster.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SuiteArgs {
    /// Manifests directory holding the routing under test.
    #[arg(long, default_value = "manifests")]
    pub manifests: PathBuf,
    /// The expectations file: what the mesh must do; the checks and their names derive from
    /// it (default: `expectations.yaml` in the manifests directory, else the tutorial's).
    #[arg(long, value_name = "FILE")]
    pub expectations: Option<PathBuf>,
    /// Where runs keep their evidence; each run gets `<dir>/<run-id>/` (default:
    /// target/e2e).
    #[arg(long, env = env::ARTIFACTS_ROOT)]
    pub artifacts_root: Option<PathBuf>,
    /// Keep the run's artifacts (in cluster mode, the namespace too) even when every check
    /// passes.
    #[arg(long)]
    pub keep: bool,
    /// Run even when the manifests under test have lint errors (a misspelled field, a
    /// subset that selects nothing): the rare case of testing what the linter flags.
    #[arg(long)]
    pub allow_lint_errors: bool,
    /// Requests of one batch in flight at once (the percentage check sends 300 a batch).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Seconds every wait and retry may take (default: 5 locally, where routes reach
    /// Envoy in milliseconds and a broken route fails fast; 300 on a cluster, whose checks
    /// retry for a tenth of it).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
    /// Seconds the run had been going when this process started (xtask passes its clock's
    /// reading), so the progress lines go on from the run's start instead of restarting.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_elapsed)]
    pub elapsed: Duration,
    /// Arguments for the test harness (filters, --list, --exact, ...), after `--`.
    #[arg(last = true)]
    pub harness: Vec<String>,
}

impl Default for SuiteArgs {
    fn default() -> SuiteArgs {
        SuiteArgs {
            manifests: "manifests".into(),
            expectations: None,
            artifacts_root: None,
            keep: false,
            allow_lint_errors: false,
            concurrency: 16,
            patience: None,
            elapsed: Duration::ZERO,
            harness: Vec::new(),
        }
    }
}

impl SuiteArgs {
    fn extend(&self, a: &mut Argv) {
        a.path("--manifests", &self.manifests);
        a.opt_path("--expectations", self.expectations.as_ref());
        a.opt_path("--artifacts-root", self.artifacts_root.as_ref());
        a.flag("--keep", self.keep);
        a.flag("--allow-lint-errors", self.allow_lint_errors);
        a.value("--concurrency", self.concurrency);
        a.opt("--patience", self.patience.map(seconds_arg));
        a.value("--elapsed", seconds_arg(self.elapsed));
    }

    /// The harness's arguments go last, after `--`.
    fn finish(&self, a: &mut Argv) {
        a.rest(&self.harness);
    }
}

/// `--workload NAME=COMMAND`: a program in place of a Deployment's built-in stand-in.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadArgs {
    /// Run COMMAND as the Deployment NAME in place of its built-in stand-in (repeatable):
    /// `{port}` (and PORT) is its port, HTTP_PROXY its sidecar, its output its log; on a
    /// kwok node, for each of its pods, on `{address}:{port}` (POD_IP and PORT).
    #[arg(long = "workload", value_name = "NAME=COMMAND")]
    pub workloads: Vec<String>,
    /// Where `--workload` commands run (default: here).
    #[arg(long, value_name = "DIR")]
    pub workload_dir: Option<PathBuf>,
}

impl WorkloadArgs {
    fn extend(&self, a: &mut Argv) {
        for w in &self.workloads {
            a.value("--workload", w);
        }
        a.opt_path("--workload-dir", self.workload_dir.as_ref());
    }
}

/// `mirror-e2e local`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalArgs {
    /// Istio version whose sidecar behaviour to emulate (default: the newest pinned).
    #[arg(long)]
    pub istio: Option<String>,
    /// Envoy binary.
    #[arg(long, env = env::ENVOY_BIN)]
    pub envoy: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub suite: SuiteArgs,
}

impl LocalArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        a.opt_path("--envoy", self.envoy.as_ref());
        a.opt("--istio", self.istio.as_ref());
        self.workload.extend(&mut a);
        self.suite.extend(&mut a);
        self.suite.finish(&mut a);
        a
    }
}

/// `mirror-e2e cluster`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ClusterArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: KubeTarget,
    /// Namespace to deploy into.
    #[arg(long, default_value = "test")]
    pub namespace: String,
    /// Delete the namespace at the end (only for a namespace this run created): the run is on
    /// a cluster it does not own, so cluster-scoped documents are refused unless
    /// --allow-cluster-scoped.
    #[arg(long)]
    pub delete_namespace: bool,
    /// With --delete-namespace: apply cluster-scoped documents (a CustomResourceDefinition,
    /// a ClusterRole, ...) anyway, and delete at the end those the run created.
    #[arg(long, requires = "delete_namespace")]
    pub allow_cluster_scoped: bool,
    /// Base URL of the ingress gateway on this host.
    #[arg(long, default_value = "http://127.0.0.1:30080")]
    pub ingress: String,
    /// The node's data plane, when this run plays it (`--node`).
    #[command(flatten)]
    pub data_plane: DataPlaneArgs,
    /// The proxies are a node's data plane that `mirror-e2e node` plays apart from this run
    /// (an upgrade walk keeps them across istiod replacements): as with --node, no sidecar
    /// is awaited, and none is started here.
    #[arg(long, conflicts_with = "node")]
    pub node_proxies: bool,
    /// What configured the mesh, for the report (default: what --node and --istiod-xds say).
    #[arg(long, value_name = "TEXT")]
    pub control_plane: Option<String>,
    /// The run's Istio as the report's headers and an upgrade walk's columns name it, when
    /// something other than the release played it (e.g. `1.27.9 played by istiod
    /// 1.30@9739e10 + 1.27 profile`; default: the version istiod reports).
    #[arg(long, value_name = "TEXT")]
    pub version_label: Option<String>,
    /// Registry path to move Bookinfo images to (from the version table, or a mirror).
    #[arg(long)]
    pub bookinfo_hub: Option<String>,
    /// Registry path to move the echo image to (`<hub>/http-https-echo:<tag>`), for a mirror.
    #[arg(long)]
    pub echo_hub: Option<String>,
    /// The Istio revision whose control plane injects the run's namespace (default: the
    /// default revision, or the only one installed).
    #[arg(long)]
    pub revision: Option<String>,
    /// Tag to give Bookinfo images (from the version table).
    #[arg(long)]
    pub bookinfo_tag: Option<String>,
    /// After deploying, restart every Deployment and verify each sidecar runs the Istio
    /// version expected (after a control-plane upgrade).
    #[arg(long, requires = "istio")]
    pub restart_workloads: bool,
    /// Istio version expected; the run fails if istiod reports another. Default: what
    /// istiod reports.
    #[arg(long)]
    pub istio: Option<String>,
    /// Run id (xtask passes its own so both write to one directory).
    #[arg(long)]
    pub run_id: Option<String>,
    /// A phase timed before this run, `NAME=SECONDS` (xtask passes cluster creation and
    /// Istio installation), shown first in the report.
    #[arg(long = "phase", value_parser = parse_phase)]
    pub phases: Vec<(String, Duration)>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub suite: SuiteArgs,
}

impl Default for ClusterArgs {
    fn default() -> ClusterArgs {
        ClusterArgs {
            target: KubeTarget::default(),
            namespace: "test".into(),
            delete_namespace: false,
            allow_cluster_scoped: false,
            ingress: "http://127.0.0.1:30080".into(),
            data_plane: DataPlaneArgs::default(),
            node_proxies: false,
            control_plane: None,
            version_label: None,
            bookinfo_hub: None,
            echo_hub: None,
            revision: None,
            bookinfo_tag: None,
            restart_workloads: false,
            istio: None,
            run_id: None,
            phases: Vec::new(),
            suite: SuiteArgs::default(),
        }
    }
}

impl ClusterArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        self.target.extend(&mut a);
        a.value("--namespace", &self.namespace);
        a.flag("--delete-namespace", self.delete_namespace);
        a.flag("--allow-cluster-scoped", self.allow_cluster_scoped);
        a.value("--ingress", &self.ingress);
        self.data_plane.extend(&mut a);
        a.flag("--node-proxies", self.node_proxies);
        a.opt("--control-plane", self.control_plane.as_ref());
        a.opt("--version-label", self.version_label.as_ref());
        a.opt("--bookinfo-hub", self.bookinfo_hub.as_ref());
        a.opt("--echo-hub", self.echo_hub.as_ref());
        a.opt("--revision", self.revision.as_ref());
        a.opt("--bookinfo-tag", self.bookinfo_tag.as_ref());
        a.flag("--restart-workloads", self.restart_workloads);
        a.opt("--istio", self.istio.as_ref());
        a.opt("--run-id", self.run_id.as_ref());
        for (name, took) in &self.phases {
            a.value("--phase", format!("{name}={}", seconds_arg(*took)));
        }
        self.suite.extend(&mut a);
        self.suite.finish(&mut a);
        a
    }
}

/// `NAME=SECONDS`.
fn parse_phase(text: &str) -> Result<(String, Duration), String> {
    let (name, secs) = text.split_once('=').ok_or("expected NAME=SECONDS")?;
    Ok((name.to_owned(), parse_elapsed(secs)?))
}

/// `mirror-e2e nodes-ready`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct NodesReadyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: KubeTarget,
    /// Seconds to wait (default 300).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
}

impl NodesReadyArgs {
    fn argv(&self) -> Argv {
        let mut a = self.target.argv();
        a.opt("--patience", self.patience.map(seconds_arg));
        a
    }
}

/// `mirror-e2e install`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct InstallArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: KubeTarget,
    /// Namespace for namespaced documents that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Seconds to wait for CRDs to be served (default 300).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
    /// Apply only documents of these kinds (comma-separated; default: every document).
    #[arg(long, value_delimiter = ',')]
    pub only_kinds: Vec<String>,
    /// YAML files or directories to apply.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

impl InstallArgs {
    fn argv(&self) -> Argv {
        let mut a = self.target.argv();
        a.value("--namespace", &self.namespace);
        a.opt("--patience", self.patience.map(seconds_arg));
        if !self.only_kinds.is_empty() {
            a.value("--only-kinds", self.only_kinds.join(","));
        }
        a.paths(&self.files);
        a
    }
}

/// `mirror-e2e parity`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ParityArgs {
    /// Kubeconfig file of the cluster istiod reads.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// istiod's plaintext xDS address.
    #[arg(long, value_name = "ADDRESS")]
    pub istiod_xds: SocketAddr,
    /// istiod's HTTP debug address (`/debug/configz`, `/debug/syncz`).
    #[arg(long, value_name = "ADDRESS")]
    pub istiod_debug: SocketAddr,
    /// The Envoy binary.
    #[arg(long, env = env::ENVOY_BIN)]
    pub envoy: PathBuf,
    /// The Istio version the translation emulates (default: the newest pinned).
    #[arg(long)]
    pub istio: Option<String>,
    /// The version's column header, when something other than the release plays it on the
    /// cluster's side (e.g. `1.27.9 played by istiod 1.30@9739e10 + 1.27 profile`: a newer
    /// istiod with Istio's compatibility profile for that minor; default: --istio).
    #[arg(long, value_name = "TEXT")]
    pub version_label: Option<String>,
    /// Manifests compared as one variant each (a directory or a file; `${NS}` in them is
    /// the variant's namespace). The shipped `manifests` directory is the variant `shipped`,
    /// any other is named by its path.
    #[arg(long)]
    pub manifests: Vec<PathBuf>,
    /// The corpus: a directory of one variant per YAML file, each applied with its
    /// `base.yaml`.
    #[arg(long)]
    pub variants: Option<PathBuf>,
    /// Also run this many generated cases (`--seed` chooses them); a case that differs is
    /// shrunk and written to `<out>/cases/` as a file that reproduces it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub generated: usize,
    /// The seed of `--generated` (printed, so a run can be replayed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the proxies' files, the reduced routes and the table go.
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds every wait may take (default 60).
    #[arg(long, env = env::PATIENCE, value_parser = parse_seconds)]
    pub patience: Option<Duration>,
}

impl ParityArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        a.path("--kubeconfig", &self.kubeconfig);
        a.value("--istiod-xds", self.istiod_xds);
        a.value("--istiod-debug", self.istiod_debug);
        a.path("--envoy", &self.envoy);
        a.opt("--istio", self.istio.as_ref());
        a.opt("--version-label", self.version_label.as_ref());
        for m in &self.manifests {
            a.path("--manifests", m);
        }
        a.opt_path("--variants", self.variants.as_ref());
        a.value("--generated", self.generated);
        a.value("--seed", self.seed);
        a.path("--out", &self.out);
        a.opt("--patience", self.patience.map(seconds_arg));
        a
    }
}

/// `mirror-e2e parity-table`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ParityTableArgs {
    /// The runs' `parity.json` files, in the order of the table's columns.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Also write the table to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ParityTableArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        a.opt_path("--out", self.out.as_ref());
        a.paths(&self.results);
        a
    }
}

/// `mirror-e2e compare`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CompareArgs {
    /// The runs in walking order (each a run directory, or the directory holding one).
    #[arg(num_args = 2.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Also write the comparison to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The --out files are removed when the comparison passes (xtask removes a walk
    /// that passed, unless --keep): their path is printed only when it fails.
    #[arg(long, requires = "out")]
    pub transient: bool,
}

impl CompareArgs {
    fn argv(&self) -> Argv {
        let mut a = Argv::default();
        a.opt_path("--out", self.out.as_ref());
        a.flag("--transient", self.transient);
        a.paths(&self.runs);
        a
    }
}

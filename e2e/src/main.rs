//! `mirror-e2e`: the suite's command line. Users reach it through `cargo xtask`, which
//! provisions what it needs (Envoy, a cluster) and passes the paths in.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use e2e::cluster::node_agent::{NodeAgent, NodeOptions};
use e2e::cluster::{ClusterOptions, ClusterScoped, CreatedObjects, Proxies, installed_istio};
use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::exit::{EXIT_CODES, Exit};
use e2e::lint::{Severity, lint_with_expectations};
use e2e::local::LocalOptions;
use e2e::report::RunReport;
use e2e::report::live::LiveReport;
use e2e::run::{ClusterRun, RunOutcome, new_run_id, run_cluster, run_local};
use e2e::suite::{self, DEFAULT_CONCURRENCY, Spec, harness_arguments};
use e2e::version::{DEFAULT_ISTIO, IstioVersion};
use e2e::wait::{PATIENCE_ENV, parse_patience};

/// Proves Istio traffic mirroring works: offline analysis and the mirroring suite.
#[derive(Parser)]
#[command(name = "mirror-e2e", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze manifests offline; exit 1 when any error is found.
    Lint {
        /// Files or directories of YAML manifests.
        #[arg(default_value = "manifests")]
        paths: Vec<PathBuf>,
        /// How findings are printed: `text`, one per line, or `json`, an array of objects
        /// with file, line, severity, code and message (for `cargo xtask analyze`).
        #[arg(long, value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// The expectations file to check against the manifests (default: each directory's
        /// `expectations.yaml`).
        #[arg(long, value_name = "FILE")]
        expectations: Option<PathBuf>,
    },
    /// Run the suite on a real Envoy configured from the manifests (no Docker).
    #[command(after_help = EXIT_CODES)]
    Local(LocalArgs),
    /// Deploy the manifests to a cluster with Istio and run the suite there.
    #[command(after_help = EXIT_CODES)]
    Cluster(Box<ClusterArgs>),
    /// Wait until the cluster has nodes and every one is Ready (`kind create --wait` only
    /// warns when its wait runs out).
    NodesReady {
        /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context (default: the file's current context).
        #[arg(long)]
        context: Option<String>,
        /// Seconds to wait.
        #[arg(long, env = PATIENCE_ENV, default_value = "300", value_parser = parse_patience)]
        patience: Duration,
    },
    /// Server-side apply what a provisioned cluster needs before the suite (Istio's CRDs, a
    /// kwok node): CRDs first, each awaited until Established, then the rest.
    Install {
        /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context (default: the file's current context).
        #[arg(long)]
        context: Option<String>,
        /// Namespace for namespaced documents that name none.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Seconds to wait for CRDs to be served.
        #[arg(long, env = PATIENCE_ENV, default_value = "300", value_parser = parse_patience)]
        patience: Duration,
        /// Apply only documents of these kinds (comma-separated; default: every document).
        #[arg(long, value_delimiter = ',')]
        only_kinds: Vec<String>,
        /// YAML files or directories to apply.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compare istiod's routes with local mode's translation, variant by variant, on a
    /// cluster whose istiod answers at --istiod-xds (run by `cargo xtask parity`); exit 1
    /// when any variant differs.
    Parity(ParityArgs),
    /// Join the `parity.json` of several `mirror-e2e parity` runs (one Istio version each)
    /// into one table, a column per version; exit 1 when any variant differs.
    ParityTable {
        /// The runs' `parity.json` files, in the order of the table's columns.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Succeed only when the cluster runs no istiod: `--install-istio` asks this first, so it
    /// never installs over someone else's control plane.
    NoIstiod {
        /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context (default: the file's current context).
        #[arg(long)]
        context: Option<String>,
    },
    /// Play a kwok node's data plane (`--node`) until SIGTERM or Ctrl-C, apart from any run
    /// of the suite: an upgrade walk keeps the proxies while it replaces istiod. Exit 1 when
    /// a proxy rejected istiod's configuration.
    Node(Box<NodeCommandArgs>),
    /// Wait until every proxy a node's data plane runs (`<node-dir>/proxies`) is connected
    /// to istiod and has ACKed its configuration (istiod's `/debug/syncz`); exit 1 on a
    /// rejection or when the patience runs out.
    ProxiesSynced {
        /// istiod's HTTP debug address.
        #[arg(long, value_name = "ADDRESS")]
        istiod_debug: std::net::SocketAddr,
        /// istiod's plaintext xDS address (named in messages).
        #[arg(long, value_name = "ADDRESS")]
        istiod_xds: std::net::SocketAddr,
        /// The data plane's directory (`mirror-e2e node --dir`).
        #[arg(long, value_name = "DIR")]
        node_dir: PathBuf,
        /// Seconds to wait.
        #[arg(long, env = PATIENCE_ENV, default_value = "300", value_parser = parse_patience)]
        patience: Duration,
    },
    /// Compare the runs of an upgrade walk, each with the one before, check by check; exit 1
    /// on any change that is not a known, intended behaviour change.
    Compare {
        /// The runs in walking order (each a run directory, or the directory holding one).
        #[arg(num_args = 2.., required = true)]
        runs: Vec<PathBuf>,
        /// Also write the comparison to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The --out files are removed when the comparison passes (xtask removes a walk
        /// that passed, unless --keep): their path is printed only when it fails.
        #[arg(long, requires = "out")]
        transient: bool,
    },
}

/// A kwok node's data plane: for `cluster --node` and for `node`.
#[derive(Args)]
struct NodeArgs {
    /// Play the data plane of this kwok node: a process for each of its Running pods on the
    /// pod's address, and one Envoy for the proxies (its ingress listening where --ingress
    /// says), configured from the API. For a cluster whose nodes run no containers.
    #[arg(long, value_name = "NODE", requires = "envoy")]
    node: Option<String>,
    /// The Envoy binary of --node's data plane (unused without --node: ENVOY_BIN may be set
    /// for other reasons).
    #[arg(long, env = ENVOY_BIN_ENV)]
    envoy: Option<PathBuf>,
    /// Where --node keeps its pods' container logs (default: the run's artifacts); a
    /// reused cluster's pods keep theirs across runs.
    #[arg(long, value_name = "DIR", requires = "node")]
    node_logs: Option<PathBuf>,
    /// With --node: run COMMAND for each pod of the Deployment NAME in place of its built-in
    /// stand-in (repeatable). It must listen on `{address}:{port}` (POD_IP and PORT: the
    /// pod's own address and containerPort); HTTP_PROXY is its sidecar; its output is the
    /// pod's log.
    #[arg(long = "workload", value_name = "NAME=COMMAND", requires = "node")]
    workloads: Vec<e2e::workload::WorkloadCommand>,
    /// With --node: the node's proxies take their whole configuration over ADS from the
    /// real istiod at this plaintext xDS address (else the project's translation).
    #[arg(
        long,
        value_name = "ADDRESS",
        requires = "node",
        requires = "istiod_debug"
    )]
    istiod_xds: Option<std::net::SocketAddr>,
    /// istiod's HTTP debug address (`/debug/syncz`), with --istiod-xds.
    #[arg(long, value_name = "ADDRESS", requires = "istiod_xds")]
    istiod_debug: Option<std::net::SocketAddr>,
    /// Where `--workload` commands run (default: here).
    #[arg(long, default_value = ".")]
    workload_dir: PathBuf,
}

/// `mirror-e2e node`: a kwok node's data plane on its own.
#[derive(Args)]
struct NodeCommandArgs {
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the file's current context).
    #[arg(long)]
    context: Option<String>,
    /// The namespace whose pods and routing the data plane serves.
    #[arg(long, default_value = "test")]
    namespace: String,
    /// Base URL of the ingress gateway (the data plane listens there).
    #[arg(long, default_value = "http://127.0.0.1:30080")]
    ingress: String,
    /// The Istio version the proxies say they run (their istio-agent's, in a pod).
    #[arg(long, value_parser = parse_version, default_value = DEFAULT_ISTIO)]
    istio: IstioVersion,
    /// Where the data plane keeps its files: Envoy's configuration and logs, `proxies`,
    /// and `ready` once it has started.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Seconds Envoy and the pods' programs may take to start.
    #[arg(long, env = PATIENCE_ENV, default_value = "300", value_parser = parse_patience)]
    patience: Duration,
    #[command(flatten)]
    data_plane: NodeArgs,
}

#[derive(Args)]
struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, read only).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the file's current context, which is never changed).
    #[arg(long)]
    context: Option<String>,
    /// Namespace to deploy into.
    #[arg(long, default_value = "test")]
    namespace: String,
    /// Delete the namespace at the end (only for a namespace this run created): the run is on
    /// a cluster it does not own, so cluster-scoped documents are refused unless
    /// --allow-cluster-scoped.
    #[arg(long)]
    delete_namespace: bool,
    /// With --delete-namespace: apply cluster-scoped documents (a CustomResourceDefinition,
    /// a ClusterRole, ...) anyway, and delete at the end those the run created.
    #[arg(long, requires = "delete_namespace")]
    allow_cluster_scoped: bool,
    /// Base URL of the ingress gateway on this host.
    #[arg(long, default_value = "http://127.0.0.1:30080")]
    ingress: String,
    /// The node's data plane, when this run plays it (`--node`).
    #[command(flatten)]
    data_plane: NodeArgs,
    /// The proxies are a node's data plane that `mirror-e2e node` plays apart from this run
    /// (an upgrade walk keeps them across istiod replacements): as with --node, no sidecar
    /// is awaited, and none is started here.
    #[arg(long, conflicts_with = "node")]
    node_proxies: bool,
    /// What configured the mesh, for the report (default: what --node and --istiod-xds say).
    #[arg(long, value_name = "TEXT")]
    control_plane: Option<String>,
    /// The run's Istio as the report's headers and an upgrade walk's columns name it, when
    /// something other than the release played it (e.g. `1.27.9 played by istiod
    /// 1.30@9739e10 + 1.27 profile`; default: the version istiod reports).
    #[arg(long, value_name = "TEXT")]
    version_label: Option<String>,
    /// Registry path to move Bookinfo images to (from the version table, or a mirror).
    #[arg(long)]
    bookinfo_hub: Option<String>,
    /// Registry path to move the echo image to (`<hub>/http-https-echo:<tag>`), for a mirror.
    #[arg(long)]
    echo_hub: Option<String>,
    /// The Istio revision whose control plane injects the run's namespace (default: the
    /// default revision, or the only one installed).
    #[arg(long)]
    revision: Option<String>,
    /// Tag to give Bookinfo images (from the version table).
    #[arg(long)]
    bookinfo_tag: Option<String>,
    /// After deploying, restart every Deployment and verify each sidecar runs the Istio
    /// version expected (after a control-plane upgrade).
    #[arg(long, requires = "istio")]
    restart_workloads: bool,
    /// Istio version expected; the run fails if istiod reports another. Default: what istiod reports.
    #[arg(long, value_parser = parse_version)]
    istio: Option<IstioVersion>,
    /// Manifests directory.
    #[arg(long, default_value = "manifests")]
    manifests: PathBuf,
    /// The expectations file: what the mesh must do; the checks and their names derive from
    /// it (default: `expectations.yaml` in the manifests directory, else the tutorial's).
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Where runs keep their evidence; each run gets `<dir>/<run-id>/`.
    #[arg(long, env = "MIRROR_E2E_ARTIFACTS_ROOT", default_value = "target/e2e")]
    artifacts_root: PathBuf,
    /// Run id (xtask passes its own so both write to one directory).
    #[arg(long)]
    run_id: Option<String>,
    /// Keep the namespace and artifacts.
    #[arg(long)]
    keep: bool,
    /// A phase timed before this run, `NAME=SECONDS` (xtask passes cluster creation and
    /// Istio installation), shown first in the report.
    #[arg(long = "phase", value_parser = parse_phase)]
    phases: Vec<(String, Duration)>,
    /// Run even when the manifests under test have lint errors (a misspelled field, a
    /// subset that selects nothing): the rare case of testing what the linter flags.
    #[arg(long)]
    allow_lint_errors: bool,
    /// Requests of one batch in flight at once (the percentage check sends 300 a batch).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u64, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// Seconds every wait for the cluster may take; the checks retry for a tenth of it.
    #[arg(long, env = PATIENCE_ENV, default_value = "300", value_parser = parse_patience)]
    patience: Duration,
    /// Seconds the run had been going when this process started (xtask passes its clock's
    /// reading), so the progress lines go on from the run's start instead of restarting.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_elapsed)]
    elapsed: Duration,
    /// Arguments for the test harness (filters, --list, --exact, ...), after `--`.
    #[arg(last = true)]
    harness: Vec<String>,
}

#[derive(Args)]
struct LocalArgs {
    /// Manifests directory holding the routing under test.
    #[arg(long, default_value = "manifests")]
    manifests: PathBuf,
    /// The expectations file: what the mesh must do; the checks and their names derive from
    /// it (default: `expectations.yaml` in the manifests directory, else the tutorial's).
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Istio version whose sidecar behaviour to emulate.
    #[arg(long, default_value = DEFAULT_ISTIO, value_parser = parse_version)]
    istio: IstioVersion,
    /// Run COMMAND as the Deployment NAME in place of its built-in stand-in (repeatable):
    /// `{port}` (and PORT) is its port, HTTP_PROXY its sidecar, its output its log.
    #[arg(long = "workload", value_name = "NAME=COMMAND")]
    workloads: Vec<e2e::workload::WorkloadCommand>,
    /// Where `--workload` commands run (default: here).
    #[arg(long, default_value = ".")]
    workload_dir: PathBuf,
    /// Envoy binary.
    #[arg(long, env = ENVOY_BIN_ENV)]
    envoy: Option<PathBuf>,
    /// Where runs keep their evidence; each run gets `<dir>/<run-id>/`.
    #[arg(long, env = "MIRROR_E2E_ARTIFACTS_ROOT", default_value = "target/e2e")]
    artifacts_root: PathBuf,
    /// Keep the run's artifacts even when every check passes.
    #[arg(long)]
    keep: bool,
    /// Run even when the manifests under test have lint errors (a misspelled field, a
    /// subset that selects nothing): the rare case of testing what the linter flags.
    #[arg(long)]
    allow_lint_errors: bool,
    /// Requests of one batch in flight at once (the percentage check sends 300 a batch).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u64, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// Seconds every wait and retry may take. Locally, routes reach Envoy in milliseconds
    /// and Envoy starts in under 0.1 s, so 5 s is ample and a broken route fails fast.
    #[arg(long, env = PATIENCE_ENV, default_value = "5", value_parser = parse_patience)]
    patience: Duration,
    /// Seconds the run had been going when this process started (xtask passes its clock's
    /// reading), so the progress lines go on from the run's start instead of restarting.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_elapsed)]
    elapsed: Duration,
    /// Arguments for the test harness (filters, --list, --exact, ...), after `--`.
    #[arg(last = true)]
    harness: Vec<String>,
}

fn parse_phase(text: &str) -> Result<(String, Duration), String> {
    let (name, secs) = text.split_once('=').ok_or("expected NAME=SECONDS")?;
    Ok((name.to_owned(), parse_patience(secs)?))
}

fn parse_elapsed(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

fn parse_version(text: &str) -> Result<IstioVersion, String> {
    text.parse()
        .map_err(|e: e2e::version::VersionError| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(parent) = std::env::var(e2e::parent::PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        && let Err(e) = e2e::parent::end_with_parent(parent)
    {
        // As after Ctrl-C: whoever started the run is gone, so nothing of it is wanted.
        eprintln!("interrupted: {e}");
        return ExitCode::from(130);
    }
    match cli.command {
        Command::Lint {
            paths,
            format,
            expectations,
        } => lint(&paths, format, expectations.as_deref()),
        Command::Local(args) => local(args),
        Command::Cluster(args) => cluster(*args),
        Command::Compare {
            runs,
            out,
            transient,
        } => compare(&runs, out.as_deref(), transient),
        Command::NodesReady {
            kubeconfig,
            context,
            patience,
        } => nodes_ready(kubeconfig.as_deref(), context, patience),
        Command::Install {
            kubeconfig,
            context,
            namespace,
            patience,
            only_kinds,
            files,
        } => install(
            kubeconfig.as_deref(),
            context,
            &namespace,
            patience,
            &only_kinds,
            &files,
        ),
        Command::Parity(args) => parity(&args),
        Command::Node(args) => node(*args),
        Command::ProxiesSynced {
            istiod_debug,
            istiod_xds,
            node_dir,
            patience,
        } => proxies_synced(
            e2e::cluster::node_agent::ads::Istiod {
                xds: istiod_xds,
                debug: istiod_debug,
            },
            &node_dir,
            patience,
        ),
        Command::ParityTable { results, out } => parity_table(&results, out.as_deref()),
        Command::NoIstiod {
            kubeconfig,
            context,
        } => no_istiod(kubeconfig.as_deref(), context),
    }
}

#[derive(Args)]
struct ParityArgs {
    /// Kubeconfig file of the cluster istiod reads.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// istiod's plaintext xDS address.
    #[arg(long, value_name = "ADDRESS")]
    istiod_xds: std::net::SocketAddr,
    /// istiod's HTTP debug address (`/debug/configz`, `/debug/syncz`).
    #[arg(long, value_name = "ADDRESS")]
    istiod_debug: std::net::SocketAddr,
    /// The Envoy binary.
    #[arg(long, env = ENVOY_BIN_ENV)]
    envoy: PathBuf,
    /// The Istio version the translation emulates.
    #[arg(long, default_value = DEFAULT_ISTIO, value_parser = parse_version)]
    istio: IstioVersion,
    /// The version's column header, when something other than the release plays it on the
    /// cluster's side (e.g. `1.27.9 played by istiod 1.30@9739e10 + 1.27 profile`: a newer
    /// istiod with Istio's compatibility profile for that minor; default: --istio).
    #[arg(long, value_name = "TEXT")]
    version_label: Option<String>,
    /// Manifests compared as one variant each (a directory or a file; `${NS}` in them is
    /// the variant's namespace). The shipped `manifests` directory is the variant `shipped`,
    /// any other is named by its path.
    #[arg(long)]
    manifests: Vec<PathBuf>,
    /// The corpus: a directory of one variant per YAML file, each applied with its
    /// `base.yaml`.
    #[arg(long)]
    variants: Option<PathBuf>,
    /// Also run this many generated cases (`--seed` chooses them); a case that differs is
    /// shrunk and written to `<out>/cases/` as a file that reproduces it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    generated: usize,
    /// The seed of `--generated` (printed, so a run can be replayed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the proxies' files, the reduced routes and the table go.
    #[arg(long)]
    out: PathBuf,
    /// Seconds every wait may take.
    #[arg(long, env = PATIENCE_ENV, default_value = "60", value_parser = parse_patience)]
    patience: Duration,
}

fn parity(args: &ParityArgs) -> ExitCode {
    let mut variants = Vec::new();
    for path in &args.manifests {
        let name = if path.file_name().is_some_and(|n| n == "manifests") {
            "shipped".to_owned()
        } else {
            path.display().to_string()
        };
        match e2e::parity::Variant::load(&name, None, std::slice::from_ref(path)) {
            Ok(v) => variants.push(v),
            Err(e) => {
                eprintln!("error: --manifests {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if let Some(dir) = &args.variants {
        let base = dir.join("base.yaml");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml") && *p != base)
                .collect(),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        };
        files.sort();
        for file in files {
            let name = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            match e2e::parity::Variant::load(&name, Some(&base), &[file]) {
                Ok(v) => variants.push(v),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    if variants.is_empty() && args.generated == 0 {
        eprintln!("error: nothing to compare: give --manifests, --variants or --generated");
        return ExitCode::from(2);
    }
    if args.generated > 0 {
        eprintln!(
            "parity: {} generated cases of seed {} (replay one: cargo xtask parity --istio {} --generated N --seed {})",
            args.generated, args.seed, args.istio, args.seed
        );
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let opts = e2e::parity::ParityOptions {
        envoy: args.envoy.clone(),
        istiod: e2e::cluster::node_agent::ads::Istiod {
            xds: args.istiod_xds,
            debug: args.istiod_debug,
        },
        istio: args.istio,
        dir: args.out.clone(),
        patience: args.patience,
    };
    let started = std::time::Instant::now();
    let rows = runtime.block_on(async {
        let client = client(Some(&args.kubeconfig), None).await?;
        let generated = e2e::parity::Generated {
            count: args.generated,
            seed: args.seed,
        };
        e2e::parity::run(&client, &variants, generated, &opts)
            .await
            .map_err(|e| e.to_string())
    });
    match rows {
        Ok(rows) => {
            let result = e2e::parity::VersionResult::new(
                &args.istio,
                args.version_label.clone(),
                rows,
                started.elapsed().as_secs_f64(),
            );
            // The counts and what is not the same; the table goes to parity.md only, so
            // `cargo xtask parity`, which prints the table of every version, prints it once.
            print!("{}", e2e::parity::run_summary(&result));
            let table = e2e::parity::merged_table(std::slice::from_ref(&result));
            let _ = std::fs::write(args.out.join("parity.md"), &table);
            // The machine-readable form, for `mirror-e2e parity-table` to merge versions.
            let json = args.out.join("parity.json");
            let written = serde_json::to_string_pretty(&result)
                .map_err(|e| e.to_string())
                .and_then(|text| std::fs::write(&json, text).map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("error: write {}: {e}", json.display());
                return Exit::Environment.into();
            }
            // A difference is a finding, to fix in the translation or to list in docs/parity.md
            // as known with its reason: either way a run that finds one fails.
            if result.differs() {
                eprintln!("error: istiod and the translation differ (see the table)");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

fn parity_table(files: &[PathBuf], out: Option<&std::path::Path>) -> ExitCode {
    let mut results = Vec::new();
    for file in files {
        let read = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<e2e::parity::VersionResult>(&text).map_err(|e| e.to_string())
            });
        match read {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    let table = e2e::parity::merged_table(&results);
    println!("{table}");
    if let Some(out) = out
        && let Err(e) = std::fs::write(out, &table)
    {
        eprintln!("error: write {}: {e}", out.display());
        return Exit::Environment.into();
    }
    let differing: Vec<String> = results
        .iter()
        .filter(|r| r.differs())
        .map(|r| r.column())
        .collect();
    if !differing.is_empty() {
        eprintln!(
            "error: istiod and the translation differ for {} (see the table)",
            differing.join(", ")
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn install(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
    namespace: &str,
    patience: Duration,
    only_kinds: &[String],
    files: &[PathBuf],
) -> ExitCode {
    let mut set = match e2e::manifest::ManifestSet::load(files) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !only_kinds.is_empty() {
        set.documents
            .retain(|d| only_kinds.iter().any(|k| k.as_str() == d.kind()));
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let started = std::time::Instant::now();
    let installed = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::install::install(&client, &set, namespace, patience)
            .await
            .map_err(|e| e.to_string())
    });
    match installed {
        Ok(done) => {
            eprintln!(
                "installed {} ({} established) in {:.1?}",
                e2e::report::plural(done.objects, "object", "objects"),
                e2e::report::plural(done.crds, "CRD", "CRDs"),
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

fn no_istiod(kubeconfig: Option<&std::path::Path>, context: Option<String>) -> ExitCode {
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let checked = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::refuse_install_over_istio(&client)
            .await
            .map_err(|e| e.to_string())
    });
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

fn compare(runs: &[PathBuf], out: Option<&std::path::Path>, transient: bool) -> ExitCode {
    let reports: Result<Vec<RunReport>, _> = runs.iter().map(|r| RunReport::read(r)).collect();
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let walk = e2e::compare::walk(reports);
    let text = walk.render();
    // The terminal gets the table; the file has each hop's check-by-check detail too, and
    // is named only when it stays.
    match out {
        Some(out) if !transient || walk.failed() => println!(
            "{}(each hop, check by check: {})",
            walk.summary(),
            out.display()
        ),
        Some(_) => print!("{}", walk.summary()),
        None => print!("{text}"),
    }
    if let Some(out) = out {
        let written = std::fs::write(out, &text)
            .and_then(|()| std::fs::write(out.with_extension("md"), walk.markdown()));
        if let Err(e) = written {
            eprintln!("error: write {}: {e}", out.display());
            return ExitCode::from(2);
        }
        e2e::report::append_step_summary(&format!("## Istio upgrade walk\n\n{}", walk.markdown()));
    }
    if walk.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn nodes_ready(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
    patience: Duration,
) -> ExitCode {
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let waited = runtime.block_on(async {
        let client = client(kubeconfig, context).await?;
        e2e::cluster::ready::nodes_ready(&client, patience)
            .await
            .map_err(|e| e.to_string())
    });
    match waited {
        Ok(took) => {
            eprintln!("every node is Ready (waited {took:.1?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

/// How `mirror-e2e lint` prints its findings.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LintFormat {
    /// One `file:line: severity[code]: message` line each.
    Text,
    /// One JSON array of the findings.
    Json,
}

fn lint(paths: &[PathBuf], format: LintFormat, expectations: Option<&std::path::Path>) -> ExitCode {
    match lint_with_expectations(paths, expectations) {
        Ok(findings) => {
            match format {
                LintFormat::Text => {
                    for f in &findings {
                        println!("{f}");
                    }
                }
                LintFormat::Json => match serde_json::to_string_pretty(&findings) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: findings as JSON: {e}");
                        return ExitCode::from(2);
                    }
                },
            }
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = findings.len() - errors;
            eprintln!(
                "lint: {}, {}",
                e2e::report::plural(errors, "error", "errors"),
                e2e::report::plural(warnings, "warning", "warnings")
            );
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The behaviour under test (`Spec::for_manifests`), or the error that says why not.
fn load_spec(
    manifests: &std::path::Path,
    expectations: Option<&std::path::Path>,
) -> Result<Spec, String> {
    Spec::for_manifests(manifests, expectations).map_err(|e| e.to_string())
}

/// Fails, before anything starts, when the harness arguments select no check.
fn selects_nothing(harness: &libtest_mimic::Arguments, spec: &Spec) -> Option<ExitCode> {
    if !suite::selected(harness, spec).is_empty() {
        return None;
    }
    let filter = harness
        .filter
        .as_deref()
        .map_or_else(|| "given".to_owned(), |f| format!("`{f}`"));
    eprintln!(
        "error: the filter {filter}{} matches no check; the checks are:\n  {}",
        if harness.exact { " (--exact)" } else { "" },
        spec.check_names().join("\n  ")
    );
    Some(Exit::Usage.into())
}

fn local(args: LocalArgs) -> ExitCode {
    let run_started = e2e::progress::run_started(args.elapsed);
    let harness = harness_arguments(&args.harness);
    let spec = match load_spec(&args.manifests, args.expectations.as_deref()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    if harness.list {
        return libtest_mimic::run(&harness, suite::listing(&spec)).exit_code();
    }
    if let Some(code) = selects_nothing(&harness, &spec) {
        return code;
    }
    let Some(envoy) = args.envoy else {
        eprintln!("error: --envoy: no Envoy binary given: {HOW_TO_GET_ENVOY}");
        return Exit::Environment.into();
    };
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let run_id = new_run_id();
    let artifacts = args.artifacts_root.join(&run_id);
    let live = LiveReport::default();
    let opts = LocalOptions {
        manifests: args.manifests,
        istio: args.istio,
        envoy,
        artifacts: artifacts.clone(),
        patience: args.patience,
        mirror_host: spec.mirror.clone(),
        host: spec.host.clone(),
        run_id: run_id.clone(),
        concurrency: usize::try_from(args.concurrency).unwrap_or(DEFAULT_CONCURRENCY),
        allow_lint_errors: args.allow_lint_errors,
        run_started,
        workloads: args
            .workloads
            .into_iter()
            .map(|mut w| {
                w.dir = Some(args.workload_dir.clone());
                w
            })
            .collect(),
    };
    // Ctrl-C: Envoy dies with us (PR_SET_PDEATHSIG) and the workloads live in this process;
    // what is left is to say where the evidence is and exit non-zero.
    exit_on_ctrl_c(&runtime, artifacts.clone(), live.clone());
    finish(
        run_local(&runtime, &opts, spec, &harness, &live),
        &artifacts,
        args.keep,
    )
}

fn cluster(args: ClusterArgs) -> ExitCode {
    let run_started = e2e::progress::run_started(args.elapsed);
    let harness = harness_arguments(&args.harness);
    let spec = match load_spec(&args.manifests, args.expectations.as_deref()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    if harness.list {
        return libtest_mimic::run(&harness, suite::listing(&spec)).exit_code();
    }
    if let Some(code) = selects_nothing(&harness, &spec) {
        return code;
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    let artifacts = args.artifacts_root.join(&run_id);
    let context = format!(
        "kubeconfig {}, context {}",
        args.kubeconfig
            .as_ref()
            .map_or("(default)".to_owned(), |p| p.display().to_string()),
        args.context.as_deref().unwrap_or("(current)")
    );
    let client = match runtime.block_on(client(args.kubeconfig.as_deref(), args.context.clone())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: connect to the cluster ({context}): {e}");
            return Exit::Environment.into();
        }
    };
    let istiod = match runtime.block_on(installed_istio(&client, args.revision.as_deref())) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment.into();
        }
    };
    let host = format!("{run_id}.mirror-e2e.test");
    eprintln!(
        "cluster: {context}; Istio {} (from its {}; {}/{}, revision {}); namespace {}; ingress host {host}",
        istiod.version,
        istiod.version_from,
        istiod.namespace,
        istiod.name,
        istiod.revision,
        args.namespace
    );
    if let Some(expected) = args.istio
        && expected != istiod.version
    {
        eprintln!(
            "error: --istio {expected}: the cluster runs Istio {}",
            istiod.version
        );
        return Exit::Environment.into();
    }
    let node_agent = match start_node_agent(
        &runtime,
        &client,
        &NodeSite {
            namespace: &args.namespace,
            ingress: &args.ingress,
            patience: args.patience,
        },
        &args.data_plane,
        istiod.version,
        &artifacts.join("node"),
    ) {
        Ok(agent) => agent,
        Err(e) => {
            // The run stops before its checks: its report says why, as every run's does.
            let report = RunReport {
                run_id: run_id.clone(),
                mode: "cluster".into(),
                istio: istiod.version.to_string(),
                phases: args.phases.clone(),
                notes: control_plane_note(&args),
                error: Some(format!("the node's data plane did not start: {e}")),
                stopped_as: Some(Exit::Environment),
                ..RunReport::default()
            };
            return finish_stopped_early(&report, &artifacts);
        }
    };
    let notes = control_plane_note(&args);
    let run = ClusterRun {
        cluster: ClusterOptions {
            namespace: args.namespace,
            ingress: args.ingress,
            host,
            istiod,
            bookinfo_hub: args.bookinfo_hub,
            echo_hub: args.echo_hub,
            bookinfo_tag: args.bookinfo_tag,
            restart_workloads: args.restart_workloads,
            patience: args.patience,
            mirror: spec.mirror.clone(),
            run_id: run_id.clone(),
            // A namespace of the run's own means a cluster the run does not own.
            cluster_scoped: match (args.delete_namespace, args.allow_cluster_scoped) {
                (false, _) => ClusterScoped::Apply,
                (true, false) => ClusterScoped::Refuse,
                (true, true) => ClusterScoped::ApplyAndDelete,
            },
            created: CreatedObjects::default(),
            proxies: if args.data_plane.node.is_some() || args.node_proxies {
                Proxies::Node
            } else {
                Proxies::Injected
            },
        },
        manifests: args.manifests,
        artifacts: artifacts.clone(),
        notes,
        version_label: args.version_label,
        delete_namespace: args.delete_namespace,
        keep: args.keep,
        earlier_phases: args.phases,
        concurrency: usize::try_from(args.concurrency).unwrap_or(DEFAULT_CONCURRENCY),
        allow_lint_errors: args.allow_lint_errors,
        run_started,
    };
    let live = LiveReport::default();
    // Ctrl-C: a namespace this run created goes too (unless kept), and what it created
    // cluster-wide, then exit non-zero at once: the deletion is asked for, not waited for
    // (Kubernetes finishes it).
    if run.delete_namespace && !run.keep {
        let client = client.clone();
        let namespace = run.cluster.namespace.clone();
        let created = run.cluster.created.clone();
        let artifacts = artifacts.clone();
        let live = live.clone();
        runtime.spawn(async move {
            if stop_requested().await {
                eprintln!("\ninterrupted: deleting namespace {namespace}");
                if let Err(e) = e2e::cluster::delete_created(&client, &created).await {
                    eprintln!("error: {e}");
                }
                match e2e::cluster::request_namespace_deletion(&client, &namespace).await {
                    Ok(()) => eprintln!(
                        "namespace {namespace} is being deleted (`kubectl get namespace {namespace}` shows when it is gone)"
                    ),
                    Err(e) => eprintln!("error: {e}"),
                }
                e2e::workload::process_groups::kill_all();
                live.write_stopped("interrupted (Ctrl-C)");
                eprintln!("partial evidence kept in {}", absolute(&artifacts).display());
                std::process::exit(130);
            }
        });
    } else {
        exit_on_ctrl_c(&runtime, artifacts.clone(), live.clone());
    }
    let keep = args.keep;
    let outcome = run_cluster(&runtime, client, &run, spec, &run_id, &harness, &live);
    if let Some(agent) = node_agent
        && let Err(e) = runtime.block_on(agent.shutdown())
    {
        eprintln!("error: {e}");
        let _ = finish(outcome, &artifacts, keep);
        return Exit::Environment.into();
    }
    finish(outcome, &artifacts, keep)
}

/// What configured the mesh's proxies, for the report.
fn control_plane_note(args: &ClusterArgs) -> Vec<String> {
    if let Some(text) = &args.control_plane {
        return vec![format!("control plane: {text}")];
    }
    match (&args.data_plane.node, args.data_plane.istiod_xds) {
        (Some(node), Some(xds)) => vec![format!(
            "control plane: the real istiod (xDS {xds}) configured node {node}'s proxies over ADS"
        )],
        (Some(node), None) => vec![format!(
            "control plane: this project's translation (e2e/src/envoy/config.rs) configured node {node}'s proxies; istiod does not run"
        )],
        (None, _) => Vec::new(),
    }
}

/// Where a node's data plane serves: the run's namespace, its ingress, its patience.
struct NodeSite<'a> {
    namespace: &'a str,
    ingress: &'a str,
    patience: Duration,
}

/// `--node`: the node's data plane, for the site's namespace, its ingress where the site
/// says, its files in `dir`; `None` without `--node`.
fn start_node_agent(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    site: &NodeSite<'_>,
    args: &NodeArgs,
    istio: IstioVersion,
    dir: &std::path::Path,
) -> Result<Option<NodeAgent>, String> {
    let (Some(node), Some(envoy)) = (&args.node, &args.envoy) else {
        return Ok(None);
    };
    let ingress = site.ingress;
    let addr: std::net::SocketAddr = ingress
        .strip_prefix("http://")
        .unwrap_or(ingress)
        .trim_end_matches('/')
        .parse()
        .map_err(|e| {
            format!(
                "--ingress {ingress}: --node listens there, so it must be http://ADDRESS:PORT ({e})"
            )
        })?;
    runtime
        .block_on(NodeAgent::start(
            client.clone(),
            NodeOptions {
                node: node.clone(),
                namespace: site.namespace.to_owned(),
                envoy: envoy.clone(),
                dir: dir.to_owned(),
                pod_logs: args
                    .node_logs
                    .clone()
                    .unwrap_or_else(|| dir.join("containers")),
                ingress: addr,
                istio,
                patience: site.patience,
                istiod: args
                    .istiod_xds
                    .zip(args.istiod_debug)
                    .map(|(xds, debug)| e2e::cluster::node_agent::ads::Istiod { xds, debug }),
                workloads: args
                    .workloads
                    .iter()
                    .map(|w| e2e::workload::WorkloadCommand {
                        dir: Some(args.workload_dir.clone()),
                        ..w.clone()
                    })
                    .collect(),
            },
        ))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `mirror-e2e node`: starts the data plane, says so in `<dir>/ready`, and keeps it until
/// SIGTERM or Ctrl-C; then stops it (saving each proxy's configuration dump).
fn node(args: NodeCommandArgs) -> ExitCode {
    // Before connecting: a usage error needs no cluster.
    if args.data_plane.node.is_none() || args.data_plane.envoy.is_none() {
        eprintln!("error: mirror-e2e node needs --node NODE and --envoy (or ENVOY_BIN)");
        return Exit::Usage.into();
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let client = match runtime.block_on(client(args.kubeconfig.as_deref(), args.context.clone())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: connect to the cluster: {e}");
            return Exit::Environment.into();
        }
    };
    let site = NodeSite {
        namespace: &args.namespace,
        ingress: &args.ingress,
        patience: args.patience,
    };
    let agent = match start_node_agent(
        &runtime,
        &client,
        &site,
        &args.data_plane,
        args.istio,
        &args.dir,
    ) {
        Ok(Some(agent)) => agent,
        // Checked above.
        Ok(None) => return Exit::Usage.into(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = args.dir.join("ready");
    if let Err(e) = std::fs::write(&ready, format!("{}\n", std::process::id())) {
        eprintln!("error: write {}: {e}", ready.display());
        let _ = runtime.block_on(agent.shutdown());
        return Exit::Environment.into();
    }
    eprintln!("node data plane started; SIGTERM or Ctrl-C stops it");
    runtime.block_on(stop_requested());
    eprintln!("stopping the node's data plane");
    match runtime.block_on(agent.shutdown()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mirror-e2e proxies-synced`: the wait after istiod is replaced.
fn proxies_synced(
    istiod: e2e::cluster::node_agent::ads::Istiod,
    node_dir: &std::path::Path,
    patience: Duration,
) -> ExitCode {
    let list = node_dir.join(e2e::cluster::node_agent::PROXY_LIST);
    let proxies: Vec<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(e) => {
            eprintln!(
                "error: read {}: {e} (is `mirror-e2e node --dir {}` running?)",
                list.display(),
                node_dir.display()
            );
            return Exit::Environment.into();
        }
    };
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let started = std::time::Instant::now();
    match runtime.block_on(e2e::cluster::node_agent::ads::await_synced(
        &istiod, &proxies, patience,
    )) {
        Ok(()) => {
            eprintln!(
                "{} {} connected to istiod ({}) and ACKed its configuration in {:.1?}",
                proxies.len(),
                if proxies.len() == 1 {
                    "proxy"
                } else {
                    "proxies"
                },
                istiod.xds,
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A client for the kubeconfig and context given, or the defaults; nothing is written to
/// any kubeconfig.
async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            // kube's own message quotes the path twice ('"/x"'); say it once.
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                let why = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), ToString::to_string);
                format!("cannot read kubeconfig {}: {why}", path.display())
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            None
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which is how xtask ends its child when Ctrl-C
/// reaches xtask alone.
async fn stop_requested() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            int = tokio::signal::ctrl_c() => int.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// On Ctrl-C: say where the evidence is and exit non-zero. Child processes die with us;
/// what a cluster run created is cleaned up by xtask, which outlives this process.
fn exit_on_ctrl_c(runtime: &tokio::runtime::Runtime, artifacts: PathBuf, live: LiveReport) {
    runtime.spawn(async move {
        if stop_requested().await {
            e2e::workload::process_groups::kill_all();
            live.write_stopped("interrupted (Ctrl-C)");
            eprintln!(
                "\ninterrupted: partial evidence kept in {}",
                absolute(&artifacts).display()
            );
            std::process::exit(130);
        }
    });
}

/// A path as the user can open it from wherever they stand.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Writes the report of a run that stopped before its checks, says why and where it is,
/// and exits in the report's class.
fn finish_stopped_early(report: &RunReport, artifacts: &std::path::Path) -> ExitCode {
    let written = std::fs::create_dir_all(artifacts)
        .map_err(|e| format!("create {}: {e}", artifacts.display()))
        .and_then(|()| report.write(artifacts).map_err(|e| e.to_string()));
    eprintln!(
        "error: {}",
        report.error.as_deref().unwrap_or("stopped early")
    );
    match written {
        Ok(()) => {
            e2e::report::append_step_summary(&report.summary_md());
            eprintln!("artifacts: {}", absolute(artifacts).display());
        }
        Err(e) => eprintln!("error: {e}"),
    }
    report.exit().into()
}

fn finish(
    outcome: Result<RunOutcome, e2e::run::RunError>,
    artifacts: &std::path::Path,
    keep: bool,
) -> ExitCode {
    // The job page of a CI run shows each run's summary (GITHUB_STEP_SUMMARY), passing,
    // failing or stopped early alike.
    let summary_md = match &outcome {
        Ok(o) => Some(o.report.summary_md()),
        Err(_) => std::fs::read_to_string(artifacts.join("summary.md")).ok(),
    };
    if let Some(md) = summary_md {
        e2e::report::append_step_summary(&md);
    }
    match outcome {
        Ok(outcome) => {
            if outcome.report.passed() && !keep {
                let _ = std::fs::remove_dir_all(&outcome.artifacts);
                println!("\nartifacts: removed (all checks passed; --keep keeps them)");
            } else {
                println!("\nartifacts: {}", absolute(&outcome.artifacts).display());
            }
            print!("\n{}", outcome.report.summary());
            outcome.report.exit().into()
        }
        Err(e) => {
            eprintln!("error: {e}");
            if artifacts.exists() {
                eprintln!("artifacts: {}", absolute(artifacts).display());
            }
            e.exit().into()
        }
    }
}

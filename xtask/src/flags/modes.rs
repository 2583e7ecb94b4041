//! Where each of `e2e`'s flags applies: the one table (`MODE_FLAGS`) behind `--help`'s flag
//! groups (`command`) and `E2e::validate`'s refusal of a flag its mode would ignore.

use clap::CommandFactory;

use super::{ClusterKind, E2e, Xtask};

/// Where `e2e` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Local,
    Kind,
    Kwok,
    Existing,
}

impl Mode {
    /// How the command line chooses it.
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Local => "--local",
            Mode::Kind => "--cluster kind",
            Mode::Kwok => "--cluster kwok",
            Mode::Existing => "--cluster existing",
        }
    }
}

/// A group of flags in `e2e --help`: the modes that honour them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Every mode but someone else's cluster.
    Walks,
    /// A cluster of the run's own.
    OwnCluster,
    /// Where the pods run programs, not images.
    Programs,
    Kwok,
    /// Where the pods run images.
    Images,
    Existing,
}

impl Group {
    pub fn modes(self) -> &'static [Mode] {
        match self {
            Group::Walks => &[Mode::Local, Mode::Kind, Mode::Kwok],
            Group::OwnCluster => &[Mode::Kind, Mode::Kwok],
            Group::Programs => &[Mode::Local, Mode::Kwok],
            Group::Kwok => &[Mode::Kwok],
            Group::Images => &[Mode::Kind, Mode::Existing],
            Group::Existing => &[Mode::Existing],
        }
    }

    /// Its heading in `--help`, naming exactly its modes (a test holds it to `modes`).
    pub fn heading(self) -> &'static str {
        match self {
            Group::Walks => "Only with --local, --cluster kind or --cluster kwok",
            Group::OwnCluster => "Only with --cluster kind or --cluster kwok",
            Group::Programs => "Only with --local or --cluster kwok",
            Group::Kwok => "Only with --cluster kwok",
            Group::Images => "Only with --cluster kind or --cluster existing",
            Group::Existing => "Only with --cluster existing",
        }
    }
}

/// Every `e2e` flag that applies in some modes only, with its group; a flag not listed
/// applies in every mode.
pub const MODE_FLAGS: &[(&str, Group)] = &[
    ("--istio-upgrade", Group::Walks),
    ("--reuse", Group::OwnCluster),
    ("--cluster-name", Group::OwnCluster),
    ("--on-failure", Group::OwnCluster),
    ("--workload", Group::Programs),
    ("--istiod", Group::Kwok),
    ("--istio-hub", Group::Images),
    ("--bookinfo-hub", Group::Images),
    ("--echo-hub", Group::Images),
    ("--kubeconfig", Group::Existing),
    ("--context", Group::Existing),
    ("--ingress", Group::Existing),
    ("--install-istio", Group::Existing),
    ("--allow-cluster-scoped", Group::Existing),
    ("--revision", Group::Existing),
];

/// xtask's command line, `e2e`'s mode-bound flags under their groups' headings.
pub fn command() -> clap::Command {
    Xtask::command().mut_subcommand("e2e", |mut e2e| {
        for (flag, group) in MODE_FLAGS {
            let id = e2e
                .get_arguments()
                .find(|a| a.get_long() == flag.strip_prefix("--"))
                .map(|a| a.get_id().clone());
            if let Some(id) = id {
                e2e = e2e.mut_arg(id, |a| a.help_heading(group.heading()));
            }
        }
        e2e
    })
}

impl E2e {
    /// The mode this command line runs in.
    pub fn mode(&self) -> Mode {
        match (self.local, self.cluster) {
            (true, _) => Mode::Local,
            (false, ClusterKind::Kind) => Mode::Kind,
            (false, ClusterKind::Kwok) => Mode::Kwok,
            (false, ClusterKind::Existing) => Mode::Existing,
        }
    }

    /// Whether `flag` (one of [`MODE_FLAGS`]) was given.
    fn given(&self, flag: &str) -> bool {
        match flag {
            "--istio-upgrade" => self.istio_upgrade.is_some(),
            "--reuse" => self.reuse.is_some(),
            "--cluster-name" => self.cluster_name.is_some(),
            "--on-failure" => self.on_failure.is_some(),
            "--workload" => !self.workloads.is_empty(),
            "--istiod" => self.istiod.is_some(),
            "--istio-hub" => self.istio_hub.is_some(),
            "--bookinfo-hub" => self.bookinfo_hub.is_some(),
            "--echo-hub" => self.echo_hub.is_some(),
            "--kubeconfig" => self.kubeconfig.is_some(),
            "--context" => self.context.is_some(),
            "--ingress" => self.ingress.is_some(),
            "--install-istio" => self.install_istio,
            "--allow-cluster-scoped" => self.allow_cluster_scoped,
            "--revision" => self.revision.is_some(),
            _ => false,
        }
    }

    /// The flags given that this run's mode would ignore, as one usage error (after the
    /// specific refusals of `validate`, which say more).
    pub(super) fn refuse_other_modes_flags(&self) -> Result<(), super::Usage> {
        let mode = self.mode();
        let ignored: Vec<String> = MODE_FLAGS
            .iter()
            .filter(|(flag, group)| self.given(flag) && !group.modes().contains(&mode))
            .map(|(flag, group)| format!("{flag} ({})", group.heading().to_lowercase()))
            .collect();
        if ignored.is_empty() {
            return Ok(());
        }
        Err(super::Usage(format!(
            "{} would be ignored by this run ({}): drop {}",
            ignored.join(", "),
            mode.flag(),
            if ignored.len() == 1 { "it" } else { "them" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `e2e`'s `--help`, section by section: (heading, the long flags under it).
    fn help_sections() -> Vec<(String, Vec<String>)> {
        let mut cmd = command();
        let e2e = cmd
            .find_subcommand_mut("e2e")
            .expect("the e2e command")
            .clone();
        let help = e2e.term_width(0).render_help().to_string();
        let mut sections: Vec<(String, Vec<String>)> = Vec::new();
        for line in help.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                sections.push((line.trim_end_matches(':').to_owned(), Vec::new()));
            } else if let Some((_, flags)) = sections.last_mut()
                && let Some(long) = line
                    .split_whitespace()
                    .find(|w| w.starts_with("--"))
                    .filter(|_| line.trim_start().starts_with('-'))
            {
                flags.push(long.trim_end_matches(',').to_owned());
            }
        }
        sections
    }

    /// Each group's heading names exactly its modes, in order.
    #[test]
    fn a_heading_names_exactly_the_modes_of_its_group() {
        for (_, group) in MODE_FLAGS {
            let names: Vec<&str> = group.modes().iter().map(|m| m.flag()).collect();
            let listed = match names.as_slice() {
                [one] => (*one).to_owned(),
                [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
                [] => unreachable!("a group has modes"),
            };
            assert_eq!(group.heading(), format!("Only with {listed}"), "{group:?}");
        }
    }

    #[test]
    fn help_shows_every_mode_bound_flag_under_the_heading_of_the_modes_that_honour_it() {
        let sections = help_sections();
        let heading_of = |flag: &str| {
            sections
                .iter()
                .find(|(_, flags)| flags.iter().any(|f| f == flag))
                .map(|(h, _)| h.clone())
        };
        for (flag, group) in MODE_FLAGS {
            assert_eq!(
                heading_of(flag).as_deref(),
                Some(group.heading()),
                "{flag}: {sections:?}"
            );
        }
        // The old labels in the help text itself ("kind: ...") are gone: the groups say it.
        let mut cmd = command();
        let help = cmd
            .find_subcommand_mut("e2e")
            .expect("e2e")
            .render_help()
            .to_string();
        for label in ["kind:", "kwok:", "local:", "existing:"] {
            assert!(
                !help.lines().any(|l| l.trim_start().starts_with(label)),
                "a flag's help still starts with {label}\n{help}"
            );
        }
    }

    /// The arguments that give `flag` (for `mode`: `--istio-hub` on an existing cluster is
    /// the registry of `--install-istio`).
    fn sample(flag: &str, mode: Mode) -> Vec<&str> {
        let value = match flag {
            "--istio-upgrade" => Some("1.30.5..1.31.1"),
            "--on-failure" => Some("keep"),
            "--workload" => Some("details-v1=true"),
            "--istiod" => Some("real"),
            "--ingress" => Some("http://127.0.0.1:1"),
            "--install-istio" | "--allow-cluster-scoped" => None,
            _ => Some("x"),
        };
        let mut args = vec![flag];
        args.extend(value);
        if flag == "--istio-hub" && mode == Mode::Existing {
            args.push("--install-istio");
        }
        args
    }

    #[test]
    fn every_mode_bound_flag_is_taken_exactly_by_the_modes_its_heading_names() {
        for (flag, group) in MODE_FLAGS {
            for mode in [Mode::Local, Mode::Kind, Mode::Kwok, Mode::Existing] {
                let mut args: Vec<&str> = match mode {
                    Mode::Local => vec!["--local"],
                    Mode::Kind => vec![],
                    Mode::Kwok => vec!["--cluster", "kwok"],
                    Mode::Existing => vec!["--cluster", "existing"],
                };
                args.extend(sample(flag, mode));
                let e2e = E2e::parse(&args);
                assert!(e2e.given(flag), "{flag}: not seen as given");
                let taken = e2e.validate();
                let honoured = group.modes().contains(&mode);
                assert_eq!(
                    taken.is_ok(),
                    honoured,
                    "{flag} with {}: {:?}",
                    mode.flag(),
                    taken.err().map(|e| e.to_string())
                );
                if let Err(e) = taken {
                    assert!(e.to_string().contains(flag), "{flag}: {e}");
                }
            }
        }
    }
}

//! A kwok cluster in the one lifetime (`KwokProvider`): brought up by creating it or taking
//! the reused one, and left as the run ends. One it created is kept or deleted as
//! `keep::fate` says, and a kept one is described by commands that work as printed (pasted
//! into a shell, each runs: nothing elided). In one it reused, every process the run
//! started there (istiod) ends with the run, however the run ended; the cluster's own stay.

use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::Shell;

use super::prepared::{self, Prepared};
use super::{Binaries, KwokCluster};
use crate::cluster::lifetime::Provider;
use crate::interrupt::Interrupt;

/// How long a component the run started in a reused cluster has to end after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// How the run gets its kwok cluster.
pub enum KwokUp<'a> {
    /// `KwokCluster::create`: on any failure or Ctrl-C it ends what it started.
    Create {
        name: String,
        bins: &'a Binaries,
        interrupt: &'a Interrupt,
        patience: Duration,
    },
    /// A running cluster, found (and checked) by `KwokCluster::reuse`: nothing is started.
    Reuse(KwokCluster),
}

/// A kwok cluster in the run's hands, for the one lifetime (`lifetime::with_cluster`).
pub struct KwokProvider<'a> {
    sh: &'a Shell,
    how: Option<KwokUp<'a>>,
    cluster: Option<KwokCluster>,
    /// How long `up` took to create the cluster (none when reused).
    pub created_in: Option<Duration>,
}

impl<'a> KwokUp<'a> {
    /// Create the cluster `name` (`KwokCluster::create`).
    pub fn create(
        name: String,
        bins: &'a Binaries,
        interrupt: &'a Interrupt,
        patience: Duration,
    ) -> KwokUp<'a> {
        KwokUp::Create {
            name,
            bins,
            interrupt,
            patience,
        }
    }
}

impl<'a> KwokProvider<'a> {
    /// The cluster `how` says, not up yet.
    pub fn new(sh: &'a Shell, how: KwokUp<'a>) -> KwokProvider<'a> {
        KwokProvider {
            sh,
            how: Some(how),
            cluster: None,
            created_in: None,
        }
    }

    /// The cluster, once up.
    pub fn cluster(&self) -> anyhow::Result<&KwokCluster> {
        self.cluster.as_ref().context("the kwok cluster is not up")
    }
}

impl Provider for KwokProvider<'_> {
    fn describe(&self) -> String {
        match (&self.cluster, &self.how) {
            (Some(c), _) | (None, Some(KwokUp::Reuse(c))) => format!("kwok cluster {}", c.name),
            (None, Some(KwokUp::Create { name, .. })) => format!("kwok cluster {name}"),
            (None, None) => "the kwok cluster".into(),
        }
    }

    fn up(&mut self) -> anyhow::Result<()> {
        let cluster = match self.how.take() {
            Some(KwokUp::Reuse(cluster)) => cluster,
            Some(KwokUp::Create {
                name,
                bins,
                interrupt,
                patience,
            }) => {
                let started = Instant::now();
                let cluster = KwokCluster::create(self.sh, &name, bins, interrupt, patience)?;
                self.created_in = Some(started.elapsed());
                cluster
            }
            None => anyhow::bail!("the kwok cluster was brought up already"),
        };
        self.cluster = Some(cluster);
        Ok(())
    }

    fn created_by_this_run(&self) -> bool {
        // A create that failed ended what it started itself: nothing is left to delete.
        self.cluster.as_ref().is_some_and(|c| c.created_by_this_run)
    }

    fn delete(&self) -> anyhow::Result<()> {
        self.cluster()?
            .delete(self.sh)
            .context("delete the kwok cluster")
    }

    fn end_reused(&self) -> anyhow::Result<()> {
        match &self.cluster {
            Some(cluster) => cluster
                .holder
                .stop_started(GRACE)
                .context("end what this run started in the reused cluster"),
            None => Ok(()),
        }
    }

    fn kept(&self) -> String {
        self.cluster
            .as_ref()
            .map(KwokCluster::kept_message)
            .unwrap_or_default()
    }
}

impl KwokCluster {
    /// What to do with a kept cluster, each a complete command.
    pub fn commands(&self) -> Vec<(&'static str, Vec<String>)> {
        let prepared = Prepared::read(&self.dir).ok().flatten();
        commands(
            &self.name,
            &self.holder.nsenter_args(),
            &self.kubeconfig().display().to_string(),
            prepared.as_ref(),
        )
    }

    fn kept_message(&self) -> String {
        let prepared = Prepared::read(&self.dir)
            .ok()
            .flatten()
            .map(|p| format!(", prepared for {}", p.describe()))
            .unwrap_or_default();
        let mut text = format!(
            "kept kwok cluster {} ({}){prepared}:",
            self.name,
            self.dir.display()
        );
        for (what, argv) in self.commands() {
            text.push_str(&format!("\n  {what:<18} {}", shell_line(&argv)));
        }
        text
    }
}

/// The commands for a kept cluster: `nsenter` (its arguments `nsenter`, ending in `--`)
/// into its namespaces, where its API server and pod addresses are, with kubectl and a
/// shell; the run that reuses it as prepared; its deletion.
fn commands(
    name: &str,
    nsenter: &[String],
    kubeconfig: &str,
    prepared: Option<&Prepared>,
) -> Vec<(&'static str, Vec<String>)> {
    let inside = |program: &[&str]| -> Vec<String> {
        std::iter::once("nsenter".to_owned())
            .chain(nsenter.iter().cloned())
            .chain(program.iter().map(|a| (*a).to_owned()))
            .collect()
    };
    let reuse = prepared.map_or_else(
        || prepared::plain_reuse_command(name),
        |p| p.reuse_command(name),
    );
    vec![
        (
            "look at it:",
            inside(&[
                "kubectl",
                "--kubeconfig",
                kubeconfig,
                "get",
                "pods",
                "--all-namespaces",
            ]),
        ),
        (
            "a shell inside:",
            inside(&["env", &format!("KUBECONFIG={kubeconfig}"), "sh"]),
        ),
        ("run again on it:", reuse),
        (
            "delete it:",
            ["cargo", "xtask", "kwok", "delete", name]
                .map(str::to_owned)
                .into(),
        ),
    ]
}

/// `argv` as a POSIX shell reads it back: an argument with anything but letters, digits and
/// `_-./=:,+@%` in single quotes.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::IstiodMode;

    fn kept(dir: &str) -> Vec<(&'static str, Vec<String>)> {
        let nsenter: Vec<String> = ["--target=555", "--user", "--net", "--"]
            .map(str::to_owned)
            .into();
        commands(
            "kept",
            &nsenter,
            &format!("{dir}/kubeconfig"),
            Some(&Prepared {
                istiod: IstiodMode::Translation,
                istio: "1.31.1".into(),
            }),
        )
    }

    #[test]
    fn every_command_for_a_kept_cluster_is_complete() {
        let commands = kept("/home/me/mirror-e2e/target/kwok/kept");
        for (what, argv) in &commands {
            assert!(
                argv.iter()
                    .all(|a| !a.is_empty() && !a.contains("...") && !a.contains('…')),
                "{what} {argv:?}"
            );
            if argv[0] == "nsenter" {
                // nsenter's own arguments end at `--`; a program and its arguments follow.
                let after = argv
                    .iter()
                    .position(|a| a == "--")
                    .map(|i| &argv[i + 1..])
                    .unwrap_or_default();
                assert!(
                    after.len() >= 2 && ["kubectl", "env"].contains(&after[0].as_str()),
                    "{what} {argv:?}"
                );
                assert!(
                    argv.iter().any(|a| a.ends_with("/kept/kubeconfig")),
                    "{argv:?}"
                );
            }
        }
        let labels: Vec<&str> = commands.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            labels,
            [
                "look at it:",
                "a shell inside:",
                "run again on it:",
                "delete it:"
            ]
        );
        // The reuse runs the cluster as it was prepared.
        assert_eq!(
            shell_line(&commands[2].1),
            "cargo xtask e2e --cluster kwok --reuse kept --istiod translation"
        );
    }

    #[test]
    fn a_printed_command_is_read_back_by_the_shell_as_its_arguments() {
        let sh = Shell::new().expect("shell");
        for (_, argv) in kept("/tmp/a dir/it's kept") {
            let line = shell_line(&argv);
            let script = format!("printf '%s\\n' {line}");
            let read = xshell::cmd!(sh, "sh -c {script}").read().expect("sh");
            assert_eq!(read.lines().collect::<Vec<_>>(), argv, "{line}");
        }
    }
}

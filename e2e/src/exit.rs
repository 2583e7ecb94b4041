//! How a run ends, as an exit code a CI job can act on: retry an environment failure, never
//! a real regression. One table for `--help`, docs/reference.md and the report's summary.

use mirror_e2e_contract::exit as code;
use serde::{Deserialize, Serialize};

/// The class a run ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// Every selected check passed.
    Passed,
    /// A check failed, or the manifests under test are wrong: the mesh is wrong.
    CheckFailed,
    /// The command line was wrong.
    Usage,
    /// The environment failed: Docker, tools, the cluster, Istio, Envoy, a workload.
    Environment,
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
}

/// The exit codes, as `--help` shows them (docs/reference.md has the same table).
pub const EXIT_CODES: &str = mirror_e2e_contract::exit::RUNNER_TABLE;

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Passed => code::PASSED,
            Exit::CheckFailed => code::CHECK_FAILED,
            Exit::Usage => code::USAGE,
            Exit::Environment => code::ENVIRONMENT,
            Exit::Interrupted => code::INTERRUPTED,
        }
    }

    /// The class in a few words, as the report says which one the run ended in.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Passed => "every selected check passed",
            Exit::CheckFailed => "a check failed, or the manifests under test are wrong",
            Exit::Usage => "usage error",
            Exit::Environment => "the environment failed",
            Exit::Interrupted => "interrupted",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_has_a_row_for_every_class_with_its_code() {
        for exit in [
            Exit::Passed,
            Exit::CheckFailed,
            Exit::Usage,
            Exit::Environment,
            Exit::Interrupted,
        ] {
            let row = EXIT_CODES
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", exit.code())))
                .unwrap_or_else(|| panic!("no row for {exit:?}"));
            let first_words = exit.meaning().split(',').next().expect("words");
            assert!(row.contains(first_words), "{row} / {exit:?}");
        }
    }
}

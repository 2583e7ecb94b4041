//! The exit codes of a run, the same for `mirror-e2e` and `cargo xtask e2e` (which passes
//! the suite's code on): a CI job retries an environment failure, never a regression.

/// Every selected check passed.
pub const PASSED: u8 = 0;
/// A check failed, or the manifests under test are wrong: the mesh is wrong.
pub const CHECK_FAILED: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
/// The environment failed: Docker, tools, the cluster, Istio, Envoy, a workload.
pub const ENVIRONMENT: u8 = 3;
/// Ctrl-C, SIGTERM or SIGHUP.
pub const INTERRUPTED: u8 = 130;

/// The table's rows, one per code above (docs/reference.md has the same table).
macro_rules! rows {
    () => {
        "
  0    every selected check passed
  1    a check failed, or the manifests under test are wrong (the mesh is wrong)
  2    usage error
  3    the environment failed: Docker, tools, cluster create, Istio install, Envoy, a workload
  130  interrupted"
    };
}

/// The table as `mirror-e2e --help` shows it.
pub const RUNNER_TABLE: &str = concat!("Exit codes:", rows!());
/// The table as `cargo xtask e2e --help` shows it.
pub const XTASK_TABLE: &str = concat!("Exit codes of `cargo xtask e2e`:", rows!());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_have_a_row_for_every_code_and_only_those() {
        for table in [RUNNER_TABLE, XTASK_TABLE] {
            let codes: Vec<u8> = table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().next().and_then(|c| c.parse().ok()))
                .collect::<Option<_>>()
                .unwrap_or_else(|| panic!("a row without a code: {table}"));
            assert_eq!(
                codes,
                [PASSED, CHECK_FAILED, USAGE, ENVIRONMENT, INTERRUPTED],
                "{table}"
            );
        }
    }
}

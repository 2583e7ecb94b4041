//! `cargo xtask lint`: offline manifest analysis, run by the e2e crate's binary.

use mirror_e2e_contract::args::{LintArgs, LintFormat, RunnerCommand};
use xshell::Shell;

use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths};

impl flags::Lint {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let paths = if self.paths.is_empty() {
            vec![paths::project_root().join("manifests")]
        } else {
            self.paths
                .iter()
                .map(|p| paths::from_invocation(p))
                .collect()
        };
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let runner = Runner::build(sh, &interrupt)?;
        let args = RunnerCommand::Lint(LintArgs {
            paths,
            format: LintFormat::Text,
            expectations: None,
        })
        .to_args();
        // The findings and their count are the linter's output; nothing to add.
        runner.run(sh, &args)
    }
}

//! `cargo xtask lint`: offline manifest analysis, run by the e2e crate's binary.

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::{flags, paths};

impl flags::Lint {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let paths: Vec<_> = if self.paths.is_empty() {
            vec![paths::project_root().join("manifests")]
        } else {
            self.paths
                .iter()
                .map(|p| paths::from_invocation(p))
                .collect()
        };
        cmd!(
            sh,
            "cargo run --quiet --package e2e --bin mirror-e2e -- lint {paths...}"
        )
        .run()
        .context("lint manifests")
    }
}

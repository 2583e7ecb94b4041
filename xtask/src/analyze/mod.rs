//! `cargo xtask analyze`: Istio's own offline analyzer beside the project's lint.
//!
//! `istioctl analyze --use-kube=false -o json` (the pinned 1.31 build,
//! `binaries::ISTIOD_1_31`) and `mirror-e2e lint --format json` read the same inputs: the
//! shipped manifests, each case of lint's corpus (`e2e/tests/fixtures/lint/`: `base.yaml` plus
//! the case) and the tutorial fixture. Each analyze message is paired with a lint finding
//! through [`COVERAGE`] (analyze's code and message -> lint's rule, or why lint says nothing),
//! and the table goes to `target/analyze/analyze.md` and stdout. The command fails when, in
//! a mirroring case ([`MIRRORING`]), analyze finds something lint does not.

mod cases;
mod coverage;
mod pairing;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mirror_e2e_contract::args::{LintArgs, LintFormat, RunnerCommand};
use xshell::{Shell, cmd};

use cases::{cases, user_case};
use pairing::{LintFinding, Message, compare, parse_analyze, parse_lint};
use table::{CaseOutcome, table};

use crate::cluster::kwok::binaries::ISTIOD_1_31;
use crate::interrupt::Interrupt;
use crate::runner::Runner;
use crate::{flags, paths};

impl flags::Analyze {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        let istioctl = ISTIOD_1_31
            .ensure(sh, &interrupt)
            .context("build istioctl")?
            .join("istioctl");
        let runner = Runner::build(sh, &interrupt)?;
        let root = paths::project_root();
        let mut outcomes = Vec::new();
        let cases = match &self.manifests {
            Some(dir) => vec![user_case(dir)?],
            None => cases(&root)?,
        };
        for case in cases {
            interrupt.check()?;
            let messages = analyze(sh, &istioctl, &case.analyze)
                .with_context(|| format!("istioctl analyze, case {}", case.name))?;
            interrupt.check()?;
            let findings = lint(sh, &runner.bin, &case.lint)
                .with_context(|| format!("lint, case {}", case.name))?;
            let rows = compare(&messages, &findings);
            outcomes.push(CaseOutcome { case, rows });
        }
        let table = table(&outcomes);
        let out = root.join("target/analyze");
        std::fs::create_dir_all(&out).context("create target/analyze")?;
        std::fs::write(out.join("analyze.md"), &table).context("write analyze.md")?;
        println!("{table}");
        eprintln!("the table is also in target/analyze/analyze.md");
        let gaps: Vec<String> = outcomes
            .iter()
            .flat_map(|o| {
                o.gaps()
                    .into_iter()
                    .map(|m| format!("{}: {} {}", o.case.name, m.code, m.message))
            })
            .collect();
        if !gaps.is_empty() {
            bail!(
                "in a mirroring case istioctl analyze finds what lint does not (add the rule to lint, or an entry to COVERAGE in xtask/src/analyze.rs saying why not):\n  {}",
                gaps.join("\n  ")
            );
        }
        Ok(())
    }
}

/// `istioctl analyze --use-kube=false -o json` on the files: files only, no cluster. It exits
/// 0 with `-o json` whatever it finds (only its log format sets the exit code), but a
/// non-zero exit with a JSON array on stdout is a finding too, not a failure.
fn analyze(sh: &Shell, istioctl: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<Message>> {
    let output = cmd!(sh, "{istioctl} analyze --use-kube=false -o json {files...}")
        .ignore_status()
        .output()
        .context("run istioctl")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse_analyze(&stdout, &stderr)
        .with_context(|| format!("istioctl exited with {}: {}", output.status, stderr.trim()))
}

/// `mirror-e2e lint --format json`: exit 1 only says it found errors; 2 is a failure.
fn lint(sh: &Shell, bin: &Path, paths: &[PathBuf]) -> anyhow::Result<Vec<LintFinding>> {
    let args = RunnerCommand::Lint(LintArgs {
        paths: paths.to_vec(),
        format: LintFormat::Json,
        expectations: None,
    })
    .to_args();
    let output = cmd!(sh, "{bin} {args...}")
        .ignore_status()
        .output()
        .context("run mirror-e2e lint")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!(
            "mirror-e2e lint exited with {}: {}",
            output.status,
            stderr.trim()
        );
    }
    parse_lint(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests;

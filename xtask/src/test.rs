//! `cargo xtask test`: the one test command, locally and in CI.

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::interrupt::{Interrupt, Output};
use crate::runner::nested_cargo;
use crate::{browser, doc_links, e2e, flags, paths, provision, versions};

impl flags::Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let clock = crate::progress::Stopwatch::start();
        let step = |name: &str| clock.step(name);
        let interrupt = Interrupt::default();
        interrupt.install_ctrl_c()?;
        // Compiling shows cargo's progress; only the tests' own output is kept short.
        let cargo = |cmd| interrupt.run(nested_cargo(cmd), Output::Terminal);

        step("documentation links");
        // First: it takes milliseconds, and a dead link or a reference to a file outside
        // the repository is as much a failure as a failing test.
        doc_links::check(sh, &paths::project_root())?;

        step("format");
        cargo(cmd!(sh, "cargo fmt --all -- --check"))
            .context("formatting differs: run `cargo fmt --all`")?;

        step("clippy");
        cargo(cmd!(
            sh,
            "cargo clippy --workspace --all-targets -- -D warnings"
        ))
        .context("clippy")?;

        step("envoy");
        let envoy = provision::envoy(sh, &interrupt).context("provision envoy")?;
        let _env = sh.push_env(mirror_e2e_contract::env::ENVOY_BIN, &envoy);

        step("build tests");
        cargo(cmd!(sh, "cargo test --workspace --no-run")).context("build the tests")?;
        step("tests");
        cargo(cmd!(sh, "cargo test --workspace --quiet")).context("tests")?;

        step("local e2e");
        // Kept in a directory of its own under the artifacts root (CI uploads that root, so a
        // failing run's evidence is kept), for the browser check of its report.
        let root = e2e::artifacts_root().join("test-run");
        let _ = std::fs::remove_dir_all(&root);
        let local = {
            let _root = sh.push_env(mirror_e2e_contract::env::ARTIFACTS_ROOT, &root);
            flags::E2e::parse(&["--local", "--keep"]).run_on(sh, &interrupt, clock)
        };
        local?;

        step("report in a browser");
        let html = std::fs::read_dir(&root)
            .context("the local run's directory")?
            .filter_map(Result::ok)
            .map(|e| e.path().join("report.html"))
            .find(|p| p.is_file())
            .context("the local run wrote no report.html")?;
        let screenshot = paths::project_root().join("target/report-screenshot.png");
        browser::check_report(sh, &html, 7, &screenshot)?;
        eprintln!("screenshot of the report: {}", screenshot.display());
        let _ = std::fs::remove_dir_all(&root);

        step("local upgrade walk");
        // The whole table, oldest to newest, so the walk follows the pins.
        let (oldest, newest) = (
            versions::ISTIO_RELEASES[versions::ISTIO_RELEASES.len() - 1].version,
            versions::ISTIO_RELEASES[0].version,
        );
        flags::E2e::parse(&["--local", "--istio-upgrade", &format!("{oldest}..{newest}")])
            .run_on(sh, &interrupt, clock)?;
        Ok(())
    }
}

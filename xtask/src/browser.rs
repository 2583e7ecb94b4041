//! The run's `report.html` in a real headless browser (Debian's Chromium): it must render
//! its check rows and both pictures without a console error, and a screenshot shows it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// How to get the browser, for the error when it is missing.
const HOW_TO_GET_CHROMIUM: &str = "the report's browser check needs Chromium: `apt-get install chromium` (Debian), or set CHROMIUM to a Chromium or Chrome binary";

/// The browser: `CHROMIUM`, else `chromium` on PATH.
fn chromium(sh: &Shell) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(bin));
    }
    match cmd!(sh, "chromium --version")
        .quiet()
        .ignore_stderr()
        .read()
    {
        Ok(_) => Ok(PathBuf::from("chromium")),
        Err(_) => bail!("{HOW_TO_GET_CHROMIUM}"),
    }
}

/// Renders `html` headless, checks it shows `rows` check rows, the timeline and the journey
/// with no console error, and writes a screenshot to `screenshot`.
pub fn check_report(sh: &Shell, html: &Path, rows: usize, screenshot: &Path) -> anyhow::Result<()> {
    let chromium = chromium(sh)?;
    // A fresh, empty profile: nothing of a previous run or of the user's own browser.
    let profile = crate::paths::project_root().join("target/chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let url = format!("file://{}", html.display());
    let profile_arg = format!("--user-data-dir={}", profile.display());
    // The flags this workplace's closed network needs (no background fetches), as root.
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let out = cmd!(sh, "{chromium} {flags...} {profile_arg} --dump-dom {url}")
        .quiet()
        .ignore_status()
        .output()
        .context("run chromium")?;
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let found = dom.matches("<tr class=\"check\">").count();
    if found != rows {
        bail!(
            "{}: the browser rendered {found} check rows, expected {rows}",
            html.display()
        );
    }
    for part in ["id=\"timeline\"", "id=\"journey\"", "id=\"verdict\""] {
        if !dom.contains(part) {
            bail!("{}: the rendered page has no {part}", html.display());
        }
    }
    if let Some(line) = log
        .lines()
        .find(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
    {
        bail!("{}: the page logged an error: {line}", html.display());
    }
    let shot = format!("--screenshot={}", screenshot.display());
    cmd!(
        sh,
        "{chromium} {flags...} {profile_arg} --window-size=1000,1300 --hide-scrollbars {shot} {url}"
    )
    .quiet()
    .ignore_stderr()
    .run()
    .context("take the report's screenshot")?;
    let png =
        std::fs::read(screenshot).with_context(|| format!("read {}", screenshot.display()))?;
    if !png.starts_with(b"\x89PNG") {
        bail!("{} is not a PNG", screenshot.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let html = dir.path().join("report.html");
        std::fs::write(
            &html,
            format!("<!doctype html><html><body><p id=verdict>x</p><svg id=timeline></svg><svg id=journey></svg><table>{body}</table></body></html>"),
        )
        .expect("write page");
        (dir, html)
    }

    #[test]
    fn the_browser_check_fails_on_missing_rows_and_on_script_errors() {
        let sh = Shell::new().expect("shell");
        let row = "<tr class=check><td>PASS</td></tr>";
        let (dir, html) = page(&row.repeat(2));
        let shot = dir.path().join("shot.png");
        check_report(&sh, &html, 2, &shot).expect("two rows render");
        let err = check_report(&sh, &html, 7, &shot)
            .expect_err("rows missing")
            .to_string();
        assert!(err.contains("rendered 2 check rows, expected 7"), "{err}");
        let (_dir, broken) = page(&format!("{row}<script>undefinedFunction()</script>"));
        let err = check_report(&sh, &broken, 1, &shot)
            .expect_err("script error")
            .to_string();
        assert!(err.contains("logged an error"), "{err}");
    }
}

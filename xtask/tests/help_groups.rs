//! Black-box: `cargo xtask e2e --help` groups each mode-bound flag under a heading naming
//! the modes that honour it (issue 24 §4: `--reuse`, `--cluster-name` and `--on-failure`
//! were labelled "kind:" but work on kwok, `--workload` "local:" but works on kwok), and a
//! flag its mode would ignore is a usage error (exit 2) before anything runs.

use mirror_e2e_contract::env;

use std::process::Command;

fn xtask(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove(env::CI)
        .output()
        .expect("run xtask");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// The heading of the `--help` section that lists `flag`.
fn heading_of(help: &str, flag: &str) -> Option<String> {
    let mut heading = None;
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = Some(line.trim_end_matches(':').to_owned());
        } else if line.trim_start().starts_with(&format!("{flag} ")) {
            return heading;
        }
    }
    None
}

#[test]
fn each_mode_bound_flag_sits_under_the_modes_that_honour_it() {
    let (code, help) = xtask(&["e2e", "--help"]);
    assert_eq!(code, Some(0), "{help}");
    for (flag, heading) in [
        ("--reuse", "Only with --cluster kind or --cluster kwok"),
        (
            "--cluster-name",
            "Only with --cluster kind or --cluster kwok",
        ),
        ("--on-failure", "Only with --cluster kind or --cluster kwok"),
        ("--workload", "Only with --local or --cluster kwok"),
        ("--istiod", "Only with --cluster kwok"),
        ("--kubeconfig", "Only with --cluster existing"),
    ] {
        assert_eq!(
            heading_of(&help, flag).as_deref(),
            Some(heading),
            "{flag}\n{help}"
        );
    }
    for label in ["kind:", "kwok:", "local:", "existing:"] {
        assert!(
            !help.lines().any(|l| l.trim_start().starts_with(label)),
            "a flag is still labelled {label}\n{help}"
        );
    }
}

#[test]
fn a_flag_the_mode_would_ignore_is_a_usage_error() {
    for flag in [
        &["--reuse", "kept"][..],
        &["--on-failure", "keep"],
        &["--cluster-name", "x"],
    ] {
        let mut args = vec!["e2e", "--cluster", "existing"];
        args.extend(flag);
        let (code, said) = xtask(&args);
        assert_eq!(code, Some(2), "{args:?}: {said}");
        assert!(
            said.contains(&format!(
                "{} (only with --cluster kind or --cluster kwok)",
                flag[0]
            )),
            "{said}"
        );
    }
}

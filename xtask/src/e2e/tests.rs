use std::time::Duration;

use mirror_e2e_contract::args::{LocalArgs, RunnerCommand};
use xshell::Shell;

use super::*;
use crate::interrupt::{Interrupt, is_interrupted};
use crate::progress::Stopwatch;

#[test]
fn default_manifests_are_the_projects_and_given_ones_are_from_where_you_stand() {
    let parse = |args: &[&str]| flags::E2e::parse(args).manifests_dir();
    assert_eq!(parse(&[]), paths::project_root().join("manifests"));
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(parse(&["--manifests", "mine"]), cwd.join("mine"));
}

#[test]
fn flags_that_would_be_ignored_are_usage_errors() {
    let parse = |args: &[&str]| {
        flags::E2e::parse(args)
            .validate()
            .map_err(|e| e.to_string())
    };
    for flag in [
        &["--cluster", "existing"][..],
        &["--reuse", "mirror-e2e-kept"],
        &["--cluster-name", "mine"],
        &["--kubeconfig", "k"],
        &["--context", "c"],
        &["--ingress", "http://x"],
        &["--install-istio"],
        &["--allow-cluster-scoped"],
        &["--on-failure", "keep"],
    ] {
        let mut args = vec!["--local"];
        args.extend(flag);
        let err = parse(&args).expect_err("usage error");
        assert!(err.contains(flag[0]) && err.contains("--local"), "{err}");
    }
    let err = parse(&["--context", "c"]).expect_err("kind has no context");
    assert!(err.contains("--cluster existing"), "{err}");
    let err = parse(&["--allow-cluster-scoped"]).expect_err("kind owns its cluster");
    assert!(err.contains("--cluster existing"), "{err}");
    parse(&["--local", "--keep"]).expect("fine");
    parse(&["--cluster", "existing", "--context", "c"]).expect("fine");
}

#[test]
fn istiod_is_a_flag_of_kwok_only_either_way() {
    let parse = |args: &[&str]| {
        flags::E2e::parse(args)
            .validate()
            .map_err(|e| e.to_string())
    };
    for mode in ["real", "translation"] {
        for other in [&["--local"][..], &[], &["--cluster", "existing"]] {
            let mut args = vec!["--istiod", mode];
            args.extend(other);
            let err = parse(&args).expect_err("usage error");
            assert!(
                err.contains(&format!("--istiod {mode}")) && err.contains("--cluster kwok"),
                "{args:?}: {err}"
            );
        }
        parse(&["--cluster", "kwok", "--istiod", mode]).expect("fine on kwok");
    }
    // Without the flag every mode is fine: it means nothing there.
    parse(&["--local"]).expect("fine");
    parse(&[]).expect("fine");
}

#[test]
fn patience_is_seconds_parsed_at_the_flag_and_kwok_uses_what_the_suite_would() {
    use clap::Parser;
    let patience = |args: &[&str]| flags::E2e::parse(args).kwok_patience();
    // The suite reads 2.5 as two and a half seconds; so does the kwok cluster's start.
    assert_eq!(
        patience(&["--cluster", "kwok", "--patience", "2.5"]),
        Duration::from_millis(2500)
    );
    assert_eq!(patience(&["--cluster", "kwok"]), Duration::from_secs(300));
    // A value the suite would refuse is refused at the flag, naming it.
    for bad in ["soon", "0", "inf"] {
        let err = flags::Xtask::try_parse_from(["cargo xtask", "e2e", "--patience", bad])
            .err()
            .unwrap_or_else(|| panic!("--patience {bad} was accepted"));
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        let text = err.to_string();
        assert!(
            text.contains("--patience") && text.contains("is not a positive number of seconds"),
            "{text}"
        );
    }
    // The suite gets the value it would have parsed itself.
    let suite = flags::E2e::parse(&["--local", "--patience", "2.5"]).suite_args(Stopwatch::start());
    let args = RunnerCommand::Local(Box::new(LocalArgs {
        suite,
        ..LocalArgs::default()
    }))
    .to_args();
    let at = args
        .iter()
        .position(|a| a == "--patience")
        .expect("passed on");
    assert_eq!(args[at + 1], "2.500");
}

#[test]
fn kwok_runs_the_real_istiod_unless_told_translation() {
    let mode = |args: &[&str]| flags::E2e::parse(args).istiod_mode();
    assert_eq!(mode(&["--cluster", "kwok"]), Some(flags::IstiodMode::Real));
    assert_eq!(
        mode(&["--cluster", "kwok", "--istiod", "translation"]),
        Some(flags::IstiodMode::Translation)
    );
    assert_eq!(
        mode(&["--cluster", "kwok", "--istiod", "real"]),
        Some(flags::IstiodMode::Real)
    );
    // Elsewhere no mode applies: the cluster's own istiod, or local mode's translation.
    for other in [&["--local"][..], &[], &["--cluster", "existing"]] {
        assert_eq!(mode(other), None, "{other:?}");
    }
}

#[test]
fn a_walk_on_an_existing_cluster_is_refused_with_validates_message_before_anything_runs() {
    // Ctrl-C noted already: had the run got past the flags, its first child (the
    // runner's build) would stop it as interrupted.
    let interrupt = Interrupt::default();
    interrupt.trigger();
    let sh = Shell::new().expect("shell");
    let err = flags::E2e::parse(&["--cluster", "existing", "--istio-upgrade", "1.30.5..1.31.1"])
        .run_on(&sh, &interrupt, Stopwatch::start())
        .expect_err("usage error");
    assert!(!is_interrupted(&err), "{err:#}");
    assert_eq!(
        err.to_string(),
        "--istio-upgrade needs a cluster of the run's own: use it with --local, --cluster kind or --cluster kwok"
    );
    assert!(err.is::<flags::Usage>(), "{err:#}");
}

#[test]
fn a_walk_on_kwok_walks_real_istiods_on_a_cluster_of_its_own() {
    let parse = |args: &[&str]| {
        flags::E2e::parse(args)
            .validate()
            .map_err(|e| e.to_string())
    };
    let walk = ["--cluster", "kwok", "--istio-upgrade", "1.27.9..1.31.1"];
    parse(&walk).expect("the real istiod is kwok's default");
    let mut real = walk.to_vec();
    real.extend(["--istiod", "real"]);
    parse(&real).expect("fine");
    let mut translation = walk.to_vec();
    translation.extend(["--istiod", "translation"]);
    let err = parse(&translation).expect_err("the translation does not walk");
    assert!(err.contains("drop --istiod translation"), "{err}");
    let mut reused = walk.to_vec();
    reused.extend(["--reuse", "kept"]);
    let err = parse(&reused).expect_err("a reused cluster");
    assert!(err.contains("drop --reuse"), "{err}");
    let err = parse(&["--cluster", "existing", "--istio-upgrade", "1.30.5..1.31.1"])
        .expect_err("someone's cluster");
    assert!(
        err.contains("a cluster of the run's own") && !err.contains("--istiod"),
        "{err}"
    );
}

//! Tests of the version table, the upgrade walk, the labels and `--check-latest`.
use super::*;

#[test]
fn every_node_image_is_by_digest_and_inside_the_supported_range() {
    for r in ISTIO_RELEASES {
        assert!(
            r.node_image.image.contains("@sha256:"),
            "{} node image has no digest",
            r.version
        );
        let minor = node_minor(r.node_image.image).expect("node image has a version tag");
        assert!(
            r.k8s_min <= minor && minor <= r.k8s_max,
            "Istio {}: node {minor:?} outside {:?}..{:?}",
            r.version,
            r.k8s_min,
            r.k8s_max
        );
    }
}

#[test]
fn every_node_image_was_built_by_the_pinned_kind() {
    for node in NODE_IMAGES {
        assert_eq!(
            node.built_by, KIND_VERSION,
            "{} was built by kind {}, but clusters are created with kind {KIND_VERSION}",
            node.image, node.built_by
        );
    }
}

#[test]
fn lookup_defaults_to_the_newest_and_rejects_unknown_versions() {
    assert_eq!(istio_release(None).expect("default").version, "1.31.1");
    assert_eq!(
        istio_release(Some("1.29.9")).expect("known").bookinfo_hub,
        "docker.io/istio"
    );
    assert_eq!(
        istio_release(Some("1.30.5")).expect("known").bookinfo_hub,
        "registry.istio.io/release"
    );
    let err = istio_release(Some("1.2.3")).expect_err("unknown");
    assert!(err.is::<Usage>(), "a usage error: {err:#}");
    let err = err.to_string();
    assert!(
        err.contains("--istio 1.2.3") && err.contains("1.31.1, 1.30.5, 1.29.9, 1.28.10, 1.27.9"),
        "{err}"
    );
}

#[test]
fn the_table_covers_the_three_newest_minors_and_one_before_the_shadow_change() {
    let keys: Vec<Vec<u32>> = ISTIO_RELEASES
        .iter()
        .map(|r| version_key(r.version))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(
        keys.iter().any(|k| k[..2] < [1, 28][..]),
        "a release before 1.28"
    );
    assert!(
        ISTIO_RELEASES
            .iter()
            .all(|r| !r.bookinfo_tag.is_empty() && r.bookinfo_tag != "latest")
    );
}

fn walk(spec: &str) -> Vec<&'static str> {
    upgrade_path(spec)
        .expect("valid")
        .iter()
        .map(|r| r.version)
        .collect()
}

#[test]
fn upgrades_walk_one_minor_at_a_time_through_the_newest_patches() {
    assert_eq!(
        walk("1.27.9..1.31.1"),
        ["1.27.9", "1.28.10", "1.29.9", "1.30.5", "1.31.1"]
    );
    assert_eq!(walk("1.30.5..1.31.1"), ["1.30.5", "1.31.1"]);
    assert_eq!(walk("1.31.1..1.29.9"), ["1.31.1", "1.30.5", "1.29.9"]);
    let path = upgrade_path("1.31.1..1.30.5").expect("valid");
    assert_eq!(hop_kind(path[0], path[1]), HopKind::Downgrade);
    let path = upgrade_path("1.27.9..1.28.10").expect("valid");
    assert_eq!(hop_kind(path[0], path[1]), HopKind::Upgrade);
    for bad in ["1.31.1..1.31.1", "1.31.1..9.9.9", "1.31.1"] {
        assert!(upgrade_path(bad).is_err(), "{bad}");
    }
    let err = upgrade_path("1.26.0..1.31.1").expect_err("unknown");
    assert!(err.is::<Usage>(), "a usage error: {err:#}");
    let err = err.to_string();
    assert!(
        err.starts_with("--istio-upgrade 1.26.0..1.31.1: 1.26.0 is not a supported version; supported: 1.31.1, 1.30.5"),
        "names the flag the user gave: {err}"
    );
}

#[test]
fn a_walk_runs_on_a_node_every_release_of_it_supports() {
    let path = upgrade_path("1.27.9..1.31.1").expect("valid");
    // 1.27 supports Kubernetes up to 1.33, 1.30 and 1.31 from 1.32: the node is 1.33.
    assert_eq!(
        node_minor(shared_node_image(&path).expect("shared").image),
        Some((1, 33))
    );
    let path = upgrade_path("1.30.5..1.31.1").expect("valid");
    assert_eq!(shared_node_image(&path).expect("shared"), NODE_1_36);
}

#[test]
fn node_minor_parses_kind_tags() {
    assert_eq!(node_minor(NODE_1_36.image), Some((1, 36)));
    assert_eq!(node_minor("kindest/node"), None);
}

#[test]
fn every_pin_says_where_it_was_confirmed_and_none_is_older_than_a_known_tag() {
    for r in ISTIO_RELEASES {
        assert!(!r.confirmed.is_empty(), "{}", r.version);
    }
    // Tags of istio/istio read on 2026-08-22 and releases on istio.io's release pages: no
    // pin may be behind them (1.27.7 and 1.28.4 were).
    let known: Vec<String> = ["1.27.9", "1.28.10", "1.29.9", "1.30.5", "1.31.0-rc.0"]
        .map(str::to_owned)
        .to_vec();
    let pinned: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
    assert_eq!(newer_patches(&pinned, &known), []);
}

#[test]
fn newer_patches_of_pinned_minors_are_found_and_pre_releases_ignored() {
    let tags: Vec<String> = [
        "1.28.4",
        "1.28.10",
        "1.28.9",
        "1.29.0",
        "1.28.11-rc.0",
        "1.27.9",
        "x",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(
        newer_patches(&["1.28.4", "1.27.9", "1.30.5"], &tags),
        [("1.28.4".to_owned(), "1.28.10".to_owned())]
    );
}

fn tags(list: &[(&str, &str)]) -> Vec<Tag> {
    list.iter()
        .map(|(name, commit)| Tag {
            name: (*name).to_owned(),
            commit: (*commit).to_owned(),
        })
        .collect()
}

const BUILD: ReleaseCommit = ReleaseCommit {
    release: "1.31.0",
    commit: "eed52ebb66ad",
    confirmed: "a fixture",
};

#[test]
fn check_latest_fails_on_a_pin_without_a_tag() {
    let list = tags(&[
        ("1.30.5", "a"),
        ("1.31.0", "eed52ebb66ad0000"),
        ("1.31.0-rc.4", "eed52ebb66ad0000"),
    ]);
    assert_eq!(
        pin_problems(&["1.31.1", "1.30.5"], &[BUILD], &list),
        ["1.31.1 is pinned but has no tag (never released, or not yet)"]
    );
    let list = tags(&[
        ("1.30.5", "a"),
        ("1.31.1", "b"),
        ("1.31.0", "eed52ebb66ad0"),
    ]);
    assert_eq!(
        pin_problems(&["1.31.1", "1.30.5"], &[BUILD], &list),
        Vec::<String>::new()
    );
}

#[test]
fn check_latest_fails_when_a_release_build_is_not_its_tags_commit() {
    let elsewhere = tags(&[("1.31.1", "b"), ("1.31.0", "423f108b5459")]);
    assert_eq!(
        pin_problems(&["1.31.1"], &[BUILD], &elsewhere),
        ["istiod eed52ebb66ad is labelled 1.31.0, but tag 1.31.0 is commit 423f108b5459"]
    );
    let missing = tags(&[("1.31.1", "b")]);
    assert_eq!(
        pin_problems(&["1.31.1"], &[BUILD], &missing),
        ["istiod eed52ebb66ad is labelled 1.31.0, but there is no tag 1.31.0"]
    );
}

#[test]
fn check_latest_reads_tags_and_their_commits_and_fails_when_offline() {
    let sh = Shell::new().expect("shell");
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("istio");
    cmd!(sh, "git init --quiet {repo}").run().expect("git init");
    let git = |args: &[&str]| {
        cmd!(
            sh,
            "git -C {repo} -c user.name=t -c user.email=t@t {args...}"
        )
        .quiet()
        .read()
        .expect("git")
    };
    git(&["commit", "--quiet", "--allow-empty", "-m", "r"]);
    let commit = git(&["rev-parse", "HEAD"]);
    // Annotated, as Istio's are: ls-remote names the tag object, then the commit.
    git(&["tag", "-a", "-m", "r", "1.28.99"]);
    git(&["tag", "1.31.1"]);
    let tags = istio_tags(&sh, &repo.display().to_string()).expect("tags");
    for name in ["1.28.99", "1.31.1"] {
        assert!(
            tags.iter().any(|t| t.name == name && t.commit == commit),
            "{name} at {commit}: {tags:?}"
        );
    }
    let pinned: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
    let problems = pin_problems(&pinned, RELEASE_COMMITS, &tags);
    for expected in [
        "1.28.10 is pinned, 1.28.99 is released",
        "1.30.5 is pinned but has no tag (never released, or not yet)",
        "istiod eed52ebb66ad is labelled 1.31.0, but there is no tag 1.31.0",
    ] {
        assert!(problems.iter().any(|p| p == expected), "{problems:#?}");
    }
    assert!(
        !problems.iter().any(|p| p.starts_with("1.31.1 ")),
        "{problems:#?}"
    );
    // No answer (offline, or no such repository) fails; it never passes.
    let err = istio_tags(&sh, &dir.path().join("nothing").display().to_string())
        .expect_err("no repository");
    assert!(format!("{err:#}").contains("needs the network"), "{err:#}");
}

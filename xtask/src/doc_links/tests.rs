//! Tests of the documentation check on inline Markdown fixtures.
use super::*;

/// A checkout in a temporary directory holding `files` (path, text).
fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// `dead_links` on the checkout's Markdown files.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let dir = checkout(files);
    let docs: Vec<(PathBuf, String)> = files
        .iter()
        .filter(|(p, _)| p.ends_with(".md"))
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect();
    dead_links(dir.path(), &docs)
}

const README: &str = "\
# mirror-e2e

See [kwok](docs/kwok.md#cluster-mode-without-docker---cluster-kwok), the
[second heading](docs/kwok.md#the-nodes-data-plane-1), [this page](#where-to-read-on)
and ![a picture](docs/report-pass.png \"title\").

## Where to read on

```sh
[not a link](nowhere.md)
```
`[not a link either](nowhere.md)`, [a site](https://istio.io/latest/docs/), [mail](mailto:a@b.c).

[ref]: ARCHITECTURE.md
";

const KWOK: &str = "\
# Cluster mode without Docker: `--cluster kwok`

## The node's data plane

## The node's data plane

Back to [the front door](../README.md#mirror-e2e).
";

#[test]
fn links_and_anchors_that_resolve_pass() {
    assert_eq!(
        problems(&[
            ("README.md", README),
            ("ARCHITECTURE.md", "# Architecture\n"),
            ("docs/kwok.md", KWOK),
            ("docs/report-pass.png", "png"),
        ]),
        Vec::<String>::new()
    );
}

#[test]
fn a_dead_link_fails_naming_file_and_line() {
    let readme = README.replace("docs/kwok.md#cluster", "docs/kowk.md#cluster");
    assert_eq!(
        problems(&[
            ("README.md", &readme),
            ("ARCHITECTURE.md", "# Architecture\n"),
            ("docs/kwok.md", KWOK),
            ("docs/report-pass.png", "png"),
        ]),
        [
            "README.md:3: dead link `docs/kowk.md#cluster-mode-without-docker---cluster-kwok`: no file docs/kowk.md"
        ]
    );
}

#[test]
fn a_dead_anchor_fails_naming_the_page() {
    // The heading says `--cluster kwok`: its slug has three dashes, not one.
    let readme = README.replace("docker---cluster-kwok", "docker-cluster-kwok");
    assert_eq!(
        problems(&[
            ("README.md", &readme),
            ("ARCHITECTURE.md", "# Architecture\n"),
            ("docs/kwok.md", KWOK),
            ("docs/report-pass.png", "png"),
        ]),
        [
            "README.md:3: dead anchor `#cluster-mode-without-docker-cluster-kwok`: no heading of docs/kwok.md has that slug"
        ]
    );
    // An anchor of the page itself.
    let readme = README.replace("(#where-to-read-on)", "(#where-to-read)");
    let found = problems(&[
        ("README.md", &readme),
        ("ARCHITECTURE.md", "# Architecture\n"),
        ("docs/kwok.md", KWOK),
        ("docs/report-pass.png", "png"),
    ]);
    assert_eq!(
        found,
        ["README.md:4: dead anchor `#where-to-read`: no heading of README.md has that slug"]
    );
}

#[test]
fn a_link_out_of_the_repository_fails() {
    let found = problems(&[
        ("README.md", "[notes](../FIELD-NOTES.md)\n"),
        ("docs/a.md", "[up](../../x.md)\n"),
    ]);
    assert_eq!(
        found,
        [
            "README.md:1: `../FIELD-NOTES.md` points outside the repository",
            "docs/a.md:1: `../../x.md` points outside the repository",
        ]
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Cluster mode without Docker: `--cluster kwok`"),
        "cluster-mode-without-docker---cluster-kwok"
    );
    assert_eq!(
        slug("What \"rolled out\", \"down\" and \"the log\" mean"),
        "what-rolled-out-down-and-the-log-mean"
    );
    assert_eq!(
        slug("Your own programs as workloads: `--workload NAME=COMMAND`"),
        "your-own-programs-as-workloads---workload-namecommand"
    );
    assert_eq!(slug("See [kwok](kwok.md) *now*"), "see-kwok-now");
    assert_eq!(
        anchors("# A\n## A\n<a id=\"x\"></a>\n```\n# not a heading\n```\n#nospace\n"),
        ["a", "a-1", "x"]
    );
}

#[test]
fn references_outside_the_repository_are_found() {
    let file = Path::new("e2e/src/x.rs");
    let text = "\
//! as the image does (FIELD-NOTES section 4)
//! see ../shared/STYLE-EXAMPLES.md
//! the copy in /work/.mirror/istio
//! reference/istio/pilot.go
//! https://istio.io/v1.31/docs/reference/config/analysis/ist0101/
//! istio/istio pilot/pkg/networking/core/route/route.go at release-1.31
";
    let found = outside_references(file, text);
    let lines: Vec<&str> = found
        .iter()
        .map(|p| p.split(": refers").next().unwrap_or(""))
        .collect();
    assert_eq!(
        lines,
        [
            "e2e/src/x.rs:1",
            "e2e/src/x.rs:2",
            "e2e/src/x.rs:2",
            "e2e/src/x.rs:3",
            "e2e/src/x.rs:4"
        ],
        "{found:#?}"
    );
    assert!(found[0].contains("`field-notes`"), "{}", found[0]);
}

#[test]
fn the_check_covers_every_tracked_file_and_lists_every_problem() {
    let dir = checkout(&[
        ("README.md", "# R\n[gone](docs/gone.md)\n"),
        ("ARCHITECTURE.md", "# A\n"),
        ("docs/page.md", "# P\n[back](../README.md#r)\n"),
        (
            "xtask/src/versions.rs",
            "// confirmed in FIELD-NOTES section 5\n",
        ),
        ("untracked.rs", "// FIELD-NOTES\n"),
    ]);
    let sh = Shell::new().expect("shell");
    let repo = dir.path();
    cmd!(sh, "git init --quiet {repo}").run().expect("git init");
    cmd!(sh, "git -C {repo} add README.md ARCHITECTURE.md docs xtask")
        .run()
        .expect("git add");
    let err = check(&sh, repo).expect_err("two problems");
    let text = format!("{err:#}");
    assert!(
        text.starts_with("the documentation has 2 problems:"),
        "{text}"
    );
    assert!(
        text.contains("README.md:2: dead link `docs/gone.md`"),
        "{text}"
    );
    assert!(
        text.contains("xtask/src/versions.rs:1: refers to `field-notes`"),
        "{text}"
    );
    assert!(!text.contains("untracked.rs"), "{text}");
}

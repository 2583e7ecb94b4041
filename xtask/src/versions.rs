//! The pinned versions: kind, and per Istio release its supported Kubernetes range, the kind
//! node image (by digest) inside that range, and where its Bookinfo images live.
//!
//! Sources: Istio's supported-releases table (Kubernetes ranges; 1.27 and 1.28 as listed by
//! endoflife.date), kind v0.32.0's pre-built node images (see [`NodeImage`]), Istio's Bookinfo manifests
//! (images on docker.io/istio up to 1.29, registry.istio.io/release from 1.30). Where each
//! pinned Istio release was seen to exist is its [`IstioRelease::confirmed`].
//!
//! `cargo xtask versions [--check-latest]` prints the table; `--check-latest` fails when
//! Istio has released a newer patch of a pinned minor (the nightly runs it), so the table
//! cannot silently go stale.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::flags::{self, Usage};

/// The kind release used to create clusters.
pub const KIND_VERSION: &str = "v0.32.0";

/// One supported Istio release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioRelease {
    /// `major.minor.patch`.
    pub version: &'static str,
    /// Oldest supported Kubernetes minor, e.g. (1, 32).
    pub k8s_min: (u32, u32),
    /// Newest supported Kubernetes minor.
    pub k8s_max: (u32, u32),
    /// kind node image, always by digest (kind's release notes: use the digest).
    pub node_image: NodeImage,
    /// Registry path of the Bookinfo images for this release.
    pub bookinfo_hub: &'static str,
    /// Tag of the Bookinfo images.
    pub bookinfo_tag: &'static str,
    /// Where this release was seen to exist (a tag, a release page). istioctl's sha256 is
    /// not pinned here: the first download is checked against the release's published
    /// `.sha256` file and then recorded in `tools.lock`, which every later download must match.
    pub confirmed: &'static str,
}

/// A kind node image and the kind release that built it. kind supports a node image only
/// with the release that built it (kind docs, "Node Image"; FIELD-NOTES section 10), so
/// every image here must be one of [`KIND_VERSION`]'s pre-built images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeImage {
    /// `kindest/node:vX.Y.Z@sha256:...`.
    pub image: &'static str,
    /// The kind release whose release notes list it.
    pub built_by: &'static str,
}

// Kind v0.32.0's pre-built images. v1.36.1 is also kind v0.32.0's default
// (pkg/apis/config/defaults/image.go at tag v0.32.0). The digests of v1.35.5, v1.34.8 and
// v1.33.12 are the ones kubernetes-sigs/cluster-api lists under "Pre-built images for Kind
// v0.32" (test/infrastructure/kind/mapper.go, which mirrors kind's release notes); the same
// list carries v1.36.1 with the digest above, which is how it was cross-checked.
const NODE_1_36: NodeImage = NodeImage {
    image: "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
    built_by: "v0.32.0",
};
const NODE_1_35: NodeImage = NodeImage {
    image: "kindest/node:v1.35.5@sha256:ce977ae6d65918d0b58a5f8b5e940429c2ce42fa3a5619ec2bbc60b949c0ac95",
    built_by: "v0.32.0",
};
const NODE_1_34: NodeImage = NodeImage {
    image: "kindest/node:v1.34.8@sha256:02722c2dedddcfc00febf5d27fbeb9b7b2c14294c82109ff4a85d89ac9ba3256",
    built_by: "v0.32.0",
};
const NODE_1_33: NodeImage = NodeImage {
    image: "kindest/node:v1.33.12@sha256:3f5c8443c620245e4d355cfe09e96a91ead32ceaa569d3f1ca9edf0cb2fe2ff4",
    built_by: "v0.32.0",
};

/// Every pinned node image, newest first (for picking one that two releases share).
pub const NODE_IMAGES: &[NodeImage] = &[NODE_1_36, NODE_1_35, NODE_1_34, NODE_1_33];

/// Supported releases, newest first. The first is the default.
pub const ISTIO_RELEASES: &[IstioRelease] = &[
    IstioRelease {
        version: "1.31.1",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
        bookinfo_tag: "1.20.3",
        confirmed: "Istio's release list of Sept 2026 (FIELD-NOTES section 5); not yet among the tags of the istio/istio snapshot of 2026-08-22, whose newest 1.31 tag is 1.31.0-rc.0",
    },
    IstioRelease {
        version: "1.30.5",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
        bookinfo_tag: "1.20.3",
        confirmed: "release page istio.io/latest/news/releases/1.30.x/announcing-1.30.5 (the newest 1.30 patch found)",
    },
    IstioRelease {
        version: "1.29.9",
        k8s_min: (1, 31),
        k8s_max: (1, 35),
        node_image: NODE_1_35,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
        confirmed: "release page istio.io/latest/news/releases/1.29.x/announcing-1.29.9, which says it is the last 1.29 release (end of life 2026-10-15)",
    },
    IstioRelease {
        version: "1.28.10",
        k8s_min: (1, 30),
        k8s_max: (1, 34),
        node_image: NODE_1_34,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
        confirmed: "tag 1.28.10 (3889af929df4) in the istio/istio snapshot of 2026-08-22, its newest 1.28 tag",
    },
    IstioRelease {
        version: "1.27.9",
        k8s_min: (1, 29),
        k8s_max: (1, 33),
        node_image: NODE_1_33,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
        confirmed: "tag 1.27.9 (cea9e4a2fda2) in the istio/istio snapshot of 2026-08-22, its newest 1.27 tag",
    },
];

/// Where Istio's tags are listed (overridable for tests and mirrors).
pub const ISTIO_REPO_ENV: &str = "MIRROR_E2E_ISTIO_REPO";
const ISTIO_REPO: &str = "https://github.com/istio/istio";

impl flags::Versions {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        for r in ISTIO_RELEASES {
            println!("Istio {:<8} {}", r.version, r.confirmed);
        }
        if !self.check_latest {
            return Ok(());
        }
        let repo = std::env::var(ISTIO_REPO_ENV).unwrap_or_else(|_| ISTIO_REPO.to_owned());
        let tags = istio_tags(sh, &repo)?;
        let pinned: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
        let stale = newer_patches(&pinned, &tags);
        if stale.is_empty() {
            println!("every pinned minor is at its newest patch ({repo})");
            return Ok(());
        }
        let lines: Vec<String> = stale
            .iter()
            .map(|(pin, newest)| format!("{pin} is pinned, {newest} is released"))
            .collect();
        bail!(
            "the version table is stale: {}; move the pins in xtask/src/versions.rs (and the nightly matrix)",
            lines.join(", ")
        )
    }
}

/// Istio's release tags (`1.28.10`; Istio's tags carry no `v`), from `git ls-remote`. No
/// answer is an error, never an empty list: offline, the check must fail, not pass.
fn istio_tags(sh: &Shell, repo: &str) -> anyhow::Result<Vec<String>> {
    let out = cmd!(sh, "git ls-remote --tags --refs {repo}")
        .quiet()
        .read()
        .with_context(|| format!("list Istio's tags at {repo} (this check needs the network)"))?;
    let tags: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once("refs/tags/"))
        .map(|(_, tag)| tag.trim().to_owned())
        .collect();
    if tags.is_empty() {
        bail!("{repo} lists no tags; cannot tell whether the pins are the newest");
    }
    Ok(tags)
}

/// For every pinned version with a newer released patch of its minor among `tags` (release
/// candidates and other pre-releases do not count): the pin and the newest patch.
pub fn newer_patches(pinned: &[&str], tags: &[String]) -> Vec<(String, String)> {
    let release = |t: &str| -> Option<[u32; 3]> {
        let mut parts = t.split('.').map(|p| p.parse::<u32>().ok());
        let v = [parts.next()??, parts.next()??, parts.next()??];
        parts.next().is_none().then_some(v)
    };
    pinned
        .iter()
        .filter_map(|pin| {
            let p = release(pin)?;
            let newest = tags
                .iter()
                .filter_map(|t| release(t))
                .filter(|t| t[..2] == p[..2] && t[2] > p[2])
                .max()?;
            Some((
                (*pin).to_owned(),
                format!("{}.{}.{}", newest[0], newest[1], newest[2]),
            ))
        })
        .collect()
}

/// The release for `--istio`, or the default; an unknown version lists the supported ones.
pub fn istio_release(version: Option<&str>) -> anyhow::Result<&'static IstioRelease> {
    let Some(version) = version else {
        return Ok(&ISTIO_RELEASES[0]);
    };
    release(version).map_err(|e| Usage(format!("--istio {version}: {e}")).into())
}

/// The supported versions, newest (the default) first, as the help and errors list them.
pub fn supported() -> String {
    let known: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
    known.join(", ")
}

/// The release of `version`, or why not (without the flag: the caller names the one given).
fn release(version: &str) -> Result<&'static IstioRelease, String> {
    ISTIO_RELEASES
        .iter()
        .find(|r| r.version == version)
        .ok_or_else(|| {
            format!(
                "{version} is not a supported version; supported: {}",
                supported()
            )
        })
}

/// What one hop of an upgrade walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopKind {
    /// To the next minor: the in-place upgrade Istio supports.
    Upgrade,
    /// Within one minor.
    PatchUpgrade,
    /// To the previous minor or an older patch: a rollback drill.
    Downgrade,
}

impl HopKind {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            HopKind::Upgrade => "upgrade",
            HopKind::PatchUpgrade => "patch upgrade",
            HopKind::Downgrade => "downgrade (rollback drill)",
        }
    }
}

/// `--istio-upgrade FROM..TO` as the walk Istio supports: an in-place upgrade goes "no more
/// than one minor version" at a time (istio.io, "In-place upgrade"), so a longer one passes
/// through the newest patch of every minor between (from the version table). A downgrade
/// walks back the same way; a change within one minor is one hop. Returns the releases in
/// order, FROM first and TO last.
pub fn upgrade_path(spec: &str) -> anyhow::Result<Vec<&'static IstioRelease>> {
    let usage = |why: String| Usage(format!("--istio-upgrade {spec}: {why}"));
    let Some((from, to)) = spec.split_once("..") else {
        return Err(usage("expected FROM..TO, e.g. 1.30.5..1.31.1".into()).into());
    };
    let (from, to) = (release(from).map_err(usage)?, release(to).map_err(usage)?);
    if from.version == to.version {
        return Err(usage("FROM and TO are the same version".into()).into());
    }
    let minor = |r: &IstioRelease| version_key(r.version).get(1).copied().unwrap_or(0);
    let (lo, hi) = (minor(from).min(minor(to)), minor(from).max(minor(to)));
    // The newest patch of every minor strictly between, in walking order.
    let mut between: Vec<&'static IstioRelease> = (lo + 1..hi)
        .map(|m| {
            ISTIO_RELEASES
                .iter()
                .filter(|r| minor(r) == m)
                .max_by_key(|r| version_key(r.version))
                .ok_or_else(|| anyhow::anyhow!("--istio-upgrade {spec}: the version table has no 1.{m} release to pass through"))
        })
        .collect::<anyhow::Result<_>>()?;
    if minor(from) > minor(to) {
        between.reverse();
    }
    let mut path = vec![from];
    path.extend(between);
    path.push(to);
    Ok(path)
}

/// The kind of the hop from `a` to `b`.
pub fn hop_kind(a: &IstioRelease, b: &IstioRelease) -> HopKind {
    let (ka, kb) = (version_key(a.version), version_key(b.version));
    if kb < ka {
        HopKind::Downgrade
    } else if ka.get(1) == kb.get(1) {
        HopKind::PatchUpgrade
    } else {
        HopKind::Upgrade
    }
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// A node image whose Kubernetes every release of a walk supports, for one cluster.
pub fn shared_node_image(path: &[&IstioRelease]) -> anyhow::Result<NodeImage> {
    let lo = path.iter().map(|r| r.k8s_min).max().unwrap_or((0, 0));
    let hi = path.iter().map(|r| r.k8s_max).min().unwrap_or((0, 0));
    let versions: Vec<&str> = path.iter().map(|r| r.version).collect();
    NODE_IMAGES
        .iter()
        .copied()
        .find(|node| node_minor(node.image).is_some_and(|m| lo <= m && m <= hi))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Istio {} share no Kubernetes version with a pinned node image",
                versions.join(", ")
            )
        })
}

/// The Kubernetes minor of a `kindest/node:v1.NN.P@sha256:...` image.
fn node_minor(image: &str) -> Option<(u32, u32)> {
    let tag = image
        .split(':')
        .nth(1)?
        .split('@')
        .next()?
        .trim_start_matches('v');
    let mut parts = tag.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
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
            err.contains("--istio 1.2.3")
                && err.contains("1.31.1, 1.30.5, 1.29.9, 1.28.10, 1.27.9"),
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
        // Tags seen in the istio/istio snapshot of 2026-08-22 and on istio.io's release
        // pages: no pin may be behind them (1.27.7 and 1.28.4 were).
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

    #[test]
    fn check_latest_reads_the_tags_and_fails_when_offline() {
        let sh = Shell::new().expect("shell");
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("istio");
        let newer = "1.28.99";
        cmd!(sh, "git init --quiet {repo}").run().expect("git init");
        let git = |args: &[&str]| {
            cmd!(
                sh,
                "git -C {repo} -c user.name=t -c user.email=t@t {args...}"
            )
            .quiet()
            .run()
            .expect("git")
        };
        git(&["commit", "--quiet", "--allow-empty", "-m", "r"]);
        git(&["tag", newer]);
        git(&["tag", "1.31.1"]);
        let tags = istio_tags(&sh, &repo.display().to_string()).expect("tags");
        let pinned: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
        assert!(
            newer_patches(&pinned, &tags).contains(&("1.28.10".to_owned(), newer.to_owned())),
            "{tags:?}"
        );
        // No answer (offline, or no such repository) fails; it never passes.
        let err = istio_tags(&sh, &dir.path().join("nothing").display().to_string())
            .expect_err("no repository");
        assert!(format!("{err:#}").contains("needs the network"), "{err:#}");
    }
}

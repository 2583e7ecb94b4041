//! The pinned versions: kind, and per Istio release its supported Kubernetes range, the kind
//! node image (by digest) inside that range, and where its Bookinfo images live.
//!
//! Sources: Istio's supported-releases table (Kubernetes ranges; 1.27 and 1.28 as listed by
//! endoflife.date), kind v0.32.0's pre-built node images (see [`NodeImage`]), Istio's Bookinfo manifests
//! (images on docker.io/istio up to 1.29, registry.istio.io/release from 1.30). Where each
//! pinned Istio release was seen to exist is its [`IstioRelease::confirmed`].
//!
//! `cargo xtask versions [--check-latest]` prints the table and what plays each release on a
//! kwok cluster (`kwok::version_label`); `--check-latest` fails when Istio has released a newer
//! patch of a pinned minor, when a pin has no tag (it was never released, or not yet), or
//! when a build [`RELEASE_COMMITS`] names a release is not that release's commit (the
//! nightly runs it), so the table cannot silently go stale or claim what is not so.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::usage::Usage;

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
/// with the release that built it (kind's release notes, e.g. kubernetes-sigs/kind
/// releases/tag/v0.32.0: "Images pre-built for this release"), so every image here must be
/// one of [`KIND_VERSION`]'s pre-built images.
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
        confirmed: "NOT CONFIRMED: istio/istio had no tag 1.31.1 when its tags were last read here (2026-08-22: newest 1.31 tag 1.31.0-rc.0), and no release page of it was read; `versions --check-latest` fails until the tag exists",
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
        confirmed: "tag 1.28.10 of istio/istio (commit ff49c1889eba), its newest 1.28 tag on 2026-08-22",
    },
    IstioRelease {
        version: "1.27.9",
        k8s_min: (1, 29),
        k8s_max: (1, 33),
        node_image: NODE_1_33,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
        confirmed: "tag 1.27.9 of istio/istio (commit b9159ca3e5d5), its newest 1.27 tag on 2026-08-22",
    },
];

/// An Istio release whose own commit a pinned istiod build is: that build is the release,
/// and `kwok::version_label` names it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseCommit {
    /// The release, as its tag names it.
    pub release: &'static str,
    /// Its commit, as the build's module pseudo-version names it (12 hex digits).
    pub commit: &'static str,
    /// Where it was seen; `versions --check-latest` checks it against the tag.
    pub confirmed: &'static str,
}

/// The pinned istiod builds that are a release's commit. The 1.30 build (9739e10eb9d7, a
/// release-1.30 branch commit of 2026-08-26) is no release's that was seen: its labels say
/// `1.30@9739e10`.
pub const RELEASE_COMMITS: &[ReleaseCommit] = &[ReleaseCommit {
    release: "1.31.0",
    commit: "eed52ebb66ad",
    confirmed: "Istio's GitHub releases 1.31.0 and 1.31.0-rc.4 (github.com/istio/istio/releases/tag/1.31.0) name commit eed52eb",
}];

/// Where Istio's tags are listed (overridable for tests and mirrors).
pub const ISTIO_REPO_ENV: &str = "MIRROR_E2E_ISTIO_REPO";
const ISTIO_REPO: &str = "https://github.com/istio/istio";

/// `cargo xtask versions [--check-latest]`, with `label` naming what plays a release on a
/// kwok cluster (`kwok::version_label`). Plain values, so the table imports neither the
/// command line nor the kwok provider, which both read it.
pub fn run(
    sh: &Shell,
    check_latest: bool,
    label: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    for r in ISTIO_RELEASES {
        println!("Istio {:<8} {}", r.version, r.confirmed);
    }
    println!("\non a kwok cluster (`--cluster kwok`, `parity`):");
    for r in ISTIO_RELEASES {
        println!("  {}", label(r.version)?);
    }
    for r in RELEASE_COMMITS {
        println!("  istiod {} is {}: {}", r.commit, r.release, r.confirmed);
    }
    if !check_latest {
        return Ok(());
    }
    let repo = std::env::var(ISTIO_REPO_ENV).unwrap_or_else(|_| ISTIO_REPO.to_owned());
    let tags = istio_tags(sh, &repo)?;
    let pinned: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
    let problems = pin_problems(&pinned, RELEASE_COMMITS, &tags);
    if problems.is_empty() {
        println!(
            "every pin is a tag and its minor's newest patch; every release build is its tag's commit ({repo})"
        );
        return Ok(());
    }
    bail!(
        "the version table is wrong: {}; fix the pins in xtask/src/versions.rs (and the nightly matrix)",
        problems.join("; ")
    )
}

/// One of Istio's tags: its name (`1.28.10`; Istio's tags carry no `v`) and the commit it
/// points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub commit: String,
}

/// Istio's tags, from `git ls-remote`, each with its commit (an annotated tag's peeled
/// `^{}` line). No answer is an error, never an empty list: offline, the check must fail,
/// not pass.
fn istio_tags(sh: &Shell, repo: &str) -> anyhow::Result<Vec<Tag>> {
    let out = cmd!(sh, "git ls-remote --tags {repo}")
        .quiet()
        .read()
        .with_context(|| format!("list Istio's tags at {repo} (this check needs the network)"))?;
    let tags = parse_ls_remote(&out);
    if tags.is_empty() {
        bail!("{repo} lists no tags; cannot tell whether the pins are the newest");
    }
    Ok(tags)
}

/// `git ls-remote --tags` output as tags and their commits: an annotated tag's line names
/// the tag object, its `^{}` line the commit, which wins.
fn parse_ls_remote(out: &str) -> Vec<Tag> {
    let mut tags: Vec<Tag> = Vec::new();
    for line in out.lines() {
        let Some((hash, name)) = line
            .split_once('\t')
            .and_then(|(hash, r)| Some((hash.trim(), r.trim().strip_prefix("refs/tags/")?)))
        else {
            continue;
        };
        let (name, peeled) = match name.strip_suffix("^{}") {
            Some(name) => (name, true),
            None => (name, false),
        };
        match tags.iter_mut().find(|t| t.name == name) {
            Some(tag) if peeled => hash.clone_into(&mut tag.commit),
            Some(_) => {}
            None => tags.push(Tag {
                name: name.to_owned(),
                commit: hash.to_owned(),
            }),
        }
    }
    tags
}

/// Everything `--check-latest` fails on, one message each: a pin no tag names, a pin with
/// a newer released patch of its minor, a release build whose tag is missing or at another
/// commit.
pub fn pin_problems(pinned: &[&str], builds: &[ReleaseCommit], tags: &[Tag]) -> Vec<String> {
    let names: Vec<String> = tags.iter().map(|t| t.name.clone()).collect();
    let mut problems: Vec<String> = pinned
        .iter()
        .filter(|pin| !names.iter().any(|n| n == *pin))
        .map(|pin| format!("{pin} is pinned but has no tag (never released, or not yet)"))
        .collect();
    problems.extend(
        newer_patches(pinned, &names)
            .iter()
            .map(|(pin, newest)| format!("{pin} is pinned, {newest} is released")),
    );
    for build in builds {
        match tags.iter().find(|t| t.name == build.release) {
            None => problems.push(format!(
                "istiod {} is labelled {}, but there is no tag {}",
                build.commit, build.release, build.release
            )),
            Some(tag) if !tag.commit.starts_with(build.commit) => problems.push(format!(
                "istiod {} is labelled {}, but tag {} is commit {}",
                build.commit, build.release, build.release, tag.commit
            )),
            Some(_) => {}
        }
    }
    problems
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
mod tests;

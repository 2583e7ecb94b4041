//! The pinned versions: kind, and per Istio release its supported Kubernetes range, the kind
//! node image (by digest) inside that range, and where its Bookinfo images live.
//!
//! Sources: Istio's supported-releases table (Kubernetes ranges; 1.27 and 1.28 as listed by
//! endoflife.date), kind's release notes (node images of v0.32.0 and v0.31.0; the v1.33.7
//! image of kind v0.31.0 as pinned in public CI configurations), Istio's Bookinfo manifests
//! (images on docker.io/istio up to 1.29, registry.istio.io/release from 1.30).

use anyhow::bail;

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
    pub node_image: &'static str,
    /// Registry path of the Bookinfo images for this release.
    pub bookinfo_hub: &'static str,
    /// Tag of the Bookinfo images.
    pub bookinfo_tag: &'static str,
}

const NODE_1_36: &str =
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5";
const NODE_1_35: &str =
    "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f";
const NODE_1_34: &str =
    "kindest/node:v1.34.3@sha256:08497ee19eace7b4b5348db5c6a1591d7752b164530a36f855cb0f2bdcbadd48";
const NODE_1_33: &str =
    "kindest/node:v1.33.7@sha256:d26ef333bdb2cbe9862a0f7c3803ecc7b4303d8cea8e814b481b09949d353040";

/// Every pinned node image, newest first (for picking one that two releases share).
pub const NODE_IMAGES: &[&str] = &[NODE_1_36, NODE_1_35, NODE_1_34, NODE_1_33];

/// Supported releases, newest first. The first is the default.
pub const ISTIO_RELEASES: &[IstioRelease] = &[
    IstioRelease {
        version: "1.31.1",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
        bookinfo_tag: "1.20.3",
    },
    IstioRelease {
        version: "1.30.5",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
        bookinfo_tag: "1.20.3",
    },
    IstioRelease {
        version: "1.29.8",
        k8s_min: (1, 31),
        k8s_max: (1, 35),
        node_image: NODE_1_35,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
    },
    IstioRelease {
        version: "1.28.4",
        k8s_min: (1, 30),
        k8s_max: (1, 34),
        node_image: NODE_1_34,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
    },
    IstioRelease {
        version: "1.27.7",
        k8s_min: (1, 29),
        k8s_max: (1, 33),
        node_image: NODE_1_33,
        bookinfo_hub: "docker.io/istio",
        bookinfo_tag: "1.20.3",
    },
];

/// The release for `--istio`, or the default; an unknown version lists the supported ones.
pub fn istio_release(version: Option<&str>) -> anyhow::Result<&'static IstioRelease> {
    let Some(version) = version else {
        return Ok(&ISTIO_RELEASES[0]);
    };
    match ISTIO_RELEASES.iter().find(|r| r.version == version) {
        Some(r) => Ok(r),
        None => {
            let known: Vec<&str> = ISTIO_RELEASES.iter().map(|r| r.version).collect();
            bail!(
                "--istio {version} is not a supported version; supported: {}",
                known.join(", ")
            )
        }
    }
}

/// An upgrade `FROM..TO` of two supported releases, FROM older than TO.
pub fn istio_upgrade(spec: &str) -> anyhow::Result<(&'static IstioRelease, &'static IstioRelease)> {
    let Some((from, to)) = spec.split_once("..") else {
        bail!("--istio-upgrade {spec}: expected FROM..TO, e.g. 1.30.5..1.31.1");
    };
    let (from, to) = (istio_release(Some(from))?, istio_release(Some(to))?);
    if version_key(from.version) >= version_key(to.version) {
        bail!(
            "--istio-upgrade {spec}: {} is not older than {}",
            from.version,
            to.version
        );
    }
    Ok((from, to))
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// A node image whose Kubernetes both releases support, for an upgrade on one cluster.
pub fn shared_node_image(a: &IstioRelease, b: &IstioRelease) -> anyhow::Result<&'static str> {
    let (lo, hi) = (a.k8s_min.max(b.k8s_min), a.k8s_max.min(b.k8s_max));
    NODE_IMAGES
        .iter()
        .copied()
        .find(|image| node_minor(image).is_some_and(|m| lo <= m && m <= hi))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Istio {} and {} share no Kubernetes version with a pinned node image",
                a.version,
                b.version
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
                r.node_image.contains("@sha256:"),
                "{} node image has no digest",
                r.version
            );
            let minor = node_minor(r.node_image).expect("node image has a version tag");
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
    fn lookup_defaults_to_the_newest_and_rejects_unknown_versions() {
        assert_eq!(istio_release(None).expect("default").version, "1.31.1");
        assert_eq!(
            istio_release(Some("1.29.8")).expect("known").bookinfo_hub,
            "docker.io/istio"
        );
        assert_eq!(
            istio_release(Some("1.30.5")).expect("known").bookinfo_hub,
            "registry.istio.io/release"
        );
        let err = istio_release(Some("1.2.3"))
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("--istio 1.2.3") && err.contains("1.31.1, 1.30.5, 1.29.8, 1.28.4, 1.27.7"),
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

    #[test]
    fn upgrades_parse_and_pick_a_node_both_sides_support() {
        let (from, to) = istio_upgrade("1.27.7..1.31.1").expect("valid");
        assert_eq!((from.version, to.version), ("1.27.7", "1.31.1"));
        // 1.27 supports Kubernetes up to 1.33, 1.31 from 1.32: the shared node is 1.33.
        assert_eq!(
            node_minor(shared_node_image(from, to).expect("shared")),
            Some((1, 33))
        );
        let (from, to) = istio_upgrade("1.30.5..1.31.1").expect("valid");
        assert_eq!(shared_node_image(from, to).expect("shared"), NODE_1_36);
        for bad in ["1.31.1..1.30.5", "1.31.1..1.31.1", "1.31.1..9.9.9"] {
            assert!(istio_upgrade(bad).is_err(), "{bad}");
        }
        let err = istio_upgrade("1.31.1").expect_err("no range").to_string();
        assert!(err.contains("expected FROM..TO"), "{err}");
    }

    #[test]
    fn node_minor_parses_kind_tags() {
        assert_eq!(node_minor(NODE_1_36), Some((1, 36)));
        assert_eq!(node_minor("kindest/node"), None);
    }
}

//! The pinned versions: kind, and per Istio release the kind node image (by digest) inside
//! that release's supported Kubernetes range, and where its Bookinfo images live.

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
}

const NODE_1_36: &str =
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5";
const NODE_1_35: &str =
    "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f";

/// Supported releases, newest first. The first is the default.
pub const ISTIO_RELEASES: &[IstioRelease] = &[
    IstioRelease {
        version: "1.31.1",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
    },
    IstioRelease {
        version: "1.30.5",
        k8s_min: (1, 32),
        k8s_max: (1, 36),
        node_image: NODE_1_36,
        bookinfo_hub: "registry.istio.io/release",
    },
    IstioRelease {
        version: "1.29.8",
        k8s_min: (1, 31),
        k8s_max: (1, 35),
        node_image: NODE_1_35,
        bookinfo_hub: "docker.io/istio",
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = istio_release(Some("1.2.3"))
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("--istio 1.2.3") && err.contains("1.31.1, 1.30.5, 1.29.8"),
            "{err}"
        );
    }

    #[test]
    fn node_minor_parses_kind_tags() {
        assert_eq!(node_minor(NODE_1_36), Some((1, 36)));
        assert_eq!(node_minor("kindest/node"), None);
    }
}

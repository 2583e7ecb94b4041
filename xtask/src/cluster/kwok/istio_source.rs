//! Which Istio source plays a release on kwok: the pinned `istio.io/istio` module of each
//! served minor (`ISTIO_MODULES`), and for an older minor the oldest served one with Istio's
//! compatibility profile for it (`istio_module`, `istio_source`, `IstioSource`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use xshell::Shell;

use super::{NODE_NAME, binaries};
use crate::versions::RELEASE_COMMITS;

/// Istio's source as a Go module: where a release's CRDs and istiod's chart come from.
///
/// The module proxy serves `istio.io/istio` only at pseudo-versions of commits it has
/// seen; the release tags' own (e.g. 1.30.3 = v0.0.0-20260713165634-56df41f63e51) answer
/// 403 "This module version is not available". So each minor maps to the newest commit of
/// its release branch that is served, and says so.
pub struct IstioModule {
    /// Istio minor, e.g. "1.31".
    pub minor: &'static str,
    /// The pseudo-version served.
    pub version: &'static str,
    /// What that commit is.
    pub provenance: &'static str,
    /// istiod and istioctl built from it.
    pub istiod: &'static binaries::GoBuild,
}

/// The Istio modules served, by minor, newest first.
pub const ISTIO_MODULES: &[IstioModule] = &[
    IstioModule {
        minor: "1.31",
        version: "v0.0.0-20260827124520-eed52ebb66ad",
        provenance: "1.31.0's commit (Istio's GitHub releases 1.31.0 and 1.31.0-rc.4 name it), on release-1.31, 2026-08-27 (VERSION file 1.31; it ships the compatibility-version-1.30 profile); one of the few commits the module proxy serves (1.30.3's answers 403)",
        istiod: &binaries::ISTIOD_1_31,
    },
    IstioModule {
        minor: "1.30",
        version: "v0.0.0-20260826214018-9739e10eb9d7",
        provenance: "a release-1.30 branch commit of 2026-08-26 (VERSION file 1.30; its newest compatibility profile is 1.29); the module proxy refuses the release tags' pseudo-versions",
        istiod: &binaries::ISTIOD_1_30,
    },
];

/// Where a release's files are in the module cache, and how the cluster plays it.
pub struct IstioSource {
    /// `manifests/charts/base/files/crd-all.gen.yaml`.
    pub crds: PathBuf,
    /// istiod's chart, `manifests/charts/istio-control/istio-discovery`.
    pub discovery_chart: PathBuf,
    pub module: &'static IstioModule,
    /// For a minor older than every served module: the oldest module's istiod with Istio's
    /// own compatibility profile for that minor (`compatibilityVersion`), which sets back
    /// every behaviour change Istio flagged since (the 1.28 shadow-host suffix among
    /// them). What no flag covers is the newer istiod's.
    pub compatibility: Option<String>,
}

impl IstioSource {
    /// The chart values that make the chart render this release: the compatibility
    /// profile, when one plays it.
    pub fn chart_values(&self) -> Vec<String> {
        self.compatibility
            .iter()
            .map(|minor| format!("compatibilityVersion={minor}"))
            .collect()
    }

    /// The report's note when this release's istiod configures the node's proxies.
    pub fn control_plane_note(&self) -> String {
        format!(
            "the real {} configured node {NODE_NAME}'s proxies over ADS",
            self.describe()
        )
    }

    /// What configures the mesh for this release, for messages and the report.
    pub fn describe(&self) -> String {
        let build = self
            .module
            .istiod
            .link_vars
            .iter()
            .filter(|(var, _)| var.ends_with(".buildVersion") || var.ends_with(".buildGitRevision"))
            .map(|(_, value)| *value)
            .collect::<Vec<_>>()
            .join("-");
        match &self.compatibility {
            None => format!("istiod {build} (istio.io/istio {})", self.module.version),
            Some(minor) => format!(
                "istiod {build} (istio.io/istio {}) with compatibilityVersion={minor}: no {minor} commit of Istio is served, so the oldest pinned istiod plays it with Istio's own {minor} compatibility profile",
                self.module.version
            ),
        }
    }
}

/// Which served module plays Istio `version` (`major.minor.patch` or `major.minor`): its
/// minor's own, or, for an older minor, the oldest module with that minor's compatibility
/// profile (checked against the chart in [`istio_source`]).
pub fn istio_module(version: &str) -> anyhow::Result<(&'static IstioModule, Option<String>)> {
    let minor = minor_of(version);
    if let Some(module) = ISTIO_MODULES.iter().find(|m| m.minor == minor) {
        return Ok((module, None));
    }
    let oldest = ISTIO_MODULES
        .last()
        .context("no istio.io/istio module is pinned")?;
    let key = |m: &str| -> Option<(u32, u32)> {
        let (a, b) = m.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    match (key(&minor), key(oldest.minor)) {
        (Some(wanted), Some(have)) if wanted < have => Ok((oldest, Some(minor))),
        _ => bail!(
            "no istio.io/istio module is pinned for Istio {minor} (pinned: {}); the module proxy serves only some commits of Istio, see ISTIO_MODULES",
            ISTIO_MODULES
                .iter()
                .map(|m| m.minor)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn minor_of(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_owned(),
    }
}

/// Istio's CRDs and istiod's chart for the release `version` (from the module that plays
/// it), and the compatibility profile when an older minor is played.
pub fn istio_source(sh: &Shell, version: &str) -> anyhow::Result<IstioSource> {
    let (module, compatibility) = istio_module(version)?;
    let dir = binaries::module_dir(sh, "istio.io/istio", module.version).with_context(|| {
        format!(
            "download Istio {}'s module ({})",
            module.minor, module.provenance
        )
    })?;
    let discovery_chart = dir.join("manifests/charts/istio-control/istio-discovery");
    if let Some(minor) = &compatibility {
        let profile =
            discovery_chart.join(format!("files/profile-compatibility-version-{minor}.yaml"));
        if !profile.is_file() {
            bail!(
                "Istio {version}: no istio.io/istio commit of {minor} is served, and istiod {}'s chart has no compatibility profile for it ({})",
                module.minor,
                profile.display()
            );
        }
    }
    Ok(IstioSource {
        crds: dir.join("manifests/charts/base/files/crd-all.gen.yaml"),
        discovery_chart,
        module,
        compatibility,
    })
}

/// The header that names Istio `version` where a kwok cluster's istiod plays it: what ran,
/// in the header itself. A build that is a release's commit is named by that release,
/// another by its branch and commit, and an older minor's says which compatibility profile
/// set it back: `1.31.0 (istiod eed52eb)`, `1.31.1 played by istiod 1.31.0 (eed52eb)`,
/// `1.30.5 played by istiod 1.30@9739e10`, `1.27.9 played by istiod 1.30@9739e10 + 1.27
/// profile`.
pub fn version_label(version: &str) -> anyhow::Result<String> {
    let (module, compatibility) = istio_module(version)?;
    // The module's pseudo-version ends in the commit, as `istiod --version` says it.
    let commit = module.version.rsplit('-').next().unwrap_or(module.version);
    let short = commit.get(..7).unwrap_or(commit);
    let release = RELEASE_COMMITS.iter().find(|r| r.commit == commit);
    let istiod = match release {
        Some(r) => format!("istiod {} ({short})", r.release),
        None => format!("istiod {}@{short}", module.minor),
    };
    Ok(match (release, compatibility) {
        (Some(r), None) if r.release == version => format!("{version} (istiod {short})"),
        (_, None) => format!("{version} played by {istiod}"),
        (_, Some(minor)) => format!("{version} played by {istiod} + {minor} profile"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::ISTIO_RELEASES;

    #[test]
    fn every_release_build_is_a_pinned_istiod() {
        for build in crate::versions::RELEASE_COMMITS {
            assert!(
                ISTIO_MODULES
                    .iter()
                    .any(|m| m.version.ends_with(&format!("-{}", build.commit))),
                "{} names no pinned istio.io/istio module",
                build.commit
            );
        }
    }

    #[test]
    fn each_label_says_what_played_the_release() {
        let labels: Vec<String> = ISTIO_RELEASES
            .iter()
            .map(|r| version_label(r.version).expect("playable"))
            .collect();
        assert_eq!(
            labels,
            [
                "1.31.1 played by istiod 1.31.0 (eed52eb)",
                "1.30.5 played by istiod 1.30@9739e10",
                "1.29.9 played by istiod 1.30@9739e10 + 1.29 profile",
                "1.28.10 played by istiod 1.30@9739e10 + 1.28 profile",
                "1.27.9 played by istiod 1.30@9739e10 + 1.27 profile",
            ]
        );
        // A build that is the release itself is named so, without "played by".
        assert_eq!(
            version_label("1.31.0").expect("1.31"),
            "1.31.0 (istiod eed52eb)"
        );
    }
}

//! What local mode cannot model: the translation's refusals as findings with file and line,
//! so lint shows them before a run, and local mode refuses with the same words before it
//! starts anything (`local-unsupported`; cluster modes run the real istiod and are fine).

use super::{Report, Severity};
use crate::envoy::config::{self, TranslateError};
use crate::istio::VirtualService;
use crate::manifest::YamlPath;
use crate::topology::Topology;
use crate::version::IstioVersion;

/// The code of these findings.
pub const CODE: &str = "local-unsupported";

/// What a user does instead.
pub const HINT: &str =
    "local mode refuses it; `cargo xtask e2e --cluster kwok` runs the real istiod on it";

pub(super) fn check(topo: &Topology, report: &mut Report<'_>) {
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    // Any supported version translates the same fields; only values differ between them.
    let Ok(version) = crate::version::DEFAULT_ISTIO.parse::<IstioVersion>() else {
        return;
    };
    let refusals = [
        config::route_configuration(topo, &vss, &version, 1).err(),
        config::gateway_route_configuration(topo, &vss, &version).err(),
    ];
    for err in refusals.into_iter().flatten() {
        finding(topo, &err, report);
    }
    for dr in &topo.destination_rules {
        let export_to = dr.object.spec.export_to.as_deref().unwrap_or(&[]);
        // One Envoy plays the sidecar and the gateway: a DestinationRule that only one of
        // them sees (exportTo) would need clusters of two sets.
        if !export_to.is_empty() && !export_to.iter().any(|e| e == "*") {
            report.at(
                dr.document,
                &YamlPath::parse("spec.exportTo"),
                Severity::Note,
                CODE,
                format!(
                    "exportTo {export_to:?}: the sidecar and the ingress gateway see different subsets; {HINT}"
                ),
            );
        }
    }
}

fn finding(topo: &Topology, err: &TranslateError, report: &mut Report<'_>) {
    let (vs, path) = err.location();
    let Some(doc) = topo
        .virtual_services
        .iter()
        .find(|t| t.object.metadata.name.as_deref() == Some(vs))
        .map(|t| t.document)
    else {
        return;
    };
    // The path may end in a note in parentheses; the position is the field's.
    let field = path.split(" (").next().unwrap_or(&path);
    report.at(
        doc,
        &YamlPath::parse(field),
        Severity::Note,
        CODE,
        format!("{err}; {HINT}"),
    );
}

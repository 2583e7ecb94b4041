//! The expectations against the routing under test: an error when the file does not read
//! or names what the manifests lack; a warning (`intent`) where the routing does something
//! else than the file says, and (`unexercised-rule`) where a rule is reached by no
//! identity's requests. A run puts these warnings in its report.

use super::{Finding, Report, Severity};
use crate::expectations::{Expectations, ExpectationsError};
use crate::manifest::{ManifestSet, YamlPath};
use crate::topology::Topology;

/// The code of a rule no identity exercises.
pub const CODE_UNEXERCISED: &str = "unexercised-rule";

/// The expectations file `file` against the manifests: an error when it does not read or
/// names a Service or subset they do not have; a warning (`intent`) where the routing under
/// test does something else than the expectations say.
pub fn lint_expectations(set: &ManifestSet, file: &std::path::Path) -> Vec<Finding> {
    let (topology, _) = Topology::from_manifests(set);
    let error = |e: ExpectationsError| {
        let (line, message) = match &e {
            ExpectationsError::Invalid {
                line,
                field,
                message,
                ..
            } => (*line, format!("{field}: {message}")),
            ExpectationsError::Read { .. } => (1, e.to_string()),
        };
        Finding {
            file: file.to_owned(),
            line,
            severity: Severity::Error,
            code: "expectations",
            message,
        }
    };
    let expectations = match Expectations::load(file) {
        Ok(e) => e,
        Err(e) => return vec![error(e)],
    };
    if let Err(e) = expectations.check(&topology) {
        return vec![error(e)];
    }
    let vss: Vec<&crate::istio::VirtualService> = topology
        .virtual_services
        .iter()
        .map(|t| &t.object)
        .collect();
    let mut findings: Vec<Finding> = expectations
        .compare_with_routing(&vss)
        .into_iter()
        .map(|(line, message)| Finding {
            file: file.to_owned(),
            line,
            severity: Severity::Warning,
            code: "intent",
            message,
        })
        .collect();
    let mut report = Report {
        set,
        findings: Vec::new(),
    };
    unexercised(&topology, &expectations, &mut report);
    findings.extend(report.findings);
    findings
}

/// A rule of the routing under test that no identity's requests reach: the suite never
/// tests it (an `x-canary` rule that mirrors, while no identity sends `x-canary`).
fn unexercised(topology: &Topology, expectations: &Expectations, report: &mut Report<'_>) {
    let Some(vs) = topology.virtual_services.iter().find(|t| {
        t.object
            .spec
            .hosts
            .iter()
            .any(|h| topology.fqdn(h) == topology.fqdn(&expectations.service))
    }) else {
        return;
    };
    for (index, why) in expectations.unexercised_rules(&vs.object) {
        report.at(
            vs.document,
            &YamlPath::parse(&format!("spec.http[{index}]")),
            Severity::Warning,
            CODE_UNEXERCISED,
            format!(
                "{why}, so no check tests it; add an identity to {} whose requests reach it",
                expectations.path.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_that_routing_breaks_are_a_warning_at_the_identitys_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(crate::expectations::FILE_NAME);
        std::fs::write(
            &file,
            "service: reviews\nmirror: mirror\nidentities:\n  tester:\n    served_by: {v2: 100}\n    mirrored: 100\n",
        )
        .expect("write");
        let set = ManifestSet::from_str(
            "m.yaml",
            "kind: Service\nmetadata: {name: reviews}\n---\nkind: Service\nmetadata: {name: mirror}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews, subsets: [{name: v2, labels: {version: v2}}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v2}}], mirror: {host: mirror}, mirrorPercentage: {value: 10}}]\n",
        );
        let found: Vec<String> = lint_expectations(&set, &file)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [format!(
                "{}:4: warning[intent]: expectations say 100% of tester's requests mirrored, but VirtualService reviews (http[0]) mirrors 10% to `mirror`",
                file.display()
            )]
        );
    }

    #[test]
    fn a_rule_no_identity_reaches_is_a_warning_at_the_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(crate::expectations::FILE_NAME);
        std::fs::write(
            &file,
            "service: reviews\nmirror: mirror\nidentities:\n  anonymous:\n    served_by: {v1: 100}\n    mirrored: 0\n",
        )
        .expect("write");
        let set = ManifestSet::from_str(
            "m.yaml",
            "kind: Service\nmetadata: {name: reviews}\n---\nkind: Service\nmetadata: {name: mirror}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - name: canary\n    match: [{headers: {x-canary: {exact: \"1\"}}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n    mirror: {host: mirror}\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
        );
        let found: Vec<String> = lint_expectations(&set, &file)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [format!(
                "m.yaml:18: warning[unexercised-rule]: VirtualService reviews: spec.http[0]: rule \"canary\" matches header x-canary, which no identity's requests carry, so no check tests it; add an identity to {} whose requests reach it",
                file.display()
            )]
        );
    }
}

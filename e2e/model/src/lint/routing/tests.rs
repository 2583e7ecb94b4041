//! Tests of the routing rules, on inline manifests.

use crate::lint::test_support::findings;

/// A Service, two workloads and a DestinationRule; VirtualServices are added per test.
const MESH: &str = "
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: mirror}
spec: {selector: {app: mirror}, ports: [{port: 9080, name: http}]}
---
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: r, image: r:1, ports: [{containerPort: 9080}]}]}
---
kind: Deployment
metadata: {name: mirror}
spec:
  selector: {matchLabels: {app: mirror}}
  template:
    metadata: {labels: {app: mirror}}
    spec: {containers: [{name: m, image: m:1, ports: [{containerPort: 9080}]}]}
---
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
";

fn with_route(route: &str) -> String {
    format!(
        "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {route}\n"
    )
}

#[test]
fn deprecated_mirror_percent_is_a_warning_naming_the_field() {
    for field in ["mirror_percent", "mirrorPercent"] {
        let yaml = with_route(&format!(
            "{{route: [{{destination: {{host: reviews, subset: v2}}}}], mirror: {{host: mirror}}, {field}: 100}}"
        ));
        let found = findings(&yaml, "deprecated-field");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(&format!(
                "warning[deprecated-field]: VirtualService reviews: spec.http[0].{field}"
            )),
            "{found:?}"
        );
    }
}

#[test]
fn percentages_outside_0_to_100_are_errors() {
    let cases = [
        (
            "mirror: {host: mirror}, mirrorPercentage: {value: 100.5}",
            "spec.http[0].mirrorPercentage.value",
        ),
        (
            "mirror: {host: mirror}, mirrorPercentage: {value: -1}",
            "spec.http[0].mirrorPercentage.value",
        ),
        (
            "mirror: {host: mirror}, mirrorPercent: 101",
            "spec.http[0].mirrorPercent",
        ),
        (
            "mirrors: [{destination: {host: mirror}, percentage: {value: 150}}]",
            "spec.http[0].mirrors[0].percentage.value",
        ),
    ];
    for (mirror, path) in cases {
        let yaml = with_route(&format!(
            "{{route: [{{destination: {{host: reviews}}}}], {mirror}}}"
        ));
        let found = findings(&yaml, "percentage-range");
        assert_eq!(found.len(), 1, "{mirror}: {found:?}");
        assert!(found[0].contains(path), "{found:?}");
    }
    let ok = with_route(
        "{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrorPercentage: {value: 0}}",
    );
    assert!(findings(&ok, "percentage-range").is_empty());
}

#[test]
fn mirror_and_mirrors_together_is_an_error() {
    let yaml = with_route(
        "{route: [{destination: {host: reviews}}], mirror: {host: mirror}, mirrors: [{destination: {host: mirror}}]}",
    );
    let found = findings(&yaml, "mirror-and-mirrors");
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("spec.http[0].mirrors"), "{found:?}");
}

#[test]
fn undefined_subset_is_an_error_for_routes_and_mirrors() {
    let yaml = with_route(
        "{route: [{destination: {host: reviews, subset: v3}}], mirror: {host: reviews, subset: v9}}",
    );
    let found = findings(&yaml, "unknown-subset");
    assert_eq!(found.len(), 2, "{found:?}");
    let route = found
        .iter()
        .find(|f| f.contains("spec.http[0].route[0].destination.subset: subset `v3`"));
    assert!(
        route.is_some_and(|f| f.contains("(defined: v2)")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("spec.http[0].mirror.subset: subset `v9`")),
        "{found:?}"
    );
}

#[test]
fn host_without_service_is_an_error_and_outside_hosts_a_warning() {
    let yaml = with_route("{route: [{destination: {host: reviews}}], mirror: {host: ghost}}");
    let found = findings(&yaml, "unknown-host");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("error[unknown-host]") && found[0].contains("spec.http[0].mirror.host"),
        "{found:?}"
    );

    let yaml =
        with_route("{route: [{destination: {host: reviews}}], mirror: {host: echo.example.com}}");
    let found = findings(&yaml, "unknown-host");
    assert!(
        found.len() == 1 && found[0].contains("warning[unknown-host]"),
        "{found:?}"
    );

    let alone = "kind: VirtualService\nmetadata: {name: r}\nspec: {http: [{route: [{destination: {host: reviews}}]}]}\n";
    let found = findings(alone, "unknown-host");
    assert!(
        found.len() == 1 && found[0].contains("warning[unknown-host]"),
        "{found:?}"
    );
}

/// Issue 23, item 1: the new user's `mirror.test` passed lint and local mode, and
/// mirrored nothing on the real istiod.
#[test]
fn a_host_qualified_by_namespace_names_no_service() {
    let yaml = with_route("{route: [{destination: {host: reviews}}], mirror: {host: mirror.test}}");
    let found = findings(&yaml, "unknown-host");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("error[unknown-host]")
            && found[0].contains("spec.http[0].mirror.host")
            && found[0].contains("write `mirror` or `mirror.test.svc.cluster.local`"),
        "{found:?}"
    );
    let yaml = with_route(
        "{route: [{destination: {host: reviews.test.svc.cluster.local}}], mirror: {host: mirror}}",
    );
    assert!(findings(&yaml, "unknown-host").is_empty());
}

#[test]
fn a_port_the_service_does_not_expose_is_an_error_naming_its_ports() {
    let yaml = with_route(
        "{route: [{destination: {host: reviews, subset: v2, port: {number: 8080}}}], mirror: {host: mirror, port: {number: 9081}}, mirrors: [{destination: {host: mirror, port: {number: 9080}}}]}",
    );
    let found = findings(&yaml, "unknown-port");
    assert_eq!(
        found,
        [
            "t.yaml:37: error[unknown-port]: VirtualService reviews: spec.http[0].mirror.port.number: Referenced host:port not found: \"mirror:9081\" (Service mirror exposes 9080)",
            "t.yaml:37: error[unknown-port]: VirtualService reviews: spec.http[0].route[0].destination.port.number: Referenced host:port not found: \"reviews:8080\" (Service reviews exposes 9080)",
        ],
    );
    let exposed = with_route("{route: [{destination: {host: reviews, port: {number: 9080}}}]}");
    assert!(findings(&exposed, "unknown-port").is_empty());
}

#[test]
fn a_rule_after_a_catch_all_or_with_only_earlier_matches_is_istios_ist0130() {
    let tester = "{name: tester, match: [{headers: {end-user: {exact: tester}}}], route: [{destination: {host: reviews, subset: v2}}]}";
    let all = "{route: [{destination: {host: reviews}}]}";
    let yaml = format!(
        "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {all}\n    - {tester}\n    - {all}\n"
    );
    let found = findings(&yaml, "unreachable-rule");
    assert_eq!(
        found,
        [
            "t.yaml:38: warning[unreachable-rule]: VirtualService reviews: spec.http[1]: IST0130: VirtualService rule \"tester\" not used (route without matches defined before).",
            "t.yaml:39: warning[unreachable-rule]: VirtualService reviews: spec.http[2]: IST0130: VirtualService rule #2 not used (only the last rule can have no matches).",
        ]
    );
    let duplicate = format!(
        "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {tester}\n    - {}\n    - {all}\n",
        tester.replace("name: tester", "name: again")
    );
    let found = findings(&duplicate, "unreachable-rule");
    assert_eq!(found.len(), 1, "{found:?}");
    // The same match is also Istio's IST0131 (names left out: Istio compares without them).
    assert_eq!(
        findings(&duplicate, "ineffective-match"),
        [
            "t.yaml:38: warning[ineffective-match]: VirtualService reviews: spec.http[1]: IST0131: VirtualService rule \"again\" match #0 is not used (duplicate/overlapping match in rule \"tester\")."
        ]
    );
    assert!(
        found[0].ends_with(
            "spec.http[1]: IST0130: VirtualService rule \"again\" not used (all matches used by prior rules)."
        ),
        "{found:?}"
    );
    // The catch-all last, as the project's routing has it: nothing to say.
    let ordered = format!(
        "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {tester}\n    - {all}\n"
    );
    assert!(findings(&ordered, "unreachable-rule").is_empty());
}

#[test]
fn a_destination_rule_for_no_service_is_istios_ist0174_warning() {
    let yaml = format!(
        "{MESH}kind: DestinationRule\nmetadata: {{name: typo}}\nspec:\n  host: reveiws\n  subsets: [{{name: v2, labels: {{version: v2}}}}]\n"
    );
    let found = findings(&yaml, "unknown-host");
    assert_eq!(
        found,
        [
            "t.yaml:35: warning[unknown-host]: DestinationRule typo: spec.host: host `reveiws` names no Service in the manifests: the DestinationRule's subsets apply to nothing"
        ]
    );
    // A host outside the manifests cannot be checked here; the shared mesh's own rule is fine.
    let outside = format!(
        "{MESH}kind: DestinationRule\nmetadata: {{name: ext}}\nspec: {{host: echo.example.com}}\n"
    );
    assert!(findings(&outside, "unknown-host").is_empty());
}

#[test]
fn a_match_an_earlier_rule_has_is_istios_ist0131_whatever_its_name() {
    let yaml = format!(
        "{MESH}kind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n    - {{name: tester, match: [{{headers: {{end-user: {{exact: tester}}}}}}], route: [{{destination: {{host: reviews, subset: v2}}}}]}}\n    - {{name: both, match: [{{name: jason, headers: {{end-user: {{exact: jason}}}}}}, {{name: again, headers: {{end-user: {{exact: tester}}}}}}], route: [{{destination: {{host: reviews}}}}], mirror: {{host: mirror}}}}\n    - {{route: [{{destination: {{host: reviews}}}}]}}\n"
    );
    assert_eq!(
        findings(&yaml, "ineffective-match"),
        [
            "t.yaml:38: warning[ineffective-match]: VirtualService reviews: spec.http[1]: IST0131: VirtualService rule \"both\" match \"again\" is not used (duplicate/overlapping match in rule \"tester\")."
        ]
    );
    // One of its matches is new, so the rule itself is reachable.
    assert!(findings(&yaml, "unreachable-rule").is_empty());
}

#[test]
fn subset_selecting_no_pods_is_an_error() {
    let yaml = format!(
        "{MESH}kind: DestinationRule\nmetadata: {{name: other}}\nspec:\n  host: reviews\n  subsets: [{{name: v7, labels: {{version: v7}}}}]\n"
    );
    let found = findings(&yaml, "subset-selects-nothing");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("DestinationRule other: spec.subsets[0].labels: subset `v7`"),
        "{found:?}"
    );
    assert!(findings(MESH, "subset-selects-nothing").is_empty());
}

//! Tests of the expectations file: reading, checking against the manifests, and the routing.
use super::*;

const SHIPPED: &str = "\
service: reviews
mirror: mirror
identities:
  anonymous:
    served_by: {v1: 100}
    mirrored: 0
  tester:
    served_by: {v2: 100}
    mirrored: 100
    mirror_sees: {end-user: tester}
";

fn parse(text: &str) -> Result<Expectations, ExpectationsError> {
    Expectations::parse(Path::new("manifests/expectations.yaml"), text)
}

fn error(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

#[test]
fn the_tutorials_expectations_read_in_the_files_order() {
    let e = parse(SHIPPED).expect("parses");
    assert_eq!(e.service, "reviews");
    assert_eq!(e.mirror, "mirror");
    let names: Vec<&str> = e.identities.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["anonymous", "tester"]);
    assert_eq!(e.identities[0].user(), None);
    assert_eq!(e.identities[1].user(), Some("tester"));
    assert_eq!(e.identities[1].single_subset(), Some("v2"));
    assert_eq!(
        e.identities[1].mirror_sees,
        [("end-user".to_owned(), "tester".to_owned())]
    );
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let text = SHIPPED.replace("    mirrored: 100", "    mirroredd: 100");
    assert_eq!(
        error(&text),
        "manifests/expectations.yaml:9: identities.tester.mirroredd: unknown field (known: served_by, mirrored, mirror_sees)"
    );
}

#[test]
fn percentages_that_do_not_add_up_are_named() {
    let text = SHIPPED.replace("{v1: 100}", "{v1: 90, v2: 20}");
    assert_eq!(
        error(&text),
        "manifests/expectations.yaml:5: identities.anonymous.served_by: the percentages add up to 110, not 100"
    );
    let text = SHIPPED.replace("mirrored: 100", "mirrored: 150");
    assert!(
        error(&text).contains(":9: identities.tester.mirrored: 150 is not a percentage"),
        "{}",
        error(&text)
    );
}

#[test]
fn a_share_too_fine_to_sample_is_refused_at_its_line() {
    let text = SHIPPED.replace("{v1: 100}", "{v1: 99.5, v2: 0.5}");
    assert_eq!(
        error(&text),
        "manifests/expectations.yaml:5: identities.anonymous.served_by: a share of 0.5% cannot be told from 0.25% or 0.75% with at most 20000 requests per batch (both error rates under 1 in 1000); use a share of at least 1% (or 0)"
    );
    let text = SHIPPED.replace("mirrored: 100", "mirrored: 0.1");
    assert!(
        error(&text).starts_with(
            "manifests/expectations.yaml:9: identities.tester.mirrored: a share of 0.1% cannot be told"
        ),
        "{}",
        error(&text)
    );
}

#[test]
fn a_file_that_does_not_parse_or_misses_a_field_is_named() {
    assert!(error("service: [").starts_with("manifests/expectations.yaml:1: (file): not YAML"));
    assert_eq!(
        error("service: reviews\nmirror: mirror\n"),
        "manifests/expectations.yaml:1: (file): missing field `identities`"
    );
}

fn topology() -> Topology {
    let yaml = "
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
kind: Service
metadata: {name: mirror}
spec: {selector: {app: mirror}, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
";
    Topology::from_manifests(&ManifestSet::from_str("m.yaml", yaml)).0
}

fn checked(text: &str) -> Result<(), ExpectationsError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, text).expect("write");
    Expectations::load(&path)?.check(&topology())
}

#[test]
fn a_subset_or_service_the_manifests_do_not_have_is_named() {
    checked(SHIPPED).expect("the tutorial's expectations fit its manifests");
    let err = checked(&SHIPPED.replace("{v2: 100}", "{v3: 100}"))
        .expect_err("no v3")
        .to_string();
    assert!(
            err.ends_with(":8: identities.tester.served_by.v3: no DestinationRule defines subset `v3` of `reviews` (defined: v1, v2)"),
            "{err}"
        );
    let err = checked(&SHIPPED.replace("mirror: mirror", "mirror: shadow"))
        .expect_err("no shadow")
        .to_string();
    assert!(
        err.ends_with(
            ":2: mirror: no Service `shadow` in the manifests (Services: reviews, mirror)"
        ),
        "{err}"
    );
}

fn vs(http: &str) -> VirtualService {
    serde_yaml::from_str(&format!(
        "metadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
    ))
    .expect("fixture")
}

const TUTORIAL_ROUTES: &str = "
    - match: [{headers: {end-user: {exact: tester}}}]
      route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: mirror}
      mirrorPercentage: {value: 100.0}
    - route: [{destination: {host: reviews, subset: v1}}]
";

#[test]
fn routing_that_keeps_the_intent_draws_no_warning() {
    let e = parse(SHIPPED).expect("parses");
    assert_eq!(
        e.compare_with_routing(&[&vs(TUTORIAL_ROUTES)]),
        Vec::<(usize, String)>::new()
    );
}

#[test]
fn routing_that_breaks_the_intent_is_said_in_the_readers_words() {
    let e = parse(SHIPPED).expect("parses");
    let said = |routes: &str| -> Vec<(usize, String)> { e.compare_with_routing(&[&vs(routes)]) };
    let to_v3 = TUTORIAL_ROUTES.replacen("subset: v2", "subset: v3", 1);
    assert_eq!(
            said(&to_v3),
            [(
                7,
                "expectations say tester -> v2, but VirtualService reviews (http[0]) sends `end-user: tester` to v3".to_owned()
            )]
        );
    let sampled = TUTORIAL_ROUTES.replace("value: 100.0", "value: 10.0");
    assert_eq!(
            said(&sampled),
            [(
                7,
                "expectations say 100% of tester's requests mirrored, but VirtualService reviews (http[0]) mirrors 10% to `mirror`".to_owned()
            )]
        );
    let canary = TUTORIAL_ROUTES.replace(
            "    - route: [{destination: {host: reviews, subset: v1}}]",
            "    - route: [{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews, subset: v2}, weight: 10}]",
        );
    assert_eq!(
            said(&canary),
            [(
                4,
                "expectations say anonymous -> v1, but VirtualService reviews (http[1]) sends anonymous requests to v1 90%, v2 10%".to_owned()
            )]
        );
}

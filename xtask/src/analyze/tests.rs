use std::path::PathBuf;

use super::cases::*;
use super::coverage::*;
use super::pairing::*;
use super::table::*;
use super::*;

/// istioctl's JSON as `formatting.Print` writes it (`json.MarshalIndent(ms, "", "\t")`,
/// keys sorted as Go sorts a map's): istioctl 1.31-dev on the unknown-subset case.
const ANALYZE_JSON: &str = r#"[
	{
		"code": "IST0101",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Referenced host+subset in destinationrule not found: \"reviews+v3\"",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/unknown-subset.yaml:10"
	},
	{
		"code": "IST0101",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Referenced mirror+subset in destinationrule not found: \"reviews+v9\"",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/unknown-subset.yaml:11"
	}
]
"#;

const LINT_JSON: &str = r#"[
  {
"file": "e2e/tests/fixtures/lint/unknown-subset.yaml",
"line": 10,
"severity": "error",
"code": "unknown-subset",
"message": "VirtualService reviews: spec.http[0].route[0].destination.subset: subset `v3` of host `reviews` is defined by no DestinationRule (defined: v1, v2)"
  },
  {
"file": "e2e/tests/fixtures/lint/unknown-subset.yaml",
"line": 11,
"severity": "error",
"code": "unknown-subset",
"message": "VirtualService reviews: spec.http[0].mirror.subset: subset `v9` of host `reviews` is defined by no DestinationRule (defined: v1, v2)"
  }
]
"#;

/// istioctl 1.31-dev on the bad-percentage case: sorted by text, every reference the
/// document's first line (the validation knows no field).
const PERCENTAGE_JSON: &str = r#"[
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror percentage must have a min value of 0 (it has -1.000000)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror_percent must have a max value of 100 (it has 101)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0106",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0106/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Schema validation error: mirror_percentage must have a max value of 100 (it has 150.000000)",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	},
	{
		"code": "IST0133",
		"documentationUrl": "https://istio.io/v1.31/docs/reference/config/analysis/ist0133/?ref=istioctl-analyze",
		"level": "Warning",
		"message": "Schema validation warning: using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
		"origin": "VirtualService default/reviews",
		"reference": "e2e/tests/fixtures/lint/bad-percentage.yaml:1"
	}
]"#;

const PERCENTAGE_LINT_JSON: &str = r#"[
  {"file": "b.yaml", "line": 13, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[0].mirrorPercentage.value: 150 is outside 0..100"},
  {"file": "b.yaml", "line": 17, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[1].mirrors[0].percentage.value: -1 is outside 0..100"},
  {"file": "b.yaml", "line": 22, "severity": "warning", "code": "deprecated-field",
   "message": "VirtualService reviews: spec.http[2].mirrorPercent: deprecated: use mirrorPercentage: {value: <0..100>}"},
  {"file": "b.yaml", "line": 22, "severity": "error", "code": "percentage-range",
   "message": "VirtualService reviews: spec.http[2].mirrorPercent: 101 is outside 0..100"}
]"#;

fn message(code: &str, text: &str, origin: &str) -> Message {
    Message {
        code: code.into(),
        level: "Error".into(),
        message: text.into(),
        origin: Some(origin.into()),
        reference: None,
    }
}

fn finding(code: &str, text: &str) -> LintFinding {
    LintFinding {
        file: "t.yaml".into(),
        line: 1,
        severity: "error".into(),
        code: code.into(),
        message: text.into(),
    }
}

#[test]
fn istioctls_json_reads_as_messages_with_object_and_line() {
    let messages = parse_analyze(ANALYZE_JSON, "").expect("parses");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].code, "IST0101");
    assert_eq!(messages[0].level, "Error");
    assert_eq!(
        messages[0].message,
        "Referenced host+subset in destinationrule not found: \"reviews+v3\""
    );
    assert_eq!(
        messages[0].object().as_deref(),
        Some("VirtualService reviews")
    );
    assert_eq!(messages[0].line(), Some(10));
    // Nothing found: Go prints `[]` (an empty non-nil slice); `null` reads the same.
    assert!(parse_analyze("[]\n", "").expect("parses").is_empty());
    assert!(parse_analyze("null\n", "").expect("parses").is_empty());
    assert!(parse_analyze("Analyzers found issues", "").is_err());
}

#[test]
fn a_file_istioctl_cannot_read_is_a_parse_message() {
    let stderr = "Error(s) adding files: errors parsing content \"x.yaml\": error processing x.yaml[0]: unable to parse resource with no group, version and kind\n";
    let messages = parse_analyze("[]", stderr).expect("parses");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].code, PARSE);
    assert!(
        messages[0].message.starts_with("errors parsing content"),
        "{messages:?}"
    );
    // Its success line on stderr is no message.
    let ok = "\u{2714} No validation issues found when analyzing namespace: default.\n";
    assert!(parse_analyze("[]", ok).expect("parses").is_empty());
}

#[test]
fn lints_json_reads_as_findings() {
    let findings = parse_lint(LINT_JSON).expect("parses");
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[1].code, "unknown-subset");
    assert_eq!(findings[1].line, 11);
    assert!(findings[1].is_about("VirtualService reviews"));
    assert!(!findings[1].is_about("VirtualService review"));
    assert!(parse_lint("lint: 2 errors").is_err());
}

#[test]
fn each_code_maps_to_lints_rule_or_a_reason() {
    let cases = [
        (
            "IST0101",
            "Referenced mirror host not found: \"ghost\"",
            Some(Coverage::Rule("unknown-host")),
        ),
        (
            "IST0101",
            "Referenced host:port not found: \"mirror:9081\"",
            Some(Coverage::Rule("unknown-port")),
        ),
        (
            "IST0106",
            "Schema validation error: mirror percentage must have a min value of 0 (it has -1.000000)",
            Some(Coverage::Rule("percentage-range")),
        ),
        (
            "IST0106",
            "Schema validation error: HTTP route cannot contain both mirror and mirrors",
            Some(Coverage::Rule("mirror-and-mirrors")),
        ),
        (
            "IST0130",
            "VirtualService rule #1 not used (route without matches defined before).",
            Some(Coverage::Rule("unreachable-rule")),
        ),
        (
            "IST0131",
            "VirtualService rule \"mirrored\" match \"tester-again\" is not used (duplicate/overlapping match in rule \"tester\").",
            Some(Coverage::Rule("ineffective-match")),
        ),
        (
            "IST0131",
            "VirtualService rule #1 match #0 of prefix /api is not used (duplicate/overlapping match in rule #0 of prefix /a on #0).",
            COVERAGE
                .iter()
                .find(|e| e.text == " of prefix ")
                .map(|e| e.coverage),
        ),
        // Another validation error has no rule of lint's: it would be missed.
        (
            "IST0106",
            "Schema validation error: total destination weight = 0",
            None,
        ),
        ("IST9999", "something new", None),
    ];
    for (code, text, expected) in cases {
        let m = message(code, text, "VirtualService default/reviews");
        assert_eq!(coverage(&m), expected, "{code} {text}");
    }
    // Every rule named is one of lint's (e2e/model/src/lint/).
    let lint_source: String = ["mod.rs", "routing.rs", "workloads.rs", "precedence.rs"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(paths::project_root().join("e2e/model/src/lint").join(f))
                .expect("lint source")
        })
        .collect();
    for e in COVERAGE {
        if let Coverage::Rule(rule) = e.coverage {
            assert!(
                lint_source.contains(&format!("\"{rule}\"")),
                "{}: lint has no rule {rule}",
                e.code
            );
        }
    }
}

#[test]
fn lint_covers_the_unknown_subset_case_pairing_each_subset_with_its_finding() {
    let rows = compare(
        &parse_analyze(ANALYZE_JSON, "").expect("analyze"),
        &parse_lint(LINT_JSON).expect("lint"),
    );
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().all(|r| r.verdict == Pairing::Covered),
        "{rows:#?}"
    );
    assert!(rows[0].lint.as_ref().is_some_and(|f| f.line == 10));
    assert!(rows[1].lint.as_ref().is_some_and(|f| f.line == 11));
}

#[test]
fn percentages_pair_by_the_value_they_name_not_by_order() {
    let rows = compare(
        &parse_analyze(PERCENTAGE_JSON, "").expect("analyze"),
        &parse_lint(PERCENTAGE_LINT_JSON).expect("lint"),
    );
    let pairs: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.verdict, Pairing::Covered, "{r:#?}");
            let m = r.analyze.as_ref().expect("a message");
            let tail = m.message.rsplit(' ').next().unwrap_or_default();
            (tail, r.lint.as_ref().expect("a finding").line)
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("-1.000000)", 17),
            ("101)", 22),
            ("150.000000)", 13),
            ("instead", 22)
        ]
    );
}

#[test]
fn a_finding_pairs_once_and_only_on_its_object() {
    let twice = [
        message(
            "IST0101",
            "Referenced host not found: \"a\"",
            "VirtualService default/reviews",
        ),
        message(
            "IST0101",
            "Referenced host not found: \"b\"",
            "VirtualService default/reviews",
        ),
    ];
    let one = [finding(
        "unknown-host",
        "VirtualService reviews: spec.http[0].route[0].destination.host: host `a` names no Service in the manifests",
    )];
    let rows = compare(&twice, &one);
    assert_eq!(rows[0].verdict, Pairing::Covered);
    assert_eq!(rows[1].verdict, Pairing::Missed(Some("unknown-host")));
    // Another object's finding does not count.
    let other = [finding(
        "unknown-host",
        "VirtualService ratings: spec.http[0].route[0].destination.host: host `a` names no Service in the manifests",
    )];
    let rows = compare(&twice[..1], &other);
    assert_eq!(rows[0].verdict, Pairing::Missed(Some("unknown-host")));
    assert_eq!(rows[1].verdict, Pairing::LintOnly);
    // A code COVERAGE does not know is missed, not ignored.
    let rows = compare(&[message("IST9999", "new", "Gateway default/g")], &[]);
    assert_eq!(rows[0].verdict, Pairing::Missed(None));
    // The offline subset message pairs with lint's finding where lint has one.
    let rows = compare(
        &[message(
            "IST0173",
            "The Subset v7 defined in the DestinationRule does not select any pods.",
            "DestinationRule default/mirror",
        )],
        &[finding(
            "subset-selects-nothing",
            "DestinationRule mirror: spec.subsets[0].labels: subset `v7` of `mirror` selects no Deployment's pods (version=v7)",
        )],
    );
    assert_eq!(rows[0].verdict, Pairing::Covered);
}

#[test]
fn only_a_mirroring_cases_misses_fail_the_command() {
    let missed = || PairedRow {
        analyze: Some(message("IST9999", "new", "Gateway default/g")),
        lint: None,
        verdict: Pairing::Missed(None),
    };
    let case = |name: &str| AnalyzeCase {
        name: name.into(),
        lint: Vec::new(),
        analyze: Vec::new(),
    };
    let mirroring = CaseOutcome {
        case: case("unknown-host"),
        rows: vec![missed()],
    };
    let other = CaseOutcome {
        case: case("subset-selects-nothing"),
        rows: vec![missed()],
    };
    assert_eq!(mirroring.gaps().len(), 1);
    assert!(other.gaps().is_empty());
    let md = table(&[mirroring, other]);
    assert!(
        md.contains("| unknown-host (mirroring) | `IST9999` Error: new (Gateway g) | nothing | **missed** (no entry in COVERAGE) |"),
        "{md}"
    );
}

#[test]
fn the_table_names_a_case_once_and_says_why_lint_is_silent() {
    let mut messages = parse_analyze(ANALYZE_JSON, "").expect("analyze");
    messages.push(Message {
        level: "Info".into(),
        ..message(
            "IST0131",
            "VirtualService rule #1 match #0 of prefix /a/b is not used (duplicate/overlapping match in rule #0 of prefix /a on #0).",
            "VirtualService default/reviews",
        )
    });
    let case = |name: &str| AnalyzeCase {
        name: name.into(),
        lint: Vec::new(),
        analyze: Vec::new(),
    };
    let outcome = CaseOutcome {
        case: case("unknown-subset"),
        rows: compare(&messages, &parse_lint(LINT_JSON).expect("lint")),
    };
    let nothing = CaseOutcome {
        case: case("quiet"),
        rows: Vec::new(),
    };
    let md = table(&[outcome, nothing]);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        "| case | istioctl analyze | cargo xtask lint | verdict |"
    );
    assert!(lines[2].starts_with("| unknown-subset (mirroring) | `IST0101` Error: Referenced host+subset in destinationrule not found: \"reviews+v3\" (VirtualService reviews, line 10) | `unknown-subset` error (line 10): VirtualService reviews: spec.http[0].route[0].destination.subset:"), "{md}");
    assert!(lines[2].ends_with(" | lint covers |"), "{md}");
    assert!(lines[3].starts_with("|  | `IST0101`"), "{md}");
    assert!(lines[4].starts_with("|  | `IST0131` Info: "), "{md}");
    assert!(
        lines[4].ends_with("| nothing | not linted: IST0131 below |"),
        "{md}"
    );
    assert_eq!(lines[5], "| quiet | nothing | nothing | agree |");
    assert!(
        md.contains("\n- IST0131: a URI prefix that an earlier rule's prefix covers"),
        "{md}"
    );
}

#[test]
fn the_cases_are_the_manifests_the_corpus_and_the_tutorial() {
    let root = paths::project_root();
    let cases = cases(&root).expect("cases");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"manifests"));
    assert_eq!(names.last(), Some(&"tutorial-mirroring"));
    // Every mirroring case exists.
    for name in MIRRORING {
        assert!(names.contains(name), "{name} is no case: {names:?}");
    }
    // istioctl gets the manifests lint loads: no expectations file, but every object.
    let shipped = &cases[0].analyze;
    assert!(
        shipped.iter().all(|p| !p.ends_with("expectations.yaml")),
        "{shipped:?}"
    );
    assert!(shipped.contains(&PathBuf::from("manifests/routing/virtual-service.yaml")));
    // A corpus case is base.yaml with the case, for both tools.
    let subset = cases
        .iter()
        .find(|c| c.name == "unknown-subset")
        .expect("case");
    assert_eq!(subset.lint, subset.analyze);
    assert_eq!(
        subset.lint,
        [
            PathBuf::from(CORPUS).join("base.yaml"),
            PathBuf::from(CORPUS).join("unknown-subset.yaml")
        ]
    );
}

#[test]
fn a_nested_manifest_set_is_not_analyzed_with_its_parent() {
    let root = tempfile::tempdir().expect("tempdir");
    let manifests = root.path().join("manifests");
    std::fs::create_dir_all(manifests.join("gateway-api")).expect("dirs");
    std::fs::create_dir_all(manifests.join("more")).expect("dirs");
    for file in [
        "routing.yaml",
        "gateway-api/routes.yaml",
        "gateway-api/expectations.yaml",
        "more/services.yaml",
    ] {
        std::fs::write(manifests.join(file), "kind: Service\n").expect("write");
    }
    let files = yaml_files(root.path(), std::path::Path::new("manifests")).expect("files");
    assert_eq!(
        files,
        [
            PathBuf::from("manifests/more/services.yaml"),
            PathBuf::from("manifests/routing.yaml"),
        ]
    );
}

//! The model is pure by its manifest: none of its dependencies runs an async runtime, talks
//! to a cluster or over HTTP, or is a test harness, so nothing in it can do I/O behind the
//! runner's back.

/// Crates that would let the model wait, connect or run trials.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "kube",
    "kube-client",
    "kube-runtime",
    "reqwest",
    "hyper",
    "hyper-util",
    "http",
    "libtest-mimic",
    "futures-util",
];

/// The names under `[dependencies]` (and any `[target.*.dependencies]`) of a Cargo.toml.
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]"
                || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn the_model_depends_on_no_runtime_client_or_harness() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("the model's Cargo.toml");
    let dependencies = normal_dependencies(&manifest);
    assert!(
        dependencies.iter().any(|d| d == "serde"),
        "the parser found no dependencies in {dependencies:?}"
    );
    let impure: Vec<&String> = dependencies
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(impure.is_empty(), "the model depends on {impure:?}");
}

/// Every package the lockfile lets `root` pull in, itself included (dev-dependencies of
/// `root` too: the lockfile does not tell them apart, which only makes this stricter).
fn locked_closure(lock: &str, root: &str) -> std::collections::BTreeSet<String> {
    let mut dependencies: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for package in lock.split("[[package]]").skip(1) {
        let Some(name) = package
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_owned())
        else {
            continue;
        };
        let listed = package
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or(""))
            .unwrap_or("");
        // An entry is `"name"` or `"name version"` (two versions of one crate are locked).
        let names = listed
            .split(',')
            .filter_map(|e| e.trim().trim_matches('"').split(' ').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        dependencies.entry(name).or_default().extend(names);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(dependencies.get(&name).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn nothing_the_model_pulls_in_is_a_runtime_client_or_harness() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    let closure = locked_closure(&lock, "mirror-e2e-model");
    assert!(closure.contains("serde_json"), "the closure is {closure:?}");
    let impure: Vec<&String> = closure
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(impure.is_empty(), "the model pulls in {impure:?}");
    let runner = locked_closure(&lock, "e2e");
    assert!(
        runner.contains("tokio"),
        "the closure reader misses what the runner pulls in: {runner:?}"
    );
}

#[test]
fn the_dependency_reader_sees_a_forbidden_crate() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nserde = \"1\"\ntokio = { version = \"1\" }\n\n[dev-dependencies]\nhyper = \"1\"\n";
    assert_eq!(normal_dependencies(manifest), ["serde", "tokio"]);
}

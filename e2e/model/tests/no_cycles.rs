//! No module of the model or of the runner (`e2e/src`) depends, through others, on itself:
//! each concern can be read, changed and tested from its own module down. A module's
//! dependencies are the `crate::`, `super::` and `self::` paths of its uses, code and doc
//! links, tests included; a module's paths to its ancestors and its own submodules are
//! not counted (a parent declares its children, a child sees its parent).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below its crate root (`["envoy", "routes"]`).
type Module = Vec<String>;

/// Which crate of a `src` directory: the library (`lib.rs` and what it declares) or the
/// binary (`main.rs` and what it declares); their `crate::` paths are not the same crate.
#[derive(Clone, Copy, PartialEq)]
enum Crate {
    Library,
    Binary,
}

/// Every module of the crate `which` whose `src` is `root`, by its file.
fn modules(root: &Path, which: Crate) -> BTreeMap<Module, PathBuf> {
    let binary: BTreeSet<String> = std::fs::read_to_string(root.join("main.rs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("below the root");
            let mut module: Module = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let of_binary =
                module == ["main"] || module.first().is_some_and(|m| binary.contains(m));
            if of_binary != (which == Crate::Binary) || module == ["lib"] && which == Crate::Binary
            {
                continue;
            }
            if module == ["lib"] || module == ["main"] {
                module.clear();
            }
            out.insert(module, path);
        }
    }
    out
}

/// The text without line comments, doc comments kept (their links are dependencies too).
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[i..].starts_with("///") && !line[i..].starts_with("//!") => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(&format!("{prefix}{}", p.trim())))
        .collect()
}

/// Every path a source names from its crate: its uses, expanded, and the `crate::`,
/// `super::` and `self::` paths anywhere in its code and docs.
fn named_paths(source: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("use ") {
        let at_word = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let Some(end) = rest[i..].find(';') else {
            break;
        };
        if at_word {
            let tree: String = rest[i + 4..i + end].split_whitespace().collect();
            paths.extend(expand(&tree));
        }
        rest = &rest[i + 4..];
    }
    for start in ["crate::", "super::", "self::"] {
        let mut rest = source;
        while let Some(i) = rest.find(start) {
            let at_word = i == 0 || {
                let b = rest.as_bytes()[i - 1];
                !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            };
            let path: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if at_word {
                paths.push(path.trim_end_matches(':').to_owned());
            }
            rest = &rest[i + start.len()..];
        }
    }
    paths
}

/// The module a path names from `here`: its longest prefix that is a module.
fn resolve(path: &str, here: &Module, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let path = path.split(" as ").next().unwrap_or(path);
    let mut segments = path.split("::").map(str::trim).filter(|s| !s.is_empty());
    let mut base: Module = match segments.next()? {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    let mut segments = segments.peekable();
    while segments.peek() == Some(&"super") {
        segments.next();
        base.pop();
    }
    let mut best = base.clone();
    for segment in segments {
        base.push(segment.to_owned());
        if known.contains_key(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// Each module's dependencies on modules outside it: its own, and its submodules' (what a
/// child needs, its parent needs to be read), to modules that are not its ancestors.
fn dependencies(root: &Path, which: Crate) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(root, which);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &known {
        let source = without_comments(&std::fs::read_to_string(file).expect("source"));
        for path in named_paths(&source) {
            let Some(target) = resolve(&path, module, &known) else {
                continue;
            };
            // The module and each of its ancestors that `target` is outside of.
            for depth in (1..=module.len()).rev() {
                let holder = &module[..depth];
                if target.starts_with(holder) || holder.starts_with(&target) {
                    break;
                }
                graph
                    .entry(holder.to_vec())
                    .or_default()
                    .insert(target.clone());
            }
            graph.entry(module.clone()).or_default();
        }
        graph.entry(module.clone()).or_default();
    }
    graph
}

/// A cycle of the graph, if it has one, as the modules along it.
fn a_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|m| m == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn named(cycle: &[Module]) -> String {
    cycle
        .iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[test]
fn no_module_of_the_model_or_the_runner_depends_on_itself() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = [
        (e2e.join("model/src"), Crate::Library),
        (e2e.join("src"), Crate::Library),
        (e2e.join("src"), Crate::Binary),
        (e2e.join("contract/src"), Crate::Library),
        (e2e.join("../xtask/src"), Crate::Binary),
    ];
    for (root, which) in crates {
        let graph = dependencies(&root, which);
        assert!(graph.len() > 5, "{}: found {graph:?}", root.display());
        if let Some(cycle) = a_cycle(&graph) {
            panic!("{}: an import cycle: {}", root.display(), named(&cycle));
        }
    }
}

#[test]
fn the_reader_sees_a_cycle_through_grouped_uses_and_doc_links() {
    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("b")).expect("dir");
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").expect("lib");
    std::fs::write(src.join("a.rs"), "use crate::{b::{x, y}, other};\n").expect("a");
    // b's child names c: b needs c to be read.
    std::fs::write(
        src.join("b/mod.rs"),
        "// crate::a in a comment does not count\nmod d;\npub use d::x;\n",
    )
    .expect("b");
    std::fs::write(
        src.join("b/d.rs"),
        "/// Made by [`crate::c::make`].\npub fn x() {}\n",
    )
    .expect("d");
    std::fs::write(src.join("c.rs"), "pub fn make() { super::a::run() }\n").expect("c");
    let graph = dependencies(src, Crate::Library);
    let cycle = a_cycle(&graph).expect("a -> b -> c -> a");
    assert_eq!(named(&cycle), "a -> b -> c -> a", "{graph:?}");
    std::fs::write(src.join("c.rs"), "pub fn make() {}\n").expect("c");
    assert_eq!(a_cycle(&dependencies(src, Crate::Library)), None);
    // A binary's modules are read from main.rs, its crate root, the same way.
    std::fs::rename(src.join("lib.rs"), src.join("main.rs")).expect("main");
    std::fs::write(src.join("c.rs"), "pub fn make() { super::a::run() }\n").expect("c");
    let graph = dependencies(src, Crate::Binary);
    assert_eq!(
        a_cycle(&graph).map(|c| named(&c)).as_deref(),
        Some("a -> b -> c -> a")
    );
}

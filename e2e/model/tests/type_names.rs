//! No two types of the workspace share a name: a reader who meets `Gateway` or `Istiod`
//! knows which one it is without looking at the imports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, but not in build output.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n == "target" || n == "fixtures")
        {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of the structs, enums and traits `source` declares at the start of a line.
fn declared(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let rest = ["struct ", "enum ", "trait "]
                .iter()
                .find_map(|k| line.strip_prefix(k))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            name.starts_with(char::is_uppercase).then_some(name)
        })
        .collect()
}

#[test]
fn no_two_types_of_the_workspace_share_a_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for crate_dir in ["e2e", "xtask"] {
        sources(&root.join(crate_dir), &mut files);
    }
    assert!(files.len() > 100, "found {} files", files.len());
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        for name in declared(&text) {
            let at = file
                .strip_prefix(&root)
                .unwrap_or(file)
                .display()
                .to_string();
            seen.entry(name).or_default().push(at);
        }
    }
    let shared: Vec<String> = seen
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(name, at)| format!("{name}: {}", at.join(", ")))
        .collect();
    assert!(
        shared.is_empty(),
        "types sharing a name:\n{}",
        shared.join("\n")
    );
}

#[test]
fn the_reader_finds_declarations_whatever_their_visibility() {
    let found = declared(
        "pub struct A {\n}\n    pub(crate) enum B { X }\nstruct C;\ntrait D {}\n// struct E\nlet struct_ = 1;\nimpl F {}\n",
    );
    assert_eq!(found, ["A", "B", "C", "D"]);
}

//! The builder behind every `to_args`: one method per kind of flag, so each struct's
//! `argv` reads as the list of its flags.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// A command line in the making.
#[derive(Default)]
pub(super) struct Argv(pub(super) Vec<String>);

impl Argv {
    pub(super) fn flag(&mut self, name: &str, set: bool) {
        if set {
            self.0.push(name.to_owned());
        }
    }

    pub(super) fn value(&mut self, name: &str, value: impl Display) {
        self.0.extend([name.to_owned(), value.to_string()]);
    }

    pub(super) fn opt(&mut self, name: &str, value: Option<impl Display>) {
        if let Some(v) = value {
            self.value(name, v);
        }
    }

    pub(super) fn path(&mut self, name: &str, path: &Path) {
        self.value(name, path.display());
    }

    pub(super) fn opt_path(&mut self, name: &str, path: Option<&PathBuf>) {
        if let Some(p) = path {
            self.path(name, p);
        }
    }

    /// Positional paths; `--` first when one would read as a flag.
    pub(super) fn paths(&mut self, paths: &[PathBuf]) {
        if paths.iter().any(|p| p.to_string_lossy().starts_with('-')) {
            self.0.push("--".to_owned());
        }
        self.0.extend(paths.iter().map(|p| p.display().to_string()));
    }

    /// The harness's arguments, after `--`.
    pub(super) fn rest(&mut self, rest: &[String]) {
        if !rest.is_empty() {
            self.0.push("--".to_owned());
            self.0.extend(rest.iter().cloned());
        }
    }
}

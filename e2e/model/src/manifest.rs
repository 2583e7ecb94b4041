//! Reading YAML manifests from files and directories, keeping where each field stands.
//!
//! serde_yaml gives values but no positions; saphyr's event parser gives positions. Each
//! file is parsed by both, and a [`Document`] pairs the value with a [`Positions`] index so
//! that a finding can name `<file>:<line>` and the YAML path of the field.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use serde_json::Value;

/// The file beside the manifests that says what the mesh must do (read by
/// `expectations`): not an object of the cluster, so a directory's load skips it.
pub const EXPECTATIONS_FILE: &str = "expectations.yaml";

/// Errors reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A path given on the command line holds no YAML file.
    #[error("{path}: no .yaml or .yml files found")]
    Empty {
        /// The path given.
        path: PathBuf,
    },
}

/// One step of a YAML path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A YAML path such as `spec.http[0].mirror`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Segment>);

impl YamlPath {
    /// The path with one more key.
    pub fn key(&self, key: &str) -> YamlPath {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    /// The path with one more index.
    pub fn index(&self, index: usize) -> YamlPath {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// Parses the dotted form used in code, e.g. `spec.http[0].mirror`.
    pub fn parse(text: &str) -> YamlPath {
        let mut path = YamlPath::default();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                path = path.key(&rest[..open]);
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    if let Ok(i) = rest[1..close].parse() {
                        path = path.index(i);
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                path = path.key(rest);
            }
        }
        path
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Line numbers of the nodes of one YAML document, by path.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    start_line: usize,
    lines: HashMap<YamlPath, usize>,
}

impl Positions {
    /// The line of the node at `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &YamlPath) -> usize {
        let mut segments = path.0.clone();
        loop {
            if let Some(line) = self.lines.get(&YamlPath(segments.clone())) {
                return *line;
            }
            if segments.pop().is_none() {
                return self.start_line;
            }
        }
    }
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from.
    pub file: PathBuf,
    /// The document's value, as JSON (the shape the Kubernetes API uses).
    pub value: Value,
    /// Where each node stands.
    pub positions: Positions,
}

impl Document {
    /// `kind` of the object, or "" when absent.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `metadata.name` of the object, or "" when absent.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether the object is of the Gateway API group (`gateway.networking.k8s.io/...`): its
    /// `Gateway` is not Istio's.
    pub fn is_gateway_api(&self) -> bool {
        let api_version = self.value.get("apiVersion").and_then(Value::as_str);
        crate::gateway_api::is_gateway_api(api_version.unwrap_or(""))
    }

    /// The line of the node at `path`.
    pub fn line_of(&self, path: &YamlPath) -> usize {
        self.positions.line_of(path)
    }

    /// Whether this is provisioning configuration kept beside the manifests (kind's cluster
    /// config, read by `kind create`; the IstioOperator, read by `istioctl install`): it says
    /// how to provision, and is never applied to a cluster as an object of the run.
    pub fn is_provider_configuration(&self) -> bool {
        let api_version = self
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let group = api_version.split_once('/').map_or("", |(group, _)| group);
        PROVIDER_CONFIGURATION_GROUPS.contains(&group)
    }
}

/// The API groups of provisioning configuration (see [`Document::is_provider_configuration`]).
pub const PROVIDER_CONFIGURATION_GROUPS: [&str; 2] = ["kind.x-k8s.io", "install.istio.io"];

/// All documents read from a set of paths, and the files that failed to parse.
#[derive(Debug, Default)]
pub struct ManifestSet {
    /// Parsed documents, in file order then document order; empty documents are dropped.
    pub documents: Vec<Document>,
    /// Files that are not valid YAML (each a [`ManifestError::Syntax`]).
    pub syntax_errors: Vec<ManifestError>,
}

impl ManifestSet {
    /// Reads every `.yaml`/`.yml` file under the given files and directories, sorted by path
    /// (in a directory, not `expectations.yaml`: the expectations are no manifest).
    ///
    /// A subdirectory that holds its own `expectations.yaml` is a separate manifest set (e.g.
    /// `manifests/gateway-api/`): loading its parent skips it whole; name it to load it.
    pub fn load(paths: &[PathBuf]) -> Result<ManifestSet, ManifestError> {
        ManifestSet::load_edited(paths, str::to_owned)
    }

    /// [`ManifestSet::load`], each file's text passed through `edit` before it is parsed
    /// (parity puts a variant's namespace where it says `${NS}`).
    pub fn load_edited(
        paths: &[PathBuf],
        edit: impl Fn(&str) -> String,
    ) -> Result<ManifestSet, ManifestError> {
        let mut files = Vec::new();
        for path in paths {
            let found = yaml_files(path)?;
            if found.is_empty() {
                return Err(ManifestError::Empty { path: path.clone() });
            }
            files.extend(found);
        }
        let mut set = ManifestSet::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.clone(),
                source,
            })?;
            match parse_documents(&file, &edit(&text)) {
                Ok(docs) => set.documents.extend(docs),
                Err(e) => set.syntax_errors.push(e),
            }
        }
        Ok(set)
    }

    /// Parses documents from text, as if read from `file` (for tests and generated input).
    pub fn from_str(file: &str, text: &str) -> ManifestSet {
        let mut set = ManifestSet::default();
        match parse_documents(Path::new(file), text) {
            Ok(docs) => set.documents = docs,
            Err(e) => set.syntax_errors.push(e),
        }
        set
    }

    /// Documents of one kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.documents.iter().filter(move |d| d.kind() == kind)
    }
}

/// Whether a directory is a manifest set of its own: it has its own expectations file.
pub fn is_manifest_set(dir: &Path) -> bool {
    dir.join(EXPECTATIONS_FILE).is_file()
}

fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let p = entry.path();
        if p.is_dir() {
            // A nested set (its own expectations) is run on its own, never with its parent's.
            if !is_manifest_set(&p) {
                out.extend(yaml_files(&p)?);
            }
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            && p.file_name().and_then(|n| n.to_str()) != Some(EXPECTATIONS_FILE)
        {
            // The expectations beside the manifests say what the mesh must do; they are
            // not an object of the cluster (`expectations`).
            out.push(p);
        }
    }
    Ok(out)
}

fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, ManifestError> {
    let syntax = |line: usize, message: String| ManifestError::Syntax {
        path: file.to_owned(),
        line,
        message,
    };
    let mut values = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(de).map_err(|e| {
            let line = e.location().map_or(1, |l| l.line());
            syntax(line, e.to_string())
        })?;
        values.push(value);
    }
    let positions = index_positions(text).map_err(|(line, message)| syntax(line, message))?;
    // Both parsers see the same documents; empty ones (a lone `---`) are dropped together.
    let docs = values
        .into_iter()
        .zip(positions)
        .filter(|(value, _)| !value.is_null())
        .map(|(value, positions)| Document {
            file: file.to_owned(),
            value,
            positions,
        })
        .collect();
    Ok(docs)
}

/// Where we are while walking events: inside a mapping (waiting for a key or a value) or
/// inside a sequence (with the next index).
enum Frame {
    Mapping {
        path: YamlPath,
        pending_key: Option<String>,
    },
    Sequence {
        path: YamlPath,
        next: usize,
    },
}

fn index_positions(text: &str) -> Result<Vec<Positions>, (usize, String)> {
    let mut docs = Vec::new();
    let mut current = Positions::default();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| (e.marker().line(), e.to_string()))?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                current = Positions {
                    start_line: line,
                    lines: HashMap::new(),
                };
                stack.clear();
            }
            Event::DocumentEnd => docs.push(std::mem::take(&mut current)),
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping { pending_key, path }) = stack.last_mut()
                    && pending_key.is_none()
                {
                    let key_path = path.key(&value);
                    current.lines.insert(key_path, line);
                    *pending_key = Some(value.into_owned());
                    continue;
                }
                node_path(&mut stack, &mut current, line);
            }
            Event::Alias(_) => {
                node_path(&mut stack, &mut current, line);
            }
            Event::MappingStart(..) => {
                let path = node_path(&mut stack, &mut current, line);
                stack.push(Frame::Mapping {
                    path,
                    pending_key: None,
                });
            }
            Event::SequenceStart(..) => {
                let path = node_path(&mut stack, &mut current, line);
                stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    Ok(docs)
}

/// Records a value node's line and returns its path, advancing the parent frame.
fn node_path(stack: &mut [Frame], positions: &mut Positions, line: usize) -> YamlPath {
    let path = match stack.last_mut() {
        None => YamlPath::default(),
        Some(Frame::Mapping { path, pending_key }) => {
            // The key's own line was recorded when the key was read; keep it.
            let key = pending_key.take().unwrap_or_default();
            return path.key(&key);
        }
        Some(Frame::Sequence { path, next }) => {
            let p = path.index(*next);
            *next += 1;
            p
        }
    };
    positions.lines.entry(path.clone()).or_insert(line);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_istioctl_configuration_is_provider_configuration_and_objects_are_not() {
        let set = ManifestSet::from_str(
            "m.yaml",
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n---\napiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n---\napiVersion: v1\nkind: Service\n",
        );
        let provider: Vec<bool> = set
            .documents
            .iter()
            .map(Document::is_provider_configuration)
            .collect();
        assert_eq!(provider, [true, true, false, false]);
    }

    const TWO_DOCS: &str = "\
# a comment
apiVersion: v1
kind: Service
metadata:
  name: a
spec:
  ports:
    - port: 9080
      name: http
---
---
kind: Deployment
metadata:
  name: b
";

    #[test]
    fn documents_keep_their_lines() {
        let set = ManifestSet::from_str("x.yaml", TWO_DOCS);
        assert!(set.syntax_errors.is_empty());
        assert_eq!(set.documents.len(), 2, "the empty document is dropped");
        let svc = &set.documents[0];
        assert_eq!(svc.name(), "a");
        assert_eq!(svc.line_of(&YamlPath::parse("spec.ports[0].name")), 9);
        assert_eq!(svc.line_of(&YamlPath::parse("spec.ports[0]")), 8);
        assert_eq!(svc.line_of(&YamlPath::parse("spec.ports[0].missing")), 8);
        let deploy = &set.documents[1];
        assert_eq!(deploy.kind(), "Deployment");
        assert_eq!(deploy.line_of(&YamlPath::parse("metadata.name")), 14);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let set = ManifestSet::from_str("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n");
        let err = set.syntax_errors[0].to_string();
        assert!(err.starts_with("bad.yaml:"), "{err}");
        assert!(set.documents.is_empty());
    }

    #[test]
    fn a_subdirectory_with_its_own_expectations_is_a_set_its_parent_skips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |rel: &str, text: &str| {
            let file = dir.path().join(rel);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
        };
        write("a.yaml", "kind: Service\nmetadata: {name: a}\n");
        write(EXPECTATIONS_FILE, "checks: []\n");
        write("plain/b.yaml", "kind: Service\nmetadata: {name: b}\n");
        write("nested/c.yaml", "kind: Service\nmetadata: {name: c}\n");
        write(
            "nested/deeper/d.yaml",
            "kind: Service\nmetadata: {name: d}\n",
        );
        write(&format!("nested/{EXPECTATIONS_FILE}"), "checks: []\n");
        let names = |path: PathBuf| -> Vec<String> {
            let set = ManifestSet::load(&[path]).expect("loads");
            set.documents.iter().map(|d| d.name().to_owned()).collect()
        };
        assert!(is_manifest_set(&dir.path().join("nested")));
        assert!(!is_manifest_set(&dir.path().join("plain")));
        assert_eq!(names(dir.path().to_owned()), ["a", "b"]);
        assert_eq!(names(dir.path().join("nested")), ["c", "d"]);
    }

    #[test]
    fn path_display_round_trips() {
        let p = YamlPath::parse("spec.http[0].match[1].headers");
        assert_eq!(p.to_string(), "spec.http[0].match[1].headers");
    }
}

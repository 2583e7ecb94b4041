//! The expectations file: what the mesh must do, as data (`manifests/expectations.yaml`, or
//! `--expectations FILE`), from which the suite derives its checks and their names.
//!
//! ```yaml
//! service: reviews          # the Service whose routing is tested
//! mirror: mirror            # the Service that receives the shadow traffic
//! identities:
//!   anonymous:              # no login
//!     served_by: {v1: 100}  # subset -> percent of requests
//!     mirrored: 0           # percent of requests mirrored
//!   tester:                 # logs in as this user through productpage
//!     served_by: {v2: 100}
//!     mirrored: 100
//!     mirror_sees: {end-user: tester}   # headers every mirrored request must carry
//! ```
//!
//! Every error names the file, the line and the field, before anything starts.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::istio::{HttpRoute, StringMatch, VirtualService};
use crate::manifest::{Document, ManifestSet, Positions, YamlPath};
use crate::topology::Topology;

/// The file name the expectations have beside the manifests.
pub const FILE_NAME: &str = crate::manifest::EXPECTATIONS_FILE;

/// The identity that does not log in.
pub const ANONYMOUS: &str = "anonymous";

/// Errors reading or checking an expectations file.
#[derive(Debug, thiserror::Error)]
pub enum ExpectationsError {
    /// The file could not be read.
    #[error("cannot read expectations {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what an expectations file is.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the field (or of its nearest parent).
        line: usize,
        /// The field, as a path (`identities.tester.served_by.v3`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// What one identity's requests must get.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityExpectation {
    /// `anonymous`, or the user it logs in as.
    pub name: String,
    /// Subset -> percent of requests, in the file's order.
    pub served_by: Vec<(String, f64)>,
    /// Percent of requests mirrored.
    pub mirrored: f64,
    /// Headers every mirrored request must carry, in the file's order.
    pub mirror_sees: Vec<(String, String)>,
    /// The line of its entry in the file.
    pub line: usize,
}

impl IdentityExpectation {
    /// The user it logs in as, or `None` for anonymous.
    pub fn user(&self) -> Option<&str> {
        (self.name != ANONYMOUS).then_some(self.name.as_str())
    }

    /// The only subset serving it, when one serves all of its requests.
    pub fn single_subset(&self) -> Option<&str> {
        match self.served_by.as_slice() {
            [(subset, p)] if (*p - 100.0).abs() < f64::EPSILON => Some(subset),
            _ => None,
        }
    }
}

/// The behaviour under test.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Where they were read from.
    pub path: PathBuf,
    /// The Service whose routing is tested.
    pub service: String,
    /// The Service that receives the shadow traffic.
    pub mirror: String,
    /// The identities, in the file's order.
    pub identities: Vec<IdentityExpectation>,
    /// Where each field stands in the file, for errors found after reading it.
    positions: Positions,
}

impl Expectations {
    /// Reads and checks the file (syntax, fields, percentages); see [`Expectations::check`]
    /// for what the manifests must agree with.
    pub fn load(path: &Path) -> Result<Expectations, ExpectationsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExpectationsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Expectations::parse(path, &text)
    }

    /// Parses `text` as the file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Expectations, ExpectationsError> {
        let set = ManifestSet::from_str(&path.display().to_string(), text);
        let invalid = |line: usize, field: &str, message: String| ExpectationsError::Invalid {
            path: path.to_owned(),
            line,
            field: field.to_owned(),
            message,
        };
        if let Some(e) = set.syntax_errors.first() {
            return Err(invalid(1, "(file)", format!("not YAML: {e}")));
        }
        let [doc] = set.documents.as_slice() else {
            return Err(invalid(
                1,
                "(file)",
                format!("one YAML document expected, found {}", set.documents.len()),
            ));
        };
        let reader = Reader { doc, path };
        reader.expectations()
    }

    /// Checks the expectations against the manifests: the Services exist, every subset is
    /// one the DestinationRules define for the service. Errors name the file, line and
    /// field.
    pub fn check(&self, topology: &Topology) -> Result<(), ExpectationsError> {
        let invalid = |field: YamlPath, message: String| ExpectationsError::Invalid {
            path: self.path.clone(),
            line: self.positions.line_of(&field),
            field: field.to_string(),
            message,
        };
        let known: Vec<String> = topology
            .services
            .iter()
            .filter_map(|s| s.object.metadata.name.clone())
            .collect();
        for (field, service) in [("service", &self.service), ("mirror", &self.mirror)] {
            if topology.service(service).is_none() {
                return Err(invalid(
                    YamlPath::default().key(field),
                    format!(
                        "no Service `{service}` in the manifests (Services: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        let defined: Vec<String> = topology
            .subsets_of(&self.service)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for identity in &self.identities {
            for (subset, _) in &identity.served_by {
                if !defined.contains(subset) {
                    return Err(invalid(
                        YamlPath::default()
                            .key("identities")
                            .key(&identity.name)
                            .key("served_by")
                            .key(subset),
                        format!(
                            "no DestinationRule defines subset `{subset}` of `{}` (defined: {})",
                            self.service,
                            if defined.is_empty() {
                                "none".to_owned()
                            } else {
                                defined.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where the routing under test disagrees with the expectations, in words a reviewer
    /// reads, with the line of the identity concerned: lint warnings (the point is to catch
    /// a routing change that breaks intent).
    pub fn compare_with_routing(
        &self,
        virtual_services: &[&VirtualService],
    ) -> Vec<(usize, String)> {
        let Some(vs) = virtual_services
            .iter()
            .find(|vs| vs.spec.hosts.iter().any(|h| host_names(h, &self.service)))
        else {
            return vec![(
                1,
                format!(
                    "expectations test `{}`, but no VirtualService routes it",
                    self.service
                ),
            )];
        };
        let vs_name = vs.metadata.name.clone().unwrap_or_default();
        let mut out = Vec::new();
        for identity in &self.identities {
            let who = match identity.user() {
                Some(user) => format!("`end-user: {user}`"),
                None => "anonymous requests".to_owned(),
            };
            let Some((index, route)) = vs
                .spec
                .http
                .iter()
                .enumerate()
                .find(|(_, r)| matches_identity(r, identity.user()))
            else {
                out.push((identity.line, format!(
                    "expectations say {} -> {}, but no route of VirtualService {vs_name} matches {who}",
                    identity.name,
                    served_by_words(&identity.served_by)
                )));
                continue;
            };
            let routed = route_split(route, &self.service);
            if !same_split(&routed, &identity.served_by) {
                out.push((identity.line, format!(
                    "expectations say {} -> {}, but VirtualService {vs_name} (http[{index}]) sends {who} to {}",
                    identity.name,
                    served_by_words(&identity.served_by),
                    served_by_words(&routed)
                )));
            }
            let mirrored = mirrored_percent(route, &self.mirror);
            if (mirrored - identity.mirrored).abs() > 1e-9 {
                out.push((identity.line, format!(
                    "expectations say {}% of {}'s requests mirrored, but VirtualService {vs_name} (http[{index}]) mirrors {mirrored}% to `{}`",
                    identity.mirrored, identity.name, self.mirror
                )));
            }
        }
        out
    }
}

impl Expectations {
    /// The rules of `vs` that no identity's requests reach first, each with why, in a
    /// reader's words. Rules after a catch-all are left out: lint's `unreachable-rule`
    /// names them already.
    pub fn unexercised_rules(&self, vs: &VirtualService) -> Vec<(usize, String)> {
        let http = &vs.spec.http;
        let reached: Vec<usize> = self
            .identities
            .iter()
            .filter_map(|id| http.iter().position(|r| matches_identity(r, id.user())))
            .collect();
        let first_catch_all = http.iter().position(|r| r.matches.is_empty());
        http.iter()
            .enumerate()
            .filter(|(i, _)| !reached.contains(i) && first_catch_all.is_none_or(|c| *i <= c))
            .map(|(i, r)| {
                let rule = match r.name.as_deref() {
                    Some(name) => format!("rule \"{name}\""),
                    None => format!("rule http[{i}]"),
                };
                let why = if r.matches.is_empty() {
                    format!("{rule} takes the requests no earlier rule matches, but every identity's requests match an earlier rule")
                } else {
                    format!(
                        "{rule} matches {}, which no identity's requests carry",
                        r.matches
                            .iter()
                            .map(describe_match)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                };
                (i, why)
            })
            .collect()
    }
}

/// A match condition in a reader's words: `header x-canary and uri prefix /api`.
fn describe_match(m: &crate::istio::HttpMatchRequest) -> String {
    let value = |sm: &StringMatch| match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(e), _, _) => format!("= {e:?}"),
        (_, Some(p), _) => format!("prefix {p:?}"),
        (_, _, Some(r)) => format!("regex {r:?}"),
        _ => "present".to_owned(),
    };
    let mut parts = Vec::new();
    for (name, sm) in m.headers.iter().flatten() {
        parts.push(if name == "end-user" {
            format!("header end-user {}", value(sm))
        } else {
            format!("header {name}")
        });
    }
    for (name, _) in m.query_params.iter().flatten() {
        parts.push(format!("query parameter {name}"));
    }
    for (what, sm) in [
        ("uri", &m.uri),
        ("method", &m.method),
        ("authority", &m.authority),
        ("scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            parts.push(format!("{what} {}", value(sm)));
        }
    }
    if let Some(port) = m.port {
        parts.push(format!("port {port}"));
    }
    if m.source_labels.is_some() {
        parts.push("source labels".to_owned());
    }
    if parts.is_empty() {
        "nothing it can test".to_owned()
    } else {
        parts.join(" and ")
    }
}

/// Reads the fields of the one document, naming the line of each problem.
struct Reader<'a> {
    doc: &'a Document,
    path: &'a Path,
}

impl Reader<'_> {
    fn invalid(&self, field: &YamlPath, message: impl Into<String>) -> ExpectationsError {
        ExpectationsError::Invalid {
            path: self.path.to_owned(),
            line: self.doc.line_of(field),
            field: if field.0.is_empty() {
                "(file)".to_owned()
            } else {
                field.to_string()
            },
            message: message.into(),
        }
    }

    fn mapping<'v>(
        &self,
        value: &'v Value,
        field: &YamlPath,
        allowed: &[&str],
    ) -> Result<&'v serde_json::Map<String, Value>, ExpectationsError> {
        let map = value
            .as_object()
            .ok_or_else(|| self.invalid(field, "a mapping expected"))?;
        if !allowed.is_empty()
            && let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(self.invalid(
                &field.key(unknown),
                format!("unknown field (known: {})", allowed.join(", ")),
            ));
        }
        Ok(map)
    }

    fn string(
        &self,
        map: &serde_json::Map<String, Value>,
        field: &YamlPath,
        key: &str,
    ) -> Result<String, ExpectationsError> {
        match map.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(self.invalid(&field.key(key), "a non-empty string expected")),
            None => Err(self.invalid(field, format!("missing field `{key}`"))),
        }
    }

    fn percent(&self, value: &Value, field: &YamlPath) -> Result<f64, ExpectationsError> {
        let p = value
            .as_f64()
            .ok_or_else(|| self.invalid(field, "a percentage (a number from 0 to 100) expected"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(self.invalid(field, format!("{p} is not a percentage from 0 to 100")));
        }
        Ok(p)
    }

    fn expectations(&self) -> Result<Expectations, ExpectationsError> {
        let root = YamlPath::default();
        let top = self.mapping(&self.doc.value, &root, &["service", "mirror", "identities"])?;
        let service = self.string(top, &root, "service")?;
        let mirror = self.string(top, &root, "mirror")?;
        let ids_field = root.key("identities");
        let ids = top
            .get("identities")
            .ok_or_else(|| self.invalid(&root, "missing field `identities`"))?;
        let ids = self.mapping(ids, &ids_field, &[])?;
        if ids.is_empty() {
            return Err(self.invalid(&ids_field, "at least one identity expected"));
        }
        let mut identities = Vec::new();
        for (name, value) in ids {
            let field = ids_field.key(name);
            let map = self.mapping(value, &field, &["served_by", "mirrored", "mirror_sees"])?;
            let served_field = field.key("served_by");
            let served = map
                .get("served_by")
                .ok_or_else(|| self.invalid(&field, "missing field `served_by`"))?;
            let served = self.mapping(served, &served_field, &[])?;
            let mut served_by = Vec::new();
            for (subset, p) in served {
                served_by.push((subset.clone(), self.percent(p, &served_field.key(subset))?));
            }
            let total: f64 = served_by.iter().map(|(_, p)| p).sum();
            if served_by.is_empty() || (total - 100.0).abs() > 1e-9 {
                return Err(self.invalid(
                    &served_field,
                    format!("the percentages add up to {total}, not 100"),
                ));
            }
            // A share a batch cannot tell from its wrong neighbours is refused here, before
            // any mesh exists (`sampling::plan`).
            let shares: Vec<f64> = served_by.iter().map(|(_, p)| *p).collect();
            if let Err(e) = crate::sampling::plan(&shares) {
                return Err(self.invalid(&served_field, e.to_string()));
            }
            let mirrored_field = field.key("mirrored");
            let mirrored = match map.get("mirrored") {
                Some(v) => self.percent(v, &mirrored_field)?,
                None => return Err(self.invalid(&field, "missing field `mirrored`")),
            };
            if let Err(e) = crate::sampling::plan(&[mirrored]) {
                return Err(self.invalid(&mirrored_field, e.to_string()));
            }
            let mut mirror_sees = Vec::new();
            if let Some(sees) = map.get("mirror_sees") {
                let sees_field = field.key("mirror_sees");
                for (header, v) in self.mapping(sees, &sees_field, &[])? {
                    let value = v.as_str().ok_or_else(|| {
                        self.invalid(
                            &sees_field.key(header),
                            "a header value (a string) expected",
                        )
                    })?;
                    mirror_sees.push((header.to_ascii_lowercase(), value.to_owned()));
                }
                if mirrored == 0.0 && !mirror_sees.is_empty() {
                    return Err(self.invalid(
                        &sees_field,
                        "says what mirrored requests carry, but `mirrored` is 0",
                    ));
                }
            }
            identities.push(IdentityExpectation {
                name: name.clone(),
                served_by,
                mirrored,
                mirror_sees,
                line: self.doc.line_of(&field),
            });
        }
        Ok(Expectations {
            path: self.path.to_owned(),
            service,
            mirror,
            identities,
            positions: self.doc.positions.clone(),
        })
    }
}

/// Whether a VirtualService host names the Service `service` (short or qualified).
fn host_names(host: &str, service: &str) -> bool {
    host == service || host.starts_with(&format!("{service}."))
}

/// Whether `route` matches productpage's call to reviews for this identity: productpage
/// forwards `end-user` when a user is logged in, and calls `/reviews/<id>`.
fn matches_identity(route: &HttpRoute, user: Option<&str>) -> bool {
    if route.matches.is_empty() {
        return true;
    }
    route.matches.iter().any(|m| {
        let headers_hold = m.headers.iter().flatten().all(|(name, want)| {
            name == "end-user" && user.is_some_and(|u| string_matches(want, u))
        });
        let uri_holds = m
            .uri
            .as_ref()
            .is_none_or(|u| string_matches(u, "/reviews/0"));
        // productpage's call carries no query string.
        let query_holds = m.query_params.as_ref().is_none_or(|q| q.is_empty());
        headers_hold && uri_holds && query_holds
    })
}

fn string_matches(m: &StringMatch, value: &str) -> bool {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), _, _) => e == value,
        (_, Some(p), _) => value.starts_with(p.as_str()),
        // A regex this project does not evaluate: assume it holds (a warning is advice).
        (_, _, Some(_)) => true,
        _ => true,
    }
}

/// Subset -> percent a route sends to `service` (Istio: a lone destination takes 100).
fn route_split(route: &HttpRoute, service: &str) -> Vec<(String, f64)> {
    let dests: Vec<_> = route
        .route
        .iter()
        .filter(|d| host_names(&d.destination.host, service))
        .collect();
    let total: u32 = dests.iter().map(|d| d.weight.unwrap_or(0)).sum();
    dests
        .iter()
        .map(|d| {
            let percent = if dests.len() == 1 {
                100.0
            } else if total == 0 {
                0.0
            } else {
                f64::from(d.weight.unwrap_or(0)) * 100.0 / f64::from(total)
            };
            (
                d.destination
                    .subset
                    .clone()
                    .unwrap_or_else(|| "(no subset)".into()),
                percent,
            )
        })
        .collect()
}

fn same_split(a: &[(String, f64)], b: &[(String, f64)]) -> bool {
    let norm = |s: &[(String, f64)]| {
        let mut v: Vec<(String, i64)> = s
            .iter()
            .filter(|(_, p)| *p > 0.0)
            .map(|(n, p)| (n.clone(), (p * 1000.0).round() as i64))
            .collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

fn served_by_words(split: &[(String, f64)]) -> String {
    match split {
        [] => "nowhere".to_owned(),
        [(subset, _)] => subset.clone(),
        _ => split
            .iter()
            .map(|(s, p)| format!("{s} {p}%"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Percent of a route's requests mirrored to `mirror` (0 when it mirrors elsewhere or not).
fn mirrored_percent(route: &HttpRoute, mirror: &str) -> f64 {
    let fraction = crate::envoy::config::mirror_fraction(route);
    let to_mirror = route
        .mirror
        .as_ref()
        .is_some_and(|d| host_names(&d.host, mirror));
    if !to_mirror {
        let many = route
            .mirrors
            .iter()
            .flatten()
            .find(|m| host_names(&m.destination.host, mirror));
        return many.map_or(0.0, |m| m.percentage.as_ref().map_or(100.0, |p| p.value));
    }
    fraction.map_or(0.0, crate::envoy::config::Fraction::percent)
}

#[cfg(test)]
mod tests;

//! The behaviour under test (`Spec`, from the expectations file) and the checks derived
//! from it: their names, kinds, prerequisites and the expectation each one states.

use crate::expectations::{ANONYMOUS, Expectations, ExpectationsError, IdentityExpectation};
use crate::mesh::Identity;
use crate::sampling;

/// The behaviour under test, from the expectations file (`expectations`): the Service
/// whose routing is tested, the mirror, and what each identity's requests must get. The
/// checks and their names are derived from it ([`Spec::checks`]).
#[derive(Debug, Clone)]
pub struct Spec {
    /// The service whose routing is tested.
    pub host: String,
    /// The Service that receives the shadow traffic.
    pub mirror: String,
    /// The identities, in the file's order.
    pub identities: Vec<IdentityExpectation>,
    /// Lint's warnings on the expectations against the routing (`intent`,
    /// `unexercised-rule`): a run prints them in its summary and keeps them in its report.
    pub warnings: Vec<String>,
}

/// The tutorial's expectations: what `manifests/expectations.yaml` ships.
impl Default for Spec {
    fn default() -> Self {
        let identity =
            |name: &str, subset: &str, mirrored: f64, sees: &[(&str, &str)]| IdentityExpectation {
                name: name.into(),
                served_by: vec![(subset.into(), 100.0)],
                mirrored,
                mirror_sees: sees
                    .iter()
                    .map(|(h, v)| ((*h).to_owned(), (*v).to_owned()))
                    .collect(),
                line: 0,
            };
        Spec {
            host: "reviews".into(),
            mirror: "mirror".into(),
            identities: vec![
                identity(ANONYMOUS, "v1", 0.0, &[]),
                identity("tester", "v2", 100.0, &[("end-user", "tester")]),
            ],
            warnings: Vec::new(),
        }
    }
}

/// What a check does, over which identity (an index into [`Spec::identities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Every request served by the one subset the identity expects.
    ServedBy(usize),
    /// Requests split over subsets, each share within tolerance (sampled).
    Split(usize),
    /// Every request mirrored, carrying the headers the identity expects.
    Mirrored(usize),
    /// A share of the requests mirrored, within tolerance (sampled), each mirrored one
    /// carrying the headers.
    MirroredSample(usize),
    /// No request mirrored, proved with a barrier straight to the mirror.
    NotMirrored(usize),
    /// The mirror's Host header, as the Istio version (or istiod's setting) makes it.
    ShadowHost(usize),
    /// With the mirror down, the identity is still served, at baseline latency.
    PrimaryUnaffected(usize),
    /// A 50% variant of the routing mirrors 50% ± 10 points.
    Percentage(usize),
}

/// One check of a run: its name, what it does, and the checks it needs to have passed.
#[derive(Debug, Clone)]
pub struct Check {
    /// The trial name, e.g. `routing::tester_served_by_v2`.
    pub name: String,
    /// What it does.
    pub kind: CheckKind,
    /// The checks it needs to have passed, when they ran in the same run.
    pub needs: Vec<String>,
}

impl Spec {
    /// The behaviour under test for a run of `manifests`: the `expectations` file given,
    /// else `expectations.yaml` in the manifests directory, else the tutorial's; checked
    /// against the manifests (their Services and subsets) before anything starts.
    pub fn for_manifests(
        manifests: &std::path::Path,
        expectations: Option<&std::path::Path>,
    ) -> Result<Spec, ExpectationsError> {
        let beside = manifests.join(crate::expectations::FILE_NAME);
        let path = match expectations {
            Some(path) => path.to_owned(),
            None if beside.is_file() => beside,
            None => return Ok(Spec::default()),
        };
        let expectations = Expectations::load(&path)?;
        let mut spec = Spec::from_expectations(&expectations);
        // Unreadable manifests are the run's to report; the expectations are checked
        // against what can be read.
        if let Ok(set) = crate::manifest::ManifestSet::load(&[manifests.to_owned()]) {
            let (topology, _) = crate::topology::Topology::from_manifests(&set);
            expectations.check(&topology)?;
            spec.warnings = crate::lint::lint_expectations(&set, &path)
                .iter()
                .filter(|f| f.severity == crate::lint::Severity::Warning)
                .map(ToString::to_string)
                .collect();
        }
        Ok(spec)
    }

    /// The behaviour a user's expectations file states.
    pub fn from_expectations(e: &Expectations) -> Spec {
        Spec {
            host: e.service.clone(),
            mirror: e.mirror.clone(),
            identities: e.identities.clone(),
            warnings: Vec::new(),
        }
    }

    /// The identity whose mirrored requests the mirror-wide checks (shadow host, mirror
    /// down, percentage variant) use: the first mirrored in full, else the first mirrored
    /// at all.
    pub fn mirrored_identity(&self) -> Option<usize> {
        let full = self.identities.iter().position(|i| i.mirrored >= 100.0);
        full.or_else(|| self.identities.iter().position(|i| i.mirrored > 0.0))
    }

    /// What check `name` of this spec verifies, in the report's words (empty for a name
    /// it does not derive).
    pub fn expectation(&self, name: &str) -> String {
        self.checks()
            .iter()
            .find(|c| c.name == name)
            .map(|c| self.expects(c))
            .unwrap_or_default()
    }

    /// The mesh identity of identity `i`.
    pub fn identity(&self, i: usize) -> Identity {
        match self.identities[i].user() {
            Some(user) => Identity::User(user.to_owned()),
            None => Identity::Anonymous,
        }
    }

    /// The checks, in the order they run: every identity's routing, then its mirroring,
    /// then the checks that change the mesh (stopping the mirror, a routing variant), which
    /// restore what they changed. Names derive from the expectations, so a user's file
    /// gives checks named after the user's scenario; the tutorial's give today's seven.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let routing_name = |i: usize| -> String {
            let id = &self.identities[i];
            match id.single_subset() {
                Some(subset) => format!("routing::{}_served_by_{}", slug(&id.name), slug(subset)),
                None => format!(
                    "routing::{}_served_by_{}",
                    slug(&id.name),
                    id.served_by
                        .iter()
                        .map(|(s, p)| format!("{}_{}", slug(s), number_slug(*p)))
                        .collect::<Vec<_>>()
                        .join("_")
                ),
            }
        };
        let mirror_name = |i: usize| -> String {
            let id = &self.identities[i];
            let who = slug(&id.name);
            if id.mirrored == 0.0 {
                format!("mirror::{who}_requests_not_mirrored")
            } else if id.mirrored < 100.0 {
                format!(
                    "mirror::{who}_requests_mirrored_{}_percent",
                    number_slug(id.mirrored)
                )
            } else if id.mirror_sees.is_empty() {
                format!("mirror::{who}_requests_mirrored")
            } else {
                format!(
                    "mirror::{who}_requests_mirrored_with_{}",
                    id.mirror_sees
                        .iter()
                        .map(|(h, _)| slug(h))
                        .collect::<Vec<_>>()
                        .join("_and_")
                )
            }
        };
        for (i, id) in self.identities.iter().enumerate() {
            let kind = if id.single_subset().is_some() {
                CheckKind::ServedBy(i)
            } else {
                CheckKind::Split(i)
            };
            out.push(Check {
                name: routing_name(i),
                kind,
                needs: Vec::new(),
            });
        }
        // Mirrored identities first: their checks are what the absence checks' readers
        // compare with, as in the tutorial's order.
        let mut order: Vec<usize> = (0..self.identities.len()).collect();
        order.sort_by_key(|&i| self.identities[i].mirrored == 0.0);
        for i in order {
            let id = &self.identities[i];
            let (kind, needs) = if id.mirrored == 0.0 {
                // The barrier goes straight to the mirror: nothing the routing does.
                (CheckKind::NotMirrored(i), Vec::new())
            } else if id.mirrored < 100.0 {
                (CheckKind::MirroredSample(i), vec![routing_name(i)])
            } else {
                (CheckKind::Mirrored(i), vec![routing_name(i)])
            };
            out.push(Check {
                name: mirror_name(i),
                kind,
                needs,
            });
        }
        if let Some(m) = self.mirrored_identity() {
            let mirrored = vec![mirror_name(m)];
            out.push(Check {
                name: "mirror::shadow_host_matches_istio_version".into(),
                kind: CheckKind::ShadowHost(m),
                needs: mirrored.clone(),
            });
            out.push(Check {
                name: "mirror::primary_unaffected_when_mirror_down".into(),
                kind: CheckKind::PrimaryUnaffected(m),
                needs: vec![routing_name(m), mirror_name(m)],
            });
            out.push(Check {
                name: "mirror::percentage_within_tolerance".into(),
                kind: CheckKind::Percentage(m),
                needs: mirrored,
            });
        }
        out
    }

    /// The check's names, in order.
    pub fn check_names(&self) -> Vec<String> {
        self.checks().into_iter().map(|c| c.name).collect()
    }

    /// What check `check` expects, in the product's words (docs/expectations.md's table).
    pub(super) fn expects(&self, check: &Check) -> String {
        let who = |i: usize| -> String {
            match self.identities[i].user() {
                Some(user) => format!("`end-user: {user}`"),
                None => "anonymous".to_owned(),
            }
        };
        let sees = |i: usize| -> String {
            self.identities[i]
                .mirror_sees
                .iter()
                .map(|(h, v)| format!(" with `{h}: {v}`"))
                .collect::<Vec<_>>()
                .join(" and")
        };
        match check.kind {
            CheckKind::ServedBy(i) => match self.identities[i].user() {
                Some(_) => format!(
                    "{} requests are served by subset {}",
                    who(i),
                    self.identities[i].single_subset().unwrap_or("?")
                ),
                None => format!(
                    "anonymous requests are served by the workload behind subset {}",
                    self.identities[i].single_subset().unwrap_or("?")
                ),
            },
            CheckKind::Split(i) => format!(
                "{} requests are split {}: {}",
                who(i),
                self.identities[i]
                    .served_by
                    .iter()
                    .map(|(s, p)| format!("{s} {p}%"))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan_words(
                    &self.identities[i]
                        .served_by
                        .iter()
                        .map(|(_, p)| *p)
                        .collect::<Vec<_>>()
                )
            ),
            CheckKind::Mirrored(i) => format!(
                "every tagged {} request shows up in the mirror's log{}",
                self.identities[i].name,
                sees(i)
            ),
            CheckKind::MirroredSample(i) => {
                let p = self.identities[i].mirrored;
                format!(
                    "{p}% of the {} requests show up in the mirror's log{}: {}",
                    self.identities[i].name,
                    sees(i),
                    plan_words(&[p])
                )
            }
            CheckKind::NotMirrored(i) => {
                format!("no {} request is mirrored", self.identities[i].name)
            }
            CheckKind::ShadowHost(_) => format!(
                "the mirror sees `{host}-shadow` up to Istio 1.27 and `{host}` from 1.28, unless istiod's `DISABLE_SHADOW_HOST_SUFFIX` says otherwise",
                host = self.host
            ),
            CheckKind::PrimaryUnaffected(i) => format!(
                "with the mirror stopped, {} requests still get 200 from {} at baseline latency",
                self.identities[i].name,
                self.identities[i]
                    .served_by
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            CheckKind::Percentage(_) => format!(
                "a {}% variant of the routing mirrors {}% of the requests: {}",
                sampling::PERCENT,
                sampling::PERCENT,
                plan_words(&[sampling::PERCENT])
            ),
        }
    }
}

/// A sampled check's plan in a reader's words: the batch, each share's acceptance region
/// and both error rates.
fn plan_words(shares: &[f64]) -> String {
    match sampling::plan(shares) {
        Ok(plan) => {
            let regions: Vec<String> = plan
                .iter()
                .filter(|a| a.low != a.high)
                .map(ToString::to_string)
                .collect();
            format!(
                "{} requests per batch; {}",
                plan.first().map_or(0, |a| a.batch),
                regions.join("; ")
            )
        }
        Err(e) => e.to_string(),
    }
}

/// A name part: lowercase letters and digits, anything else `_`.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A percentage as a name part: `10`, `12p5`.
fn number_slug(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}").replace('.', "p")
    }
}

/// The tutorial's check names, in order (`--list` and docs without an expectations file).
pub fn tutorial_checks() -> Vec<String> {
    Spec::default().check_names()
}

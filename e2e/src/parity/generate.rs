//! Generated routing cases for `cargo xtask parity --generated`: a deterministic generator of
//! the Service, DestinationRule, Gateway and VirtualService combinations local mode claims to
//! translate, and a shrinker that reduces a case istiod and local mode disagree on to a
//! minimal one.
//!
//! A [`Case`] is structured, not text, so that [`Case::shrink_candidates`] can take it apart
//! one element at a time; [`Case::to_yaml`] renders it as a variant file. Hosts that name the
//! variant's namespace are written with the placeholder [`NS`] (`reviews.${NS}`), which the
//! parity run replaces by the variant's namespace before parsing. Case `i` of seed `s` is
//! seeded from `(s, i)` alone ([`generate`]), so one case is reproduced without the others.
//!
//! What cases vary, with probabilities that keep most cases ordinary routing: hosts short
//! (`reviews`), qualified (`reviews.${NS}`) or fully qualified, now and then `ghost` (no
//! Service) or a Service left out; header and URI matches (exact, prefix, regex), several
//! entries per route, a rule after a catch-all; 1-3 weighted destinations adding up to 100,
//! sometimes one at 0; `mirror` with or without `mirrorPercentage` (0 to 100, or `{}`),
//! `mirrors` with or without per-entry percentages; subsets `v1`/`v2` of a DestinationRule,
//! sometimes one no rule defines; destination ports absent, present, or one the Service
//! (ports 9080, sometimes 9081) lacks; Gateways on port 8080 with hosts `*`,
//! `*.example.com`, `bookinfo.example.com`, `${NS}/bookinfo.example.com`,
//! `./bookinfo.example.com`, and VirtualServices bound to the mesh, a Gateway, or both,
//! whose hosts the Gateway may not admit; two VirtualServices for one host; route names;
//! now and then a route's `timeout`, `retries` (`attempts: 0` too), `fault` (delay, HTTP or
//! gRPC abort), `corsPolicy`, `rewrite`, and matches on method, authority, scheme and query
//! parameters ([`policies`]).
//!
//! Everything here is pure: no I/O and no runtime. [`shrink`] is async only because its
//! predicate (running a case against the real istiod) is.

use std::future::Future;

use fastrand::Rng;

/// The placeholder for the variant's namespace in generated hosts.
pub const NS: &str = "${NS}";

/// The Services cases draw from (`ghost` is a host no Service ever has).
pub const SERVICE_POOL: [&str; 4] = ["reviews", "ratings", "mirror", "mirror2"];
/// A destination host that names no Service.
pub const GHOST: &str = "ghost";
/// The mirror percentages cases use (`mirrorPercentage.value`, `mirrors[].percentage.value`).
pub const PERCENTAGES: [f64; 7] = [0.0, 0.5, 5.0, 10.0, 33.3333333, 50.0, 100.0];
/// The hosts Gateway servers admit.
pub const GATEWAY_HOSTS: [&str; 5] = [
    "*",
    "*.example.com",
    "bookinfo.example.com",
    "${NS}/bookinfo.example.com",
    "./bookinfo.example.com",
];
/// The port every generated Gateway server listens on (HTTP), as the ingress gateway's
/// `http.8080` route configuration is named.
pub const GATEWAY_PORT: u32 = 8080;

/// One routing case: the objects of a self-contained variant file.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Services (`v1`, selector `app: <name>`).
    pub services: Vec<Service>,
    /// DestinationRules.
    pub destination_rules: Vec<CaseDestinationRule>,
    /// Gateways (selector `istio: ingressgateway`).
    pub gateways: Vec<CaseGateway>,
    /// VirtualServices.
    pub virtual_services: Vec<CaseVirtualService>,
}

/// A Kubernetes Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its name, from [`SERVICE_POOL`]; also its `app` label.
    pub name: String,
    /// Its ports (HTTP).
    pub ports: Vec<u32>,
}

/// A host as a VirtualService, DestinationRule or destination spells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    /// `reviews`.
    Short(String),
    /// `reviews.${NS}`.
    Qualified(String),
    /// `reviews.${NS}.svc.cluster.local`.
    Fqdn(String),
    /// A name outside the cluster, such as `bookinfo.example.com`.
    External(String),
}

/// A DestinationRule with subsets labelled `version: <subset>`.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseDestinationRule {
    /// Its name.
    pub name: String,
    /// The host it applies to.
    pub host: Host,
    /// Subset names (`v1`, `v2`).
    pub subsets: Vec<String>,
}

/// A Gateway of the ingress gateway (`istio: ingressgateway`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseGateway {
    /// Its name.
    pub name: String,
    /// Its servers, all on [`GATEWAY_PORT`] over HTTP.
    pub servers: Vec<CaseGatewayServer>,
}

/// One Gateway server.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseGatewayServer {
    /// Admitted hosts, as written (from [`GATEWAY_HOSTS`]: wildcards, `ns/host`, `./host`).
    pub hosts: Vec<String>,
}

/// A VirtualService.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseVirtualService {
    /// Its name.
    pub name: String,
    /// `hosts`.
    pub hosts: Vec<Host>,
    /// `gateways` (Gateway names and `mesh`); empty means the mesh alone.
    pub gateways: Vec<String>,
    /// `http` routes, in order.
    pub http: Vec<Route>,
}

/// One `http[]` route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name`.
    pub name: Option<String>,
    /// `match` entries (any of them).
    pub matches: Vec<Match>,
    /// `route`: weighted destinations.
    pub route: Vec<WeightedDestination>,
    /// `mirror`.
    pub mirror: Option<CaseDestination>,
    /// `mirrorPercentage`.
    pub mirror_percentage: Option<Percentage>,
    /// `mirrors`.
    pub mirrors: Vec<MirrorEntry>,
    /// `timeout`, `retries`, `fault`, `corsPolicy`, `rewrite`.
    pub policies: Policies,
}

/// A `{value: ...}` percentage.
#[derive(Debug, Clone, PartialEq)]
pub enum Percentage {
    /// `{value: <v>}`, `v` in 0..=100.
    Value(f64),
    /// `{}`: no value (proto3's 0).
    Empty,
}

/// One `match[]` entry (all conditions must hold).
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// `uri`.
    pub uri: Option<CaseStringMatch>,
    /// `headers`, by (distinct, lowercase) name.
    pub headers: Vec<(String, CaseStringMatch)>,
    /// `method`, `authority`, `scheme`, `queryParams`.
    pub request: RequestMatch,
}

/// A string match.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseStringMatch {
    /// `{exact: ...}`.
    Exact(String),
    /// `{prefix: ...}`.
    Prefix(String),
    /// `{regex: ...}` (RE2).
    Regex(String),
}

/// One `route[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedDestination {
    /// `destination`.
    pub destination: CaseDestination,
    /// `weight`.
    pub weight: Option<u32>,
}

/// A destination: host, subset, port.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseDestination {
    /// `host`.
    pub host: Host,
    /// `subset`.
    pub subset: Option<String>,
    /// `port.number`.
    pub port: Option<u32>,
}

/// One `mirrors[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorEntry {
    /// `destination`.
    pub destination: CaseDestination,
    /// `percentage`.
    pub percentage: Option<Percentage>,
}

/// Case `index` of seed `seed`: the same pair always gives the same case, whatever was
/// generated before.
pub fn generate(seed: u64, index: usize) -> Case {
    let mut g = Gen {
        rng: Rng::with_seed(splitmix64(splitmix64(seed).wrapping_add(index as u64))),
    };
    g.case()
}

/// The text of a file that reproduces a difference: a comment header (how the case was
/// generated, the differences, how to replay it), then [`Case::to_yaml`]. The generating
/// command given is the smallest that regenerates case `index` (`--generated index+1`).
pub fn case_file(case: &Case, seed: u64, index: usize, differences: &[String]) -> String {
    let mut out = format!(
        "# generated by cargo xtask parity --generated {} --seed {seed}: case {index}, shrunk\n",
        index + 1
    );
    out.push_str("# differences (istiod vs local mode):\n");
    for difference in differences {
        for line in difference.lines() {
            out.push_str(&format!("#   {line}\n"));
        }
    }
    out.push_str("# replay: cargo xtask parity --manifests <this file>\n");
    out.push_str(&case.to_yaml());
    out
}

/// Greedy shrinking: repeatedly takes the first of [`Case::shrink_candidates`] for which
/// `still_differs` holds, until none does or `max_steps` calls of it were spent. Returns the
/// smallest case found and the number of calls.
pub async fn shrink<F, Fut>(case: Case, mut still_differs: F, max_steps: usize) -> (Case, usize)
where
    F: FnMut(Case) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut current = case;
    let mut calls = 0;
    'smaller: loop {
        for candidate in current.shrink_candidates() {
            if calls >= max_steps {
                break 'smaller;
            }
            calls += 1;
            if still_differs(candidate.clone()).await {
                current = candidate;
                continue 'smaller;
            }
        }
        break;
    }
    (current, calls)
}

mod draw;
use draw::{Gen, splitmix64};
use steps::Steps;
mod policies;
pub use policies::{Abort, Cors, Fault, Policies, RequestMatch, Retries, Rewrite};
mod render;
mod steps;

#[cfg(test)]
mod tests;

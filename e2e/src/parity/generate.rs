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
//! whose hosts the Gateway may not admit; two VirtualServices for one host; route names.
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
    pub destination_rules: Vec<DestinationRule>,
    /// Gateways (selector `istio: ingressgateway`).
    pub gateways: Vec<Gateway>,
    /// VirtualServices.
    pub virtual_services: Vec<VirtualService>,
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
pub struct DestinationRule {
    /// Its name.
    pub name: String,
    /// The host it applies to.
    pub host: Host,
    /// Subset names (`v1`, `v2`).
    pub subsets: Vec<String>,
}

/// A Gateway of the ingress gateway (`istio: ingressgateway`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Its name.
    pub name: String,
    /// Its servers, all on [`GATEWAY_PORT`] over HTTP.
    pub servers: Vec<GatewayServer>,
}

/// One Gateway server.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayServer {
    /// Admitted hosts, as written (from [`GATEWAY_HOSTS`]: wildcards, `ns/host`, `./host`).
    pub hosts: Vec<String>,
}

/// A VirtualService.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualService {
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
    pub mirror: Option<Destination>,
    /// `mirrorPercentage`.
    pub mirror_percentage: Option<Percentage>,
    /// `mirrors`.
    pub mirrors: Vec<MirrorEntry>,
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
    pub uri: Option<StringMatch>,
    /// `headers`, by (distinct, lowercase) name.
    pub headers: Vec<(String, StringMatch)>,
}

/// A string match.
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatch {
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
    pub destination: Destination,
    /// `weight`.
    pub weight: Option<u32>,
}

/// A destination: host, subset, port.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
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
    pub destination: Destination,
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

impl Case {
    /// The case as a multi-document variant file (a comment line first; `${NS}` in hosts that
    /// name the namespace).
    pub fn to_yaml(&self) -> String {
        let mut docs = Vec::new();
        for s in &self.services {
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| format!("{{port: {p}, name: {}}}", port_name(*p)))
                .collect();
            docs.push(format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, labels: {{app: {n}}}}}\n\
                 spec: {{ports: [{}], selector: {{app: {n}}}}}\n",
                ports.join(", "),
                n = s.name,
            ));
        }
        for dr in &self.destination_rules {
            let mut doc = istio_header("DestinationRule", &dr.name);
            doc.push_str(&format!("  host: {}\n", quote(&dr.host.render())));
            if !dr.subsets.is_empty() {
                doc.push_str("  subsets:\n");
                for s in &dr.subsets {
                    doc.push_str(&format!("    - {{name: {s}, labels: {{version: {s}}}}}\n"));
                }
            }
            docs.push(doc);
        }
        for gw in &self.gateways {
            let mut doc = istio_header("Gateway", &gw.name);
            doc.push_str("  selector: {istio: ingressgateway}\n  servers:\n");
            for (i, server) in gw.servers.iter().enumerate() {
                let name = if i == 0 {
                    "http".to_owned()
                } else {
                    format!("http-{i}")
                };
                doc.push_str(&format!(
                    "    - port: {{number: {GATEWAY_PORT}, name: {name}, protocol: HTTP}}\n\
                     \x20     hosts: [{}]\n",
                    list(server.hosts.iter().map(|h| quote(h)))
                ));
            }
            docs.push(doc);
        }
        for vs in &self.virtual_services {
            docs.push(vs.to_yaml());
        }
        format!(
            "# generated routing case ({NS}: the variant's namespace): Services: {}, \
             DestinationRules: {}, Gateways: {}, VirtualServices: {}\n{}",
            self.services.len(),
            self.destination_rules.len(),
            self.gateways.len(),
            self.virtual_services.len(),
            docs.join("---\n")
        )
    }

    /// Every case one step smaller, smallest (shortest YAML) first: one VirtualService,
    /// Gateway, DestinationRule, Service, route, match entry, match condition, destination
    /// of several, mirror, `mirrors` entry, mirror percentage, subset, port, weight, route
    /// name, VirtualService host or gateway, Gateway server or host dropped; or one host
    /// spelled shorter (FQDN or qualified to short, `ns/host` to `host`). Each candidate's
    /// YAML is shorter than this case's, so shrinking ends.
    pub fn shrink_candidates(&self) -> Vec<Case> {
        let mut s = Steps::new(self);
        s.list(
            &self.virtual_services,
            0,
            VirtualService::smaller,
            |c, v| {
                c.virtual_services = v;
            },
        );
        s.list(&self.gateways, 0, Gateway::smaller, |c, v| c.gateways = v);
        s.list(
            &self.destination_rules,
            0,
            DestinationRule::smaller,
            |c, v| {
                c.destination_rules = v;
            },
        );
        s.list(&self.services, 0, Service::smaller, |c, v| c.services = v);
        let mut out = s.out;
        out.sort_by_cached_key(|c| c.to_yaml().len());
        out
    }
}

impl Host {
    /// The host as written, with [`NS`] for the namespace.
    pub fn render(&self) -> String {
        match self {
            Host::Short(name) | Host::External(name) => name.clone(),
            Host::Qualified(name) => format!("{name}.{NS}"),
            Host::Fqdn(name) => format!("{name}.{NS}.svc.cluster.local"),
        }
    }

    /// The Service (or [`GHOST`]) the host names in the namespace; `None` for an external
    /// host.
    pub fn service(&self) -> Option<&str> {
        match self {
            Host::Short(name) | Host::Qualified(name) | Host::Fqdn(name) => Some(name),
            Host::External(_) => None,
        }
    }

    /// The short spelling of a qualified or fully qualified host.
    fn smaller(&self) -> Vec<Host> {
        match self {
            Host::Qualified(name) | Host::Fqdn(name) => vec![Host::Short(name.clone())],
            Host::Short(_) | Host::External(_) => Vec::new(),
        }
    }
}

impl VirtualService {
    fn to_yaml(&self) -> String {
        let mut doc = istio_header("VirtualService", &self.name);
        doc.push_str(&format!(
            "  hosts: [{}]\n",
            list(self.hosts.iter().map(|h| quote(&h.render())))
        ));
        if !self.gateways.is_empty() {
            doc.push_str(&format!("  gateways: [{}]\n", self.gateways.join(", ")));
        }
        doc.push_str("  http:\n");
        for route in &self.http {
            for (i, line) in route.yaml_lines().iter().enumerate() {
                let indent = if i == 0 { "    - " } else { "      " };
                doc.push_str(&format!("{indent}{line}\n"));
            }
        }
        doc
    }
}

impl Route {
    /// Every destination of the route: `route`, then `mirror`, then `mirrors`.
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.route
            .iter()
            .map(|d| &d.destination)
            .chain(&self.mirror)
            .chain(self.mirrors.iter().map(|m| &m.destination))
    }

    /// The route's YAML lines, unindented.
    fn yaml_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(name) = &self.name {
            lines.push(format!("name: {}", quote(name)));
        }
        if !self.matches.is_empty() {
            lines.push("match:".to_owned());
            for m in &self.matches {
                lines.push(format!("  - {}", m.to_yaml()));
            }
        }
        lines.push("route:".to_owned());
        for d in &self.route {
            let weight = d.weight.map_or(String::new(), |w| format!(", weight: {w}"));
            lines.push(format!(
                "  - {{destination: {}{weight}}}",
                d.destination.to_yaml()
            ));
        }
        if let Some(mirror) = &self.mirror {
            lines.push(format!("mirror: {}", mirror.to_yaml()));
        }
        if let Some(p) = &self.mirror_percentage {
            lines.push(format!("mirrorPercentage: {}", p.to_yaml()));
        }
        if !self.mirrors.is_empty() {
            lines.push("mirrors:".to_owned());
            for m in &self.mirrors {
                let percentage = m
                    .percentage
                    .as_ref()
                    .map_or(String::new(), |p| format!(", percentage: {}", p.to_yaml()));
                lines.push(format!(
                    "  - {{destination: {}{percentage}}}",
                    m.destination.to_yaml()
                ));
            }
        }
        lines
    }
}

impl Match {
    fn to_yaml(&self) -> String {
        let mut parts = Vec::new();
        if let Some(uri) = &self.uri {
            parts.push(format!("uri: {}", uri.to_yaml()));
        }
        if !self.headers.is_empty() {
            let headers = self
                .headers
                .iter()
                .map(|(name, m)| format!("{name}: {}", m.to_yaml()));
            parts.push(format!("headers: {{{}}}", list(headers)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl StringMatch {
    fn to_yaml(&self) -> String {
        match self {
            StringMatch::Exact(v) => format!("{{exact: {}}}", quote(v)),
            StringMatch::Prefix(v) => format!("{{prefix: {}}}", quote(v)),
            StringMatch::Regex(v) => format!("{{regex: {}}}", quote(v)),
        }
    }
}

impl Destination {
    fn to_yaml(&self) -> String {
        let mut out = format!("{{host: {}", quote(&self.host.render()));
        if let Some(subset) = &self.subset {
            out.push_str(&format!(", subset: {subset}"));
        }
        if let Some(port) = self.port {
            out.push_str(&format!(", port: {{number: {port}}}"));
        }
        out.push('}');
        out
    }
}

impl Percentage {
    fn to_yaml(&self) -> String {
        match self {
            // `{:?}` keeps a double a double: `10.0`, `0.5`, `33.3333333`.
            Percentage::Value(v) => format!("{{value: {v:?}}}"),
            Percentage::Empty => "{}".to_owned(),
        }
    }
}

/// The one-step-smaller forms of a value, each an edited clone of it.
struct Steps<'a, T> {
    base: &'a T,
    out: Vec<T>,
}

impl<'a, T: Clone> Steps<'a, T> {
    fn new(base: &'a T) -> Self {
        Steps {
            base,
            out: Vec::new(),
        }
    }

    /// One candidate: the value edited.
    fn edit(&mut self, edit: impl FnOnce(&mut T)) {
        let mut candidate = self.base.clone();
        edit(&mut candidate);
        self.out.push(candidate);
    }

    /// A candidate per element of `items` dropped, when more than `min_len` are left.
    fn drop_one<E: Clone>(&mut self, items: &[E], min_len: usize, set: impl Fn(&mut T, Vec<E>)) {
        if items.len() > min_len {
            for i in 0..items.len() {
                let mut fewer = items.to_vec();
                fewer.remove(i);
                self.edit(|c| set(c, fewer));
            }
        }
    }

    /// A candidate per element of `items` replaced by one of its smaller forms.
    fn replace_one<E: Clone>(
        &mut self,
        items: &[E],
        smaller: impl Fn(&E) -> Vec<E>,
        set: impl Fn(&mut T, Vec<E>),
    ) {
        for (i, item) in items.iter().enumerate() {
            for s in smaller(item) {
                let mut changed = items.to_vec();
                changed[i] = s;
                self.edit(|c| set(c, changed));
            }
        }
    }

    /// Both of the above.
    fn list<E: Clone>(
        &mut self,
        items: &[E],
        min_len: usize,
        smaller: impl Fn(&E) -> Vec<E>,
        set: impl Fn(&mut T, Vec<E>),
    ) {
        self.drop_one(items, min_len, &set);
        self.replace_one(items, smaller, set);
    }
}

impl Service {
    fn smaller(&self) -> Vec<Service> {
        let mut s = Steps::new(self);
        s.drop_one(&self.ports, 1, |svc, v| svc.ports = v);
        s.out
    }
}

impl DestinationRule {
    fn smaller(&self) -> Vec<DestinationRule> {
        let mut s = Steps::new(self);
        s.drop_one(&self.subsets, 0, |dr, v| dr.subsets = v);
        for host in self.host.smaller() {
            s.edit(|dr| dr.host = host);
        }
        s.out
    }
}

impl Gateway {
    fn smaller(&self) -> Vec<Gateway> {
        let server = |server: &GatewayServer| {
            let mut s = Steps::new(server);
            // `ns/host` and `./host` to `host`.
            let unqualified = |h: &String| match h.split_once('/') {
                Some((_, host)) => vec![host.to_owned()],
                None => Vec::new(),
            };
            s.list(&server.hosts, 1, unqualified, |s, v| s.hosts = v);
            s.out
        };
        let mut s = Steps::new(self);
        s.list(&self.servers, 1, server, |g, v| g.servers = v);
        s.out
    }
}

impl VirtualService {
    fn smaller(&self) -> Vec<VirtualService> {
        let mut s = Steps::new(self);
        s.list(&self.http, 1, Route::smaller, |vs, v| vs.http = v);
        s.list(&self.hosts, 1, Host::smaller, |vs, v| vs.hosts = v);
        s.drop_one(&self.gateways, 0, |vs, v| vs.gateways = v);
        s.out
    }
}

impl Route {
    fn smaller(&self) -> Vec<Route> {
        let mut s = Steps::new(self);
        s.list(&self.matches, 0, Match::smaller, |r, v| r.matches = v);
        // A destination dropped from several gives its weight to the first one left, so the
        // weights still add up.
        if self.route.len() > 1 {
            for i in 0..self.route.len() {
                s.edit(|r| {
                    let gone = r.route.remove(i);
                    if let (Some(w), Some(first)) = (gone.weight, r.route.first_mut()) {
                        first.weight = Some(first.weight.unwrap_or(0) + w);
                    }
                });
            }
        }
        s.replace_one(&self.route, WeightedDestination::smaller, |r, v| {
            r.route = v;
        });
        if self.mirror.is_some() {
            s.edit(|r| (r.mirror, r.mirror_percentage) = (None, None));
        }
        for mirror in self.mirror.iter().flat_map(Destination::smaller) {
            s.edit(|r| r.mirror = Some(mirror));
        }
        if self.mirror_percentage.is_some() {
            s.edit(|r| r.mirror_percentage = None);
        }
        s.list(&self.mirrors, 0, MirrorEntry::smaller, |r, v| r.mirrors = v);
        if self.name.is_some() {
            s.edit(|r| r.name = None);
        }
        s.out
    }
}

impl Match {
    /// One condition dropped, while another is left (dropping the last one is dropping the
    /// entry, a step of the route).
    fn smaller(&self) -> Vec<Match> {
        let mut s = Steps::new(self);
        if self.headers.len() + usize::from(self.uri.is_some()) > 1 {
            s.drop_one(&self.headers, 0, |m, v| m.headers = v);
            if self.uri.is_some() {
                s.edit(|m| m.uri = None);
            }
        }
        s.out
    }
}

impl WeightedDestination {
    fn smaller(&self) -> Vec<WeightedDestination> {
        let mut s = Steps::new(self);
        for destination in self.destination.smaller() {
            s.edit(|d| d.destination = destination);
        }
        if self.weight.is_some() {
            s.edit(|d| d.weight = None);
        }
        s.out
    }
}

impl MirrorEntry {
    fn smaller(&self) -> Vec<MirrorEntry> {
        let mut s = Steps::new(self);
        for destination in self.destination.smaller() {
            s.edit(|m| m.destination = destination);
        }
        if self.percentage.is_some() {
            s.edit(|m| m.percentage = None);
        }
        s.out
    }
}

impl Destination {
    fn smaller(&self) -> Vec<Destination> {
        let mut s = Steps::new(self);
        if self.subset.is_some() {
            s.edit(|d| d.subset = None);
        }
        if self.port.is_some() {
            s.edit(|d| d.port = None);
        }
        for host in self.host.smaller() {
            s.edit(|d| d.host = host);
        }
        s.out
    }
}

fn istio_header(kind: &str, name: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n")
}

fn port_name(port: u32) -> String {
    match port {
        9080 => "http".to_owned(),
        9081 => "http-alt".to_owned(),
        other => format!("http-{other}"),
    }
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// SplitMix64's finalizer: spreads `(seed, index)` over the generator's seed space.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator: realistic probabilities, so that most cases are ordinary routing and the
/// odd ones (a ghost host, an undefined subset, a port the Service lacks) are a few.
struct Gen {
    rng: Rng,
}

impl Gen {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    /// One of `choices`, by weight.
    fn pick<T: Clone>(&mut self, choices: &[(u32, T)]) -> T {
        let total: u32 = choices.iter().map(|(w, _)| w).sum();
        let mut at = self.rng.u32(0..total);
        for (w, choice) in choices {
            if at < *w {
                return choice.clone();
            }
            at -= w;
        }
        choices[choices.len() - 1].1.clone()
    }

    fn case(&mut self) -> Case {
        let gateway_count = self.pick(&[(35, 0), (50, 1), (15, 2)]);
        let gateways: Vec<Gateway> = ["gateway-a", "gateway-b"][..gateway_count]
            .iter()
            .map(|name| self.gateway(name))
            .collect();
        let vs_count = self.pick(&[(65, 1), (25, 2), (10, 3)]);
        let mut virtual_services: Vec<VirtualService> = Vec::new();
        for i in 0..vs_count {
            let vs = self.virtual_service(i, &gateways, virtual_services.first());
            virtual_services.push(vs);
        }
        let destination_rules = self.destination_rules(&virtual_services);
        let services = self.services(&virtual_services, &destination_rules);
        Case {
            services,
            destination_rules,
            gateways,
            virtual_services,
        }
    }

    fn gateway(&mut self, name: &str) -> Gateway {
        let server_count = self.pick(&[(90, 1), (10, 2)]);
        let mut taken: Vec<String> = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..server_count {
            let host_count = self.pick(&[(75, 1), (25, 2)]);
            let mut hosts = Vec::new();
            for _ in 0..host_count {
                let host: &str = self.pick(&[
                    (30, "*"),
                    (20, "*.example.com"),
                    (20, "bookinfo.example.com"),
                    (15, "${NS}/bookinfo.example.com"),
                    (15, "./bookinfo.example.com"),
                ]);
                if !taken.iter().any(|t| t == host) {
                    taken.push(host.to_owned());
                    hosts.push(host.to_owned());
                }
            }
            if !hosts.is_empty() {
                servers.push(GatewayServer { hosts });
            }
        }
        Gateway {
            name: name.to_owned(),
            servers,
        }
    }

    fn host_of(&mut self, service: &str) -> Host {
        let name = service.to_owned();
        match self.pick(&[(60, 0), (20, 1), (20, 2)]) {
            0 => Host::Short(name),
            1 => Host::Qualified(name),
            _ => Host::Fqdn(name),
        }
    }

    fn virtual_service(
        &mut self,
        index: usize,
        gateways: &[Gateway],
        first: Option<&VirtualService>,
    ) -> VirtualService {
        let mut bound = Vec::new();
        if !gateways.is_empty() {
            let gateway = gateways[self.rng.usize(..gateways.len())].name.clone();
            match self.pick(&[(45, 0), (30, 1), (25, 2)]) {
                0 => {}
                1 => bound.push(gateway),
                _ => bound.extend([gateway, "mesh".to_owned()]),
            }
        }
        let own = ["reviews", "ratings"][index % 2];
        let host = match first {
            // Two VirtualServices for one host, perhaps spelled differently.
            Some(first) if self.chance(0.2) => match &first.hosts[0] {
                Host::External(h) => Host::External(h.clone()),
                other => {
                    let service = other.service().unwrap_or(own).to_owned();
                    self.host_of(&service)
                }
            },
            _ if !bound.is_empty() && self.chance(0.4) => Host::External(
                self.pick(&[(70, "bookinfo.example.com"), (30, "api.example.com")])
                    .to_owned(),
            ),
            _ if self.chance(0.02) => self.host_of(GHOST),
            _ => self.host_of(own),
        };
        let mut hosts = vec![host];
        if self.chance(0.1) {
            let other = if own == "reviews" {
                "ratings"
            } else {
                "reviews"
            };
            hosts.push(if bound.is_empty() {
                self.host_of(other)
            } else {
                Host::External("reviews.example.com".to_owned())
            });
        }
        let main = match hosts[0].service() {
            Some(s) if s != GHOST => s.to_owned(),
            _ => own.to_owned(),
        };
        let route_count = self.pick(&[(55, 1), (30, 2), (15, 3)]);
        let http = (0..route_count)
            .map(|r| self.route(r, r + 1 == route_count, &main))
            .collect();
        VirtualService {
            name: format!("vs-{index}"),
            hosts,
            gateways: bound,
            http,
        }
    }

    fn route(&mut self, index: usize, last: bool, main: &str) -> Route {
        let name = self.chance(0.25).then(|| format!("route-{index}"));
        let with_matches = if last {
            self.chance(0.2)
        } else {
            self.chance(0.85)
        };
        let matches = if with_matches {
            let count = self.pick(&[(70, 1), (20, 2), (10, 3)]);
            (0..count).map(|_| self.match_entry()).collect()
        } else {
            Vec::new()
        };
        let count = self.pick(&[(60, 1), (30, 2), (10, 3)]);
        let weights = self.weights(count);
        let route = weights
            .into_iter()
            .enumerate()
            .map(|(i, weight)| {
                let host = if self.chance(0.015) {
                    GHOST.to_owned()
                } else if self.chance(0.8) {
                    main.to_owned()
                } else if main == "reviews" {
                    "ratings".to_owned()
                } else {
                    "reviews".to_owned()
                };
                let subset = if count > 1 && self.chance(0.8) {
                    ["v1", "v2"].get(i).map(|s| (*s).to_owned())
                } else if self.chance(0.5) {
                    Some(self.pick(&[(48, "v1"), (48, "v2"), (4, "v3")]).to_owned())
                } else {
                    None
                };
                let port = self.pick(&[
                    (79, None),
                    (16, Some(9080)),
                    (4, Some(9081)),
                    (1, Some(9999)),
                ]);
                WeightedDestination {
                    destination: Destination {
                        host: self.host_of(&host),
                        subset,
                        port,
                    },
                    weight,
                }
            })
            .collect();
        let (mut mirror, mut mirror_percentage, mut mirrors) = (None, None, Vec::new());
        match self.pick(&[(35, 0), (45, 1), (20, 2)]) {
            0 => {}
            1 => {
                let host = self.pick(&[(80, "mirror"), (17, "mirror2"), (3, GHOST)]);
                mirror = Some(self.mirror_destination(host));
                mirror_percentage = match self.pick(&[(25, 0), (69, 1), (6, 2)]) {
                    0 => None,
                    1 => Some(self.percentage()),
                    _ => Some(Percentage::Empty),
                };
            }
            _ => {
                let count = self.pick(&[(50, 1), (50, 2)]);
                for host in ["mirror", "mirror2"].into_iter().take(count) {
                    let destination = self.mirror_destination(host);
                    let percentage = (!self.chance(0.35)).then(|| self.percentage());
                    mirrors.push(MirrorEntry {
                        destination,
                        percentage,
                    });
                }
            }
        }
        Route {
            name,
            matches,
            route,
            mirror,
            mirror_percentage,
            mirrors,
        }
    }

    /// Weights of `count` destinations: none or 100 for one; adding up to 100 for several,
    /// sometimes with a destination at 0.
    fn weights(&mut self, count: usize) -> Vec<Option<u32>> {
        if count == 1 {
            return vec![self.chance(0.15).then_some(100)];
        }
        let zero = self.chance(0.15).then(|| self.rng.usize(..count));
        let shares = count - usize::from(zero.is_some());
        // Cut 0..=100 at distinct multiples of 5.
        let mut cuts: Vec<u32> = Vec::new();
        while cuts.len() + 1 < shares {
            let cut = 5 * self.rng.u32(1..20);
            if !cuts.contains(&cut) {
                cuts.push(cut);
            }
        }
        cuts.sort_unstable();
        cuts.push(100);
        let mut parts = Vec::new();
        let mut from = 0;
        for cut in cuts {
            parts.push(cut - from);
            from = cut;
        }
        if let Some(at) = zero {
            parts.insert(at, 0);
        }
        parts.into_iter().map(Some).collect()
    }

    fn percentage(&mut self) -> Percentage {
        Percentage::Value(PERCENTAGES[self.rng.usize(..PERCENTAGES.len())])
    }

    fn mirror_destination(&mut self, service: &str) -> Destination {
        Destination {
            host: self.host_of(service),
            subset: self.chance(0.1).then(|| "v1".to_owned()),
            port: self.chance(0.1).then_some(9080),
        }
    }

    fn match_entry(&mut self) -> Match {
        let uri = self.chance(0.5).then(|| {
            self.pick(&[
                (30, StringMatch::Exact("/reviews/0".to_owned())),
                (50, StringMatch::Prefix("/api".to_owned())),
                (20, StringMatch::Regex("/reviews/[0-9]+".to_owned())),
            ])
        });
        let min_headers = usize::from(uri.is_none());
        let count = self.pick(&[(40, 0), (45, 1), (15, 2)]).max(min_headers);
        let headers = ["end-user", "x-canary"][..count]
            .iter()
            .map(|name| {
                let m = self.pick(&[
                    (50, StringMatch::Exact("tester".to_owned())),
                    (30, StringMatch::Prefix("test".to_owned())),
                    (20, StringMatch::Regex("^(tester|admin)$".to_owned())),
                ]);
                ((*name).to_owned(), m)
            })
            .collect();
        Match { uri, headers }
    }

    fn destination_rules(&mut self, vss: &[VirtualService]) -> Vec<DestinationRule> {
        let with_subsets: Vec<&str> = vss
            .iter()
            .flat_map(|vs| &vs.http)
            .flat_map(Route::destinations)
            .filter(|d| d.subset.is_some())
            .filter_map(|d| d.host.service())
            .collect();
        let mut out = Vec::new();
        for service in ["reviews", "ratings", "mirror"] {
            let p = if with_subsets.contains(&service) {
                0.94
            } else {
                0.15
            };
            if self.chance(p) {
                let subsets = if self.chance(0.93) {
                    vec!["v1".to_owned(), "v2".to_owned()]
                } else {
                    vec!["v1".to_owned()]
                };
                out.push(DestinationRule {
                    name: service.to_owned(),
                    host: self.host_of(service),
                    subsets,
                });
            }
        }
        out
    }

    fn services(&mut self, vss: &[VirtualService], drs: &[DestinationRule]) -> Vec<Service> {
        let mut named: Vec<&str> = drs.iter().filter_map(|dr| dr.host.service()).collect();
        for vs in vss {
            named.extend(vs.hosts.iter().filter_map(Host::service));
            let destinations = vs.http.iter().flat_map(Route::destinations);
            named.extend(destinations.filter_map(|d| d.host.service()));
        }
        let mut out = Vec::new();
        for name in SERVICE_POOL {
            let p = if named.contains(&name) { 0.97 } else { 0.1 };
            if self.chance(p) {
                let ports = if self.chance(0.25) {
                    vec![9080, 9081]
                } else {
                    vec![9080]
                };
                out.push(Service {
                    name: name.to_owned(),
                    ports,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

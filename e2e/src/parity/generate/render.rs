//! A generated case as the YAML of a variant file, and the cases one step smaller than it.

use super::*;

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
            CaseVirtualService::smaller,
            |c, v| {
                c.virtual_services = v;
            },
        );
        s.list(&self.gateways, 0, CaseGateway::smaller, |c, v| {
            c.gateways = v
        });
        s.list(
            &self.destination_rules,
            0,
            CaseDestinationRule::smaller,
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
    pub(super) fn smaller(&self) -> Vec<Host> {
        match self {
            Host::Qualified(name) | Host::Fqdn(name) => vec![Host::Short(name.clone())],
            Host::Short(_) | Host::External(_) => Vec::new(),
        }
    }
}

impl CaseVirtualService {
    pub(super) fn to_yaml(&self) -> String {
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
    pub fn destinations(&self) -> impl Iterator<Item = &CaseDestination> {
        self.route
            .iter()
            .map(|d| &d.destination)
            .chain(&self.mirror)
            .chain(self.mirrors.iter().map(|m| &m.destination))
    }

    /// The route's YAML lines, unindented.
    pub(super) fn yaml_lines(&self) -> Vec<String> {
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
        lines.extend(self.policies.yaml_lines());
        lines
    }
}

impl Match {
    pub(super) fn to_yaml(&self) -> String {
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
        parts.extend(self.request.yaml_parts());
        format!("{{{}}}", parts.join(", "))
    }
}

impl CaseStringMatch {
    pub(super) fn to_yaml(&self) -> String {
        match self {
            CaseStringMatch::Exact(v) => format!("{{exact: {}}}", quote(v)),
            CaseStringMatch::Prefix(v) => format!("{{prefix: {}}}", quote(v)),
            CaseStringMatch::Regex(v) => format!("{{regex: {}}}", quote(v)),
        }
    }
}

impl CaseDestination {
    pub(super) fn to_yaml(&self) -> String {
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
    pub(super) fn to_yaml(&self) -> String {
        match self {
            // `{:?}` keeps a double a double: `10.0`, `0.5`, `33.3333333`.
            Percentage::Value(v) => format!("{{value: {v:?}}}"),
            Percentage::Empty => "{}".to_owned(),
        }
    }
}

pub(super) fn istio_header(kind: &str, name: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n")
}

pub(super) fn port_name(port: u32) -> String {
    match port {
        9080 => "http".to_owned(),
        9081 => "http-alt".to_owned(),
        other => format!("http-{other}"),
    }
}

/// A YAML double-quoted scalar.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

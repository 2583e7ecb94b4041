//! istiod's validation of a VirtualService, for the fields local mode models: what Istio's
//! validating webhook refuses, local mode refuses at apply, with Istio's words.
//!
//! A cluster never runs a VirtualService its webhook denies (`kubectl apply` fails), so a
//! local run that went on with it would pass what a cluster fails. The rules and messages are
//! istio/istio's, read from its source:
//!
//! - `pkg/config/validation/validation.go`: `ValidateVirtualService` (hosts, "http, tcp or
//!   tls must be provided"), `validateDestination`, `validateSubsetName`,
//!   `validatePortSelector`, `validateHTTPMirrors` ("mirror percentage must have a max value
//!   of 100 (it has %f)"), `validateHTTPRouteDestinations` ("total destination weight = 0"),
//!   `validateStringMatch`/`validateStringMatchRegexp`;
//! - `pkg/config/validation/virtualservice.go`: `validateHTTPRoute` ("mirror_percentage must
//!   have a max value of 100 (it has %f)", "mirror_percent must have a max value of 100 (it
//!   has %d)"), `validateHTTPRouteConflict`, `validateHTTPRouteMatchRequest`;
//! - `pkg/config/validation/agent/validation.go`: `ValidatePort`, `ValidateWildcardDomain`,
//!   `CheckDNS1123Preconditions`, `ValidateDNS1123Labels`; `pkg/config/labels/instance.go`:
//!   `IsDNS1123Label`, `IsWildcardDNS1123Label`;
//! - `pkg/webhooks/validation/server/server.go`: the denial reads "configuration is invalid:
//!   <errors>", and the API server prefixes `admission webhook "validation.istio.io" denied
//!   the request: ` (the default revision's webhook,
//!   `manifests/charts/base/templates/defaultrevision-validatingwebhookconfiguration.yaml`).
//!
//! The rules of a route's policies (`timeout`, `retries`, `fault`, `corsPolicy`, `rewrite`)
//! and of the matches on method, authority, scheme and query parameters are in
//! [`policies`]. Several errors are joined as hashicorp/go-multierror's list format does.
//! Fields local mode does not model are refused by the translation
//! (`envoy::config::TranslateError`), so they need no rule here. One rule is approximated: a regex is checked for emptiness and length,
//! not compiled as RE2 (Envoy compiles it and refuses the routes if it is not RE2).

use std::fmt;

use crate::istio::{Destination, HttpRoute, StringMatch, VirtualService};

mod policies;

/// The validating webhook's name, as the API server quotes it in a denial.
pub const WEBHOOK: &str = "validation.istio.io";

/// A VirtualService istiod's validation refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The webhook denies the object; `errors` are Istio's messages, in Istio's order.
    #[error("VirtualService {name}: {}", self.denial())]
    Denied {
        /// The VirtualService.
        name: String,
        /// Istio's error messages.
        errors: Vec<String>,
    },
}

impl ValidationError {
    /// What `kubectl apply` prints after the object's name: the API server's words around
    /// the webhook's.
    pub fn denial(&self) -> String {
        let ValidationError::Denied { errors, .. } = self;
        format!(
            "admission webhook \"{WEBHOOK}\" denied the request: configuration is invalid: {}",
            Joined(errors)
        )
    }
}

/// hashicorp/go-multierror's `ListFormatFunc`, which Istio's validation errors are joined
/// with; a single error stands alone (Istio's `AppendValidation` wraps none).
struct Joined<'a>(&'a [String]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => f.write_str(one),
            many => {
                write!(f, "{} errors occurred:", many.len())?;
                for e in many {
                    write!(f, "\n\t* {e}")?;
                }
                f.write_str("\n\n")
            }
        }
    }
}

/// Validates a VirtualService as istiod's webhook does, for the fields local mode models.
pub fn validate_virtual_service(vs: &VirtualService) -> Result<(), ValidationError> {
    let mut errs = Vec::new();
    let spec = &vs.spec;
    // `isGateway`: bound to gateways unless `mesh` is among them.
    let applies_to_gateway =
        !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == "mesh");
    for host in &spec.hosts {
        // A gateway-bound host is checked by ValidateWildcardDomainForVirtualServiceBoundToGateway,
        // which for a non-SNI host is the same check; an IP address is accepted as a host.
        if let Err(e) = wildcard_domain(host) {
            if host.parse::<std::net::IpAddr>().is_err() {
                errs.push(e);
            }
        } else if !applies_to_gateway && host == "*" {
            errs.push(
                "wildcard host * is not allowed for virtual services bound to the mesh gateway"
                    .into(),
            );
        }
    }
    if spec.http.is_empty() && spec.tcp.is_none() && spec.tls.is_none() {
        errs.push("http, tcp or tls must be provided in virtual service".into());
    }
    for route in &spec.http {
        http_route(route, &mut errs);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::Denied {
            name: vs.metadata.name.clone().unwrap_or_default(),
            errors: errs,
        })
    }
}

/// `validateHTTPRoute`, in its order, for the modelled fields.
fn http_route(route: &HttpRoute, errs: &mut Vec<String>) {
    // validateHTTPRouteConflict.
    if route.redirect.is_none() && route.direct_response.is_none() && route.route.is_empty() {
        errs.push("HTTP route, redirect or direct_response is required".into());
    }
    if route.mirror.is_some() && route.mirrors.as_ref().is_some_and(|m| !m.is_empty()) {
        errs.push("HTTP route cannot contain both mirror and mirrors".into());
    }
    // validateHTTPRouteMatchRequest.
    for m in &route.matches {
        for (name, header) in m.headers.iter().flatten() {
            errs.extend(policies::header_name(name));
            errs.extend(string_match(header, "headers"));
        }
        policies::match_strings(m, errs);
    }
    if let Some(cors) = &route.cors_policy {
        policies::cors(cors, errs);
    }
    if let Some(fault) = &route.fault {
        policies::fault(fault, errs);
    }
    // The deprecated integer share (both spellings are one proto field).
    for value in [&route.mirror_percent, &route.mirror_percent_snake]
        .into_iter()
        .flatten()
    {
        if let Some(v) = value.as_u64().filter(|v| *v > 100) {
            errs.push(format!(
                "mirror_percent must have a max value of 100 (it has {v})"
            ));
        }
    }
    if let Some(p) = &route.mirror_percentage {
        errs.extend(percentage("mirror_percentage", p.value));
    }
    if let Some(mirror) = &route.mirror {
        destination(mirror, errs);
    }
    for m in route.mirrors.iter().flatten() {
        destination(&m.destination, errs);
        if let Some(p) = &m.percentage {
            errs.extend(percentage("mirror percentage", p.value));
        }
    }
    if let Some(retries) = &route.retries {
        policies::retry(retries, errs);
    }
    errs.extend(route.rewrite.as_ref().and_then(policies::rewrite));
    errs.extend(policies::authority_rewrite(
        route.rewrite.as_ref(),
        route.headers.as_ref(),
    ));
    // validateHTTPRouteDestinations (weights are unsigned here: a negative one does not type).
    for d in &route.route {
        destination(&d.destination, errs);
    }
    if route.route.len() > 1 && route.route.iter().all(|d| d.weight.unwrap_or(0) == 0) {
        errs.push("total destination weight = 0".into());
    }
    if let Some(timeout) = &route.timeout {
        errs.extend(policies::duration(timeout));
    }
}

/// Istio's two range checks of a mirror share, with Go's `%f`.
fn percentage(what: &str, value: f64) -> Vec<String> {
    let mut out = Vec::new();
    if value > 100.0 {
        out.push(format!(
            "{what} must have a max value of 100 (it has {value:.6})"
        ));
    }
    if value < 0.0 {
        out.push(format!(
            "{what} must have a min value of 0 (it has {value:.6})"
        ));
    }
    out
}

/// `validateDestination`: host, subset name, port.
fn destination(d: &Destination, errs: &mut Vec<String>) {
    if d.host == "*" {
        errs.push(format!("invalid destination host {}", d.host));
    } else if let Err(e) = wildcard_domain(&d.host) {
        errs.push(e);
    }
    if let Some(subset) = &d.subset {
        if subset.is_empty() {
            errs.push("subset name cannot be empty".into());
        } else if !dns1123_label(subset) {
            errs.push(format!("subset name is invalid: {subset}"));
        }
    }
    if let Some(port) = &d.port
        && !(1..=65535).contains(&port.number)
    {
        errs.push(format!(
            "port number {} must be in the range 1..65535",
            port.number
        ));
    }
}

/// `validateStringMatch`: an empty prefix, or a regex `validateStringMatchRegexp` refuses.
fn string_match(sm: &StringMatch, where_: &str) -> Option<String> {
    if sm.prefix.as_deref() == Some("") {
        return Some(format!(
            "{where_:?}: prefix string match should not be empty"
        ));
    }
    regex_match(sm, where_)
}

/// `validateStringMatchRegexp` (the uri allows an empty prefix, not an empty regex).
fn regex_match(sm: &StringMatch, where_: &str) -> Option<String> {
    let re = sm.regex.as_deref()?;
    if re.is_empty() {
        return Some(format!(
            "{where_:?}: regex string match should not be empty"
        ));
    }
    (re.len() > 1024).then(|| format!("{where_:?}: regex is too large, max length allowed is 1024"))
}

/// `ValidateWildcardDomain`: a DNS-1123 name whose first label may be a wildcard.
fn wildcard_domain(domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => dns1123_labels(rest),
        None => Ok(()),
    }
}

/// `ValidateDNS1123Labels`: every label valid, the top-level one not all digits, a trailing
/// dot allowed.
fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let top = parts.last().copied().unwrap_or("");
    // Go's strconv.Atoi: an optional sign, then digits.
    let digits = top.strip_prefix(['+', '-']).unwrap_or(top);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// `IsDNS1123Label`: `[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 characters.
fn dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// `IsWildcardDNS1123Label`: `*`, or a label optionally prefixed by `*` or `*-`.
fn wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && dns1123_label(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(yaml: &str) -> VirtualService {
        serde_yaml::from_str(yaml).expect("fixture parses")
    }

    fn denial(yaml: &str) -> String {
        validate_virtual_service(&vs(yaml))
            .expect_err("Istio denies it")
            .to_string()
    }

    const PREFIX: &str = "VirtualService r: admission webhook \"validation.istio.io\" denied the request: configuration is invalid: ";

    #[test]
    fn the_projects_routing_is_admitted() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../manifests/routing/virtual-service.yaml");
        let text = std::fs::read_to_string(path).expect("virtual service");
        assert_eq!(validate_virtual_service(&vs(&text)), Ok(()));
    }

    #[test]
    fn mirror_shares_over_100_or_under_0_are_denied_in_istios_words() {
        let cases = [
            (
                "mirror: {host: m}, mirrorPercentage: {value: 150}",
                "mirror_percentage must have a max value of 100 (it has 150.000000)",
            ),
            (
                "mirror: {host: m}, mirrorPercentage: {value: -0.5}",
                "mirror_percentage must have a min value of 0 (it has -0.500000)",
            ),
            (
                "mirror: {host: m}, mirror_percent: 101",
                "mirror_percent must have a max value of 100 (it has 101)",
            ),
            (
                "mirrors: [{destination: {host: m}, percentage: {value: 100.5}}]",
                "mirror percentage must have a max value of 100 (it has 100.500000)",
            ),
        ];
        for (fields, message) in cases {
            let yaml = format!(
                "metadata: {{name: r}}\nspec: {{hosts: [r], http: [{{route: [{{destination: {{host: r}}}}], {fields}}}]}}"
            );
            assert_eq!(denial(&yaml), format!("{PREFIX}{message}"), "{fields}");
        }
        let edge = "metadata: {name: r}\nspec: {hosts: [r], http: [{route: [{destination: {host: r}}], mirror: {host: m}, mirrorPercentage: {value: 100}}]}";
        assert_eq!(validate_virtual_service(&vs(edge)), Ok(()));
    }

    #[test]
    fn several_errors_are_listed_as_go_multierror_does() {
        let yaml = "metadata: {name: r}\nspec: {hosts: ['*'], http: [{mirror: {host: m, subset: V_1, port: {number: 0}}}]}";
        assert_eq!(
            denial(yaml),
            format!(
                "{PREFIX}4 errors occurred:\n\t* wildcard host * is not allowed for virtual services bound to the mesh gateway\n\t* HTTP route, redirect or direct_response is required\n\t* subset name is invalid: V_1\n\t* port number 0 must be in the range 1..65535\n\n"
            )
        );
    }

    #[test]
    fn hosts_matches_weights_and_conflicts_follow_istio() {
        let cases = [
            (
                "{hosts: [r]}",
                "http, tcp or tls must be provided in virtual service",
            ),
            (
                "{hosts: [r], http: [{route: [{destination: {host: r}}], mirror: {host: m}, mirrors: [{destination: {host: m}}]}]}",
                "HTTP route cannot contain both mirror and mirrors",
            ),
            (
                "{hosts: [r], http: [{route: [{destination: {host: r, subset: a}}, {destination: {host: r, subset: b}}]}]}",
                "total destination weight = 0",
            ),
            (
                "{hosts: [r], http: [{route: [{destination: {host: '*'}}]}]}",
                "invalid destination host *",
            ),
            (
                "{hosts: [r], http: [{match: [{headers: {end-user: {prefix: ''}}}], route: [{destination: {host: r}}]}]}",
                "\"headers\": prefix string match should not be empty",
            ),
            (
                "{hosts: [r], http: [{match: [{uri: {regex: ''}}], route: [{destination: {host: r}}]}]}",
                "\"uri\": regex string match should not be empty",
            ),
            (
                "{hosts: [r_1], http: [{route: [{destination: {host: r}}]}]}",
                "domain name \"r_1\" invalid (label \"r_1\" invalid)",
            ),
            (
                "{hosts: [r.123], http: [{route: [{destination: {host: r}}]}]}",
                "domain name \"123\" invalid (top level domain \"123\" cannot be all-numeric)",
            ),
        ];
        for (spec, message) in cases {
            let yaml = format!("metadata: {{name: r}}\nspec: {spec}");
            assert_eq!(denial(&yaml), format!("{PREFIX}{message}"), "{spec}");
        }
        // Admitted: a gateway's `*`, an IP host, a wildcard first label, an empty uri prefix.
        for spec in [
            "{hosts: ['*'], gateways: [g], http: [{route: [{destination: {host: r}}]}]}",
            "{hosts: [10.0.0.1], http: [{route: [{destination: {host: r}}]}]}",
            "{hosts: ['*.example.com'], http: [{match: [{uri: {prefix: ''}}], route: [{destination: {host: r, port: {number: 9080}}, weight: 100}]}]}",
        ] {
            let yaml = format!("metadata: {{name: r}}\nspec: {spec}");
            assert_eq!(validate_virtual_service(&vs(&yaml)), Ok(()), "{spec}");
        }
    }
}

//! A generated route's policies (`timeout`, `retries`, `fault`, `corsPolicy`, `rewrite`) and
//! a match entry's request conditions (`method`, `authority`, `scheme`, `queryParams`):
//! drawn now and then, rendered, and dropped one at a time when shrinking. Every value is
//! one istiod's webhook admits (a duration of whole milliseconds, shares of 0.0001 to 100,
//! retryOn conditions Envoy knows, `attempts: 0` alone), so a case is never denied.

use super::render::{list, quote};
use super::*;

/// A route's policies; each absent in most routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policies {
    /// `timeout`, in Go's duration syntax.
    pub timeout: Option<String>,
    /// `retries`.
    pub retries: Option<Retries>,
    /// `fault`.
    pub fault: Option<Fault>,
    /// `corsPolicy`.
    pub cors: Option<Cors>,
    /// `rewrite`.
    pub rewrite: Option<Rewrite>,
}

/// `retries`: `attempts` 0 stands alone (the webhook denies anything beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    /// `attempts`.
    pub attempts: u32,
    /// `perTryTimeout`.
    pub per_try_timeout: Option<String>,
    /// `retryOn`: conditions and status codes.
    pub retry_on: Option<String>,
}

/// `fault`: a fixed delay, an abort, or both, each with an optional share.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `delay.fixedDelay` and `delay.percentage.value`.
    pub delay: Option<(String, Option<f64>)>,
    /// The abort and `abort.percentage.value`.
    pub abort: Option<(Abort, Option<f64>)>,
}

/// An abort's error type.
#[derive(Debug, Clone, PartialEq)]
pub enum Abort {
    /// `httpStatus`.
    Http(u32),
    /// `grpcStatus`.
    Grpc(String),
}

/// `corsPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    /// `allowOrigins`.
    pub origins: Vec<CaseStringMatch>,
    /// `allowMethods`.
    pub methods: Vec<String>,
    /// `maxAge`.
    pub max_age: Option<String>,
    /// `allowCredentials`.
    pub credentials: Option<bool>,
}

/// `rewrite`: at least one of the two.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    /// `uri`.
    pub uri: Option<String>,
    /// `authority`.
    pub authority: Option<String>,
}

/// A match entry's conditions on the request line and query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMatch {
    /// `method`.
    pub method: Option<CaseStringMatch>,
    /// `authority`.
    pub authority: Option<CaseStringMatch>,
    /// `scheme`.
    pub scheme: Option<CaseStringMatch>,
    /// `queryParams`, by distinct name.
    pub query_params: Vec<(String, CaseStringMatch)>,
}

impl RequestMatch {
    /// How many conditions it has.
    pub(super) fn len(&self) -> usize {
        usize::from(self.method.is_some())
            + usize::from(self.authority.is_some())
            + usize::from(self.scheme.is_some())
            + self.query_params.len()
    }
}

/// The shares faults draw from (`percentage.value`).
const FAULT_SHARES: [f64; 5] = [0.0001, 0.1, 12.5, 50.0, 100.0];

impl Gen {
    pub(super) fn policies(&mut self) -> Policies {
        let timeout = self.chance(0.15).then(|| {
            self.pick(&[(40, "1.5s"), (30, "500ms"), (20, "10s"), (10, "2m")])
                .to_owned()
        });
        let retries = self.chance(0.15).then(|| self.retries());
        let fault = self.chance(0.1).then(|| self.fault());
        let cors = self.chance(0.08).then(|| self.cors());
        let rewrite = self.chance(0.1).then(|| {
            let (uri, authority) = match self.pick(&[(45, 0), (35, 1), (20, 2)]) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            Rewrite {
                uri: uri.then(|| self.pick(&[(60, "/v1/"), (40, "/")]).to_owned()),
                authority: authority.then(|| "rewritten.example.com".to_owned()),
            }
        });
        Policies {
            timeout,
            retries,
            fault,
            cors,
            rewrite,
        }
    }

    /// A retry policy: its attempts (0 removes it), sometimes a per-try timeout and
    /// retry conditions.
    fn retries(&mut self) -> Retries {
        let attempts = self.pick(&[(15, 0), (35, 1), (35, 3), (15, 5)]);
        if attempts == 0 {
            return Retries {
                attempts,
                per_try_timeout: None,
                retry_on: None,
            };
        }
        Retries {
            attempts,
            per_try_timeout: self
                .chance(0.5)
                .then(|| self.pick(&[(60, "250ms"), (40, "2s")]).to_owned()),
            retry_on: self.chance(0.5).then(|| {
                self.pick(&[
                    (40, "5xx"),
                    (30, "gateway-error,connect-failure,refused-stream"),
                    (20, "connect-failure,503"),
                    (10, "503,504"),
                ])
                .to_owned()
            }),
        }
    }

    /// A fault: a delay, an abort (HTTP or gRPC) or both, each sometimes on a share.
    fn fault(&mut self) -> Fault {
        let share = |g: &mut Gen| {
            g.chance(0.8)
                .then(|| FAULT_SHARES[g.rng.usize(..FAULT_SHARES.len())])
        };
        let (delay, abort) = match self.pick(&[(40, 0), (40, 1), (20, 2)]) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        Fault {
            delay: delay.then(|| {
                let d = self.pick(&[(60, "2s"), (40, "100ms")]).to_owned();
                (d, share(self))
            }),
            abort: abort.then(|| {
                let a = if self.chance(0.8) {
                    Abort::Http(self.pick(&[(60, 503), (30, 500), (10, 418)]))
                } else {
                    Abort::Grpc(
                        self.pick(&[(60, "UNAVAILABLE"), (40, "NOT_FOUND")])
                            .to_owned(),
                    )
                };
                (a, share(self))
            }),
        }
    }

    /// A CORS policy: one or two origins, sometimes methods, max age and credentials.
    fn cors(&mut self) -> Cors {
        let count = self.pick(&[(60, 1), (40, 2)]);
        let origins = (0..count)
            .map(|_| {
                self.pick(&[
                    (
                        50,
                        CaseStringMatch::Exact("https://bookinfo.example.com".to_owned()),
                    ),
                    (30, CaseStringMatch::Prefix("https://shop.".to_owned())),
                    (
                        20,
                        CaseStringMatch::Regex("https://.*\\.example\\.org".to_owned()),
                    ),
                ])
            })
            .collect();
        Cors {
            origins,
            methods: if self.chance(0.6) {
                vec!["GET".to_owned(), "POST".to_owned()]
            } else {
                Vec::new()
            },
            max_age: self.chance(0.4).then(|| "24h".to_owned()),
            credentials: self.chance(0.4).then(|| self.chance(0.5)),
        }
    }

    pub(super) fn request_match(&mut self) -> RequestMatch {
        let mut m = RequestMatch::default();
        if self.chance(0.08) {
            m.method = Some(self.pick(&[
                (60, CaseStringMatch::Exact("GET".to_owned())),
                (40, CaseStringMatch::Regex("GET|HEAD".to_owned())),
            ]));
        }
        if self.chance(0.05) {
            m.authority = Some(self.pick(&[
                (50, CaseStringMatch::Prefix("reviews".to_owned())),
                (50, CaseStringMatch::Exact("reviews:9080".to_owned())),
            ]));
        }
        if self.chance(0.04) {
            m.scheme = Some(CaseStringMatch::Exact("http".to_owned()));
        }
        if self.chance(0.08) {
            let count = self.pick(&[(70, 1), (30, 2)]);
            for name in ["version", "debug"].into_iter().take(count) {
                let sm = self.pick(&[
                    (50, CaseStringMatch::Exact("2".to_owned())),
                    (30, CaseStringMatch::Prefix("v".to_owned())),
                    (20, CaseStringMatch::Regex("[0-9]+".to_owned())),
                ]);
                m.query_params.push((name.to_owned(), sm));
            }
        }
        m
    }
}

impl Policies {
    /// The policies' YAML lines, unindented (after the route's other fields).
    pub(super) fn yaml_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(t) = &self.timeout {
            lines.push(format!("timeout: {}", quote(t)));
        }
        if let Some(r) = &self.retries {
            let mut parts = vec![format!("attempts: {}", r.attempts)];
            if let Some(t) = &r.per_try_timeout {
                parts.push(format!("perTryTimeout: {}", quote(t)));
            }
            if let Some(on) = &r.retry_on {
                parts.push(format!("retryOn: {}", quote(on)));
            }
            lines.push(format!("retries: {{{}}}", parts.join(", ")));
        }
        if let Some(f) = &self.fault {
            let share = |p: &Option<f64>| {
                p.map_or(String::new(), |v| format!(", percentage: {{value: {v:?}}}"))
            };
            let mut parts = Vec::new();
            if let Some((d, p)) = &f.delay {
                parts.push(format!("delay: {{fixedDelay: {}{}}}", quote(d), share(p)));
            }
            if let Some((a, p)) = &f.abort {
                let kind = match a {
                    Abort::Http(status) => format!("httpStatus: {status}"),
                    Abort::Grpc(name) => format!("grpcStatus: {name}"),
                };
                parts.push(format!("abort: {{{kind}{}}}", share(p)));
            }
            lines.push(format!("fault: {{{}}}", parts.join(", ")));
        }
        if let Some(c) = &self.cors {
            let mut parts = vec![format!(
                "allowOrigins: [{}]",
                list(c.origins.iter().map(CaseStringMatch::to_yaml))
            )];
            if !c.methods.is_empty() {
                parts.push(format!("allowMethods: [{}]", c.methods.join(", ")));
            }
            if let Some(age) = &c.max_age {
                parts.push(format!("maxAge: {}", quote(age)));
            }
            if let Some(credentials) = c.credentials {
                parts.push(format!("allowCredentials: {credentials}"));
            }
            lines.push(format!("corsPolicy: {{{}}}", parts.join(", ")));
        }
        if let Some(r) = &self.rewrite {
            let mut parts = Vec::new();
            if let Some(uri) = &r.uri {
                parts.push(format!("uri: {}", quote(uri)));
            }
            if let Some(authority) = &r.authority {
                parts.push(format!("authority: {}", quote(authority)));
            }
            lines.push(format!("rewrite: {{{}}}", parts.join(", ")));
        }
        lines
    }

    /// One policy dropped each.
    pub(super) fn smaller(&self) -> Vec<Policies> {
        let mut s = Steps::new(self);
        if self.timeout.is_some() {
            s.edit(|p| p.timeout = None);
        }
        if self.retries.is_some() {
            s.edit(|p| p.retries = None);
        }
        if self.fault.is_some() {
            s.edit(|p| p.fault = None);
        }
        if self.cors.is_some() {
            s.edit(|p| p.cors = None);
        }
        if self.rewrite.is_some() {
            s.edit(|p| p.rewrite = None);
        }
        s.out
    }

    /// The features of these policies, by name (what the coverage test asserts appear).
    #[cfg(test)]
    pub(super) fn features(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.timeout.is_some() {
            out.push("timeout".to_owned());
        }
        if let Some(r) = &self.retries {
            out.push(
                if r.attempts == 0 {
                    "retries attempts 0"
                } else {
                    "retries"
                }
                .to_owned(),
            );
            if r.retry_on.as_deref().is_some_and(|on| on.contains('5')) {
                out.push("retryOn with status codes".to_owned());
            }
        }
        if let Some(f) = &self.fault {
            if f.delay.is_some() {
                out.push("fault delay".to_owned());
            }
            match &f.abort {
                Some((Abort::Http(_), _)) => out.push("fault abort http".to_owned()),
                Some((Abort::Grpc(_), _)) => out.push("fault abort grpc".to_owned()),
                None => {}
            }
        }
        if self.cors.is_some() {
            out.push("corsPolicy".to_owned());
        }
        if let Some(r) = &self.rewrite {
            if r.uri.is_some() {
                out.push("rewrite uri".to_owned());
            }
            if r.authority.is_some() {
                out.push("rewrite authority".to_owned());
            }
        }
        out
    }
}

impl RequestMatch {
    /// The conditions' YAML mapping entries.
    pub(super) fn yaml_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        let named = [
            ("method", &self.method),
            ("authority", &self.authority),
            ("scheme", &self.scheme),
        ];
        for (name, sm) in named {
            if let Some(sm) = sm {
                parts.push(format!("{name}: {}", sm.to_yaml()));
            }
        }
        if !self.query_params.is_empty() {
            let params = self
                .query_params
                .iter()
                .map(|(name, sm)| format!("{name}: {}", sm.to_yaml()));
            parts.push(format!("queryParams: {{{}}}", list(params)));
        }
        parts
    }

    /// One condition dropped each.
    pub(super) fn smaller(&self) -> Vec<RequestMatch> {
        let mut s = Steps::new(self);
        if self.method.is_some() {
            s.edit(|m| m.method = None);
        }
        if self.authority.is_some() {
            s.edit(|m| m.authority = None);
        }
        if self.scheme.is_some() {
            s.edit(|m| m.scheme = None);
        }
        s.drop_one(&self.query_params, 0, |m, v| m.query_params = v);
        s.out
    }

    /// The features of these conditions, by name.
    #[cfg(test)]
    pub(super) fn features(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.method.is_some() {
            out.push("match method".to_owned());
        }
        if self.authority.is_some() {
            out.push("match authority".to_owned());
        }
        if self.scheme.is_some() {
            out.push("match scheme".to_owned());
        }
        if !self.query_params.is_empty() {
            out.push("match queryParams".to_owned());
        }
        out
    }
}

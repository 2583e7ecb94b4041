//! The one-step-smaller forms of a case, for shrinking.

use super::*;

/// The one-step-smaller forms of a value, each an edited clone of it.
pub(super) struct Steps<'a, T> {
    base: &'a T,
    pub(super) out: Vec<T>,
}

impl<'a, T: Clone> Steps<'a, T> {
    pub(super) fn new(base: &'a T) -> Self {
        Steps {
            base,
            out: Vec::new(),
        }
    }

    /// One candidate: the value edited.
    pub(super) fn edit(&mut self, edit: impl FnOnce(&mut T)) {
        let mut candidate = self.base.clone();
        edit(&mut candidate);
        self.out.push(candidate);
    }

    /// A candidate per element of `items` dropped, when more than `min_len` are left.
    pub(super) fn drop_one<E: Clone>(
        &mut self,
        items: &[E],
        min_len: usize,
        set: impl Fn(&mut T, Vec<E>),
    ) {
        if items.len() > min_len {
            for i in 0..items.len() {
                let mut fewer = items.to_vec();
                fewer.remove(i);
                self.edit(|c| set(c, fewer));
            }
        }
    }

    /// A candidate per element of `items` replaced by one of its smaller forms.
    pub(super) fn replace_one<E: Clone>(
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
    pub(super) fn list<E: Clone>(
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
    pub(super) fn smaller(&self) -> Vec<Service> {
        let mut s = Steps::new(self);
        s.drop_one(&self.ports, 1, |svc, v| svc.ports = v);
        s.out
    }
}

impl CaseDestinationRule {
    pub(super) fn smaller(&self) -> Vec<CaseDestinationRule> {
        let mut s = Steps::new(self);
        s.drop_one(&self.subsets, 0, |dr, v| dr.subsets = v);
        for host in self.host.smaller() {
            s.edit(|dr| dr.host = host);
        }
        s.out
    }
}

impl CaseGateway {
    pub(super) fn smaller(&self) -> Vec<CaseGateway> {
        let server = |server: &CaseGatewayServer| {
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

impl CaseVirtualService {
    pub(super) fn smaller(&self) -> Vec<CaseVirtualService> {
        let mut s = Steps::new(self);
        s.list(&self.http, 1, Route::smaller, |vs, v| vs.http = v);
        s.list(&self.hosts, 1, Host::smaller, |vs, v| vs.hosts = v);
        s.drop_one(&self.gateways, 0, |vs, v| vs.gateways = v);
        s.out
    }
}

impl Route {
    pub(super) fn smaller(&self) -> Vec<Route> {
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
        for mirror in self.mirror.iter().flat_map(CaseDestination::smaller) {
            s.edit(|r| r.mirror = Some(mirror));
        }
        if self.mirror_percentage.is_some() {
            s.edit(|r| r.mirror_percentage = None);
        }
        s.list(&self.mirrors, 0, MirrorEntry::smaller, |r, v| r.mirrors = v);
        if self.name.is_some() {
            s.edit(|r| r.name = None);
        }
        for policies in self.policies.smaller() {
            s.edit(|r| r.policies = policies);
        }
        s.out
    }
}

impl Match {
    /// One condition dropped, while another is left (dropping the last one is dropping the
    /// entry, a step of the route).
    pub(super) fn smaller(&self) -> Vec<Match> {
        let mut s = Steps::new(self);
        if self.headers.len() + usize::from(self.uri.is_some()) + self.request.len() > 1 {
            s.drop_one(&self.headers, 0, |m, v| m.headers = v);
            if self.uri.is_some() {
                s.edit(|m| m.uri = None);
            }
            for request in self.request.smaller() {
                s.edit(|m| m.request = request);
            }
        }
        s.out
    }
}

impl WeightedDestination {
    pub(super) fn smaller(&self) -> Vec<WeightedDestination> {
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
    pub(super) fn smaller(&self) -> Vec<MirrorEntry> {
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

impl CaseDestination {
    pub(super) fn smaller(&self) -> Vec<CaseDestination> {
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

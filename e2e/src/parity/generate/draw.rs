//! Drawing a case from the seeded generator, with realistic probabilities.

use super::*;

/// SplitMix64's finalizer: spreads `(seed, index)` over the generator's seed space.
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator: realistic probabilities, so that most cases are ordinary routing and the
/// odd ones (a ghost host, an undefined subset, a port the Service lacks) are a few.
pub(super) struct Gen {
    pub(super) rng: Rng,
}

impl Gen {
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    /// One of `choices`, by weight.
    pub(super) fn pick<T: Clone>(&mut self, choices: &[(u32, T)]) -> T {
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

    pub(super) fn case(&mut self) -> Case {
        let gateway_count = self.pick(&[(35, 0), (50, 1), (15, 2)]);
        let gateways: Vec<CaseGateway> = ["gateway-a", "gateway-b"][..gateway_count]
            .iter()
            .map(|name| self.gateway(name))
            .collect();
        let vs_count = self.pick(&[(65, 1), (25, 2), (10, 3)]);
        let mut virtual_services: Vec<CaseVirtualService> = Vec::new();
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

    pub(super) fn gateway(&mut self, name: &str) -> CaseGateway {
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
                servers.push(CaseGatewayServer { hosts });
            }
        }
        CaseGateway {
            name: name.to_owned(),
            servers,
        }
    }

    pub(super) fn host_of(&mut self, service: &str) -> Host {
        let name = service.to_owned();
        match self.pick(&[(60, 0), (20, 1), (20, 2)]) {
            0 => Host::Short(name),
            1 => Host::Qualified(name),
            _ => Host::Fqdn(name),
        }
    }

    pub(super) fn virtual_service(
        &mut self,
        index: usize,
        gateways: &[CaseGateway],
        first: Option<&CaseVirtualService>,
    ) -> CaseVirtualService {
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
        CaseVirtualService {
            name: format!("vs-{index}"),
            hosts,
            gateways: bound,
            http,
        }
    }

    pub(super) fn route(&mut self, index: usize, last: bool, main: &str) -> Route {
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
                    destination: CaseDestination {
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
        let policies = self.policies();
        Route {
            name,
            matches,
            route,
            mirror,
            mirror_percentage,
            mirrors,
            policies,
        }
    }

    /// Weights of `count` destinations: none or 100 for one; adding up to 100 for several,
    /// sometimes with a destination at 0.
    pub(super) fn weights(&mut self, count: usize) -> Vec<Option<u32>> {
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

    pub(super) fn percentage(&mut self) -> Percentage {
        Percentage::Value(PERCENTAGES[self.rng.usize(..PERCENTAGES.len())])
    }

    pub(super) fn mirror_destination(&mut self, service: &str) -> CaseDestination {
        CaseDestination {
            host: self.host_of(service),
            subset: self.chance(0.1).then(|| "v1".to_owned()),
            port: self.chance(0.1).then_some(9080),
        }
    }

    pub(super) fn match_entry(&mut self) -> Match {
        let uri = self.chance(0.5).then(|| {
            self.pick(&[
                (30, CaseStringMatch::Exact("/reviews/0".to_owned())),
                (50, CaseStringMatch::Prefix("/api".to_owned())),
                (20, CaseStringMatch::Regex("/reviews/[0-9]+".to_owned())),
            ])
        });
        let request = self.request_match();
        let min_headers = usize::from(uri.is_none() && request.len() == 0);
        let count = self.pick(&[(40, 0), (45, 1), (15, 2)]).max(min_headers);
        let headers = ["end-user", "x-canary"][..count]
            .iter()
            .map(|name| {
                let m = self.pick(&[
                    (50, CaseStringMatch::Exact("tester".to_owned())),
                    (30, CaseStringMatch::Prefix("test".to_owned())),
                    (20, CaseStringMatch::Regex("^(tester|admin)$".to_owned())),
                ]);
                ((*name).to_owned(), m)
            })
            .collect();
        Match {
            uri,
            headers,
            request,
        }
    }

    pub(super) fn destination_rules(
        &mut self,
        vss: &[CaseVirtualService],
    ) -> Vec<CaseDestinationRule> {
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
                out.push(CaseDestinationRule {
                    name: service.to_owned(),
                    host: self.host_of(service),
                    subsets,
                });
            }
        }
        out
    }

    pub(super) fn services(
        &mut self,
        vss: &[CaseVirtualService],
        drs: &[CaseDestinationRule],
    ) -> Vec<Service> {
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

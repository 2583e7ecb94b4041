use std::collections::BTreeSet;

use super::*;
use crate::envoy::config::{gateway_route_configuration, route_configuration};
use crate::lint::unknown_fields;
use crate::manifest::ManifestSet;
use crate::topology::Topology;
use crate::validation::validate_virtual_service;

const SEED: u64 = 20_240_611;
const CASES: usize = 200;

fn cases() -> Vec<Case> {
    (0..CASES).map(|i| generate(SEED, i)).collect()
}

/// The variant text as a parity run parses it: `${NS}` replaced by the namespace.
fn in_namespace(case: &Case) -> String {
    case.to_yaml().replace(NS, "test")
}

fn typed(case: &Case) -> (ManifestSet, Topology) {
    let set = ManifestSet::from_str("case.yaml", &in_namespace(case));
    assert!(
        set.syntax_errors.is_empty(),
        "{:?}\n{}",
        set.syntax_errors,
        case.to_yaml()
    );
    let (topo, errors) = Topology::from_manifests(&set);
    assert!(errors.is_empty(), "{errors:?}\n{}", case.to_yaml());
    (set, topo)
}

#[test]
fn same_seed_and_index_give_the_same_case() {
    for index in [0, 1, 17, 199] {
        assert_eq!(generate(SEED, index), generate(SEED, index));
        assert_eq!(
            generate(SEED, index).to_yaml(),
            generate(SEED, index).to_yaml()
        );
    }
    let distinct: BTreeSet<String> = (0..50).map(|i| generate(SEED, i).to_yaml()).collect();
    assert!(distinct.len() >= 45, "{} distinct of 50", distinct.len());
    assert_ne!(generate(SEED, 3), generate(SEED + 1, 3));
}

#[test]
fn every_case_parses_types_validates_and_translates() {
    let version = crate::version::DEFAULT_ISTIO
        .parse()
        .expect("default version");
    for (i, case) in cases().iter().enumerate() {
        let yaml = case.to_yaml();
        assert!(yaml.starts_with("# "), "case {i}");
        let (set, topo) = typed(case);
        assert_eq!(topo.services.len(), case.services.len(), "case {i}");
        assert_eq!(
            topo.destination_rules.len(),
            case.destination_rules.len(),
            "case {i}"
        );
        assert_eq!(topo.gateways.len(), case.gateways.len(), "case {i}");
        assert_eq!(
            topo.virtual_services.len(),
            case.virtual_services.len(),
            "case {i}"
        );
        for doc in &set.documents {
            let unknown = unknown_fields(doc.kind(), &doc.value).expect("a typed kind");
            assert!(unknown.is_empty(), "case {i}: {unknown:?}\n{yaml}");
        }
        let vss: Vec<_> = topo.virtual_services.iter().map(|t| &t.object).collect();
        for (vs, generated) in vss.iter().zip(&case.virtual_services) {
            assert_eq!(vs.spec.http.len(), generated.http.len(), "case {i}");
            validate_virtual_service(vs).unwrap_or_else(|e| panic!("case {i}: {e}\n{yaml}"));
        }
        // Translated, or refused by name (two VirtualServices for one host need creation
        // times, which files do not have): never a panic or another error.
        for result in [
            route_configuration(&topo, &vss, &version, 1),
            gateway_route_configuration(&topo, &vss, &version),
        ] {
            match result {
                Ok(_) | Err(crate::envoy::config::TranslateError::Unordered { .. }) => {}
                Err(e) => panic!("case {i}: {e}\n{yaml}"),
            }
        }
    }
}

/// Whether a gateway-bound host is admitted by a server host (`ns/` stripped; `*` and one
/// leading `*.` label as wildcards).
fn admits(server_host: &str, host: &str) -> bool {
    let server_host = server_host.rsplit('/').next().unwrap_or(server_host);
    server_host == "*"
        || server_host == host
        || server_host
            .strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix))
}

/// The features of a case, by name (what the coverage test asserts appear).
fn features(case: &Case) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    let mut add = |name: &str| {
        f.insert(name.to_owned());
    };
    let mut hosts: Vec<&Host> = case.destination_rules.iter().map(|dr| &dr.host).collect();
    for s in &case.services {
        if s.ports.len() == 2 {
            add("service with two ports");
        }
    }
    for gw in &case.gateways {
        if gw.servers.len() > 1 {
            add("gateway with two servers");
        }
        for h in gw.servers.iter().flat_map(|s| &s.hosts) {
            add(&format!("gateway host {h}"));
        }
    }
    let mut vs_hosts = Vec::new();
    for vs in &case.virtual_services {
        hosts.extend(&vs.hosts);
        for h in &vs.hosts {
            let key = h.service().map_or_else(|| h.render(), str::to_owned);
            if vs_hosts.contains(&key) {
                add("two VirtualServices for one host");
            }
            vs_hosts.push(key);
        }
        match (
            vs.gateways.is_empty(),
            vs.gateways.iter().any(|g| g == "mesh"),
        ) {
            (true, _) => add("vs mesh only"),
            (false, false) => add("vs gateway only"),
            (false, true) => add("vs gateway and mesh"),
        }
        let servers: Vec<&String> = case
            .gateways
            .iter()
            .filter(|g| vs.gateways.contains(&g.name))
            .flat_map(|g| g.servers.iter().flat_map(|s| &s.hosts))
            .collect();
        for h in vs.hosts.iter().filter(|_| !servers.is_empty()) {
            let rendered = h.render().replace(NS, "test");
            if servers.iter().any(|s| admits(s, &rendered)) {
                add("gateway admits vs host");
            } else {
                add("gateway does not admit vs host");
            }
        }
        let mut catch_all = false;
        for route in &vs.http {
            if catch_all {
                add("route after a catch-all");
            }
            catch_all |= route.matches.is_empty();
            if route.name.is_some() {
                add("route name");
            }
            if route.matches.len() > 1 {
                add("several match entries");
            }
            for feature in route.policies.features() {
                add(&feature);
            }
            for m in &route.matches {
                for feature in m.request.features() {
                    add(&feature);
                }
                if m.uri.is_some() && !m.headers.is_empty() {
                    add("uri and header in one entry");
                }
                let named = m
                    .uri
                    .iter()
                    .map(|u| ("uri", u))
                    .chain(m.headers.iter().map(|(_, h)| ("header", h)));
                for (what, sm) in named {
                    add(&match sm {
                        CaseStringMatch::Exact(_) => format!("{what} exact"),
                        CaseStringMatch::Prefix(_) => format!("{what} prefix"),
                        CaseStringMatch::Regex(_) => format!("{what} regex"),
                    });
                }
            }
            add(&format!("{} destinations", route.route.len()));
            let weights: Vec<u32> = route.route.iter().filter_map(|d| d.weight).collect();
            if weights.contains(&0) {
                add("weight 0");
            }
            if route.route.len() == 1 && weights == [100] {
                add("single weight 100");
            }
            if route.route.len() > 1 {
                assert_eq!(weights.iter().sum::<u32>(), 100, "{route:?}");
            }
            if route.mirror.is_some() {
                add(&match &route.mirror_percentage {
                    None => "mirror without percentage".to_owned(),
                    Some(Percentage::Empty) => "mirror percentage {}".to_owned(),
                    Some(Percentage::Value(v)) => format!("mirror percentage {v}"),
                });
            }
            if !route.mirrors.is_empty() {
                add(&format!("{} mirrors", route.mirrors.len()));
            }
            for m in &route.mirrors {
                add(if m.percentage.is_some() {
                    "mirrors entry with percentage"
                } else {
                    "mirrors entry without percentage"
                });
            }
            for d in route.destinations() {
                hosts.push(&d.host);
                let service = d.host.service().unwrap_or("");
                if let Some(subset) = &d.subset {
                    let defined = case.destination_rules.iter().any(|dr| {
                        dr.host.service() == Some(service) && dr.subsets.contains(subset)
                    });
                    add(if defined {
                        "subset defined"
                    } else {
                        "subset undefined"
                    });
                }
                match d.port {
                    None => add("destination without port"),
                    Some(port) => {
                        let exposed = case
                            .services
                            .iter()
                            .any(|s| s.name == service && s.ports.contains(&port));
                        add(if exposed {
                            "destination port exposed"
                        } else {
                            "destination port not exposed"
                        });
                    }
                }
                if d.host.service().is_some() && !case.services.iter().any(|s| s.name == service) {
                    add("host naming no Service");
                }
            }
        }
    }
    for h in hosts {
        add(match h {
            _ if h.service() == Some(GHOST) => "host ghost",
            Host::Short(_) => "host short",
            Host::Qualified(_) => "host qualified",
            Host::Fqdn(_) => "host fqdn",
            Host::External(_) => "host external",
        });
    }
    f
}

#[test]
fn two_hundred_cases_cover_every_feature() {
    let mut seen = BTreeSet::new();
    for case in cases() {
        seen.extend(features(&case));
    }
    let mut expected: Vec<String> = [
        "host short",
        "host qualified",
        "host fqdn",
        "host ghost",
        "host external",
        "host naming no Service",
        "header exact",
        "header prefix",
        "header regex",
        "uri exact",
        "uri prefix",
        "uri regex",
        "uri and header in one entry",
        "several match entries",
        "route after a catch-all",
        "1 destinations",
        "2 destinations",
        "3 destinations",
        "weight 0",
        "single weight 100",
        "mirror without percentage",
        "mirror percentage {}",
        "1 mirrors",
        "2 mirrors",
        "mirrors entry with percentage",
        "mirrors entry without percentage",
        "subset defined",
        "subset undefined",
        "destination without port",
        "destination port exposed",
        "destination port not exposed",
        "service with two ports",
        "gateway with two servers",
        "vs mesh only",
        "vs gateway only",
        "vs gateway and mesh",
        "gateway admits vs host",
        "gateway does not admit vs host",
        "two VirtualServices for one host",
        "route name",
        "timeout",
        "retries",
        "retries attempts 0",
        "retryOn with status codes",
        "fault delay",
        "fault abort http",
        "fault abort grpc",
        "corsPolicy",
        "rewrite uri",
        "rewrite authority",
        "match method",
        "match authority",
        "match scheme",
        "match queryParams",
    ]
    .map(String::from)
    .to_vec();
    expected.extend(PERCENTAGES.iter().map(|v| format!("mirror percentage {v}")));
    expected.extend(GATEWAY_HOSTS.iter().map(|h| format!("gateway host {h}")));
    let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

#[test]
fn candidates_are_shorter_sorted_and_still_type() {
    for case in cases().iter().take(40) {
        let length = case.to_yaml().len();
        let candidates = case.shrink_candidates();
        assert!(!candidates.is_empty());
        let lengths: Vec<usize> = candidates.iter().map(|c| c.to_yaml().len()).collect();
        assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{lengths:?}");
        for candidate in &candidates {
            assert!(candidate.to_yaml().len() < length);
            assert_ne!(candidate, case);
            typed(candidate);
        }
    }
}

#[test]
fn candidates_shorten_hosts_and_keep_weights_adding_up() {
    let weighted = |d: &[u32]| {
        d.iter()
            .map(|w| WeightedDestination {
                destination: CaseDestination {
                    host: Host::Fqdn("reviews".into()),
                    subset: None,
                    port: None,
                },
                weight: Some(*w),
            })
            .collect::<Vec<_>>()
    };
    let case = Case {
        services: vec![],
        destination_rules: vec![],
        gateways: vec![],
        virtual_services: vec![CaseVirtualService {
            name: "vs-0".into(),
            hosts: vec![Host::Qualified("reviews".into())],
            gateways: vec![],
            http: vec![Route {
                name: None,
                matches: vec![],
                route: weighted(&[70, 30]),
                mirror: None,
                mirror_percentage: None,
                mirrors: vec![],
                policies: Policies::default(),
            }],
        }],
    };
    let candidates = case.shrink_candidates();
    let vs = |c: &Case| c.virtual_services.first().cloned();
    assert!(
        candidates
            .iter()
            .filter_map(vs)
            .any(|v| v.hosts == [Host::Short("reviews".into())])
    );
    assert!(candidates.iter().filter_map(vs).any(|v| {
        v.http[0].route.len() == 1
            && v.http[0].route[0].weight == Some(100)
            && v.http[0].route[0].destination.host == Host::Fqdn("reviews".into())
    }));
    assert!(
        candidates.iter().filter_map(vs).any(|v| v.http[0]
            .route
            .get(1)
            .map(|d| &d.destination.host)
            == Some(&Host::Short("reviews".into())))
    );
}

fn mirrors_ten_percent(case: &Case) -> bool {
    case.virtual_services
        .iter()
        .flat_map(|vs| &vs.http)
        .any(|r| r.mirror.is_some() && r.mirror_percentage == Some(Percentage::Value(10.0)))
}

#[tokio::test]
async fn shrinking_reaches_a_minimal_case() {
    let case = (0..1000)
        .map(|i| generate(SEED, i))
        .find(|c| mirrors_ten_percent(c) && c.virtual_services.len() > 1 && c.services.len() > 1)
        .expect("a big case mirroring 10%");
    let (small, calls) = shrink(case, |c| async move { mirrors_ten_percent(&c) }, 10_000).await;
    assert!(calls < 10_000);
    assert!(mirrors_ten_percent(&small));
    assert!(small.services.is_empty() && small.destination_rules.is_empty());
    assert!(small.gateways.is_empty());
    let [vs] = small.virtual_services.as_slice() else {
        panic!("one VirtualService: {small:?}");
    };
    assert_eq!(vs.hosts.len(), 1);
    assert!(vs.gateways.is_empty());
    let [route] = vs.http.as_slice() else {
        panic!("one route: {vs:?}");
    };
    assert_eq!(route.name, None);
    assert!(route.matches.is_empty() && route.mirrors.is_empty());
    assert_eq!(route.policies, Policies::default());
    assert_eq!(route.route.len(), 1);
    let bare = |d: &CaseDestination| {
        matches!(d.host, Host::Short(_)) && d.subset.is_none() && d.port.is_none()
    };
    assert!(bare(&route.route[0].destination) && route.route[0].weight.is_none());
    assert!(route.mirror.as_ref().is_some_and(bare));
    assert!(
        small
            .shrink_candidates()
            .iter()
            .all(|c| !mirrors_ten_percent(c))
    );
}

#[tokio::test]
async fn shrinking_stops_at_the_step_budget() {
    let case = generate(SEED, 0);
    let (small, calls) = shrink(case.clone(), |_| async { false }, 3).await;
    assert_eq!((calls, small), (3, case.clone()));
    let (_, calls) = shrink(case, |_| async { true }, 5).await;
    assert_eq!(calls, 5);
}

#[test]
fn case_file_has_the_header_the_differences_and_the_case() {
    let case = generate(7, 3);
    let text = case_file(
        &case,
        7,
        3,
        &[
            "9080: routes differ".to_owned(),
            "http.8080: istiod has\n  reviews".to_owned(),
        ],
    );
    assert!(
        text.starts_with(
            "# generated by cargo xtask parity --generated 4 --seed 7: case 3, shrunk\n"
        ),
        "{text}"
    );
    assert!(text.contains("#   9080: routes differ\n"));
    assert!(text.contains("#   http.8080: istiod has\n#     reviews\n"));
    assert!(text.contains("# replay: cargo xtask parity --manifests <this file>\n"));
    assert!(text.ends_with(&case.to_yaml()));
    let set = ManifestSet::from_str("case.yaml", &text.replace(NS, "test"));
    assert!(set.syntax_errors.is_empty());
    assert_eq!(
        set.documents.len(),
        case.services.len()
            + case.destination_rules.len()
            + case.gateways.len()
            + case.virtual_services.len()
    );
}

#[test]
fn most_cases_are_ordinary_routing() {
    // No ghost host, missing Service, undefined subset or port the Service lacks.
    let odd = [
        "host ghost",
        "host naming no Service",
        "subset undefined",
        "destination port not exposed",
    ];
    let ordinary = cases()
        .iter()
        .filter(|c| {
            let f = features(c);
            !odd.iter().any(|o| f.contains(*o))
        })
        .count();
    assert!(ordinary > CASES / 2, "{ordinary} of {CASES}");
}

//! The translation loaded into a real Envoy (issue 23, item 10): what local mode gives Envoy
//! must be taken whole, and a configuration Envoy rejects is reported, not missed.
//!
//! Needs Envoy (ENVOY_BIN), like the suite's other tests; `cargo xtask test` sets it.

use std::path::PathBuf;
use std::time::Duration;

use e2e::envoy::config::{self, Cluster};
use e2e::envoy::process::{ENVOY_BIN_ENV, HOW_TO_GET_ENVOY};
use e2e::istio::VirtualService;
use e2e::manifest::ManifestSet;
use e2e::parity::{LoadedEnvoy, Translation};
use e2e::topology::Topology;

fn envoy() -> PathBuf {
    match std::env::var_os(ENVOY_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ENVOY_BIN_ENV} is not set: {HOW_TO_GET_ENVOY}"),
    }
}

#[tokio::test]
async fn the_shipped_translation_loads_and_a_duplicate_domain_is_reported() {
    let manifests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let set = ManifestSet::load(&[manifests]).expect("manifests");
    let (topo, errors) = Topology::from_manifests(&set);
    assert!(errors.is_empty(), "{errors:?}");
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    let version = "1.31.1".parse().expect("version");
    let routes = config::route_configuration(&topo, &vss, &version, 1).expect("translates");
    let gateway = config::gateway_route_configuration(&topo, &vss, &version).expect("translates");
    let clusters: Vec<Cluster> = config::outbound_clusters(&topo)
        .iter()
        .map(|d| Cluster {
            name: config::cluster_name(&topo, d),
            endpoints: Vec::new(),
        })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let mut envoy = LoadedEnvoy::start(&envoy(), dir.path().to_owned(), Duration::from_secs(20))
        .await
        .expect("Envoy starts");
    let translation = Translation {
        clusters: &clusters,
        routes: &routes,
        gateway_routes: &gateway,
    };
    envoy.load(&translation).await.expect("Envoy takes it");
    // Two virtual hosts with one domain: Envoy rejects the whole RouteConfiguration.
    let mut twice = routes.clone();
    let hosts = twice["resources"][0]["virtual_hosts"]
        .as_array_mut()
        .expect("virtual hosts");
    let mut copy = hosts[0].clone();
    copy["name"] = "copy:9080".into();
    hosts.push(copy);
    let rejected = Translation {
        routes: &twice,
        ..translation
    };
    let err = envoy.load(&rejected).await.expect_err("rejected");
    assert!(
        err.contains("rejected") && err.contains("rds.9080"),
        "{err}"
    );
    envoy.stop().await;
}

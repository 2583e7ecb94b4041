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
use e2e::parity::{LoadedEnvoy, Resources};
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
    let translation = Resources {
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
    let rejected = Resources {
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

/// Issue 24: a route's `fault`, `corsPolicy` and method and query matches act in local
/// mode's Envoy as on a sidecar: its listeners have istiod's fault and CORS filters before
/// the router (without them, the per-route settings load and do nothing).
#[tokio::test]
async fn fault_cors_and_request_matches_act_on_local_modes_listener() {
    let set = ManifestSet::from_str(
        "t.yaml",
        "kind: Service\nmetadata: {name: reviews}\nspec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}\n---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - match: [{method: {exact: DELETE}}]
      route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    - match: [{queryParams: {debug: {exact: '1'}}}]
      route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 429, percentage: {value: 100}}, delay: {fixedDelay: 1ms, percentage: {value: 100}}}
    - route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 500}}
      timeout: 3s
      retries: {attempts: 1, retryOn: connect-failure}
      corsPolicy: {allowOrigins: [{exact: 'https://a.example'}], allowMethods: [GET]}
",
    );
    let (mut topo, errors) = Topology::from_manifests(&set);
    assert!(errors.is_empty(), "{errors:?}");
    topo.namespace = "test".into();
    let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
    let version = "1.31.1".parse().expect("version");
    let routes = config::route_configuration(&topo, &vss, &version, 1).expect("translates");
    let gateway = config::gateway_route_configuration(&topo, &vss, &version).expect("translates");
    let dir = tempfile::tempdir().expect("dir");
    let paths = config::BootstrapPaths {
        routes_file: &dir.path().join("routes.json"),
        gateway_routes_file: &dir.path().join("gateway-routes.json"),
        access_log: &dir.path().join("access.log"),
    };
    config::write_watched(paths.routes_file, &routes).expect("write");
    config::write_watched(paths.gateway_routes_file, &gateway).expect("write");
    // The cluster has no endpoint: whatever the filters do not answer gets Envoy's 503.
    let clusters: Vec<Cluster> = config::outbound_clusters(&topo)
        .iter()
        .map(|d| Cluster {
            name: config::cluster_name(&topo, d),
            endpoints: Vec::new(),
        })
        .collect();
    let bootstrap = dir.path().join("bootstrap.json");
    config::write_json(&bootstrap, &config::bootstrap(&clusters, &paths)).expect("write");
    let envoy = e2e::envoy::process::Envoy::start(
        &envoy(),
        &bootstrap,
        &dir.path().join("envoy.log"),
        Duration::from_secs(20),
    )
    .await
    .expect("Envoy starts");
    e2e::wait::poll_until("the sidecar's routes", Duration::from_secs(20), || async {
        let counters = envoy.update_counters().await.map_err(|e| e.to_string())?;
        let taken = counters
            .get("http.outbound_0.0.0.0_9080.rds.9080.update_success")
            .copied()
            .unwrap_or(0);
        Ok((taken > 0).then_some(()))
    })
    .await
    .expect("routes taken");
    let base = format!(
        "http://{}",
        envoy.listener(config::OUTBOUND_LISTENER).expect("listener")
    );
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .header("host", "reviews:9080")
    };
    let deleted = send(reqwest::Method::DELETE, "/")
        .send()
        .await
        .expect("reply");
    assert_eq!(deleted.status(), 418, "the method match and its abort");
    let debug = send(reqwest::Method::GET, "/?debug=1")
        .send()
        .await
        .expect("reply");
    assert_eq!(debug.status(), 429, "the query match, delayed then aborted");
    let preflight = send(reqwest::Method::OPTIONS, "/")
        .header("origin", "https://a.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("reply");
    assert_eq!(preflight.status(), 200, "the CORS filter answers it");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://a.example")
    );
    let plain = send(reqwest::Method::GET, "/").send().await.expect("reply");
    // An abort without a share aborts nothing (istiod writes none, Envoy reads 0%).
    assert_eq!(plain.status(), 503, "no endpoint: routed, not faulted");
    envoy.stop().await;
}

/// Every variant of parity's corpus is admitted by local mode's webhook rules (but the one
/// that shows a denial), translated, and taken whole by a real Envoy: a corpus mistake, or
/// a translation Envoy refuses, shows here before a cluster runs it.
#[tokio::test]
async fn every_parity_variant_is_admitted_translated_and_loaded() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let base = corpus.join("base.yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p != &base)
        .collect();
    files.sort();
    assert!(files.len() >= 24, "{files:?}");
    let dir = tempfile::tempdir().expect("dir");
    let mut envoy = LoadedEnvoy::start(&envoy(), dir.path().to_owned(), Duration::from_secs(20))
        .await
        .expect("Envoy starts");
    let version = "1.31.1".parse().expect("version");
    for file in files {
        let name = file.file_stem().and_then(|s| s.to_str()).expect("a name");
        let variant = e2e::parity::Variant::load(name, Some(&base), std::slice::from_ref(&file))
            .expect("the variant reads");
        let set = variant.manifests("parity-test").expect("parses");
        let (mut topo, errors) = Topology::from_manifests(&set);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        topo.namespace = "parity-test".into();
        for (i, vs) in topo.virtual_services.iter_mut().enumerate() {
            // The API server's creation times, in the file's order.
            vs.object.metadata.creation_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + i as i64)
                        .expect("a time"),
                ));
            let admitted = e2e::validation::validate_virtual_service(&vs.object);
            if name == "mirror-percentage-over-100" {
                assert!(admitted.is_err(), "{name}: the webhook denies it");
            } else {
                assert!(admitted.is_ok(), "{name}: {admitted:?}");
            }
        }
        let vss: Vec<&VirtualService> = topo.virtual_services.iter().map(|t| &t.object).collect();
        let routes = config::route_configuration(&topo, &vss, &version, 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let gateway = config::gateway_route_configuration(&topo, &vss, &version)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let clusters: Vec<Cluster> = config::outbound_clusters(&topo)
            .iter()
            .map(|d| Cluster {
                name: config::cluster_name(&topo, d),
                endpoints: Vec::new(),
            })
            .collect();
        let translation = Resources {
            clusters: &clusters,
            routes: &routes,
            gateway_routes: &gateway,
        };
        envoy
            .load(&translation)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    envoy.stop().await;
}

//! Cluster mode's code against a real Kubernetes control plane: kube-apiserver,
//! kube-controller-manager and kube-scheduler v1.36.1 with etcd, kwok playing the node and
//! its pods, Istio's real CRDs and istiod's objects from Istio's chart.
//!
//! `cargo xtask test-control-plane` provisions that cluster and runs these inside its
//! network namespace (built only with the `control-plane` feature). Each test works in a
//! namespace of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use e2e::cluster::apply::{Applier, ApplyError};
use e2e::cluster::ready;
use e2e::manifest::ManifestSet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

const KUBECONFIG_ENV: &str = mirror_e2e_contract::env::CONTROL_PLANE_KUBECONFIG;

fn kubeconfig() -> PathBuf {
    std::env::var_os(KUBECONFIG_ENV).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{KUBECONFIG_ENV} is not set: these tests need a real control plane; run them with `cargo xtask test-control-plane`"
        )
    })
}

/// `MIRROR_E2E_PATIENCE` as the suite reads it (a value it would refuse fails here too),
/// else 120 s.
fn patience() -> Duration {
    let name = mirror_e2e_contract::env::PATIENCE;
    match std::env::var(name) {
        Ok(text) => {
            mirror_e2e_contract::parse_seconds(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
        }
        Err(_) => Duration::from_secs(120),
    }
}

async fn client() -> Client {
    let path = kubeconfig();
    let file = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("a config from the kubeconfig");
    Client::try_from(config).expect("a client")
}

/// A namespace of the test's own, created now.
async fn namespace(client: &Client, prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create the test's namespace");
    name
}

async fn drop_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// The manifests a run deploys: Bookinfo, the mirror, the gateway and the routing.
fn shipped() -> ManifestSet {
    let m = project().join("manifests");
    let set = ManifestSet::load(&[
        m.join("bookinfo.yaml"),
        m.join("mirror.yaml"),
        m.join("bookinfo-gateway.yaml"),
        m.join("routing"),
    ])
    .expect("the shipped manifests");
    assert!(set.syntax_errors.is_empty(), "{:?}", set.syntax_errors);
    set
}

#[tokio::test]
async fn the_shipped_manifests_pass_strict_validation_against_istios_schemas_and_roll_out() {
    let client = client().await;
    let ns = namespace(&client, "shipped").await;
    let applier = Applier::new(client.clone(), &ns).await.expect("discovery");
    let set = shipped();
    for (i, doc) in set.documents.iter().enumerate() {
        applier
            .apply(i, &doc.value)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", doc.file.display()));
    }
    // The real deployment controller makes ReplicaSets and pods, the scheduler binds them
    // to kwok's node and kwok makes them Running and Ready: "rolled out" is real here.
    let deployments: Vec<String> = set
        .of_kind("Deployment")
        .map(|d| d.name().to_owned())
        .collect();
    assert_eq!(deployments.len(), 7, "{deployments:?}");
    for name in &deployments {
        ready::deployment_complete(&client, &ns, name, patience())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    drop_namespace(&client, &ns).await;
}

#[tokio::test]
async fn mirror_down_sees_the_pods_go_and_the_endpoint_slices_empty() {
    let client = client().await;
    let ns = namespace(&client, "down").await;
    let applier = Applier::new(client.clone(), &ns).await.expect("discovery");
    let m = project().join("manifests");
    let set = ManifestSet::load(&[m.join("mirror.yaml")]).expect("mirror.yaml");
    for (i, doc) in set.documents.iter().enumerate() {
        applier
            .apply(i, &doc.value)
            .await
            .expect("apply the mirror");
    }
    ready::deployment_complete(&client, &ns, "mirror", patience())
        .await
        .expect("the mirror rolls out");
    // Not vacuous: before the scale, the real EndpointSlice controller lists a ready pod
    // address from kwok's pod range (watched: the controller batches its updates).
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let selector = "kubernetes.io/service-name=mirror";
    let ready_addresses = |slices: &BTreeMap<String, EndpointSlice>| {
        slices
            .values()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .flat_map(|e| e.addresses.clone())
            .collect::<Vec<_>>()
    };
    ready::await_set(
        slices.clone(),
        watcher::Config::default().labels(selector),
        "a ready endpoint from kwok's pod range",
        (&ns, selector),
        patience(),
        |slices| {
            let ready = ready_addresses(slices);
            if ready.iter().any(|a| a.starts_with("10.244.")) {
                Ok(())
            } else {
                Err(format!("ready addresses: {ready:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "mirror",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale the mirror to 0");
    ready::workload_down(&client, &ns, "app=mirror", "mirror", patience())
        .await
        .expect("the mirror's pods and ready endpoints are gone");
    let left = slices
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list EndpointSlices");
    let left: BTreeMap<String, EndpointSlice> = left
        .items
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect();
    assert!(ready_addresses(&left).is_empty(), "{left:?}");
    drop_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_misspelled_field_is_rejected_by_the_real_server_as_500_naming_the_field() {
    let client = client().await;
    let ns = namespace(&client, "strict").await;
    let applier = Applier::new(client.clone(), &ns).await.expect("discovery");
    let set = ManifestSet::from_str(
        "virtual-service.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    mirro: {host: mirror}
",
    );
    let err = applier
        .apply(0, &set.documents[0].value)
        .await
        .expect_err("strict validation rejects an unknown field");
    // What a real API server answers (kubernetes issues 122480, 139253): 500, no reason,
    // and the field path in the message. The scripted server in test_api.rs replays this.
    match err {
        ApplyError::Rejected {
            code,
            reason,
            message,
            ..
        } => {
            assert_eq!(code, 500, "{message}");
            assert_eq!(reason, "", "{message}");
            assert!(
                message.contains(".spec.http[0].mirro: field not declared in schema"),
                "{message}"
            );
        }
        other => panic!("expected a rejection, got {other}"),
    }
    drop_namespace(&client, &ns).await;
}

/// Runs `mirror-e2e cluster` on `manifests` against the control plane, as on an existing
/// cluster (a namespace of the run's own, deleted at the end); whether it passed, and what it
/// said. A run that gets past deploying fails waiting for sidecars (nothing injects them
/// here): tests that expect that give a short patience.
fn run_suite(manifests: &Path, patience: Duration, extra: &[&str]) -> (bool, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let namespace = format!(
        "run-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let artifacts = tempfile::tempdir().expect("artifacts dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mirror-e2e"))
        .args(["cluster", "--kubeconfig"])
        .arg(kubeconfig())
        .arg("--manifests")
        .arg(manifests)
        .arg("--artifacts-root")
        .arg(artifacts.path())
        .args(["--namespace", &namespace])
        .args(["--delete-namespace", "--patience"])
        .arg(patience.as_secs().to_string())
        .args(extra)
        .output()
        .expect("run mirror-e2e");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// The shipped manifests the suite deploys, copied into a directory a test can change.
/// The shipped manifests plus `extra.yaml` holding `text`.
fn manifests_with_extra(text: &str) -> tempfile::TempDir {
    let dir = manifests_copy();
    std::fs::write(dir.path().join("extra.yaml"), text).expect("write extra.yaml");
    dir
}

fn manifests_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("manifests dir");
    let m = project().join("manifests");
    for file in [
        "namespace.yaml",
        "bookinfo.yaml",
        "mirror.yaml",
        "bookinfo-gateway.yaml",
    ] {
        std::fs::copy(m.join(file), dir.path().join(file)).expect("copy");
    }
    std::fs::create_dir(dir.path().join("routing")).expect("routing dir");
    for file in ["destination-rule.yaml", "virtual-service.yaml"] {
        std::fs::copy(
            m.join("routing").join(file),
            dir.path().join("routing").join(file),
        )
        .expect("copy");
    }
    dir
}

#[test]
fn the_run_names_the_file_line_and_field_the_real_server_refused() {
    let dir = manifests_copy();
    let vs = dir.path().join("routing/virtual-service.yaml");
    let text = std::fs::read_to_string(&vs).expect("read");
    assert!(
        text.contains("    mirror:"),
        "the shipped VirtualService mirrors"
    );
    std::fs::write(&vs, text.replacen("    mirror:", "    mirro:", 1)).expect("write");
    let (passed, said) = run_suite(dir.path(), patience(), &["--allow-lint-errors"]);
    assert!(!passed, "{said}");
    assert!(said.contains("virtual-service.yaml:"), "{said}");
    assert!(said.contains("mirro"), "{said}");
}

#[test]
fn an_unserved_kind_stops_the_run_naming_its_file_and_line() {
    let dir = manifests_with_extra(
        "# a kind no API server serves\n\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let (passed, said) = run_suite(dir.path(), patience(), &[]);
    assert!(!passed, "{said}");
    assert!(said.contains("extra.yaml:4"), "{said}");
    assert!(said.contains("Widget"), "{said}");
}

/// A client that authenticates as the ServiceAccount `name` of `namespace` (a token from
/// the real TokenRequest API), against the same server as the admin kubeconfig.
async fn client_as(admin: &Client, namespace: &str, name: &str) -> Client {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": []}})).expect("token request");
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token for the ServiceAccount")
        .status
        .expect("the token")
        .token;
    // The admin kubeconfig is the provider's own (pki.rs): its server and CA, this token.
    let admin_config = std::fs::read_to_string(kubeconfig()).expect("read the kubeconfig");
    let field = |key: &str| {
        admin_config
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
            .unwrap_or_else(|| panic!("no {key} in the kubeconfig"))
            .to_owned()
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        field("server:"),
        field("certificate-authority:")
    );
    let file = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn a_user_limited_to_one_namespace_is_told_forbidden_naming_the_verb_and_resource() {
    let admin = client().await;
    let ns = namespace(&admin, "rbac").await;
    let applier = Applier::new(admin.clone(), &ns).await.expect("discovery");
    let set = ManifestSet::from_str(
        "rbac.yaml",
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: limited}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: everything-here}
rules:
- apiGroups: ['*']
  resources: ['*']
  verbs: ['*']
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: limited-everything-here}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: everything-here}
subjects:
- {kind: ServiceAccount, name: limited}
",
    );
    for (i, doc) in set.documents.iter().enumerate() {
        let mut doc = doc.value.clone();
        if doc["kind"] == "RoleBinding" {
            doc["subjects"][0]["namespace"] = ns.clone().into();
        }
        applier.apply(i, &doc).await.expect("apply the RBAC");
    }
    let limited = client_as(&admin, &ns, "limited").await;
    let started = std::time::Instant::now();
    let err = e2e::cluster::installed_istio(&limited, None)
        .await
        .expect_err("a namespace-bound user cannot list istiods cluster-wide")
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.starts_with("forbidden: the user may not list deployments.apps in all namespaces"),
        "{err}"
    );
    assert!(!err.contains("--install-istio"), "{err}");
    drop_namespace(&admin, &ns).await;
}

#[test]
fn the_projects_manifests_directory_deploys_without_its_provider_configuration() {
    // manifests/ also holds kind's cluster config and the IstioOperator that istioctl reads:
    // provider configuration, not objects of the run. A run on the whole directory applies
    // Bookinfo and the routing, and gets as far as waiting for sidecars (which nothing
    // injects on this cluster) instead of stopping at a kind no server serves.
    let (passed, said) = run_suite(&project().join("manifests"), Duration::from_secs(5), &[]);
    assert!(!passed, "{said}");
    assert!(!said.contains("serves no"), "{said}");
    assert!(said.contains("wait for workloads"), "{said}");
    assert!(said.contains("sidecar"), "{said}");
}

#[test]
fn a_cluster_scoped_document_is_refused_on_a_cluster_the_run_does_not_own() {
    let dir = manifests_with_extra(
        "# cluster-wide\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: mirror-e2e-refused\nrules: []\n",
    );
    let (passed, said) = run_suite(dir.path(), patience(), &[]);
    assert!(!passed, "{said}");
    assert!(
        said.contains("extra.yaml:3: ClusterRole mirror-e2e-refused is cluster-scoped"),
        "{said}"
    );
}

#[tokio::test]
async fn an_allowed_cluster_scoped_object_the_run_created_is_deleted_at_its_end() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let name = format!("mirror-e2e-allowed-{}", std::process::id());
    let dir = manifests_with_extra(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules: []\n"
    ));
    // The run deploys (the role is created), then fails waiting for sidecars, which nothing
    // injects on this cluster; its cleanup must still remove the role.
    let (passed, said) = tokio::task::spawn_blocking({
        let path = dir.path().to_owned();
        move || run_suite(&path, Duration::from_secs(5), &["--allow-cluster-scoped"])
    })
    .await
    .expect("run");
    assert!(!passed, "{said}");
    assert!(said.contains("sidecar"), "{said}");
    let roles: Api<ClusterRole> = Api::all(client().await);
    assert!(
        roles.get_opt(&name).await.expect("get").is_none(),
        "the run left {name} behind:\n{said}"
    );
}

#[test]
fn a_revision_picks_its_own_control_plane_among_two() {
    let dir = manifests_copy();
    let (passed, said) = run_suite(
        dir.path(),
        Duration::from_secs(5),
        &["--revision", "canary"],
    );
    assert!(!passed, "no sidecars are injected here: {said}");
    assert!(
        said.contains("istio-system/istiod-canary, revision canary"),
        "{said}"
    );
    let (_, said) = run_suite(dir.path(), Duration::from_secs(5), &[]);
    assert!(
        said.contains("istio-system/istiod, revision default"),
        "{said}"
    );
}

/// `run_suite` with the node's data plane (`--node`, as `e2e --cluster kwok` runs it), its
/// ingress on a port of the test's own, productpage played by the project's small Python
/// page with `args`.
fn run_suite_on_the_node(port: u16, productpage_args: &str) -> (bool, String) {
    let envoy = std::env::var(mirror_e2e_contract::env::ENVOY_BIN)
        .expect("ENVOY_BIN is not set: `cargo xtask tools --install envoy`, then set it");
    let page = project().join("e2e/tests/workloads/productpage.py");
    let dir = manifests_copy();
    run_suite(
        dir.path(),
        patience(),
        &[
            "--node",
            "kwok-node-0",
            "--envoy",
            &envoy,
            "--ingress",
            &format!("http://10.250.0.1:{port}"),
            "--workload",
            &format!(
                "productpage-v1=python3 {} {{port}} {productpage_args}",
                page.display()
            ),
        ],
    )
}

#[test]
fn the_suite_passes_on_the_node_data_plane_with_a_users_program_as_productpage() {
    let (passed, said) = run_suite_on_the_node(30081, "");
    assert!(passed, "{said}");
    assert!(
        said.contains("productpage.py 9080`)"),
        "productpage's pod runs the user's program on its containerPort:\n{said}"
    );
    assert!(said.contains("7 passed"), "{said}");
}

#[test]
fn a_productpage_that_drops_end_user_fails_tester_routing_on_the_node_data_plane() {
    let (passed, said) = run_suite_on_the_node(30082, "--drop-end-user");
    assert!(!passed, "{said}");
    assert!(said.contains("FAIL routing::tester_served_by_v2"), "{said}");
    assert!(
        said.contains("PASS routing::anonymous_served_by_v1"),
        "{said}"
    );
}

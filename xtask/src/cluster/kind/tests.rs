use super::fakes::Fakes;
use super::*;
use crate::interrupt::{Interrupt, is_interrupted};

fn kind(f: &Fakes) -> Kind<'_> {
    Kind::new(
        &f.sh,
        f.bin("kind"),
        "mirror-e2e",
        f.dir.path().join("kubeconfig"),
        &Interrupt::default(),
    )
}

fn short(calls: Vec<String>) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.split(" --").next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn docker_down_is_reported_before_anything_else() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_DOCKER_DOWN", "1");
    let err = docker_is_running(&f.sh, &Interrupt::default())
        .expect_err("docker down")
        .to_string();
    assert!(err.contains("needs a running Docker engine"), "{err}");
    assert_names_both_ways_without_docker(&err);
    assert_eq!(f.calls(), ["docker --version", "docker info"]);
}

/// Issue 24 §4: without Docker, both ways on are named, each a command that runs.
fn assert_names_both_ways_without_docker(err: &str) {
    for way in [
        "`cargo xtask e2e --cluster kwok`",
        "`cargo xtask e2e --local`",
    ] {
        assert!(err.contains(way), "{way} is not named: {err}");
    }
}

#[test]
fn docker_missing_is_reported() {
    let f = Fakes::new();
    f.sh.set_var("PATH", "/nonexistent");
    let err = docker_is_running(&f.sh, &Interrupt::default())
        .expect_err("no docker")
        .to_string();
    assert!(err.contains("no `docker` command was found"), "{err}");
    assert_names_both_ways_without_docker(&err);
}

#[test]
fn ctrl_c_during_the_docker_check_ends_it_as_an_interruption() {
    // An engine that does not answer makes `docker info` hang; Ctrl-C must end it, and
    // say "interrupted" (exit 130), not "Docker is down".
    let f = Fakes::new();
    let interrupt = Interrupt::default();
    let watcher = f.interrupt_during("docker info", &interrupt);
    let start = std::time::Instant::now();
    let err = docker_is_running(&f.sh, &interrupt).expect_err("interrupted");
    watcher.join().expect("watcher");
    assert!(is_interrupted(&err), "{err:#}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn create_uses_the_private_kubeconfig_and_pinned_image() {
    let f = Fakes::new();
    let attempts = kind(&f)
        .create(
            Path::new("manifests/kind/cluster.yaml"),
            "kindest/node:v1.36.1@sha256:ab",
        )
        .expect("created");
    assert_eq!(attempts, 1);
    assert_eq!(
        f.calls(),
        [
            "kind get clusters",
            "kind create cluster --name mirror-e2e --config manifests/kind/cluster.yaml --image kindest/node:v1.36.1@sha256:ab --kubeconfig <dir>/kubeconfig --wait 180s"
        ]
    );
}

#[test]
fn create_failing_twice_retries_after_kinds_own_cleanup_then_succeeds() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CREATE_FAILS", "2");
    let attempts = kind(&f)
        .create(Path::new("c.yaml"), "img@sha256:ab")
        .expect("third attempt");
    assert_eq!(attempts, 3);
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "kind get clusters",
            "kind create cluster",
            "kind get clusters",
            "kind create cluster"
        ]
    );
}

#[test]
fn a_cluster_that_appears_after_a_failed_attempt_is_left_alone() {
    // Our attempt fails (kind removes it); meanwhile another run creates a cluster of
    // the name. Nothing proves it is ours: no delete, no retry over it.
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CREATE_FAILS", "1");
    f.sh.set_var("FAKE_KIND_APPEARS_ON_FAILURE", "1");
    let k = kind(&f);
    let err = format!(
        "{:#}",
        k.create(Path::new("c.yaml"), "i").expect_err("stops")
    );
    assert!(err.contains("exists now; it is left as it is"), "{err}");
    assert!(!k.started.get(), "nothing of this run's to delete");
    assert_eq!(
        short(f.calls()),
        [
            "kind get clusters",
            "kind create cluster",
            "kind get clusters"
        ]
    );
}

#[test]
fn create_gives_up_after_the_last_attempt() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CREATE_FAILS", "99");
    let err = format!(
        "{:#}",
        kind(&f)
            .create(Path::new("c.yaml"), "i")
            .expect_err("gives up")
    );
    assert!(
        err.starts_with("create kind cluster mirror-e2e (attempt 5 of 5)")
            && err.contains("it said:\n  ERROR: failed to create cluster: failed to init node"),
        "{err}"
    );
    assert_eq!(
        f.calls()
            .iter()
            .filter(|c| c.starts_with("kind create"))
            .count(),
        5
    );
}

#[test]
fn a_cluster_that_exists_before_the_run_is_never_deleted() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let err = format!(
        "{:#}",
        kind(&f)
            .create(Path::new("c.yaml"), "i")
            .expect_err("in the way")
    );
    assert!(
        err.contains("exists already")
            && err.contains("--reuse")
            && err.contains("`kind delete cluster --name mirror-e2e`"),
        "{err}"
    );
    assert_eq!(
        f.calls(),
        ["kind get clusters"],
        "nothing created, nothing deleted"
    );
}

#[test]
fn a_cluster_another_run_creates_meanwhile_is_not_retried_or_deleted() {
    let f = Fakes::new();
    let k = kind(&f);
    // The look finds nothing; by the time kind creates, another run's cluster is there.
    let listed = k.exists().expect("listed");
    assert!(!listed);
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let err = format!(
        "{:#}",
        k.create(Path::new("c.yaml"), "i").expect_err("taken")
    );
    assert!(err.contains("exists already"), "{err}");
    f.assert_deleted_nothing();
}

#[test]
fn the_fake_replays_kinds_already_exists_failure() {
    // What `create` relies on when a parallel run wins the race: kind's own words.
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let bin = f.bin("kind");
    let out = cmd!(f.sh, "{bin} create cluster --name mirror-e2e")
        .quiet()
        .ignore_status()
        .output()
        .expect("ran");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"mirror-e2e\"\n"
    );
}

#[test]
fn ctrl_c_during_create_ends_kind_and_retries_nothing() {
    let f = Fakes::new();
    let k = kind(&f);
    let watcher = f.interrupt_during("kind create", &k.interrupt);
    let start = std::time::Instant::now();
    let err = k.create(Path::new("c.yaml"), "i").expect_err("interrupted");
    watcher.join().expect("watcher");
    assert!(is_interrupted(&err), "{err:#}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(k.started.get(), "a half-created cluster is this run's");
    assert_eq!(
        short(f.calls()),
        ["kind get clusters", "kind create cluster"]
    );
}

#[test]
fn ctrl_c_before_create_starts_nothing_and_claims_nothing() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "mirror-e2e");
    let k = kind(&f);
    k.interrupt.trigger();
    let err = k.create(Path::new("c.yaml"), "i").expect_err("interrupted");
    assert!(is_interrupted(&err), "{err:#}");
    assert!(!k.started.get());
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[test]
fn reuse_finds_the_cluster_and_writes_a_private_kubeconfig() {
    let f = Fakes::new();
    f.sh.set_var("FAKE_KIND_CLUSTERS", "other\nmirror-e2e");
    let k = kind(&f);
    assert!(k.exists().expect("listed"));
    k.write_kubeconfig().expect("written");
    assert_eq!(
        std::fs::read_to_string(&k.kubeconfig).expect("kubeconfig"),
        "apiVersion: v1"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k.kubeconfig)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(
        f.calls(),
        ["kind get clusters", "kind get kubeconfig --name mirror-e2e"]
    );
}

#[test]
fn istioctl_targets_the_given_cluster_only() {
    let f = Fakes::new();
    let istioctl = Istioctl {
        sh: &f.sh,
        bin: f.bin("istioctl"),
        kubeconfig: Some(PathBuf::from("/k/config")),
        context: Some("kind-mirror-e2e".into()),
        hub: Some("gcr.io/istio-release".into()),
        interrupt: Interrupt::default(),
    };
    istioctl
        .install(Path::new("manifests/istio/operator.yaml"))
        .expect("installed");
    let out = f.dir.path().join("routes.json");
    istioctl.productpage_routes("test", &out).expect("routes");
    assert_eq!(
        f.calls(),
        [
            "istioctl install -y --kubeconfig /k/config --context kind-mirror-e2e -f manifests/istio/operator.yaml --set hub=gcr.io/istio-release",
            "istioctl proxy-config routes deploy/productpage-v1 -n test -o json --kubeconfig /k/config --context kind-mirror-e2e"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out).expect("routes"),
        r#"[{"name": "9080"}]"#
    );
}

//! The checks against a mesh of this file's own: retries, concurrency, the log wait.

use super::*;
use crate::istio::VirtualService;
use crate::manifest::ManifestSet;
use crate::mesh::{Call, MeshError, Reply};
use crate::mirror_log::{MirrorRecords, MirroredRequest};
use crate::report::RunReport;
use crate::report::live::LiveReport;
use crate::retry::RetryPolicy;
use crate::suite::{Spec, Suite, tag_prefix};
use crate::topology::Topology;
use crate::version::{IstioVersion, ShadowRule};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A mesh whose replies take `latency` and whose mirror logs a tester request
/// `log_delay` after it was answered, as a pod's log reaches the API later.
struct SlowMesh {
    topology: Topology,
    records: Arc<MirrorRecords>,
    latency: Duration,
    log_delay: Duration,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// The mode's shadow rule, when it has one of its own.
    shadow_rule: Option<ShadowRule>,
    /// The Host the mirror logs.
    mirror_host: &'static str,
}

const MANIFESTS: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: reviews, image: 'r:1', ports: [{containerPort: 9080}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v2, labels: {version: v2}}]}
";

fn slow_mesh(latency: Duration, log_delay: Duration) -> SlowMesh {
    let (topology, errors) = Topology::from_manifests(&ManifestSet::from_str("m.yaml", MANIFESTS));
    assert!(errors.is_empty(), "{errors:?}");
    SlowMesh {
        topology,
        records: Arc::new(MirrorRecords::new(&tag_prefix("run"))),
        latency,
        log_delay,
        in_flight: AtomicUsize::new(0),
        most_in_flight: AtomicUsize::new(0),
        shadow_rule: None,
        mirror_host: "reviews",
    }
}

/// The suite over `mesh` for run `run`, retrying for `limit`.
fn suite_of(mesh: SlowMesh, limit: Duration) -> Suite<SlowMesh> {
    Suite::new(mesh, Spec::default(), RetryPolicy::istio(limit), "run")
}

impl Mesh for SlowMesh {
    fn istio_version(&self) -> IstioVersion {
        "1.31.1".parse().expect("version")
    }
    fn shadow_rule(&self) -> ShadowRule {
        self.shadow_rule
            .clone()
            .unwrap_or(ShadowRule::VersionDefault {
                version: self.istio_version(),
                why: "test".into(),
            })
    }
    fn topology(&self) -> &Topology {
        &self.topology
    }
    fn log_latency(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Identity::User(user) = &call.identity {
            let (records, delay) = (self.records.clone(), self.log_delay);
            let record = MirroredRequest {
                path: "/reviews/0".into(),
                hostname: "reviews".into(),
                headers: [
                    ("user-agent".to_owned(), call.tag.clone()),
                    ("end-user".to_owned(), user.clone()),
                    ("host".to_owned(), format!("{}:9080", self.mirror_host)),
                ]
                .into(),
                timestamp: None,
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                records.add(vec![record]);
            });
        }
        Ok(Reply {
            status: 200,
            workload: Some("reviews-v2".into()),
            pod: None,
            latency: self.latency,
        })
    }
    fn mirror_records(&self) -> &MirrorRecords {
        &self.records
    }
    async fn apply_virtual_service(&self, _: &VirtualService) -> Result<(), MeshError> {
        Ok(())
    }
    async fn send_to_mirror(&self, _: &str) -> Result<(), MeshError> {
        Ok(())
    }

    async fn set_mirror_running(&self, _: bool) -> Result<crate::mesh::MirrorChange, MeshError> {
        Ok(crate::mesh::MirrorChange {
            what: "stopped".into(),
            waited: None,
        })
    }
}

#[tokio::test]
async fn an_attempt_whose_requests_passed_always_gets_its_log_wait() {
    // The retry's limit runs out while the first attempt's shadows are still on their
    // way: the attempt still reads the log for as long as the mode's log takes.
    let mesh = slow_mesh(Duration::ZERO, Duration::from_millis(150));
    let suite = suite_of(mesh, Duration::from_millis(50));
    let passed = suite
        .mirrored(1, "mirror::tester_requests_mirrored_with_end_user")
        .await
        .expect("passes although the limit ran out during the log wait");
    assert_eq!(passed.stable.attempts, 3);
}

#[tokio::test]
async fn a_batch_has_at_most_the_configured_requests_in_flight() {
    for concurrency in [1, 4] {
        let mesh = slow_mesh(Duration::from_millis(5), Duration::ZERO);
        let suite = suite_of(mesh, Duration::from_secs(5)).with_concurrency(concurrency);
        suite
            .served_by(
                Identity::User("tester".into()),
                "v2",
                "routing::tester_served_by_v2",
            )
            .await
            .expect("passes");
        assert_eq!(
            suite.mesh.most_in_flight.load(Ordering::SeqCst),
            concurrency
        );
    }
}

#[tokio::test]
async fn the_shadow_host_is_expected_by_istiods_setting_and_the_check_says_so() {
    // A 1.31 istiod installed with the 1.27 compatibility profile keeps `-shadow`.
    let mut mesh = slow_mesh(Duration::ZERO, Duration::ZERO);
    mesh.mirror_host = "reviews-shadow";
    mesh.shadow_rule = Some(ShadowRule::for_istiod(
        mesh.istio_version(),
        Ok(Some("false")),
    ));
    let suite = suite_of(mesh, Duration::from_secs(5));
    let passed = suite
        .shadow_host(1, "mirror::shadow_host_matches_istio_version")
        .await
        .expect("the suffix istiod's environment keeps is expected");
    assert_eq!(
        passed.note,
        "mirror saw host `reviews-shadow`, as expected by istiod's DISABLE_SHADOW_HOST_SUFFIX=false on Istio 1.31.1"
    );

    // Without that setting the version's default applies, and a failure names it.
    let mut mesh = slow_mesh(Duration::ZERO, Duration::ZERO);
    mesh.mirror_host = "reviews-shadow";
    let suite = suite_of(mesh, Duration::from_millis(200));
    let failed = suite
        .shadow_host(1, "mirror::shadow_host_matches_istio_version")
        .await
        .expect_err("1.31's default drops the suffix");
    assert!(
        failed.message.contains(
            "the mirror saw host `reviews-shadow`, expected `reviews` by Istio 1.31.1's default"
        ),
        "{}",
        failed.message
    );
}

#[test]
fn each_finished_check_reaches_the_live_report_the_run_handed_over() {
    // The run hands its suite a handle (no global): a second run's report in the same
    // process sees none of this run's checks.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (live, other) = (LiveReport::default(), LiveReport::default());
    live.start(dirs.0.path(), &RunReport::default());
    other.start(dirs.1.path(), &RunReport::default());
    let suite = Arc::new(suite_of(
        slow_mesh(Duration::ZERO, Duration::ZERO),
        Duration::from_secs(5),
    ));
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    let trials = crate::suite::trials(suite, runtime.handle().clone(), results, &live);
    let args = crate::suite::harness_arguments(&[
        "--exact".to_owned(),
        "mirror::tester_requests_mirrored_with_end_user".to_owned(),
    ]);
    let conclusion = libtest_mimic::run(&args, trials);
    assert_eq!(conclusion.num_passed, 1);
    let names: Vec<String> = live.checks().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["mirror::tester_requests_mirrored_with_end_user"]);
    assert!(other.checks().is_empty());
    let written = live.write_stopped("interrupted (Ctrl-C)").expect("written");
    assert_eq!(written, dirs.0.path());
}

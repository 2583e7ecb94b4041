//! What the suite needs from a mode: send a request as someone, read the mirror's log,
//! change the routing, stop and start the mirror. Local mode and cluster mode implement it;
//! the checks are written once against this trait.

use std::time::Duration;

use crate::istio::VirtualService;
use crate::mirror_log::MirrorRecords;
use crate::topology::Topology;
use crate::version::{IstioVersion, ShadowRule};

/// Who sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Not logged in: no `end-user`.
    Anonymous,
    /// Logged in; productpage sets `end-user` to this name.
    User(String),
}

/// One request of the suite. The tag travels end to end in `user-agent`.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who sends it.
    pub identity: Identity,
    /// A unique tag.
    pub tag: String,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The workload (Deployment) that served the reviews call, if known.
    pub workload: Option<String>,
    /// The pod that served it, when the page names one.
    pub pod: Option<String>,
    /// Round-trip time.
    pub latency: Duration,
}

/// Errors of a mode.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A request could not be sent or answered.
    #[error("request {tag}: {message}")]
    Request {
        /// The request's tag.
        tag: String,
        /// What went wrong.
        message: String,
    },
    /// The mirror's log could not be read.
    #[error("mirror log: {0}")]
    Log(String),
    /// Routing could not be applied.
    #[error("apply VirtualService {name}: {message}")]
    Apply {
        /// The VirtualService.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The mirror could not be stopped or started.
    #[error("mirror workload: {0}")]
    Mirror(String),
}

/// A mesh the suite can drive.
#[allow(async_fn_in_trait)] // Driven from one thread; callers need no Send bound.
pub trait Mesh {
    /// The Istio version the mesh runs (or emulates).
    fn istio_version(&self) -> IstioVersion;

    /// The rule that says whether the mirror's Host carries `-shadow`: by default the
    /// version's (local mode configures Envoy as that version's istiod does by default); a
    /// cluster reads istiod's own setting.
    fn shadow_rule(&self) -> ShadowRule {
        ShadowRule::VersionDefault {
            version: self.istio_version(),
            why: "the mesh emulates the version's defaults".into(),
        }
    }

    /// The manifests' topology (Services, workloads, subsets, the routing under test).
    fn topology(&self) -> &Topology;

    /// How long a mirrored request may take to show in the mirror's log. One attempt of a
    /// check waits this long (at most the retry's deadline) before it counts as failed.
    fn log_latency(&self) -> Duration;

    /// Sends one request to the reviews hop.
    async fn send(&self, call: &Call) -> Result<Reply, MeshError>;

    /// What the mirror has logged since the run started, as the mode reads it (a local
    /// workload's output, or the pods' logs followed through the API).
    fn mirror_records(&self) -> &MirrorRecords;

    /// What the mode can tell of where request `tag` went and with which headers (local mode
    /// reads its workloads' request logs), to say why a check failed; `None` when unknown.
    fn request_trail(&self, _tag: &str) -> Option<String> {
        None
    }

    /// The name of the route that matched request `tag` on its hop to `host` (productpage's
    /// sidecar's route to reviews): `Ok(None)` for a route without a name, `Err` saying why
    /// the mode cannot read it.
    async fn matched_route(&self, _tag: &str, _host: &str) -> Result<Option<String>, String> {
        Err("this mode does not read the proxies' access logs".into())
    }

    /// Sends one request tagged `tag` straight to the mirror's workload, bypassing the
    /// routing under test: the barrier of the absence checks (once the mirror's log shows
    /// it, everything sent before has been logged), whatever the routing mirrors.
    async fn send_to_mirror(&self, tag: &str) -> Result<(), MeshError>;

    /// Applies a VirtualService (replacing the one of the same name); returns without
    /// waiting for it to reach the proxies, as `kubectl apply` does.
    async fn apply_virtual_service(&self, vs: &VirtualService) -> Result<(), MeshError>;

    /// Stops (`false`) or starts (`true`) the mirror workload, and returns once it is really
    /// down (no pod left, no ready endpoint) or up (rolled out, sidecar ready), saying what
    /// happened for the check's report.
    async fn set_mirror_running(&self, running: bool) -> Result<MirrorChange, MeshError>;
}

/// What stopping or starting the mirror did, in the words of the mode that did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorChange {
    /// What happened (`Deployment mirror scaled to 0: no pod, no ready endpoint`).
    pub what: String,
    /// How long it took, where the mode waited for it (a rollout); `None` where it happens
    /// at once (a local listener closing), since a duration of microseconds says nothing.
    pub waited: Option<Duration>,
}

impl std::fmt::Display for MirrorChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.waited {
            Some(waited) => write!(f, "{} after {waited:.1?}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

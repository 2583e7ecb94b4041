//! The environment variables xtask and mirror-e2e both read or set, named once.

/// The Envoy binary, when no `--envoy` is given.
pub const ENVOY_BIN: &str = "ENVOY_BIN";
/// Seconds every wait may take, when no `--patience` is given.
pub const PATIENCE: &str = "MIRROR_E2E_PATIENCE";
/// Where runs keep their evidence (`<root>/<run-id>/`), when no `--artifacts-root` is given.
pub const ARTIFACTS_ROOT: &str = "MIRROR_E2E_ARTIFACTS_ROOT";
/// xtask's pid: mirror-e2e ends itself when that process dies.
pub const PARENT_PID: &str = "MIRROR_E2E_PARENT_PID";
/// The kubeconfig of the control-plane tests' cluster (`cargo xtask test-control-plane`).
pub const CONTROL_PLANE_KUBECONFIG: &str = "MIRROR_E2E_CONTROL_PLANE_KUBECONFIG";
/// Set in CI: progress as plain lines, and a failed suite's cluster deleted by default.
pub const CI: &str = "CI";

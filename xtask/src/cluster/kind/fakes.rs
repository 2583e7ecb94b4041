//! Fake `docker`, `kind`, `istioctl` and `mirror-e2e` executables that append their
//! arguments to a log and behave as the `FAKE_*` variables say.

use super::*;

pub struct Fakes {
    pub dir: tempfile::TempDir,
    pub sh: Shell,
}

/// One script for the three tools. kind's part replays kind v0.32.0: `get clusters`
/// lists the clusters or says "No kind clusters found." on stderr
/// (pkg/cmd/kind/get/clusters); `create cluster` of a name that exists fails at once
/// with `node(s) already exist for a cluster with the name "<name>"`
/// (pkg/cluster/internal/create/create.go), and a failed create leaves no cluster (it
/// deletes its nodes unless --retain; `FAKE_KIND_APPEARS_ON_FAILURE` stands for another
/// run creating the name right after). `FAKE_BLOCK="<tool> <verb>"` makes that call say
/// so on the fifo `$FAKE_DIR/started` and then block until it is killed.
const SCRIPT: &str = r#"#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >> "$FAKE_DIR/calls.log"
name=mirror-e2e
prev=""
for a in "$@"; do [ "$prev" = "--name" ] && name="$a"; prev="$a"; done
clusters() { cat "$FAKE_DIR/clusters" 2>/dev/null; [ -z "$FAKE_KIND_CLUSTERS" ] || echo "$FAKE_KIND_CLUSTERS"; }
case "$tool $1" in "${FAKE_BLOCK:-none}"|"${FAKE_BLOCK:-none} "*)
  [ -n "$FAKE_BLOCK" ] && { echo started > "$FAKE_DIR/started"; exec sleep 600; } ;;
esac
case "$tool $1 $2" in
  "docker info "*) [ -z "$FAKE_DOCKER_DOWN" ] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; } ;;
  "kind create cluster")
if clusters | grep -qx "$name"; then
  echo "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"$name\"" >&2; exit 1
fi
n=$(cat "$FAKE_DIR/creates" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/creates"
if [ "$n" -le "${FAKE_KIND_CREATE_FAILS:-0}" ]; then
  [ -z "$FAKE_KIND_APPEARS_ON_FAILURE" ] || echo "$name" >> "$FAKE_DIR/clusters"
  echo "ERROR: failed to create cluster: failed to init node with kubeadm" >&2; exit 1
fi
echo "$name" >> "$FAKE_DIR/clusters" ;;
  "kind get clusters") c=$(clusters); if [ -z "$c" ]; then echo "No kind clusters found." >&2; else echo "$c"; fi ;;
  "kind get kubeconfig") echo "apiVersion: v1" ;;
  "kind delete cluster") echo "Deleting cluster \"$name\" ..." >&2
grep -vx "$name" "$FAKE_DIR/clusters" > "$FAKE_DIR/clusters.new" 2>/dev/null; mv "$FAKE_DIR/clusters.new" "$FAKE_DIR/clusters" 2>/dev/null; true ;;
  "istioctl install "*) [ -z "$FAKE_ISTIOCTL_FAILS" ] || { echo "Error: failed to install" >&2; exit 1; } ;;
  "istioctl proxy-config routes") echo '[{"name": "9080"}]' ;;
  "mirror-e2e cluster "*) [ -z "$FAKE_SUITE_FAILS" ] || { echo "2 passed, 1 failed"; exit 1; }
case " $* " in *" --istio $FAKE_SUITE_FAILS_ON "*) echo "6 passed, 1 failed"; exit 1 ;; esac ;;
esac
"#;

impl Fakes {
    pub fn new() -> Fakes {
        let dir = tempfile::tempdir().expect("tempdir");
        for tool in ["docker", "kind", "istioctl", "mirror-e2e"] {
            let path = dir.path().join(tool);
            std::fs::write(&path, SCRIPT).expect("write fake");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod fake");
            }
        }
        let sh = Shell::new().expect("shell");
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        sh.set_var("PATH", path);
        sh.set_var("FAKE_DIR", dir.path());
        Fakes { dir, sh }
    }

    pub fn bin(&self, tool: &str) -> PathBuf {
        self.dir.path().join(tool)
    }

    /// Makes `call` (e.g. `kind create`) block until killed, and triggers `interrupt`
    /// as soon as it has started: Ctrl-C in the middle of that call.
    pub fn interrupt_during(
        &self,
        call: &str,
        interrupt: &Interrupt,
    ) -> std::thread::JoinHandle<()> {
        let fifo = self.dir.path().join("started");
        cmd!(self.sh, "mkfifo {fifo}").run().expect("mkfifo");
        self.sh.set_var("FAKE_BLOCK", call);
        let interrupt = interrupt.clone();
        std::thread::spawn(move || {
            // Returns once the fake has written to the fifo, i.e. it has started.
            std::fs::read_to_string(fifo).expect("read the fifo");
            interrupt.trigger();
        })
    }

    /// Fails the test, listing every call, if any `kind delete` ran.
    pub fn assert_deleted_nothing(&self) {
        let calls = self.calls();
        assert!(
            !calls.iter().any(|c| c.starts_with("kind delete")),
            "{calls:?}"
        );
    }

    /// Every call, one line each, with the tool's name and its arguments.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.replace(&self.dir.path().display().to_string(), "<dir>"))
            .collect()
    }
}

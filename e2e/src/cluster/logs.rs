//! The mirror's log through the Kubernetes API, followed the way `kubectl logs -f` reads it.
//!
//! One `follow=true` stream per running container instance of the mirror's pods, from the
//! run's start, with timestamps. A stream that ends while its container still runs is
//! reopened where it stopped; a container that restarts, or a pod that appears, gets a
//! stream of its own (found through a watch on the pods). Lines are parsed as they arrive
//! ([`LineParser`]) into [`MirrorRecords`], so memory stays bounded whatever the log's size
//! and nothing is read twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::LogParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::task::{JoinHandle, JoinSet};

use crate::mirror_log::{LineParser, MirrorRecords, split_timestamp};

/// The first pause before reopening a stream that ended; it doubles up to [`MAX_REOPEN`]
/// while reopened streams bring nothing, so a server that keeps closing them is not hammered.
const FIRST_REOPEN: Duration = Duration::from_millis(100);
const MAX_REOPEN: Duration = Duration::from_secs(5);

/// Follows one container of the pods a selector matches until dropped.
pub struct LogFollower {
    task: JoinHandle<()>,
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        // The streams live in a JoinSet owned by the task: aborting it ends them all.
        self.task.abort();
    }
}

/// Which container of which pods, from when, into what.
#[derive(Clone)]
struct Target {
    api: Api<Pod>,
    container: String,
    since: Timestamp,
    records: Arc<MirrorRecords>,
}

impl LogFollower {
    /// Starts following `container` in the pods of `namespace` matching `selector`, from
    /// `since` on, into `records`.
    pub fn start(
        client: &Client,
        namespace: &str,
        selector: &str,
        container: &str,
        since: Timestamp,
        records: Arc<MirrorRecords>,
    ) -> LogFollower {
        let target = Target {
            api: Api::namespaced(client.clone(), namespace),
            container: container.to_owned(),
            // sinceTime has whole seconds, and kube rounds it: start at the second's start.
            since: whole_second(since),
            records,
        };
        let config = watcher::Config::default().labels(selector);
        LogFollower {
            task: tokio::spawn(follow_pods(target, config)),
        }
    }
}

fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Watches the pods and starts a stream for every container instance not followed yet.
async fn follow_pods(target: Target, config: watcher::Config) {
    let mut streams = JoinSet::new();
    let mut followed: HashSet<(String, i32)> = HashSet::new();
    let mut pods = watcher(target.api.clone(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(pod) = pods.next().await {
        match pod {
            Ok(pod) => {
                target.records.set_problem(POD_WATCH, None);
                let Some(restarts) = running_restart_count(&pod, &target.container) else {
                    continue;
                };
                let uid = pod.metadata.uid.clone().unwrap_or_else(|| pod.name_any());
                if followed.insert((uid, restarts)) {
                    streams.spawn(follow_container(target.clone(), pod.name_any(), restarts));
                }
            }
            Err(e) => target.records.set_problem(
                POD_WATCH,
                Some(format!("watch the mirror's pods (retrying): {e}")),
            ),
        }
    }
}

/// The pod watch's name as a reader of the log (each stream's is its pod's name).
const POD_WATCH: &str = "pod watch";

/// Where a stream stopped: the last timestamp taken and how many lines carried it (lines
/// written together share a timestamp, and a reopened stream repeats that second).
#[derive(Debug, Default, Clone, PartialEq)]
struct Position {
    last: Option<Timestamp>,
    at_last: usize,
}

impl Position {
    /// The lines a reopened stream repeats at the last instant: set when a stream opens.
    fn replay(&self) -> usize {
        self.at_last
    }

    /// Whether a line with this timestamp is new (and records it), given how many lines of
    /// the last instant the stream is still to repeat.
    fn take(&mut self, ts: Option<Timestamp>, replay: &mut usize) -> bool {
        let Some(ts) = ts else { return true };
        match self.last {
            Some(last) if ts < last => false,
            Some(last) if ts == last => {
                if *replay > 0 {
                    *replay -= 1;
                    false
                } else {
                    self.at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(ts);
                self.at_last = 1;
                true
            }
        }
    }
}

/// Follows one container instance until it stops running.
async fn follow_container(target: Target, pod: String, restarts: i32) {
    let mut parser = LineParser::default();
    let mut position = Position::default();
    let mut pause = FIRST_REOPEN;
    loop {
        let params = LogParams {
            container: Some(target.container.clone()),
            follow: true,
            timestamps: true,
            since_time: Some(position.last.map_or(target.since, whole_second)),
            ..LogParams::default()
        };
        let mut replay = position.replay();
        let mut took_any = false;
        match target.api.log_stream(&pod, &params).await {
            Ok(stream) => {
                // The stream is open again: an earlier failure is history, and a failing
                // check must not quote it.
                target.records.set_problem(&pod, None);
                let mut lines = stream.lines();
                while let Some(line) = lines.next().await {
                    let line = match line {
                        Ok(line) => line,
                        Err(e) => {
                            target
                                .records
                                .set_problem(&pod, Some(format!("log stream of {pod} broke: {e}")));
                            break;
                        }
                    };
                    let ts = split_timestamp(&line).0.and_then(|t| t.parse().ok());
                    if position.take(ts, &mut replay) {
                        took_any = true;
                        target.records.add(parser.push(&format!("{line}\n")));
                    }
                }
            }
            Err(e) => target.records.set_problem(
                &pod,
                Some(format!("follow the log of {pod} (retrying): {e}")),
            ),
        }
        // The stream ended. Reopen it only while this container instance still runs; a
        // restart or a new pod is the pod watch's to follow.
        match target.api.get_opt(&pod).await {
            Ok(Some(p)) if running_restart_count(&p, &target.container) == Some(restarts) => {}
            Ok(_) => {
                // This instance is done; a problem of its stream no longer matters.
                target.records.set_problem(&pod, None);
                return;
            }
            Err(e) => target
                .records
                .set_problem(&pod, Some(format!("look up pod {pod} (retrying): {e}"))),
        }
        pause = if took_any {
            FIRST_REOPEN
        } else {
            (pause * 2).min(MAX_REOPEN)
        };
        tokio::time::sleep(pause).await;
    }
}

/// The restart count of `container` when it is running (a log can be read), else `None`.
fn running_restart_count(pod: &Pod, container: &str) -> Option<i32> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?;
    status.state.as_ref()?.running.as_ref()?;
    Some(status.restart_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_api::{ApiServer, Responder, status};
    use serde_json::{Value, json};
    use std::collections::{BTreeMap, VecDeque};

    fn pod(name: &str, restarts: i32, rv: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "test", "uid": format!("uid-{name}"), "resourceVersion": rv},
            "status": {"containerStatuses": [{"name": "mirror", "ready": true, "restartCount": restarts, "image": "i", "imageID": "",
                "state": {"running": {"startedAt": "2026-11-27T08:00:00Z"}}}]},
        })
    }

    /// Follows container `mirror` of the pods labelled `app=mirror` in namespace `test`.
    fn follow_mirror(
        client: &kube::Client,
        since: Timestamp,
        records: &Arc<MirrorRecords>,
    ) -> LogFollower {
        LogFollower::start(
            client,
            "test",
            "app=mirror",
            "mirror",
            since,
            records.clone(),
        )
    }

    /// One compact echo record tagged `tag`, logged at `ts`, with the access line after it.
    fn record(ts: &str, tag: &str) -> String {
        format!(
            "{ts} {{\"path\":\"/reviews/0\",\"headers\":{{\"host\":\"reviews:9080\",\"user-agent\":\"{tag}\",\"end-user\":\"tester\"}},\"hostname\":\"reviews\"}}\n\
             {ts} ::ffff:127.0.0.6 - - [27/Nov/2026:08:00:01 +0000] \"GET /reviews/0 HTTP/1.1\" 200 598 \"-\" \"{tag}\"\n"
        )
    }

    #[test]
    fn a_reopened_stream_skips_exactly_the_lines_it_took() {
        let t = |s: &str| Some(s.parse::<Timestamp>().expect("ts"));
        let mut p = Position::default();
        let mut replayed = p.replay();
        // Two lines written together share a timestamp; both are taken.
        assert!(p.take(t("2026-11-27T08:00:01.5Z"), &mut replayed));
        assert!(p.take(t("2026-11-27T08:00:01.5Z"), &mut replayed));
        // Reopened from 08:00:01: the earlier line and the two taken are skipped, a third
        // line of that instant and later ones are new.
        let mut replayed = p.replay();
        assert!(!p.take(t("2026-11-27T08:00:01.2Z"), &mut replayed));
        assert!(!p.take(t("2026-11-27T08:00:01.5Z"), &mut replayed));
        assert!(!p.take(t("2026-11-27T08:00:01.5Z"), &mut replayed));
        assert!(p.take(t("2026-11-27T08:00:01.5Z"), &mut replayed));
        assert!(p.take(t("2026-11-27T08:00:02Z"), &mut replayed));
    }

    #[tokio::test]
    async fn a_stream_error_that_recovered_is_not_quoted() {
        let (client, mut server) = ApiServer::start();
        let records = Arc::new(MirrorRecords::new("run/"));
        let since: Timestamp = "2026-11-27T08:00:00Z".parse().expect("since");
        let follower = follow_mirror(&client, since, &records);
        let mut held = Vec::new();
        let mut log_requests = 0;
        let (before, stream) = loop {
            let (request, _) = server.next().await;
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            if path == "/api/v1/namespaces/test/pods" && query.contains("watch=true") {
                held.push(server.take_pending());
            } else if path == "/api/v1/namespaces/test/pods" {
                server
                    .respond(200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [pod("mirror-a", 0, "1")]}))
                    .await;
            } else if path == "/api/v1/namespaces/test/pods/mirror-a/log" {
                log_requests += 1;
                if log_requests == 1 {
                    // The first open fails (an API server restarting, say).
                    server
                        .respond(
                            503,
                            status(503, "ServiceUnavailable", "the server is shutting down"),
                        )
                        .await;
                } else {
                    // Asked again, not yet answered: the failure still stands.
                    break (records.observe(&[]).problem, server.open());
                }
            } else if path == "/api/v1/namespaces/test/pods/mirror-a" {
                server.respond(200, pod("mirror-a", 0, "1")).await;
            } else {
                panic!("unexpected request {path}?{query}");
            }
        };
        let before = before.unwrap_or_default();
        assert!(
            before.contains("follow the log of mirror-a (retrying)")
                && before.contains("shutting down"),
            "the failure is reported while it lasts: {before:?}"
        );
        // The reopened stream stays open and carries the run's request.
        stream.send(&record("2026-11-27T08:00:01Z", "run/1"));
        let seen = records
            .wait_for(
                &["run/1".to_owned()],
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
            .await;
        assert!(seen.contains("run/1"), "{}", seen.describe());
        assert_eq!(seen.problem, None, "{}", seen.describe());
        assert!(
            !seen.describe().contains("shutting down"),
            "{}",
            seen.describe()
        );
        drop(follower);
        drop(held);
    }

    /// The scripted cluster: pod states per GET, log bodies per GET of a pod's log (held
    /// open once they run out, as a follow stream with nothing new), and pod watch events
    /// released once the first pod has restarted.
    struct Script {
        states: BTreeMap<String, VecDeque<Value>>,
        logs: BTreeMap<String, VecDeque<String>>,
        events: Vec<Value>,
        restarted: bool,
        log_queries: Vec<String>,
        held: Vec<Responder>,
    }

    #[tokio::test]
    async fn streams_are_followed_reopened_and_replaced_across_restarts_and_new_pods() {
        let (client, mut server) = ApiServer::start();
        let since: Timestamp = "2026-11-27T08:00:00.6Z".parse().expect("since");
        let records = Arc::new(MirrorRecords::new("run/"));
        let follower = follow_mirror(&client, since, &records);
        let mut script = Script {
            states: BTreeMap::from([
                (
                    "mirror-a".to_owned(),
                    // After the first stream ends it still runs; after the second, it restarted.
                    VecDeque::from([pod("mirror-a", 0, "2"), pod("mirror-a", 1, "3")]),
                ),
                (
                    "mirror-b".to_owned(),
                    VecDeque::from([pod("mirror-b", 0, "4")]),
                ),
            ]),
            logs: BTreeMap::from([
                (
                    "mirror-a".to_owned(),
                    VecDeque::from([
                        // The first stream ends in the middle of nothing.
                        record("2026-11-27T08:00:01.5Z", "run/1"),
                        // Reopened from 08:00:01: run/1 again (skipped), then run/2.
                        record("2026-11-27T08:00:01.5Z", "run/1")
                            + &record("2026-11-27T08:00:03Z", "run/2"),
                        // The restarted container's stream.
                        record("2026-11-27T08:00:05Z", "run/3"),
                    ]),
                ),
                (
                    "mirror-b".to_owned(),
                    VecDeque::from([record("2026-11-27T08:00:06Z", "run/4")]),
                ),
            ]),
            events: vec![
                json!({"type": "MODIFIED", "object": pod("mirror-a", 1, "3")}),
                json!({"type": "ADDED", "object": pod("mirror-b", 0, "4")}),
            ],
            restarted: false,
            log_queries: Vec::new(),
            held: Vec::new(),
        };
        let tags: Vec<String> = (1..=4).map(|i| format!("run/{i}")).collect();
        let waiting =
            records.wait_for(&tags, tokio::time::Instant::now() + Duration::from_secs(10));
        tokio::pin!(waiting);
        let seen = loop {
            tokio::select! {
                seen = &mut waiting => break seen,
                (request, _) = server.next() => {
                    let responder = server.take_pending();
                    let path = request.uri().path().to_owned();
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    if path == "/api/v1/namespaces/test/pods" && query.contains("watch=true") {
                        if script.restarted && !script.events.is_empty() {
                            let body: String = script.events.drain(..).map(|e| format!("{e}\n")).collect();
                            responder.respond_raw(200, body.into_bytes());
                        } else {
                            script.held.push(responder);
                        }
                    } else if path == "/api/v1/namespaces/test/pods" {
                        responder.respond(200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [pod("mirror-a", 0, "1")]}));
                    } else if let Some(name) = path.strip_prefix("/api/v1/namespaces/test/pods/").and_then(|p| p.strip_suffix("/log")) {
                        script.log_queries.push(format!("{name}?{query}"));
                        match script.logs.get_mut(name).and_then(VecDeque::pop_front) {
                            Some(body) => responder.respond_raw(200, body.into_bytes()),
                            None => script.held.push(responder),
                        }
                    } else if let Some(name) = path.strip_prefix("/api/v1/namespaces/test/pods/") {
                        let states = script.states.get_mut(name).expect("a scripted pod");
                        let state = if states.len() > 1 { states.pop_front() } else { states.front().cloned() };
                        let state = state.expect("a state");
                        script.restarted |= state["status"]["containerStatuses"][0]["restartCount"] == 1;
                        responder.respond(200, state);
                    } else {
                        panic!("unexpected request {path}?{query}");
                    }
                    // A held pod watch gets its events once the restart has happened.
                    if script.restarted
                        && !script.events.is_empty()
                        && let Some(pos) = script.held.iter().position(|r| r.is_watch)
                    {
                        let body: String = script.events.drain(..).map(|e| format!("{e}\n")).collect();
                        script.held.remove(pos).respond_raw(200, body.into_bytes());
                    }
                }
            }
        };
        drop(follower);
        assert_eq!(seen.found.len(), 4, "{}", seen.describe());
        assert_eq!(
            seen.total, 4,
            "run/1 was read once although its second was replayed"
        );
        let first = &script.log_queries[0];
        for part in [
            "mirror-a?",
            "container=mirror",
            "follow=true",
            "timestamps=true",
            "sinceTime=2026-11-27T08%3A00%3A00Z",
        ] {
            assert!(first.contains(part), "{part} missing from {first}");
        }
        assert!(
            script.log_queries[1].contains("sinceTime=2026-11-27T08%3A00%3A01Z"),
            "reopened where it stopped: {:?}",
            script.log_queries
        );
        assert!(
            script
                .log_queries
                .iter()
                .any(|q| q.starts_with("mirror-b?")),
            "{:?}",
            script.log_queries
        );
    }
}

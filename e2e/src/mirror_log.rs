//! Reading the mirror's log: the requests `mendhak/http-https-echo` says it received.
//!
//! The image prints each request as JSON, pretty over many lines or compact on one
//! (`LOG_WITHOUT_NEWLINE`), followed by an access line; the Kubernetes log API may prefix
//! every line with an RFC 3339 timestamp. The parser accepts all of these, interleaved,
//! and ignores a trailing partial record (it is still being written).

use std::collections::BTreeMap;

use serde_json::Value;

/// One request the mirror logged.
#[derive(Debug, Clone, PartialEq)]
pub struct MirroredRequest {
    /// Request path.
    pub path: String,
    /// The `hostname` the image derived from the Host header (no port).
    pub hostname: String,
    /// Headers, lowercase names.
    pub headers: BTreeMap<String, String>,
    /// The timestamp of the record's first line, when the log has timestamps.
    pub timestamp: Option<String>,
}

impl MirroredRequest {
    /// The Host header without its port: what the request was addressed to. The echo's own
    /// `hostname` is Express's, which prefers `X-Forwarded-Host` from a loopback peer, and a
    /// sidecar delivers from 127.0.0.6, so it is not read.
    pub fn host(&self) -> &str {
        let host = self.header("host").unwrap_or("");
        match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.split(':').next().unwrap_or(host),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Every complete request record in the log text.
pub fn parse(log: &str) -> Vec<MirroredRequest> {
    parse_partial(log).0
}

/// The complete records in `log`, and how many bytes they (and the lines between them)
/// cover: parsing can resume there once more text has arrived.
pub fn parse_partial(log: &str) -> (Vec<MirroredRequest>, usize) {
    let mut out = Vec::new();
    let mut pending: Option<(String, Option<String>)> = None;
    let (mut offset, mut resume) = (0, 0);
    for piece in log.split_inclusive('\n') {
        let start = offset;
        offset += piece.len();
        let Some(raw) = piece.strip_suffix('\n') else {
            // The last line is still being written.
            break;
        };
        let (timestamp, line) = split_timestamp(raw);
        if let Some((text, ts)) = pending.as_mut() {
            text.push_str(line);
            text.push('\n');
            // A pretty record ends with a `}` in column 0.
            if line.starts_with('}') {
                let ts = ts.take();
                if let Some(record) = pending.take().and_then(|(t, _)| record(&t, ts)) {
                    out.push(record);
                }
                resume = offset;
            }
            continue;
        }
        if line.starts_with('{') {
            match record(line, timestamp.map(str::to_owned)) {
                Some(r) => out.push(r),
                None => {
                    pending = Some((format!("{line}\n"), timestamp.map(str::to_owned)));
                    resume = start;
                    continue;
                }
            }
        }
        resume = offset;
    }
    (out, resume)
}

/// The longest unfinished record a parser holds before it gives the text up: a record of
/// the echo image is a few KiB; anything this long is not one being written.
const MAX_PENDING: usize = 1 << 20;

/// Parses a log as it streams in, chunk by chunk, holding only the unfinished tail.
#[derive(Debug, Default)]
pub struct LineParser {
    tail: String,
}

impl LineParser {
    /// Takes the next chunk of the log and returns the records it completed.
    pub fn push(&mut self, chunk: &str) -> Vec<MirroredRequest> {
        self.tail.push_str(chunk);
        let (records, used) = parse_partial(&self.tail);
        self.tail.drain(..used);
        if self.tail.len() > MAX_PENDING {
            // Not a record in progress: keep memory bounded and resume at the next line.
            let cut = self.tail.rfind('\n').map_or(self.tail.len(), |i| i + 1);
            self.tail.drain(..cut);
        }
        records
    }
}

/// How many of the latest records are kept whatever their tag, to show what the mirror saw.
const RECENT: usize = 5;

/// What the mirror logged during the run. Memory stays bounded whatever the log's size:
/// only records tagged by this run (user-agent starting with `tag_prefix`) are kept, plus
/// the last few others, and a count. Several streams (pods, restarts) feed one set.
#[derive(Debug)]
pub struct MirrorRecords {
    tag_prefix: String,
    inner: std::sync::Mutex<Seen>,
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Seen {
    tagged: std::collections::HashMap<String, MirroredRequest>,
    recent: std::collections::VecDeque<MirroredRequest>,
    total: u64,
    /// The current problem of each reader (the pod watch, a pod's stream), by reader: one
    /// that recovers clears its own, never another's.
    problems: BTreeMap<String, String>,
}

/// What the mirror had logged of some tags, and what it logged last.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The wanted tags the mirror logged, with their record.
    pub found: BTreeMap<String, MirroredRequest>,
    /// Requests logged during the run, tagged or not.
    pub total: u64,
    /// The last few requests logged.
    pub recent: Vec<MirroredRequest>,
    /// The problems reading the log now (a stream that failed and is being reopened); one
    /// that recovered is no longer here.
    pub problem: Option<String>,
}

impl Observed {
    /// Whether the mirror logged `tag`.
    pub fn contains(&self, tag: &str) -> bool {
        self.found.contains_key(tag)
    }

    /// The mirror's view, briefly: the count, the last few requests, a read problem.
    pub fn describe(&self) -> String {
        let last: Vec<String> = self
            .recent
            .iter()
            .rev()
            .take(3)
            .map(|r| {
                format!(
                    "{} host={} user-agent={} end-user={}",
                    r.path,
                    r.host(),
                    r.header("user-agent").unwrap_or("-"),
                    r.header("end-user").unwrap_or("-")
                )
            })
            .collect();
        let mut text = if self.total == 0 {
            "the mirror log holds no requests".to_owned()
        } else {
            format!(
                "the mirror log holds {} requests, the last: [{}]",
                self.total,
                last.join("; ")
            )
        };
        if let Some(problem) = &self.problem {
            text.push_str(&format!("; reading it: {problem}"));
        }
        text
    }
}

impl MirrorRecords {
    /// An empty set keeping records whose user-agent starts with `tag_prefix`.
    pub fn new(tag_prefix: &str) -> MirrorRecords {
        MirrorRecords {
            tag_prefix: tag_prefix.to_owned(),
            inner: std::sync::Mutex::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in records a stream parsed, and wakes whoever waits.
    pub fn add(&self, records: Vec<MirroredRequest>) {
        if records.is_empty() {
            return;
        }
        {
            let mut seen = self.seen();
            for r in records {
                seen.total += 1;
                if let Some(tag) = r
                    .header("user-agent")
                    .filter(|ua| ua.starts_with(&self.tag_prefix))
                {
                    seen.tagged
                        .entry(tag.to_owned())
                        .or_insert_with(|| r.clone());
                }
                if seen.recent.len() == RECENT {
                    seen.recent.pop_front();
                }
                seen.recent.push_back(r);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Records the problem `reader` has reading the log (shown with what was seen), or, with
    /// `None`, that it has recovered.
    pub fn set_problem(&self, reader: &str, problem: Option<String>) {
        let problems = &mut self.seen().problems;
        match problem {
            Some(p) => problems.insert(reader.to_owned(), p),
            None => problems.remove(reader),
        };
    }

    /// What the mirror has logged of `tags` so far.
    pub fn observe(&self, tags: &[String]) -> Observed {
        let seen = self.seen();
        Observed {
            found: tags
                .iter()
                .filter_map(|t| seen.tagged.get(t).map(|r| (t.clone(), r.clone())))
                .collect(),
            total: seen.total,
            recent: seen.recent.iter().cloned().collect(),
            problem: (!seen.problems.is_empty()).then(|| {
                seen.problems
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        }
    }

    /// Waits until the mirror has logged every tag of `tags`, or `until`, waking on each
    /// new record; returns what it saw.
    pub async fn wait_for(&self, tags: &[String], until: tokio::time::Instant) -> Observed {
        self.wait_for_some(tags, tags.len(), until).await
    }

    /// Waits until the mirror has logged `wanted` of the tags (a sampled mirror logs only
    /// some), or `until`, waking on each new record; returns what it saw.
    pub async fn wait_for_some(
        &self,
        tags: &[String],
        wanted: usize,
        until: tokio::time::Instant,
    ) -> Observed {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let observed = self.observe(tags);
            if observed.found.len() >= wanted {
                return observed;
            }
            if tokio::time::timeout_at(until, changes.changed())
                .await
                .is_err()
            {
                return self.observe(tags);
            }
        }
    }
}

fn record(text: &str, timestamp: Option<String>) -> Option<MirroredRequest> {
    let value: Value = serde_json::from_str(text).ok()?;
    let headers = value
        .get("headers")?
        .as_object()?
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    Some(MirroredRequest {
        path: value.get("path")?.as_str()?.to_owned(),
        hostname: value
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        headers,
        timestamp,
    })
}

/// Splits `2026-11-25T19:33:14.123456789Z <line>` into its timestamp and line.
pub fn split_timestamp(line: &str) -> (Option<&str>, &str) {
    if let Some((first, rest)) = line.split_once(' ')
        && first.len() >= 20
        && first.as_bytes()[4] == b'-'
        && first.as_bytes()[10] == b'T'
        && first.parse::<k8s_openapi::jiff::Timestamp>().is_ok()
    {
        return (Some(first), rest);
    }
    (None, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRETTY: &str = r#"Listening on ports 9080 for http, and 9443 for https.
{
    "path": "/reviews/0",
    "headers": {
        "host": "reviews-shadow:9080",
        "user-agent": "tag-1",
        "end-user": "tester",
        "x-envoy-internal": "true"
    },
    "method": "GET",
    "body": "",
    "cookies": {},
    "fresh": false,
    "hostname": "reviews-shadow",
    "ip": "::ffff:127.0.0.6",
    "ips": [],
    "protocol": "http",
    "query": {},
    "subdomains": [],
    "xhr": false,
    "os": {
        "hostname": "mirror-5d9c7f7c8b-x2x9p"
    },
    "connection": {}
}
::ffff:127.0.0.6 - - [25/Nov/2026:19:33:14 +0000] "GET /reviews/0 HTTP/1.1" 200 598 "-" "tag-1"
"#;

    #[test]
    fn pretty_records_with_access_lines() {
        let got = parse(PRETTY);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "/reviews/0");
        assert_eq!(got[0].hostname, "reviews-shadow");
        assert_eq!(got[0].header("end-user"), Some("tester"));
        assert_eq!(got[0].header("user-agent"), Some("tag-1"));
    }

    #[test]
    fn compact_records_interleaved_with_access_lines() {
        let log = "Listening on ports 9080 for http, and 9443 for https.\n\
{\"path\":\"/a\",\"headers\":{\"user-agent\":\"t1\"},\"hostname\":\"reviews\"}\n\
::1 - - [x] \"GET /a HTTP/1.1\" 200 1 \"-\" \"t1\"\n\
{\"path\":\"/b\",\"headers\":{\"user-agent\":\"t2\",\"end-user\":\"tester\"},\"hostname\":\"reviews\"}\n";
        let got = parse(log);
        assert_eq!(
            got.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/a", "/b"]
        );
        assert_eq!(got[1].header("end-user"), Some("tester"));
    }

    #[test]
    fn timestamped_lines_of_both_shapes() {
        let ts = |l: &str| format!("2026-11-25T19:33:14.123456789Z {l}\n");
        let mut log: String = PRETTY.lines().map(ts).collect();
        log.push_str(&ts(
            "{\"path\":\"/c\",\"headers\":{\"user-agent\":\"t3\"},\"hostname\":\"reviews\"}",
        ));
        let got = parse(&log);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].timestamp.as_deref(),
            Some("2026-11-25T19:33:14.123456789Z")
        );
        assert_eq!(got[0].header("user-agent"), Some("tag-1"));
        assert_eq!(got[1].path, "/c");
    }

    #[test]
    fn a_partial_record_at_the_end_is_not_yet_a_request() {
        let cut = &PRETTY[..PRETTY.find("\"method\"").expect("fixture has method")];
        assert!(parse(cut).is_empty());
        let two = format!("{PRETTY}{cut}");
        assert_eq!(parse(&two).len(), 1);
    }

    #[test]
    fn a_streaming_parser_completes_records_across_chunks_and_holds_only_the_tail() {
        let mut parser = LineParser::default();
        let cut = PRETTY.find("\"method\"").expect("fixture has method");
        assert!(parser.push(&PRETTY[..cut]).is_empty());
        assert_eq!(parser.push(&PRETTY[cut..]).len(), 1);
        assert!(
            parser.tail.is_empty(),
            "nothing held once the record is complete"
        );
        // One byte at a time, as a slow stream delivers it.
        let got: usize = PRETTY
            .char_indices()
            .map(|(i, c)| parser.push(&PRETTY[i..i + c.len_utf8()]).len())
            .sum();
        assert_eq!(got, 1);
        // A runaway line is dropped rather than held.
        let junk = format!("{{{}\n", "x".repeat(MAX_PENDING + 10));
        assert!(parser.push(&junk).is_empty());
        assert!(parser.tail.len() <= MAX_PENDING);
        assert_eq!(parser.push(PRETTY).len(), 1, "parsing resumes after it");
    }

    #[tokio::test]
    async fn records_keep_the_runs_tags_and_a_few_others_and_wake_waiters() {
        let records = std::sync::Arc::new(MirrorRecords::new("run-1/"));
        let record = |ua: &str| MirroredRequest {
            path: "/reviews/0".into(),
            hostname: "reviews".into(),
            headers: [
                ("user-agent".to_owned(), ua.to_owned()),
                ("host".to_owned(), "reviews:9080".to_owned()),
            ]
            .into(),
            timestamp: None,
        };
        records.add((0..1000).map(|i| record(&format!("other/{i}"))).collect());
        assert_eq!(
            records.seen().tagged.len(),
            0,
            "other runs' requests are counted, not kept"
        );
        assert_eq!(records.seen().recent.len(), RECENT);
        let wanted = vec!["run-1/a".to_owned()];
        let waiter = records.clone();
        let wanted2 = wanted.clone();
        let task = tokio::spawn(async move {
            waiter
                .wait_for(
                    &wanted2,
                    tokio::time::Instant::now() + std::time::Duration::from_secs(5),
                )
                .await
        });
        records.add(vec![record("run-1/a")]);
        let seen = task.await.expect("task");
        assert!(seen.contains("run-1/a"));
        assert_eq!(seen.total, 1001);
        let missing = records
            .wait_for(&["run-1/b".to_owned()], tokio::time::Instant::now())
            .await;
        assert!(missing.found.is_empty());
        assert!(missing.describe().starts_with("the mirror log holds 1001 requests, the last: [/reviews/0 host=reviews user-agent=run-1/a"), "{}", missing.describe());
    }

    #[test]
    fn the_host_is_the_host_header_without_its_port() {
        let with = |host: &str| MirroredRequest {
            path: "/".into(),
            // Express's hostname can differ (X-Forwarded-Host from a loopback peer).
            hostname: "productpage".into(),
            headers: [("host".to_owned(), host.to_owned())].into(),
            timestamp: None,
        };
        assert_eq!(with("reviews-shadow:9080").host(), "reviews-shadow");
        assert_eq!(with("reviews").host(), "reviews");
        assert_eq!(with("[::1]:9080").host(), "::1");
    }

    #[test]
    fn lines_that_are_not_records_are_ignored() {
        assert!(parse("hello\n{not json\n}\n[1,2]\n").is_empty());
    }
}

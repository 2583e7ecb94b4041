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

/// The records of a growing log, parsed once each.
#[derive(Debug, Default)]
pub struct LogView {
    parsed: usize,
    records: Vec<MirroredRequest>,
}

impl LogView {
    /// Takes in the log's current text (which only ever grows) and returns all records.
    pub fn update(&mut self, log: &str) -> &[MirroredRequest] {
        if log.len() < self.parsed {
            *self = LogView::default();
        }
        let (records, used) = parse_partial(&log[self.parsed..]);
        self.records.extend(records);
        self.parsed += used;
        &self.records
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
fn split_timestamp(line: &str) -> (Option<&str>, &str) {
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
    fn a_view_parses_each_record_once_as_the_log_grows() {
        let mut view = LogView::default();
        let cut = PRETTY.find("\"method\"").expect("fixture has method");
        assert!(view.update(&PRETTY[..cut]).is_empty());
        assert_eq!(view.update(PRETTY).len(), 1);
        let more = format!("{PRETTY}{PRETTY}");
        assert_eq!(view.update(&more).len(), 2);
        assert_eq!(view.update(&more).len(), 2);
    }

    #[test]
    fn lines_that_are_not_records_are_ignored() {
        assert!(parse("hello\n{not json\n}\n[1,2]\n").is_empty());
    }
}

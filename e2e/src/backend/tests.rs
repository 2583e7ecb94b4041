use super::*;

fn containers(image: &str, env: &str) -> Vec<Container> {
    serde_yaml::from_str(&format!("[{{name: c, image: '{image}', env: [{env}]}}]"))
        .expect("fixture")
}

#[test]
fn pods_get_the_stand_in_their_image_calls_for() {
    let sidecar = Sidecar::default();
    let of = |image: &str, env: &str| Behaviour::of(&containers(image, env), &sidecar);
    assert!(matches!(
        of(
            "registry.istio.io/release/examples-bookinfo-productpage-v1:1.20.3",
            ""
        ),
        Behaviour::Productpage(_)
    ));
    assert_eq!(
        of("docker.io/istio/examples-bookinfo-reviews-v2:1.20.3", ""),
        Behaviour::Reviews
    );
    assert_eq!(
        of("docker.io/istio/examples-bookinfo-ratings-v1:1.20.3", ""),
        Behaviour::BookinfoData
    );
    assert_eq!(of("example.com/app:1", ""), Behaviour::Named);
    // Node's truthiness: any non-empty LOG_WITHOUT_NEWLINE means compact, "false" too.
    let compact = |value: &str| match of(
        "docker.io/mendhak/http-https-echo:41",
        &format!("{{name: LOG_WITHOUT_NEWLINE, value: '{value}'}}"),
    ) {
        Behaviour::Echo(s) => s.compact,
        other => panic!("{other:?}"),
    };
    assert!(compact("false") && compact("1"));
    assert!(!compact(""));
}

#[test]
fn a_cri_log_stamps_every_whole_line_as_a_full_stdout_line() {
    assert_eq!(
        cri_lines("2026-12-02T08:00:00.5Z", "{\n    \"a\": 1\n}\n"),
        "2026-12-02T08:00:00.5Z stdout F {\n2026-12-02T08:00:00.5Z stdout F     \"a\": 1\n2026-12-02T08:00:00.5Z stdout F }\n"
    );
}

#[test]
fn a_cri_log_never_goes_back_in_time_under_concurrent_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.log");
    let log = LogBuffer::create_cri(&path).expect("log");
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..300 {
                    log.append(&format!("{t} {i}\n"));
                }
            });
        }
    });
    let file = std::fs::read_to_string(&path).expect("read");
    let stamps: Vec<&str> = file
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(stamps.len(), 8 * 300);
    let parsed: Vec<k8s_openapi::jiff::Timestamp> = stamps
        .iter()
        .map(|s| s.parse().expect("a timestamp"))
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] <= w[1]),
        "timestamps go back in the file"
    );
}

#[test]
fn a_cri_log_keeps_the_plain_text_for_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.log");
    let log = LogBuffer::create_cri(&path).expect("log");
    log.append("one\ntwo\n");
    assert_eq!(log.text(), "one\ntwo\n");
    let file = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2, "{file}");
    assert!(lines[0].ends_with(" stdout F one"), "{file}");
    assert!(lines[1].ends_with(" stdout F two"), "{file}");
}

async fn get(addr: SocketAddr, host: &str, ua: &str) -> Result<String, reqwest::Error> {
    reqwest::Client::new()
        .get(format!("http://{addr}/reviews/0?x=1"))
        .header("host", host)
        .header("user-agent", ua)
        .header("end-user", "tester")
        .send()
        .await?
        .text()
        .await
}

#[tokio::test]
async fn a_named_workload_answers_with_its_pod_and_logs_each_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Backend::start("reviews-v2", Behaviour::Named, &dir.path().join("l"))
        .await
        .expect("starts");
    let pod = get(b.addr(), "reviews:9080", "t").await.expect("answers");
    assert_eq!(pod, b.pod());
    assert_eq!(
        crate::productpage::pod_workload(&pod),
        "reviews-v2",
        "{pod}"
    );
    assert_eq!(
        b.log().text(),
        "GET /reviews/0 200 user-agent=t end-user=tester\n"
    );
}

#[tokio::test]
async fn reviews_names_its_pod_as_bookinfo_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Backend::start("reviews-v3", Behaviour::Reviews, &dir.path().join("l"))
        .await
        .expect("starts");
    let body: Value =
        serde_json::from_str(&get(b.addr(), "reviews:9080", "t").await.expect("answers"))
            .expect("json");
    assert_eq!(body["id"], "0");
    assert_eq!(body["podname"], b.pod());
    assert!(body["reviews"].is_array());
}

#[tokio::test]
async fn echo_logs_pretty_json_then_the_access_line_and_can_be_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = EchoSettings {
        http_port: "9080".into(),
        https_port: "8443".into(),
        compact: false,
        request_logs: true,
    };
    let b = Backend::start("mirror", Behaviour::Echo(settings), &dir.path().join("l"))
        .await
        .expect("starts");
    get(b.addr(), "reviews-shadow:9080", "tag-1")
        .await
        .expect("answers");
    let log = b.log().text();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        "Listening on ports 9080 for http, and 8443 for https."
    );
    assert_eq!(lines[1], "{");
    assert_eq!(lines[2], "    \"path\": \"/reviews/0\",");
    assert!(log.contains("\"hostname\": \"reviews-shadow\""), "{log}");
    assert!(log.contains("        \"end-user\": \"tester\""), "{log}");
    let access = lines.last().expect("access line");
    assert!(
        access.contains("\"GET /reviews/0?x=1 HTTP/1.1\" 200")
            && access.ends_with("\"-\" \"tag-1\""),
        "{access}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("l")).expect("file"),
        log
    );

    b.stop();
    assert!(
        get(b.addr(), "m", "t").await.is_err(),
        "stopped workload refuses connections"
    );
    b.restart().await.expect("restarts on the same port");
    get(b.addr(), "m", "tag-2").await.expect("answers again");
}

fn record_of(headers: &[(&str, &str)], peer: &str) -> Value {
    let mut request = hyper::Request::builder().uri("/reviews/0");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (parts, ()) = request.body(()).expect("request").into_parts();
    echo_record("mirror-1-a", &parts, b"", peer.parse().expect("peer"))
}

#[test]
fn echo_records_have_the_images_keys_in_its_order() {
    let record = record_of(&[("host", "reviews:9080")], "127.0.0.6:41000");
    let keys: Vec<&str> = record
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "path",
            "headers",
            "method",
            "body",
            "cookies",
            "fresh",
            "hostname",
            "ip",
            "ips",
            "protocol",
            "query",
            "signedCookies",
            "subdomains",
            "xhr",
            "os",
            "connection"
        ]
    );
}

#[test]
fn ip_and_ips_come_from_x_forwarded_for_through_trusted_proxies() {
    // A sidecar delivers from 127.0.0.6 (trusted); the forwarded chain is walked from the
    // right while the hop is trusted.
    let r = record_of(
        &[
            ("host", "reviews"),
            ("x-forwarded-for", "203.0.113.7, 10.244.0.12"),
        ],
        "127.0.0.6:1",
    );
    assert_eq!(r["ip"], "203.0.113.7");
    assert_eq!(r["ips"], json!(["203.0.113.7", "10.244.0.12"]));
    let direct = record_of(
        &[("host", "reviews"), ("x-forwarded-for", "203.0.113.7")],
        "198.51.100.1:1",
    );
    assert_eq!(
        direct["ip"], "::ffff:198.51.100.1",
        "an untrusted peer is the client"
    );
    assert_eq!(direct["ips"], json!([]));
    // Express's hostname prefers X-Forwarded-Host from a trusted peer.
    let fwd = record_of(
        &[
            ("host", "reviews-shadow:9080"),
            ("x-forwarded-host", "productpage:9080"),
        ],
        "127.0.0.6:1",
    );
    assert_eq!(fwd["hostname"], "productpage");
}

#[test]
fn repeated_headers_are_joined_as_node_joins_them() {
    let r = record_of(
        &[
            ("host", "m"),
            ("x-tag", "a"),
            ("x-tag", "b"),
            ("cookie", "session=1"),
            ("cookie", "theme=dark"),
        ],
        "127.0.0.1:1",
    );
    assert_eq!(r["headers"]["x-tag"], "a, b");
    assert_eq!(r["headers"]["cookie"], "session=1; theme=dark");
    assert_eq!(r["cookies"], json!({"session": "1", "theme": "dark"}));
}

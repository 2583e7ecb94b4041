//! Tests of the user workloads: parsing, preparing, starting and stopping programs.

use super::*;

#[test]
fn a_program_that_printed_nothing_is_said_to_have_printed_nothing() {
    assert_eq!(last_lines(""), "it printed nothing (stdout and stderr)");
    assert_eq!(
        last_lines("\n \n"),
        "it printed nothing (stdout and stderr)"
    );
    assert_eq!(last_lines("a\nb\n"), "its last lines:\na\nb");
}

fn deployment(yaml: &str) -> Deployment {
    serde_yaml::from_str(yaml).expect("fixture")
}

const PLAIN: &str = "
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: 'w:1', env: [{name: GREETING, value: hi}]}]}
";

fn prepared(command: &str, yaml: &str, dir: &tempfile::TempDir) -> ProcessWorkload {
    let spec: WorkloadCommand = format!("web={command}").parse().expect("syntax");
    ProcessWorkload::prepare(
        &spec,
        &deployment(yaml),
        "web-5d9c7f7c8b-x2x9p".into(),
        &dir.path().join("web.log"),
        &ProcessGroups::default(),
    )
    .expect("prepared")
}

#[test]
fn the_syntax_is_name_equals_command() {
    let w: WorkloadCommand = "productpage-v1=python3 app.py {port}".parse().expect("ok");
    assert_eq!(w.name, "productpage-v1");
    assert_eq!(w.command, "python3 app.py {port}");
    for bad in ["productpage-v1", "=python3", "productpage-v1="] {
        assert!(bad.parse::<WorkloadCommand>().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn it_gets_its_port_env_hostname_and_proxy_and_its_output_is_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = prepared(
        "sh -c 'echo port=$PORT arg=$0 greeting=$GREETING host=$HOSTNAME proxy=$HTTP_PROXY; exec python3 -m http.server --bind 127.0.0.1 $PORT' {port}",
        PLAIN,
        &dir,
    );
    w.start(
        "127.0.0.1:15001".parse().expect("addr"),
        Duration::from_secs(20),
    )
    .await
    .expect("ready once the port accepts connections");
    let port = w.addr().port();
    let first = w.log().text().lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        first,
        format!(
            "port={port} arg={port} greeting=hi host=web-5d9c7f7c8b-x2x9p proxy=http://127.0.0.1:15001"
        )
    );
    w.stop().await;
    assert!(
        tokio::net::TcpStream::connect(w.addr()).await.is_err(),
        "stopped with its group"
    );
}

#[tokio::test]
async fn a_program_that_exits_early_is_reported_at_once_with_its_last_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = prepared("sh -c 'echo cannot bind; exit 3'", PLAIN, &dir);
    let start = std::time::Instant::now();
    let err = w
        .start(
            "127.0.0.1:1".parse().expect("addr"),
            Duration::from_secs(30),
        )
        .await
        .expect_err("exits")
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        err.starts_with("workload web exited before it was ready (exit status: 3)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_program_that_never_gets_ready_is_reported_with_the_probe_it_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let probed = PLAIN.replace(
        "env: [{name: GREETING, value: hi}]",
        "readinessProbe: {httpGet: {path: /healthz, port: 9080}}",
    );
    let w = prepared("sh -c 'echo starting; exec sleep 60'", &probed, &dir);
    let err = w
        .start(
            "127.0.0.1:1".parse().expect("addr"),
            Duration::from_millis(500),
        )
        .await
        .expect_err("never ready")
        .to_string();
    assert!(err.contains("workload web to answer GET /healthz"), "{err}");
    assert!(err.ends_with("starting"), "{err}");
    assert!(!w.is_up(), "a workload that never got ready is stopped");
}

#[test]
fn a_command_that_does_not_split_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec: WorkloadCommand = "web=python3 'unclosed".parse().expect("syntax");
    let err = ProcessWorkload::prepare(
        &spec,
        &deployment(PLAIN),
        "p".into(),
        &dir.path().join("l"),
        &ProcessGroups::default(),
    )
    .err()
    .expect("an error")
    .to_string();
    assert!(err.contains("quotes do not close"), "{err}");
}

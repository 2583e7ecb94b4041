//! Reading Envoy's access log back: which route matched a tagged request. Local mode logs
//! `route=%ROUTE_NAME%` (as istio-proxy's default format ends with `%ROUTE_NAME%`), the name
//! istiod gives a route from the VirtualService's `http[].name`.

use std::path::Path;
use std::time::Duration;

use crate::wait::poll_until;

/// Errors reading the route of a request.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The request never showed in the log within the wait.
    #[error("{path}: {wait}")]
    NotLogged {
        /// The access log.
        path: String,
        /// The wait that ran out, with what it saw last.
        wait: crate::wait::WaitError,
    },
}

/// The route that matched the request tagged `tag` on its way to `host` (its `:authority`
/// starts with the host name), in one access log's text: `Some(None)` for a route without a
/// name, `None` when no such line is there (yet).
pub fn route_of(log: &str, tag: &str, host: &str) -> Option<Option<String>> {
    let agent = format!("user-agent=\"{tag}\"");
    let authority = format!(" {host}:");
    let authority_bare = format!(" {host}/");
    log.lines()
        .filter(|l| l.contains(&agent) && (l.contains(&authority) || l.contains(&authority_bare)))
        .find_map(|l| {
            let name = l.split(" route=").nth(1)?.split_whitespace().next()?;
            // Envoy writes `-` for an empty value.
            Some((name != "-").then(|| name.to_owned()))
        })
}

/// Waits (for at most `limit`: Envoy flushes its log on an interval) until the access log at
/// `path` shows the request tagged `tag` to `host`, and returns its route's name.
pub async fn wait_for_route(
    path: &Path,
    tag: &str,
    host: &str,
    limit: Duration,
) -> Result<Option<String>, AccessLogError> {
    let what = format!("request {tag} to {host} in the access log");
    poll_until(&what, limit, || async {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| e.to_string())?;
        match route_of(&text, tag, host) {
            Some(route) => Ok(Some(route)),
            None => Err(format!("{} lines, none for {tag}", text.lines().count())),
        }
    })
    .await
    .map_err(|wait| AccessLogError::NotLogged {
        path: path.display().to_string(),
        wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"[2026-11-25T19:33:14.120Z] 127.0.0.1:41000 "GET 127.0.0.1:41000/productpage HTTP/1.1" 200 - 3ms upstream=outbound|9080||productpage.test.svc.cluster.local (127.0.0.1:40100) user-agent="mirror-e2e/r/tester_served_by_v2/1/0" end-user="-" route=productpage
[2026-11-25T19:33:14.121Z] 127.0.0.1:41001 "GET reviews:9080/reviews/0 HTTP/1.1" 200 - 1ms upstream=outbound|9080|v1|reviews.test.svc.cluster.local (127.0.0.1:40200) user-agent="mirror-e2e/r/tester_served_by_v2/1/0" end-user="tester" route=default-to-v1
[2026-11-25T19:33:14.122Z] 127.0.0.1:41001 "GET reviews:9080/reviews/0 HTTP/1.1" 200 - 1ms upstream=outbound|9080|v1|reviews.test.svc.cluster.local (127.0.0.1:40200) user-agent="mirror-e2e/r/anonymous_served_by_v1/1/0" end-user="-" route=-
"#;

    #[test]
    fn the_route_of_the_hop_to_the_host_not_the_gateways() {
        assert_eq!(
            route_of(LOG, "mirror-e2e/r/tester_served_by_v2/1/0", "reviews"),
            Some(Some("default-to-v1".into()))
        );
        assert_eq!(
            route_of(LOG, "mirror-e2e/r/anonymous_served_by_v1/1/0", "reviews"),
            Some(None),
            "`-` is a route without a name"
        );
        assert_eq!(route_of(LOG, "mirror-e2e/r/other/1/0", "reviews"), None);
        // A tag that is a prefix of a logged one is not that request.
        assert_eq!(
            route_of(LOG, "mirror-e2e/r/tester_served_by_v2/1/", "reviews"),
            None
        );
    }

    #[tokio::test]
    async fn a_request_never_logged_says_what_the_log_held() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("envoy-access.log");
        std::fs::write(&path, LOG).expect("write");
        let err = wait_for_route(&path, "nope/1/0", "reviews", Duration::from_millis(20))
            .await
            .expect_err("not logged");
        assert!(
            err.to_string().contains("3 lines, none for nope/1/0"),
            "{err}"
        );
        let route = wait_for_route(
            &path,
            "mirror-e2e/r/tester_served_by_v2/1/0",
            "reviews",
            Duration::from_millis(20),
        )
        .await
        .expect("logged");
        assert_eq!(route.as_deref(), Some("default-to-v1"));
    }
}

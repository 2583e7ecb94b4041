//! Bookinfo's services as local workloads, behaving as far as the suite can observe as
//! istio/istio samples/bookinfo does.
//!
//! - productpage (src/productpage/productpage.py): `POST /login` stores `username` in a
//!   signed `session` cookie and answers `redirect(request.referrer)` (a 302 to `None`
//!   without a Referer); `GET /productpage` calls details and reviews through its sidecar
//!   (`HTTP_PROXY`), forwarding `end-user` from the session and the headers
//!   `getForwardHeaders` copies; the page names the serving reviews pod the way
//!   templates/productpage.html does (`Reviews served by: ` then the pod on the next line).
//! - reviews (src/reviews, LibertyRestEndpoint.java): JSON with `podname` from `HOSTNAME`.
//! - details and ratings: JSON answers.
//!
//! Every request is logged one line each, with its `user-agent` tag and `end-user`, so a
//! failing check can say whether a header arrived.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use ring::hmac;
use serde_json::{Value, json};

/// The headers productpage copies from its request to details and reviews
/// (`getForwardHeaders`, incoming_headers), B3 included (its OpenTelemetry propagator).
pub const FORWARDED_HEADERS: &[&str] = &[
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// The session key. Bookinfo's is a constant too (`app.secret_key`), so every replica
/// accepts every session.
const SESSION_KEY: &[u8] = b"mirror-e2e local productpage";

/// Where a productpage's outbound calls go: its sidecar, known once Envoy has bound it, and
/// an HTTP client that uses it as its proxy (as `HTTP_PROXY` would).
#[derive(Debug, Clone, Default)]
pub struct Sidecar(Arc<OnceLock<(SocketAddr, reqwest::Client)>>);

impl Sidecar {
    /// Sets the sidecar's outbound listener (once).
    pub fn set(&self, addr: SocketAddr) -> Result<(), String> {
        let proxy = reqwest::Proxy::http(format!("http://{addr}")).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .proxy(proxy)
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        let _ = self.0.set((addr, client));
        Ok(())
    }
}

impl PartialEq for Sidecar {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A session cookie value for `user`: the user and its HMAC.
pub fn session_value(user: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SESSION_KEY);
    let tag = hmac::sign(&key, user.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", hex_encode(user.as_bytes()))
}

/// The user of a session cookie value, when its signature holds.
pub fn session_user(value: &str) -> Option<String> {
    let (user_hex, sig_hex) = value.split_once('.')?;
    let user = String::from_utf8(hex_decode(user_hex)?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, SESSION_KEY);
    hmac::verify(&key, user.as_bytes(), &hex_decode(sig_hex)?).ok()?;
    Some(user)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// One line of a Bookinfo workload's log for a request.
pub fn log_line(method: &str, path: &str, status: u16, headers: &HeaderMap) -> String {
    format!(
        "{method} {path} {status} user-agent={} end-user={}\n",
        header(headers, "user-agent"),
        header(headers, "end-user")
    )
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, "application/json", value.to_string())
}

/// reviews: `GET /reviews/<id>` with the pod's name, as LibertyRestEndpoint answers.
pub fn reviews(pod: &str, path: &str) -> Response<Full<Bytes>> {
    match path.strip_prefix("/reviews/") {
        Some(id) => json_response(&json!({
            "id": id,
            "podname": pod,
            "clustername": "null",
            "reviews": [
                {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
                {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
            ],
        })),
        None => respond(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    }
}

/// details and ratings: a JSON answer for `/details/<id>`, `/ratings/<id>`.
pub fn details_or_ratings(path: &str) -> Response<Full<Bytes>> {
    if let Some(id) = path.strip_prefix("/details/") {
        json_response(
            &json!({"id": id, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200}),
        )
    } else if let Some(id) = path.strip_prefix("/ratings/") {
        json_response(&json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}))
    } else {
        respond(StatusCode::OK, "text/plain", "ok".into())
    }
}

/// productpage's `POST /login`: the form's `username` into the session, and a redirect to
/// the Referer (`None` without one, as Flask renders `redirect(None)`).
pub fn login(headers: &HeaderMap, body: &[u8]) -> Response<Full<Bytes>> {
    let user = form_urlencoded::parse(body)
        .find(|(k, _)| k == "username")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    back_to_referer(
        headers,
        &format!("session={}; HttpOnly; Path=/", session_value(&user)),
    )
}

/// productpage's `GET /logout`.
pub fn logout(headers: &HeaderMap) -> Response<Full<Bytes>> {
    back_to_referer(
        headers,
        "session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Path=/",
    )
}

/// `redirect(request.referrer)` with a session cookie to set.
fn back_to_referer(headers: &HeaderMap, set_cookie: &str) -> Response<Full<Bytes>> {
    let referer = headers
        .get("referer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("None");
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", referer)
        .header("set-cookie", set_cookie)
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

/// The headers productpage sends to details and reviews for this request.
pub fn forward_headers(incoming: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(user) = cookie(incoming, "session").and_then(session_user) {
        out.push(("end-user".into(), user));
    }
    for name in FORWARDED_HEADERS {
        if let Some(v) = incoming.get(*name).and_then(|v| v.to_str().ok()) {
            out.push(((*name).to_owned(), v.to_owned()));
        }
    }
    out
}

/// productpage's `GET /productpage`: details and reviews through the sidecar, then the
/// page. Reviews is asked twice on failure, as productpage does.
pub async fn productpage(sidecar: &Sidecar, incoming: &HeaderMap) -> Response<Full<Bytes>> {
    let Some((_, client)) = sidecar.0.get() else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "productpage's sidecar is not up yet".into(),
        );
    };
    let headers = forward_headers(incoming);
    let call = |url: &'static str| {
        let mut request = client.get(url);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let details_ok =
        matches!(call("http://details:9080/details/0").await, Ok(r) if r.status().is_success());
    let mut reviews: Option<Value> = None;
    for _ in 0..2 {
        if let Ok(r) = call("http://reviews:9080/reviews/0").await
            && r.status().is_success()
        {
            reviews = r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            break;
        }
    }
    let details = if details_ok {
        "<h4>Book Details</h4>"
    } else {
        "<h4>Error fetching product details!</h4>"
    };
    let reviews_html = match reviews.as_ref().and_then(|r| r.get("podname")?.as_str()) {
        Some(pod) => format!(
            "<div class=\"text-sm leading-6\">\n  <div class=\"mt-0.5 text-gray-600 font-mono\">Reviews served by: \n                  {pod}\n                  </div>\n</div>"
        ),
        None => "<h4>Error fetching product reviews!</h4>".to_owned(),
    };
    let user = cookie(incoming, "session")
        .and_then(session_user)
        .map_or_else(String::new, |u| format!("<span>{u}</span>"));
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        format!("<html><body>{user}\n{details}\n{reviews_html}\n</body></html>\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_and_forgeries_refused() {
        let value = session_value("tester");
        assert_eq!(session_user(&value).as_deref(), Some("tester"));
        let (user, sig) = value.split_once('.').expect("two parts");
        assert_eq!(
            session_user(&format!("{}.{sig}", hex_encode(b"admin"))),
            None
        );
        assert_eq!(session_user(user), None);
        assert_eq!(session_user("zz.zz"), None);
    }

    #[test]
    fn login_redirects_to_the_referer_or_none_and_sets_the_session() {
        let response = login(&HeaderMap::new(), b"username=tester&passwd=");
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()["location"], "None");
        let set = response.headers()["set-cookie"].to_str().expect("ascii");
        let value = set
            .strip_prefix("session=")
            .and_then(|v| v.split(';').next())
            .expect("session");
        assert_eq!(session_user(value).as_deref(), Some("tester"));
    }

    #[test]
    fn end_user_comes_from_the_session_never_from_the_request() {
        let mut incoming = HeaderMap::new();
        incoming.insert("end-user", "mallory".parse().expect("value"));
        incoming.insert("user-agent", "tag-1".parse().expect("value"));
        incoming.insert("x-request-id", "r-1".parse().expect("value"));
        let anonymous = forward_headers(&incoming);
        assert!(
            !anonymous.iter().any(|(k, _)| k == "end-user"),
            "{anonymous:?}"
        );
        incoming.insert(
            "cookie",
            format!("session={}", session_value("tester"))
                .parse()
                .expect("value"),
        );
        let forwarded = forward_headers(&incoming);
        assert!(
            forwarded.contains(&("end-user".into(), "tester".into())),
            "{forwarded:?}"
        );
        assert!(forwarded.contains(&("user-agent".into(), "tag-1".into())));
        assert!(forwarded.contains(&("x-request-id".into(), "r-1".into())));
        assert!(forwarded.iter().any(|(k, _)| k == "cookie"));
    }

    #[test]
    fn the_page_names_the_pod_as_bookinfo_1_20_prints_it() {
        let html = "<div class=\"mt-0.5 text-gray-600 font-mono\">Reviews served by: \n                  reviews-v2-7d79d5bd5d-8xzmf\n                  </div>";
        assert_eq!(
            crate::productpage::served_by(html),
            Some("reviews-v2-7d79d5bd5d-8xzmf")
        );
    }
}

//! Bookinfo's productpage as the suite's client, in both modes: log in, request the page
//! through the ingress gateway, read which reviews pod served it.
//!
//! productpage sets `end-user` from its session after `POST /login` and forwards
//! `user-agent` (istio/istio samples/bookinfo/src/productpage/productpage.py at
//! release-1.31: `login` stores `session['user']`, `getForwardHeaders` sends it as
//! `end-user`), so the tag travels to reviews and to the mirror. The login
//! answer is a redirect to `None` without a Referer: the session cookie is taken from it and
//! the redirect is not followed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;

use crate::mesh::{Call, Identity, MeshError, Reply};

/// The page's marker before the serving pod's name.
const SERVED_BY: &str = "Reviews served by:";

/// A productpage client through the ingress gateway.
pub struct Productpage {
    base: String,
    /// The `Host` the run's Gateway binds.
    host: String,
    http: reqwest::Client,
    /// Session cookies by user; held across a login so concurrent requests log in once.
    sessions: tokio::sync::Mutex<HashMap<String, String>>,
}

impl Productpage {
    /// A client for `base`, e.g. `http://127.0.0.1:30080`, that asks for `host`.
    pub fn new(base: &str, host: &str) -> Productpage {
        Productpage {
            base: base.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .no_proxy()
                .build()
                .unwrap_or_default(),
            sessions: tokio::sync::Mutex::default(),
        }
    }

    /// Requests `/productpage` as the call's identity, logging in first when needed.
    pub async fn send(&self, call: &Call) -> Result<Reply, MeshError> {
        let err = |message: String| MeshError::Request {
            tag: call.tag.clone(),
            message,
        };
        let mut request = self
            .http
            .get(format!("{}/productpage", self.base))
            .header("host", &self.host)
            .header("user-agent", &call.tag)
            .timeout(Duration::from_secs(10));
        if let Identity::User(user) = &call.identity {
            request = request.header("cookie", self.session(user, &call.tag).await.map_err(err)?);
        }
        let start = Instant::now();
        let response = request.send().await.map_err(|e| err(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| err(e.to_string()))?;
        let pod = served_by(&body).map(str::to_owned);
        Ok(Reply {
            status,
            workload: pod.as_deref().map(pod_workload),
            pod,
            latency: start.elapsed(),
        })
    }

    /// The session cookie of `user`, logging in once.
    async fn session(&self, user: &str, tag: &str) -> Result<String, String> {
        let mut sessions = self.sessions.lock().await;
        if let Some(cookie) = sessions.get(user) {
            return Ok(cookie.clone());
        }
        if !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!(
                "user name `{user}` has characters the login form would need encoded"
            ));
        }
        let response = self
            .http
            .post(format!("{}/login", self.base))
            .header("host", &self.host)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", tag)
            .body(format!("username={user}&passwd="))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("login as {user}: {e}"))?;
        let status = response.status().as_u16();
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let cookie = session_cookie(&cookies)
            .ok_or_else(|| format!("login as {user}: status {status} set no `session` cookie"))?;
        sessions.insert(user.to_owned(), cookie.clone());
        Ok(cookie)
    }
}

/// `session=<value>` from the login answer's Set-Cookie headers.
pub fn session_cookie(set_cookies: &[String]) -> Option<String> {
    set_cookies
        .iter()
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .find(|c| c.starts_with("session=") && c.len() > "session=".len())
        .map(str::to_owned)
}

/// The pod name after "Reviews served by:", skipping whitespace and markup.
pub fn served_by(html: &str) -> Option<&str> {
    let mut rest = &html[html.find(SERVED_BY)? + SERVED_BY.len()..];
    loop {
        rest = rest.trim_start();
        if rest.starts_with('<') {
            rest = &rest[rest.find('>')? + 1..];
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The Deployment of a pod named `<deployment>-<replicaset hash>-<pod hash>`.
pub fn pod_workload(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [_, _, deployment] => (*deployment).to_owned(),
        _ => pod.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_by_reads_the_pod_across_markup_and_newlines() {
        // Bookinfo 1.20.x (templates/productpage.html): the marker in a div, a trailing
        // space, the pod on the next line.
        let v120 = "<div class=\"mt-0.5 text-gray-600 font-mono\">Reviews served by: \n                  reviews-v2-7d79d5bd5d-8xzmf\n                  \n                </div>";
        assert_eq!(served_by(v120), Some("reviews-v2-7d79d5bd5d-8xzmf"));
        let plain = "Reviews served by:\n  reviews-v1-5b4c8d9f6-abcde\n";
        assert_eq!(served_by(plain), Some("reviews-v1-5b4c8d9f6-abcde"));
        assert_eq!(served_by("<html>error</html>"), None);
        assert_eq!(served_by("Reviews served by: <u></u>"), None);
    }

    #[test]
    fn pod_names_map_to_their_deployment() {
        assert_eq!(pod_workload("reviews-v2-7d79d5bd5d-8xzmf"), "reviews-v2");
        assert_eq!(pod_workload("mirror-5d9c7f7c8b-x2x9p"), "mirror");
        assert_eq!(pod_workload("standalone"), "standalone");
    }

    #[test]
    fn the_session_cookie_is_taken_from_set_cookie() {
        let headers = vec![
            "other=1; Path=/".to_owned(),
            "session=eyJ1c2VyIjoidGVzdGVyIn0.Z; HttpOnly; Path=/".to_owned(),
        ];
        assert_eq!(
            session_cookie(&headers).as_deref(),
            Some("session=eyJ1c2VyIjoidGVzdGVyIn0.Z")
        );
        assert_eq!(session_cookie(&["session=; Path=/".to_owned()]), None);
    }

    #[tokio::test]
    async fn login_keeps_the_cookie_and_does_not_follow_the_redirect() {
        use hyper::{Request, Response, body::Incoming, service::service_fn};
        use std::sync::{Arc, Mutex};
        // A loopback productpage: /login answers 302 to None with a session cookie;
        // /productpage names reviews-v2 only for that cookie.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            log.lock()
                                .expect("log")
                                .push(format!("{} {host} {path}", req.method()));
                            let cookie = req
                                .headers()
                                .get("cookie")
                                .and_then(|c| c.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let response = match path.as_str() {
                                "/login" => Response::builder()
                                    .status(302)
                                    .header("location", "None")
                                    .header("set-cookie", "session=abc; HttpOnly; Path=/")
                                    .body(String::new()),
                                "/None" => Response::builder().status(404).body(String::new()),
                                _ if cookie == "session=abc" => Response::builder()
                                    .body("Reviews served by:\n<u>reviews-v2-1-2</u>".to_owned()),
                                _ => Response::builder()
                                    .body("Reviews served by:\n<u>reviews-v1-1-2</u>".to_owned()),
                            };
                            Ok::<_, std::convert::Infallible>(response.expect("response"))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let page = Productpage::new(&format!("http://{addr}"), "run-1.mirror-e2e.test");
        let anon = page
            .send(&Call {
                identity: Identity::Anonymous,
                tag: "t1".into(),
            })
            .await
            .expect("anon");
        assert_eq!(anon.workload.as_deref(), Some("reviews-v1"));
        let tester = Call {
            identity: Identity::User("tester".into()),
            tag: "t2".into(),
        };
        assert_eq!(
            page.send(&tester)
                .await
                .expect("tester")
                .workload
                .as_deref(),
            Some("reviews-v2")
        );
        assert_eq!(
            page.send(&tester)
                .await
                .expect("tester again")
                .workload
                .as_deref(),
            Some("reviews-v2")
        );
        let requests = seen.lock().expect("log").clone();
        assert_eq!(
            requests,
            [
                "GET run-1.mirror-e2e.test /productpage",
                "POST run-1.mirror-e2e.test /login",
                "GET run-1.mirror-e2e.test /productpage",
                "GET run-1.mirror-e2e.test /productpage"
            ],
            "one login, no redirect followed, the run's host on every request"
        );
    }
}

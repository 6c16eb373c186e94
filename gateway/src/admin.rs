//! The admin listener: `GET /healthz` (live), `/readyz` (this process can serve; `?verbose`
//! adds each pool's and identity provider's state, see [`crate::readiness`]), `/metrics`
//! (Prometheus text), and with `admin-explain: true` `POST /debug/explain` (a request's
//! explanation with this process's live keys and session store, see [`crate::explain`]; 404
//! when off).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::login::Sessions;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::runtime::SharedRuntime;

/// The admin HTTP app.
pub struct Admin {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// The proxy's session store, read by `POST /debug/explain`.
    pub sessions: Arc<Sessions>,
}

/// The largest `POST /debug/explain` body read (a request head with its credentials).
const MAX_EXPLAIN_BODY: usize = 64 * 1024;

/// `POST /debug/explain` path.
pub const EXPLAIN_PATH: &str = "/debug/explain";

/// Whether the query string has a `verbose` parameter (`?verbose`, `?verbose=1`).
fn wants_verbose(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == "verbose")
    })
}

fn text(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.uri.path() == EXPLAIN_PATH {
            if !self.runtime.load().config.admin_explain {
                return text(404, "text/plain", b"not found\n".to_vec());
            }
            if req.method != http::Method::POST {
                return text(405, "text/plain", b"method not allowed: POST\n".to_vec());
            }
            return self.explain(session).await;
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return text(405, "text/plain", b"method not allowed\n".to_vec());
        }
        match req.uri.path() {
            "/healthz" => text(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let runtime = self.runtime.load();
                let verbose = wants_verbose(req.uri.query());
                let (status, body) = self.readiness.answer(&runtime, verbose);
                text(status, "text/plain", body.into_bytes())
            }
            "/metrics" => text(200, "text/plain; version=0.0.4", self.metrics.render()),
            _ => text(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

impl Admin {
    /// `POST /debug/explain`: the JSON body is a [`crate::explain::Query`]; the answer is the
    /// report as `gatehouse explain --json` prints it (200), or 400 with the reason the body
    /// does not describe a request (413 over 64 KiB).
    async fn explain(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_EXPLAIN_BODY {
                        return text(413, "text/plain", b"body too large\n".to_vec());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => return text(400, "text/plain", b"unreadable body\n".to_vec()),
            }
        }
        let query: crate::explain::Query = match serde_json::from_slice(&body) {
            Ok(q) => q,
            Err(e) => {
                // Not serde's message: it can quote a value sent, and that may be a token.
                let msg = format!(
                    "the body is not an explain request ({:?} error at line {}, column {}): \
                     expected {{\"method\", \"url\", \"headers\": [\"Name: value\"], \"from\"}}\n",
                    e.classify(),
                    e.line(),
                    e.column()
                );
                return text(400, "text/plain", msg.into_bytes());
            }
        };
        let runtime = self.runtime.load_full();
        match crate::explain::explain(&runtime, &self.sessions, &query).await {
            Ok(report) => {
                let mut json = crate::explain::json(&report).into_bytes();
                json.push(b'\n');
                text(200, "application/json", json)
            }
            Err(e) => text(400, "text/plain", format!("{e}\n").into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_is_a_query_parameter() {
        for q in ["verbose", "verbose=1", "a=b&verbose", "verbose&x"] {
            assert!(wants_verbose(Some(q)), "{q}");
        }
        for q in ["", "verbosely", "x=verbose", "noverbose=1"] {
            assert!(!wants_verbose(Some(q)), "{q}");
        }
        assert!(!wants_verbose(None));
    }
}

//! The admin listener: `GET /healthz` (live), `/readyz` (this process can serve; `?verbose`
//! adds each pool's and identity provider's state, see [`crate::readiness`]), `/metrics`
//! (Prometheus text).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::runtime::SharedRuntime;

/// The admin HTTP app.
pub struct Admin {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

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

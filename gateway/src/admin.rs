//! The admin listener: `GET /healthz` (live), `/readyz` (config loaded, every pool has a
//! healthy target after its first check, every identity provider's keys fetched), `/metrics`
//! (Prometheus text).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::runtime::SharedRuntime;

/// The admin HTTP app.
pub struct Admin {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
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
                let unready: Vec<String> = runtime
                    .unready_pools()
                    .map(|p| format!("upstream {}: no healthy target\n", p.label))
                    .chain(
                        runtime
                            .providers_without_keys()
                            .map(|name| format!("identity provider {name}: no signing keys yet\n")),
                    )
                    .collect();
                if unready.is_empty() {
                    text(200, "text/plain", b"ready\n".to_vec())
                } else {
                    text(503, "text/plain", unready.concat().into_bytes())
                }
            }
            "/metrics" => text(200, "text/plain; version=0.0.4", self.metrics.render()),
            _ => text(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

//! The embedded demo: the config `gatehouse run` uses without `--config`, and a tiny echo
//! upstream it proxies to, so a fresh machine has something to curl.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The embedded demo config (the same file CI validates under `config/examples/`).
pub const DEMO_CONFIG: &str = include_str!("../../config/examples/demo.yaml");
/// Where the demo upstream listens (the demo config's `app` upstream).
pub const DEMO_UPSTREAM_ADDR: &str = "127.0.0.1:18080";

/// Answers every request with a JSON echo of what the upstream received: method, path and
/// headers (so the gateway's X-Forwarded-*, X-Request-ID and identity headers are visible).
pub struct EchoUpstream;

#[async_trait]
impl ServeHttp for EchoUpstream {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let body = serde_json::json!({
            "upstream": "gatehouse demo upstream",
            "method": req.method.as_str(),
            "path": String::from_utf8_lossy(req.raw_path()),
            "headers": headers,
        });
        let mut body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        body.push(b'\n');
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}

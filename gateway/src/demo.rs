//! The embedded demo: the config `gatehouse run` uses without `--config`, and a tiny echo
//! upstream it proxies to, so a fresh machine has something to curl and a browser something to
//! log in to.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The embedded demo config (the same file CI validates under `config/examples/`).
pub const DEMO_CONFIG: &str = include_str!("../../config/examples/demo.yaml");
/// Where the demo upstream listens (the demo config's `app` upstream).
pub const DEMO_UPSTREAM_ADDR: &str = "127.0.0.1:18080";

/// The prefix of the identity headers the demo config sets. The gateway removes every
/// client-sent `X-Auth-*` header, so at the upstream these are the gateway's alone.
const IDENTITY_PREFIX: &str = "x-auth-";

/// Answers every request with what the upstream received: method, path and headers, the
/// identity headers apart. JSON by default; a small HTML page for a browser (`Accept:
/// text/html`), so a user who just logged in sees who the upstream was told they are.
pub struct EchoUpstream;

#[async_trait]
impl ServeHttp for EchoUpstream {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let html = req
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let seen = Seen {
            method: req.method.as_str(),
            path: &String::from_utf8_lossy(req.raw_path()),
            headers: &headers,
        };
        let (content_type, body) = if html {
            ("text/html; charset=utf-8", seen.html().into_bytes())
        } else {
            ("application/json", seen.json())
        };
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .expect("static response parts are valid")
    }
}

/// One request as the demo upstream received it.
struct Seen<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [(String, String)],
}

impl Seen<'_> {
    /// The identity headers, in the order received.
    fn identity(&self) -> impl Iterator<Item = &(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with(IDENTITY_PREFIX))
    }

    /// `{"upstream", "method", "path", "identity": {X-Auth-*}, "headers": {all}}`, pretty.
    fn json(&self) -> Vec<u8> {
        let object = |pairs: &mut dyn Iterator<Item = &(String, String)>| {
            pairs
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect::<serde_json::Map<String, serde_json::Value>>()
        };
        let body = serde_json::json!({
            "upstream": "gatehouse demo upstream",
            "method": self.method,
            "path": self.path,
            "identity": object(&mut self.identity()),
            "headers": object(&mut self.headers.iter()),
        });
        let mut body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        body.push(b'\n');
        body
    }

    /// A page with the request line, the identity the gateway sent (or a note that there was
    /// none), links to the demo's routes, and every header.
    fn html(&self) -> String {
        let rows = |pairs: &mut dyn Iterator<Item = &(String, String)>| {
            pairs
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v)))
                .collect::<String>()
        };
        let identity = rows(&mut self.identity());
        let identity = if identity.is_empty() {
            "<p id=\"anonymous\">No identity headers: this request reached the upstream \
             anonymously (a white-listed route). <a href=\"/app/\">Sign in</a> to see yours.</p>"
                .to_string()
        } else {
            format!("<table id=\"identity\" border=\"1\" cellpadding=\"4\">\n{identity}</table>")
        };
        // No inline style or script: the tenant's Content-Security-Policy (default-src 'self')
        // would block them.
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>gatehouse demo upstream</title></head>\n\
             <body>\n<h1>gatehouse demo upstream</h1>\n<p>Received <code>{} {}</code> from the gateway.</p>\n\
             <h2>Identity the gateway sent</h2>\n{identity}\n\
             <p><a href=\"/app/\">/app/</a> (any signed-in user) &middot; <a href=\"/admin/\">/admin/</a> \
             (realm role <code>admin</code>) &middot; <a href=\"/oauth/userinfo\">/oauth/userinfo</a> \
             &middot; <a href=\"/oauth/logout\">log out</a></p>\n\
             <h2>Every header it received</h2>\n<table border=\"1\" cellpadding=\"4\">\n{}</table>\n</body></html>\n",
            escape(self.method),
            escape(self.path),
            rows(&mut self.headers.iter()),
        )
    }
}

/// `text` with the characters that mean something in HTML replaced by entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<(String, String)> {
        [
            ("host", "demo.localhost"),
            ("x-auth-userid", "alice"),
            ("x-auth-roles", "admin,user"),
            ("x-forwarded-for", "127.0.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn json_separates_the_identity_headers() {
        let h = headers();
        let seen = Seen {
            method: "GET",
            path: "/app/",
            headers: &h,
        };
        let v: serde_json::Value = serde_json::from_slice(&seen.json()).unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/app/");
        assert_eq!(
            v["identity"],
            serde_json::json!({"x-auth-userid": "alice", "x-auth-roles": "admin,user"})
        );
        assert_eq!(v["headers"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn html_shows_the_identity_escaped_or_says_there_is_none() {
        let mut h = headers();
        h.push((
            "x-auth-email".into(),
            "<script>x</script>@example.com".into(),
        ));
        let seen = Seen {
            method: "GET",
            path: "/app/?a=<b>",
            headers: &h,
        };
        let page = seen.html();
        assert!(
            page.contains("<code>GET /app/?a=&lt;b&gt;</code>"),
            "{page}"
        );
        assert!(page.contains("<tr><th>x-auth-userid</th><td>alice</td></tr>"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;@example.com"));
        assert!(!page.contains("<script>"));
        assert!(!page.contains("id=\"anonymous\""));

        let anonymous: Vec<(String, String)> = h
            .into_iter()
            .filter(|(k, _)| !k.starts_with("x-auth-"))
            .collect();
        let seen = Seen {
            method: "GET",
            path: "/",
            headers: &anonymous,
        };
        let page = seen.html();
        assert!(page.contains("id=\"anonymous\""), "{page}");
        assert!(!page.contains("id=\"identity\""));
    }
}

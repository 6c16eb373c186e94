//! A fake IdP on loopback: a discovery document, a JWKS and an RFC 7662 introspection
//! endpoint, each counting its requests, with delays and answers the test sets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::{CLIENT_ID, CLIENT_SECRET};

/// Decodes `application/x-www-form-urlencoded` text into pairs.
pub fn form_decode(body: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

/// How an introspection request authenticated (`basic`, `post` or `none`) and its
/// `token_type_hint`.
pub type AuthRecord = (String, Option<String>);

/// A fake IdP on 127.0.0.1:0 serving a discovery document and a JWKS, counting requests.
pub struct FakeIdp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://ADDR/realms/test`.
    pub issuer: String,
    /// The JWKS served right now (replace it to rotate keys).
    pub jwks: Arc<Mutex<String>>,
    /// Issuer named by the discovery document (defaults to `issuer`).
    pub discovery_issuer: Arc<Mutex<String>>,
    /// JWKS requests so far.
    pub jwks_hits: Arc<AtomicUsize>,
    /// Discovery requests so far.
    pub discovery_hits: Arc<AtomicUsize>,
    /// Delay before each JWKS response, to widen race windows.
    pub jwks_delay: Arc<Mutex<Duration>>,
    /// Introspection answers by token; unknown tokens are `{"active": false}`.
    pub introspection: Arc<Mutex<HashMap<String, Value>>>,
    /// Requests that reached the introspection endpoint (authenticated or not).
    pub introspection_hits: Arc<AtomicUsize>,
    /// Delay before each introspection response.
    pub introspection_delay: Arc<Mutex<Duration>>,
    /// How each introspection request authenticated: `basic`, `post`, or `none`, and its
    /// `token_type_hint`.
    pub introspection_log: Arc<Mutex<Vec<AuthRecord>>>,
    /// Whether the discovery document names the introspection endpoint (default true).
    pub advertise_introspection: Arc<Mutex<bool>>,
}

impl FakeIdp {
    /// Starts serving `jwks` on a free loopback port (on the current tokio runtime).
    pub async fn start(jwks: String) -> FakeIdp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let issuer = format!("http://{addr}/realms/test");
        let idp = FakeIdp {
            addr,
            issuer: issuer.clone(),
            jwks: Arc::new(Mutex::new(jwks)),
            discovery_issuer: Arc::new(Mutex::new(issuer)),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            discovery_hits: Arc::new(AtomicUsize::new(0)),
            jwks_delay: Arc::new(Mutex::new(Duration::ZERO)),
            introspection: Arc::new(Mutex::new(HashMap::new())),
            introspection_hits: Arc::new(AtomicUsize::new(0)),
            introspection_delay: Arc::new(Mutex::new(Duration::ZERO)),
            introspection_log: Arc::new(Mutex::new(Vec::new())),
            advertise_introspection: Arc::new(Mutex::new(true)),
        };
        let intro = Introspection {
            answers: Arc::clone(&idp.introspection),
            hits: Arc::clone(&idp.introspection_hits),
            delay: Arc::clone(&idp.introspection_delay),
            log: Arc::clone(&idp.introspection_log),
            advertise: Arc::clone(&idp.advertise_introspection),
        };
        let (jwks, disc_iss, jwks_hits, disc_hits, delay) = (
            Arc::clone(&idp.jwks),
            Arc::clone(&idp.discovery_issuer),
            Arc::clone(&idp.jwks_hits),
            Arc::clone(&idp.discovery_hits),
            Arc::clone(&idp.jwks_delay),
        );
        let jwks_uri = format!("{}/protocol/openid-connect/certs", idp.issuer);
        let introspection_endpoint = idp.introspection_url();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (jwks, disc_iss, jwks_hits, disc_hits, delay, jwks_uri) = (
                    Arc::clone(&jwks),
                    Arc::clone(&disc_iss),
                    Arc::clone(&jwks_hits),
                    Arc::clone(&disc_hits),
                    Arc::clone(&delay),
                    jwks_uri.clone(),
                );
                let (intro, introspection_endpoint) =
                    (intro.clone(), introspection_endpoint.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head_len = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(buf.len(), |p| p + 4);
                    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
                    let content_length = header(&head, "content-length")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_len + content_length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_len..]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = if path.ends_with("/.well-known/openid-configuration") {
                        disc_hits.fetch_add(1, Ordering::SeqCst);
                        let iss = disc_iss.lock().expect("lock").clone();
                        let mut doc = json!({"issuer": iss, "jwks_uri": jwks_uri});
                        if *intro.advertise.lock().expect("lock") {
                            doc["introspection_endpoint"] = json!(introspection_endpoint);
                        }
                        ("200 OK", doc.to_string())
                    } else if path.ends_with("/protocol/openid-connect/token/introspect") {
                        intro.answer(&head, &body).await
                    } else if path.ends_with("/protocol/openid-connect/certs") {
                        jwks_hits.fetch_add(1, Ordering::SeqCst);
                        let wait = *delay.lock().expect("lock");
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        ("200 OK", jwks.lock().expect("lock").clone())
                    } else {
                        ("404 Not Found", "{}".to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        idp
    }

    /// Serves `jwks` from now on.
    pub fn set_jwks(&self, jwks: String) {
        *self.jwks.lock().expect("lock") = jwks;
    }

    /// JWKS requests so far.
    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Discovery requests so far.
    pub fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }

    /// The introspection endpoint's URL.
    pub fn introspection_url(&self) -> String {
        format!("{}/protocol/openid-connect/token/introspect", self.issuer)
    }

    /// Makes the introspection endpoint answer `response` for `token`.
    pub fn set_introspection(&self, token: &str, response: Value) {
        self.introspection
            .lock()
            .expect("lock")
            .insert(token.to_string(), response);
    }

    /// Introspection requests so far (authenticated or not).
    pub fn introspection_hits(&self) -> usize {
        self.introspection_hits.load(Ordering::SeqCst)
    }
}

/// The value of header `name` (case-insensitive) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The fake introspection endpoint's state.
#[derive(Clone)]
struct Introspection {
    answers: Arc<Mutex<HashMap<String, Value>>>,
    hits: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
    log: Arc<Mutex<Vec<AuthRecord>>>,
    advertise: Arc<Mutex<bool>>,
}

impl Introspection {
    /// RFC 7662: client authentication (Basic of form-encoded id:secret, or in the body),
    /// then the answer for the `token` form field.
    async fn answer(&self, head: &str, body: &str) -> (&'static str, String) {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let wait = *self.delay.lock().expect("lock");
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let form = form_decode(body);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let basic = header(head, "authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (id, secret) = text.split_once(':')?;
                let decode = |s: &str| form_decode(&format!("x={s}")).remove(0).1;
                Some((decode(id), decode(secret)))
            });
        let (method, credentials) = match (basic, field("client_id"), field("client_secret")) {
            (Some(c), None, None) => ("basic", Some(c)),
            (None, Some(id), Some(secret)) => ("post", Some((id, secret))),
            _ => ("none", None),
        };
        self.log
            .lock()
            .expect("lock")
            .push((method.to_string(), field("token_type_hint")));
        let authorized =
            credentials.is_some_and(|(id, secret)| id == CLIENT_ID && secret == CLIENT_SECRET);
        if !authorized {
            return (
                "401 Unauthorized",
                json!({"error": "invalid_client"}).to_string(),
            );
        }
        let Some(token) = field("token") else {
            return (
                "400 Bad Request",
                json!({"error": "invalid_request"}).to_string(),
            );
        };
        let answer = self
            .answers
            .lock()
            .expect("lock")
            .get(&token)
            .cloned()
            .unwrap_or_else(|| json!({"active": false}));
        ("200 OK", answer.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_plus_and_percent_escapes() {
        assert_eq!(
            form_decode("a=b+c&d=%41%2f&&e&bad=%zz"),
            [("a", "b c"), ("d", "A/"), ("e", ""), ("bad", "%zz")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}

//! Test fakes: locally generated keys, token minting, and a counting fake IdP on loopback.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::{IdentityProvider, TokenEndpointAuthMethod};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const CLIENT_ID: &str = "web";
/// The client secret the fake IdP's introspection endpoint accepts for [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "web secret/+:é";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The kind of a test key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key with a `kid`, able to mint tokens and describe itself as a JWK.
pub struct TestKey {
    pub kid: String,
    pub kind: Kind,
    signer: Signer,
}

impl TestKey {
    pub fn generate(kind: Kind, kid: &str) -> TestKey {
        let signer = match kind {
            Kind::Rsa => Signer::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA keygen"),
            ),
            Kind::P256 => Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 keygen"),
            ),
            Kind::P384 => Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("P-384 keygen"),
            ),
            Kind::Ed25519 => Signer::Ed(Ed25519KeyPair::generate().expect("Ed25519 keygen")),
        };
        TestKey {
            kid: kid.to_string(),
            kind,
            signer,
        }
    }

    /// The public JWK (`use: sig`, no `alg`).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                let width = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if width == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + width]),
                    "y": b64(&point[1 + width..]),
                })
            }
            Signer::Ed(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(k.public_key().as_ref()),
            }),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// The public JWK stating `alg`.
    pub fn jwk_with_alg(&self, alg: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["alg"] = json!(alg);
        jwk
    }

    /// The RSA public key's DER bytes (for the HS256 key-confusion attack).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
            Signer::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `input` with `alg` (which must fit the key).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(k) => {
                let encoding: &'static dyn sig::RsaEncoding = match alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    other => panic!("{other} is not an RSA algorithm"),
                };
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(encoding, &rng, input, &mut out).expect("RSA sign");
                out
            }
            Signer::Ec(k) => k.sign(&rng, input).expect("ECDSA sign").as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with header `{"alg", "kid", "typ": "JWT"}`.
    pub fn mint(&self, alg: &str, claims: &Value) -> String {
        self.mint_with_header(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// A token with the given header, signed with the header's `alg`.
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().expect("header alg");
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(signature))
    }
}

/// The default algorithm for a key kind.
pub fn default_alg(kind: Kind) -> &'static str {
    match kind {
        Kind::Rsa => "RS256",
        Kind::P256 => "ES256",
        Kind::P384 => "ES384",
        Kind::Ed25519 => "EdDSA",
    }
}

/// Keys generated once per test binary (RSA generation is the slow part).
pub struct Keys {
    pub rsa: TestKey,
    pub rsa2: TestKey,
    pub p256: TestKey,
    pub p384: TestKey,
    pub ed: TestKey,
    /// Never published.
    pub rogue: TestKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::generate(Kind::Rsa, "rsa-1"),
        rsa2: TestKey::generate(Kind::Rsa, "rsa-2"),
        p256: TestKey::generate(Kind::P256, "ec-256"),
        p384: TestKey::generate(Kind::P384, "ec-384"),
        ed: TestKey::generate(Kind::Ed25519, "ed-1"),
        rogue: TestKey::generate(Kind::Rsa, "rogue"),
    })
}

pub fn jwks(jwks: &[Value]) -> String {
    json!({ "keys": jwks }).to_string()
}

/// Valid claims for `issuer`, audience [`CLIENT_ID`], expiring in 5 minutes.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": "user-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "exp": now + 300,
        "iat": now,
        "auth_time": now,
        "realm_access": {"roles": ["admin", "offline_access"]},
        "resource_access": {"web": {"roles": ["viewer"]}, "billing": {"roles": ["payer"]}},
        "groups": ["/developers", "ops"],
        "org": {"id": 7, "units": ["a", "b"]}
    })
}

/// An identity-provider config with the defaults a validated config would have.
pub fn provider(issuer: &str, jwks_file: Option<PathBuf>, algorithms: &[&str]) -> IdentityProvider {
    IdentityProvider {
        name: "test".to_string(),
        issuer: issuer.to_string(),
        discovery_url: format!("{issuer}/.well-known/openid-configuration"),
        jwks_file,
        client_id: CLIENT_ID.to_string(),
        client_secret: None,
        audiences: vec![CLIENT_ID.to_string()],
        algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
        leeway: Duration::from_secs(30),
        scopes: vec!["openid".to_string()],
        token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        jwks_refresh_interval: Duration::from_secs(600),
        jwks_min_refetch_interval: Duration::from_secs(60),
        max_token_age: None,
        introspection: false,
        introspection_url: None,
        introspection_cache_ttl: Duration::from_secs(30),
        authorized_parties: None,
        allow_insecure_http: true,
        token_cache_size: gatehouse_config::DEFAULT_TOKEN_CACHE_SIZE,
    }
}

/// [`provider`] with introspection on (discovery, [`CLIENT_SECRET`], the given auth method).
pub fn introspecting_provider(issuer: &str, method: TokenEndpointAuthMethod) -> IdentityProvider {
    let mut p = provider(issuer, None, &["RS256"]);
    p.introspection = true;
    p.client_secret = Some(gatehouse_config::Secret::new(CLIENT_SECRET));
    p.token_endpoint_auth_method = method;
    p
}

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

/// Writes `contents` to a fresh file in the temp dir and returns its path.
pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-session-tests-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// How an introspection request authenticated (`basic`, `post` or `none`) and its
/// `token_type_hint`.
pub type AuthRecord = (String, Option<String>);

/// A fake IdP on 127.0.0.1:0 serving a discovery document and a JWKS, counting requests.
pub struct FakeIdp {
    pub addr: SocketAddr,
    pub issuer: String,
    /// The JWKS served right now (replace it to rotate keys).
    pub jwks: Arc<Mutex<String>>,
    /// Issuer named by the discovery document (defaults to `issuer`).
    pub discovery_issuer: Arc<Mutex<String>>,
    pub jwks_hits: Arc<AtomicUsize>,
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

    pub fn set_jwks(&self, jwks: String) {
        *self.jwks.lock().expect("lock") = jwks;
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

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

//! Bearer-token verification: `TokenVerifier` (pre-parsed keys + verified-token cache) beside
//! the naive approach (`jsonwebtoken::decode` on every request, no cache).
//!
//! Run: `cargo bench -p gatehouse-benches --bench tokens -- --warm-up-time 1 --measurement-time 3`
//!
//! "miss" cycles through pre-minted distinct tokens on a verifier whose cache is disabled
//! (capacity 0), so every call does the full check: split, header, key lookup, signature,
//! claims, `Claims` parsing. "hit" verifies one token again and again from the cache.
//! `claims_parse` times the payload parse alone (a Keycloak-shaped payload).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_config::{IdentityProvider, TokenEndpointAuthMethod};
use gatehouse_session::claims::Claims;
use gatehouse_session::TokenVerifier;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example/realms/bench";
const AUDIENCE: &str = "web";
/// Distinct tokens minted per algorithm for the miss benchmarks.
const POOL: usize = 64;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct BenchKey {
    kid: &'static str,
    signer: Signer,
}

impl BenchKey {
    fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Rsa(k) => json!({
                "kty": "RSA",
                "n": b64(k.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(k.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Signer::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Signer::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    fn mint(&self, alg: &str, claims: &Value) -> String {
        let header = json!({"alg": alg, "kid": self.kid, "typ": "JWT"});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Rsa(k) => {
                let enc: &'static dyn sig::RsaEncoding = if alg == "PS256" {
                    &sig::RSA_PSS_SHA256
                } else {
                    &sig::RSA_PKCS1_SHA256
                };
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(enc, &rng, input.as_bytes(), &mut out).expect("sign");
                out
            }
            Signer::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(signature))
    }
}

/// A realistic Keycloak access token payload (~1 KB once signed with RS256).
fn claims(i: usize) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    json!({
        "exp": now + 3600, "iat": now, "auth_time": now, "jti": format!("jti-{i}"),
        "iss": ISSUER, "aud": [AUDIENCE, "account"], "sub": format!("user-{i}"), "typ": "Bearer",
        "azp": AUDIENCE, "session_state": "3f1c6c2e-2d4b-4b8e-9d0f-5a1c2b3d4e5f",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-bench"]},
        "resource_access": {"web": {"roles": ["viewer", "editor"]},
                            "account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid email profile", "email_verified": true, "name": "Alice Example",
        "preferred_username": "alice", "email": "alice@example.com",
        "groups": ["/developers", "/ops/oncall"]
    })
}

fn provider(jwks_file: std::path::PathBuf) -> IdentityProvider {
    IdentityProvider {
        name: "bench".into(),
        issuer: ISSUER.into(),
        discovery_url: format!("{ISSUER}/.well-known/openid-configuration"),
        jwks_file: Some(jwks_file),
        client_id: AUDIENCE.into(),
        client_secret: None,
        audiences: vec![AUDIENCE.into()],
        algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        leeway: Duration::from_secs(30),
        scopes: vec!["openid".into()],
        token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        jwks_refresh_interval: Duration::from_secs(600),
        jwks_min_refetch_interval: Duration::from_secs(30),
        max_token_age: None,
        introspection: false,
        introspection_url: None,
        introspection_cache_ttl: Duration::from_secs(30),
        authorized_parties: None,
        allow_insecure_http: true,
        token_cache_size: gatehouse_config::DEFAULT_TOKEN_CACHE_SIZE,
    }
}

/// Polls a future that must complete without waiting (a verification with known keys never
/// awaits), so the measurement has no executor in it.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification awaited I/O"),
    }
}

fn bench_tokens(c: &mut Criterion) {
    let rsa = BenchKey {
        kid: "rsa",
        signer: Signer::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa")),
    };
    let ec = BenchKey {
        kid: "ec",
        signer: Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec")),
    };
    let ed = BenchKey {
        kid: "ed",
        signer: Signer::Ed(Ed25519KeyPair::generate().expect("ed")),
    };
    let jwks = json!({"keys": [rsa.jwk(), ec.jwk(), ed.jwk()]});
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).expect("write jwks");

    let uncached = TokenVerifier::new(&provider(path.clone()), 0).expect("verifier");
    let cached = TokenVerifier::new(&provider(path), 1000).expect("verifier");

    let cases = [
        ("RS256", &rsa, Algorithm::RS256),
        ("PS256", &rsa, Algorithm::PS256),
        ("ES256", &ec, Algorithm::ES256),
        ("EdDSA", &ed, Algorithm::EdDSA),
    ];

    let mut g = c.benchmark_group("token_verify");
    for (name, key, alg) in cases {
        let tokens: Vec<String> = (0..POOL).map(|i| key.mint(name, &claims(i))).collect();
        for t in &tokens {
            ready(uncached.verify(t)).expect("valid token");
        }

        // Chosen: pre-parsed key, full checks, no cache.
        let mut i = 0;
        g.bench_function(BenchmarkId::new("miss", name), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                ready(uncached.verify(black_box(&tokens[i]))).map(|c| c.exp)
            })
        });

        // Naive: jsonwebtoken::decode (key rebuilt from the JWK per call, claims as Value).
        let jwk: Jwk = serde_json::from_value(key.jwk()).expect("jwk");
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("naive_decode_from_jwk", name), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                // The naive handler also looks the key up and builds it on every request.
                let key = DecodingKey::from_jwk(black_box(&jwk)).expect("key");
                jsonwebtoken::decode::<Value>(black_box(&tokens[i]), &key, &validation)
                    .map(|d| d.claims["exp"].as_u64())
                    .expect("valid")
            })
        });

        if name == "RS256" {
            let token = &tokens[0];
            ready(cached.verify(token)).expect("valid");
            g.bench_function(BenchmarkId::new("hit", name), |b| {
                b.iter(|| ready(cached.verify(black_box(token))).map(|c| c.exp))
            });
            g.bench_function(BenchmarkId::new("hit_verify_cached", name), |b| {
                b.iter(|| cached.verify_cached(black_box(token)).map(|c| c.exp))
            });
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The payload of a verified token (what a cache miss parses after the signature): the chosen
/// one-pass `Claims::from_json` beside the naive tree (`serde_json::Value`, then the fields).
fn bench_claims(c: &mut Criterion) {
    let payload = claims(7).to_string();
    let mut g = c.benchmark_group("claims_parse");
    g.bench_function("from_json", |b| {
        b.iter(|| Claims::from_json(black_box(payload.clone())).map(|(c, r)| (c.exp, r.nbf)))
    });
    // A miss also renders the tenant's identity headers once for the new claims.
    let headers: Vec<(http::HeaderName, String)> = [
        ("x-auth-subject", "sub"),
        ("x-auth-username", "preferred_username"),
        ("x-auth-roles", "realm_access.roles"),
    ]
    .iter()
    .map(|(n, p)| (http::HeaderName::from_static(n), p.to_string()))
    .collect();
    g.bench_function("from_json_and_identity_headers", |b| {
        b.iter(|| {
            let (claims, _) = Claims::from_json(black_box(payload.clone())).expect("object");
            claims.identity_header_values(1, &headers).len()
        })
    });
    g.bench_function("naive_value_tree", |b| {
        b.iter(|| {
            let tree: Value = serde_json::from_str(black_box(&payload)).expect("json");
            Claims::from_payload(tree).exp
        })
    });
    g.finish();
}

criterion_group!(benches, bench_tokens, bench_claims);
criterion_main!(benches);

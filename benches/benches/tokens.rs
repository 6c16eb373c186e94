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
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_config::IdentityProvider;
use gatehouse_session::claims::Claims;
use gatehouse_session::TokenVerifier;
use gatehouse_test_support::keys::{jwks, now, Kind, TestKey};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example/realms/bench";
const AUDIENCE: &str = "web";
/// Distinct tokens minted per algorithm for the miss benchmarks.
const POOL: usize = 64;

/// A realistic Keycloak access token payload (~1 KB once signed with RS256).
fn claims(i: usize) -> Value {
    let now = now();
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
    let mut provider = gatehouse_test_support::config::provider(
        ISSUER,
        Some(jwks_file),
        &["RS256", "PS256", "ES256", "EdDSA"],
    );
    provider.name = "bench".into();
    provider.client_id = AUDIENCE.into();
    provider.audiences = vec![AUDIENCE.into()];
    provider.jwks_min_refetch_interval = Duration::from_secs(30);
    provider
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
    let rsa = TestKey::generate(Kind::Rsa, "rsa");
    let ec = TestKey::generate(Kind::P256, "ec");
    let ed = TestKey::generate(Kind::Ed25519, "ed");
    let dir = gatehouse_test_support::process::TempDir::new("bench-tokens");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[rsa.jwk(), ec.jwk(), ed.jwk()])).expect("write jwks");

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

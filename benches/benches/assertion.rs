//! Identity assertions: signing a fresh assertion (ES256, EdDSA) beside handing out the one kept
//! with the caller's claims, which is what the warm JWT route does on all but about one request
//! per identity and upstream every three quarters of the assertion's lifetime.
//!
//! Run: `cargo bench -p gatehouse-benches --bench assertion -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_config::{AssertionAlgorithm, AssertionKey, IdentityAssertion};
use gatehouse_session::assertion::AssertionSigner;
use gatehouse_session::claims::Claims;
use gatehouse_test_support::keys::{now, Kind, TestKey};
use serde_json::json;

/// A Keycloak-shaped identity (the members an assertion carries, and some it does not).
fn claims() -> Claims {
    Claims::from_payload(json!({
        "sub": "0b6c4a5e-7d1f-4a8b-9c3e-2f1d0e9c8b7a", "email": "alice@example.com",
        "preferred_username": "alice", "exp": now() + 3600,
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-bench"]},
        "resource_access": {"web": {"roles": ["viewer", "editor"]}},
        "groups": ["/developers", "/ops/oncall"]
    }))
}

fn signer(kind: Kind, algorithm: AssertionAlgorithm) -> AssertionSigner {
    let key = TestKey::generate(kind, "bench");
    AssertionSigner::new(&IdentityAssertion {
        header: "X-Gatehouse-Assertion".into(),
        signing_keys: vec![AssertionKey::new(
            PathBuf::from("bench.pem"),
            algorithm,
            key.pkcs8_der(),
        )],
        ttl: Duration::from_secs(60),
        audience: None,
    })
    .expect("bench key")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("assertion");
    let claims = claims();
    let t = now();
    for (name, kind, alg) in [
        ("ES256", Kind::P256, AssertionAlgorithm::Es256),
        ("EdDSA", Kind::Ed25519, AssertionAlgorithm::EdDsa),
    ] {
        let s = signer(kind, alg);
        g.bench_function(format!("sign/{name}"), |b| {
            b.iter(|| black_box(s.sign(black_box(&claims), "app", "https://demo.example", t)))
        });
        // Warm: the assertion kept with the claims.
        s.assertion(&claims, 0, "app", true, "demo.example", t);
        g.bench_function(format!("cache_hit/{name}"), |b| {
            b.iter(|| black_box(s.assertion(black_box(&claims), 0, "app", true, "demo.example", t)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

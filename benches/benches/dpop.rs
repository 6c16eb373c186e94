//! DPoP proof checks (RFC 9449): `gatehouse_session::dpop::check_proof` per algorithm, beside
//! the naive approach (`jsonwebtoken::DecodingKey::from_jwk` + `jsonwebtoken::decode` of the
//! proof, with the thumbprint, `htm`, `htu` and `ath` still to check), and the replay memory.
//!
//! Run: `cargo bench -p gatehouse-benches --bench dpop -- --warm-up-time 1 --measurement-time 3`
//!
//! A proof is single-use, but `check_proof` has no state (the `jti` is recorded afterwards,
//! `replay_first_use` below), so one proof per algorithm is checked again and again at a
//! fixed `now`: each iteration is the whole check, signature included.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_session::dpop::{
    check_proof, normalize_htu, replay_key, ProofRequest, ProofRules, ReplayCache,
};
use gatehouse_test_support::dpop::{proof, proof_jwk, thumbprint};
use gatehouse_test_support::keys::{Kind, TestKey};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const NOW: u64 = 1_800_000_000;
const HTU: &str = "https://api.example/mcp/tools";
/// An access token of realistic length (the `ath` input).
const TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.",
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoic2VydmljZS1hY2NvdW50LXN2Yy11c2VyIiwiYXVk",
    "IjpbImdhdGVob3VzZSJdLCJleHAiOjE4MDAwMDAzMDAsImNuZiI6eyJqa3QiOiJ4In19.",
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
);
const ALGS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

fn cases() -> Vec<(&'static str, TestKey)> {
    vec![
        ("ES256", TestKey::generate(Kind::P256, "c")),
        ("RS256", TestKey::generate(Kind::Rsa, "c")),
        ("PS256", TestKey::generate(Kind::Rsa, "c")),
        ("EdDSA", TestKey::generate(Kind::Ed25519, "c")),
    ]
}

fn proof_check(c: &mut Criterion) {
    let rules = ProofRules {
        algorithms: &ALGS,
        window: 60,
        leeway: 30,
    };
    let uri = normalize_htu(HTU).expect("a URI");
    let mut group = c.benchmark_group("dpop_proof_check");
    for (alg, key) in cases() {
        let jwk = proof_jwk(&key);
        let jkt = thumbprint(&jwk);
        let p = proof(&key, alg, "POST", HTU, TOKEN, NOW);
        let request = ProofRequest {
            method: "POST",
            uri: &uri,
            access_token: TOKEN,
            jkt: &jkt,
        };
        check_proof(&p, &request, &rules, NOW).expect("a valid proof");
        group.bench_with_input(BenchmarkId::new("check_proof", alg), &p, |b, p| {
            b.iter(|| check_proof(black_box(p), &request, &rules, NOW).expect("valid"))
        });
        // Naive: rebuild the key from the header's JWK and decode with jsonwebtoken (which
        // also parses the claims into a map); the request checks would still follow.
        let algorithm = match alg {
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            _ => Algorithm::EdDSA,
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        group.bench_with_input(
            BenchmarkId::new("naive_from_jwk_decode", alg),
            &p,
            |b, p| {
                b.iter(|| {
                    let header = jsonwebtoken::decode_header(black_box(p)).expect("header");
                    let jwk: Jwk = header.jwk.expect("jwk");
                    let key = DecodingKey::from_jwk(&jwk).expect("key");
                    jsonwebtoken::decode::<serde_json::Value>(p, &key, &validation).expect("valid")
                })
            },
        );
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let cache = ReplayCache::new(1 << 20, 1);
    let mut i = 0u64;
    c.bench_function("dpop_replay_first_use_memory", |b| {
        b.iter(|| {
            i += 1;
            let key = replay_key("jkt", &i.to_string());
            // Expiring at once keeps the table small: a sweep a second reclaims them.
            cache.first_use(&key, NOW + (i % 4), NOW + (i / 100_000))
        })
    });
}

criterion_group!(benches, proof_check, replay);
criterion_main!(benches);

//! Arbitrary input never panics the verifier and is never accepted.

use std::sync::OnceLock;

use gatehouse_session::TokenVerifier;
use gatehouse_test_support::config::provider;
use gatehouse_test_support::keys::{b64, jwks, keys};
use gatehouse_test_support::process::temp_file;
use proptest::prelude::*;

const ISSUER: &str = "https://idp.example/realms/prop";

fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let k = keys();
        let path = temp_file(
            "jwks.json",
            &jwks(&[k.rsa.jwk(), k.p256.jwk(), k.p384.jwk(), k.ed.jwk()]),
        );
        TokenVerifier::new(
            &provider(
                ISSUER,
                Some(path),
                &["RS256", "PS256", "ES256", "ES384", "EdDSA"],
            ),
            100,
        )
        .expect("verifier")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn rejects(token: &str) {
    let result = runtime().block_on(verifier().verify(token));
    assert!(result.is_err(), "accepted {token:?}");
    assert!(verifier().verify_cached(token).is_none());
}

/// Headers that get past the header parser often enough to reach key lookup and signatures.
fn header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            prop::sample::select(vec![
                "RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256", "none", "RS512", ""
            ]),
            prop::sample::select(vec!["rsa-1", "ec-256", "ec-384", "ed-1", "nope", ""]),
            any::<bool>(),
        )
            .prop_map(|(alg, kid, with_kid)| {
                if with_kid {
                    format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#).into_bytes()
                } else {
                    format!(r#"{{"alg":"{alg}"}}"#).into_bytes()
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_are_refused(s in ".{0,300}") {
        rejects(&s);
    }

    #[test]
    fn arbitrary_three_part_tokens_are_refused(
        h in header(),
        p in proptest::collection::vec(any::<u8>(), 0..200),
        s in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        rejects(&format!("{}.{}.{}", b64(h), b64(p), b64(s)));
    }

    #[test]
    fn arbitrary_json_payloads_with_garbage_signatures_are_refused(
        h in header(),
        sub in ".{0,20}",
        exp in any::<i64>(),
        s in proptest::collection::vec(any::<u8>(), 0..520),
    ) {
        let payload = serde_json::json!({"iss": ISSUER, "aud": "web", "sub": sub, "exp": exp});
        rejects(&format!("{}.{}.{}", b64(h), b64(payload.to_string()), b64(s)));
    }
}

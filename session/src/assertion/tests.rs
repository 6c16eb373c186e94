use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::*;

fn p256_der() -> Vec<u8> {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap()
        .as_ref()
        .to_vec()
}

fn ed25519_der() -> Vec<u8> {
    Ed25519KeyPair::generate()
        .unwrap()
        .to_pkcs8v1()
        .unwrap()
        .as_ref()
        .to_vec()
}

fn config(keys: Vec<(AssertionAlgorithm, Vec<u8>)>) -> IdentityAssertion {
    IdentityAssertion {
        header: "X-Gatehouse-Assertion".to_string(),
        signing_keys: keys
            .into_iter()
            .enumerate()
            .map(|(i, (a, der))| AssertionKey::new(PathBuf::from(format!("k{i}.pem")), a, der))
            .collect(),
        ttl: Duration::from_secs(60),
        audience: None,
    }
}

fn claims(exp: u64) -> Claims {
    Claims::from_payload(serde_json::json!({
        "sub": "user-1",
        "email": "u@example.com",
        "groups": ["/dev"],
        "realm_access": {"roles": ["admin"]},
        "resource_access": {"app": {"roles": ["reader"]}},
        "exp": exp,
    }))
}

/// Verifies `token` with the JWK of `kid` from the signer's JWKS, as an upstream would.
fn verify(signer: &AssertionSigner, token: &str, aud: &str, iss: &str) -> Value {
    let header = decode_header(token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(signer.jwks()).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(header.alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[iss]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &v).unwrap().claims
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn es256_and_eddsa_assertions_verify_against_the_published_jwks() {
    for (alg, der, jws_alg) in [
        (AssertionAlgorithm::Es256, p256_der(), Algorithm::ES256),
        (AssertionAlgorithm::EdDsa, ed25519_der(), Algorithm::EdDSA),
    ] {
        let signer = AssertionSigner::new(&config(vec![(alg, der)])).unwrap();
        let t = now();
        let c = claims(t + 3600);
        let (v, exp) = signer.sign(&c, "app", "https://demo.localhost:8443", t);
        assert_eq!(exp, t + 60);
        let token = v.to_str().unwrap();
        assert_eq!(decode_header(token).unwrap().alg, jws_alg);
        let payload = verify(&signer, token, "app", "https://demo.localhost:8443");
        assert_eq!(payload["sub"], "user-1");
        assert_eq!(payload["email"], "u@example.com");
        assert_eq!(payload["groups"], serde_json::json!(["/dev"]));
        assert_eq!(payload["roles"], serde_json::json!(["admin", "app:reader"]));
        assert_eq!(payload["iat"], t);
        assert_eq!(payload["exp"], t + 60);
    }
}

#[test]
fn the_kid_is_the_rfc7638_thumbprint_and_every_key_is_published() {
    // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
    let jwk = serde_json::json!({
        "crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    });
    assert_eq!(
        thumbprint(&jwk),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );

    let ed = ed25519_der();
    let signer = AssertionSigner::new(&config(vec![
        (AssertionAlgorithm::Es256, p256_der()),
        (AssertionAlgorithm::EdDsa, ed.clone()),
        (AssertionAlgorithm::EdDsa, ed),
    ]))
    .unwrap();
    let jwks: Value = serde_json::from_slice(signer.jwks()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "a key listed twice is published once");
    assert_eq!(signer.kids().len(), 2);
    for k in keys {
        let mut required = k.clone();
        for member in ["kid", "use", "alg"] {
            required.as_object_mut().unwrap().remove(member);
        }
        assert_eq!(k["kid"].as_str().unwrap(), thumbprint(&required));
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "no private part");
    }
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[1]["alg"], "EdDSA");
    let (v, _) = signer.sign(&claims(0), "app", "http://h", now());
    let header = decode_header(v.to_str().unwrap()).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        keys[0]["kid"].as_str(),
        "the first key signs"
    );
}

#[test]
fn an_assertion_never_outlives_its_identity() {
    assert_eq!(expiry(1000, 60, 1030), 1030);
    assert_eq!(expiry(1000, 60, 5000), 1060);
    assert_eq!(expiry(1000, 60, 0), 1060, "no exp known (introspection)");
    assert_eq!(
        expiry(1000, 60, 900),
        1060,
        "an exp already past is not an identity's"
    );
}

#[test]
fn a_cached_assertion_is_reused_until_three_quarters_of_its_life_then_resigned() {
    let signer =
        AssertionSigner::new(&config(vec![(AssertionAlgorithm::EdDsa, ed25519_der())])).unwrap();
    let c = claims(0);
    let t = 1_000_000;
    let first = signer.assertion(&c, 0, "app", false, "Demo.localhost:8080", t);
    let again = signer.assertion(&c, 0, "app", false, "demo.localhost:8080", t + 44);
    assert_eq!(first, again, "reused, the host compared without case");
    assert_eq!(c.assertions.len(), 1);
    let renewed = signer.assertion(&c, 0, "app", false, "demo.localhost:8080", t + 45);
    assert_ne!(
        first, renewed,
        "re-signed once a quarter of the ttl is left"
    );
    assert_eq!(c.assertions.len(), 1);
    let (_, payload) = split(&renewed);
    assert_eq!(payload["iat"], t + 45);
    assert_eq!(payload["iss"], "http://demo.localhost:8080");
}

#[test]
fn upstream_scheme_host_and_signer_each_get_their_own_assertion() {
    // Ed25519 signatures are deterministic: equal values mean one was reused, not re-signed.
    let cfg = config(vec![(AssertionAlgorithm::EdDsa, ed25519_der())]);
    let signer = AssertionSigner::new(&cfg).unwrap();
    let other =
        AssertionSigner::new(&config(vec![(AssertionAlgorithm::EdDsa, ed25519_der())])).unwrap();
    let c = claims(0);
    let t = 1_000_000;
    let base = signer.assertion(&c, 0, "app", false, "a.example", t);
    let cases = [
        signer.assertion(&c, 1, "api", false, "a.example", t),
        signer.assertion(&c, 0, "app", true, "a.example", t),
        signer.assertion(&c, 0, "app", false, "b.example", t),
        other.assertion(&c, 0, "app", false, "a.example", t),
    ];
    for v in &cases {
        assert_ne!(v, &base);
    }
    assert_eq!(split(&cases[0]).1["aud"], "api");
    assert_eq!(split(&cases[1]).1["iss"], "https://a.example");
    assert_eq!(c.assertions.len(), MAX_ENTRIES, "bounded per identity");
    // The oldest went; the newest are kept.
    assert_eq!(
        other.assertion(&c, 0, "app", false, "a.example", t + 1),
        cases[3]
    );
}

#[test]
fn a_configured_audience_replaces_the_upstream_name() {
    let mut cfg = config(vec![(AssertionAlgorithm::Es256, p256_der())]);
    cfg.audience = Some("https://app.example".to_string());
    let signer = AssertionSigner::new(&cfg).unwrap();
    let v = signer.assertion(&claims(0), 0, "app", true, "h", now());
    let payload = verify(
        &signer,
        v.to_str().unwrap(),
        "https://app.example",
        "https://h",
    );
    assert_eq!(payload["aud"], "https://app.example");
}

#[test]
fn claims_clones_start_without_assertions() {
    let signer =
        AssertionSigner::new(&config(vec![(AssertionAlgorithm::EdDsa, ed25519_der())])).unwrap();
    let c = claims(0);
    signer.assertion(&c, 0, "app", false, "h", 1);
    assert_eq!(c.assertions.len(), 1);
    let copy = c.clone();
    assert!(copy.assertions.is_empty());
    assert_eq!(copy, c, "the cache is no difference");
}

#[test]
fn a_key_that_does_not_parse_is_an_error_naming_its_file() {
    let e = AssertionSigner::new(&config(vec![(AssertionAlgorithm::Es256, ed25519_der())]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "identity-assertion: signing-key k0.pem: not a usable ES256 private key"
    );
    let mut cfg = config(vec![(AssertionAlgorithm::EdDsa, ed25519_der())]);
    cfg.header = "bad header".to_string();
    assert!(matches!(
        AssertionSigner::new(&cfg),
        Err(AssertionError::Header(_))
    ));
}

fn split(v: &HeaderValue) -> (Value, Value) {
    let mut parts = v.to_str().unwrap().split('.');
    let mut part = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    (part(), part())
}

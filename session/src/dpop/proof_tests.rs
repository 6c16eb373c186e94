use gatehouse_test_support::dpop::{self as craft, ath, thumbprint};
use gatehouse_test_support::keys::{b64, forge, Kind, TestKey};
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_800_000_000;
const URI: &str = "https://api.example/mcp/tools";
const TOKEN: &str = "header.payload.signature";
const ALL: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

fn rules() -> ProofRules<'static> {
    ProofRules {
        algorithms: &ALL,
        window: 60,
        leeway: 5,
    }
}

/// The request a proof by `key` is checked against: POST `URI` with `TOKEN`, bound to `key`.
fn check(proof: &str, key: &TestKey) -> Result<CheckedProof, ProofError> {
    let jkt = thumbprint(&craft::proof_jwk(key));
    let request = ProofRequest {
        method: "POST",
        uri: URI,
        access_token: TOKEN,
        jkt: &jkt,
    };
    check_proof(proof, &request, &rules(), NOW)
}

fn p256() -> TestKey {
    TestKey::generate(Kind::P256, "client")
}

/// A proof by `key` with `alg` whose header and claims `edit` changed.
fn edited(key: &TestKey, alg: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let mut header = craft::header(key, alg);
    let mut claims = craft::claims("POST", URI, TOKEN, NOW);
    edit(&mut header, &mut claims);
    key.mint_with_header(&header, &claims)
}

#[test]
fn a_proof_of_each_algorithm_passes() {
    for (kind, alg) in [
        (Kind::P256, "ES256"),
        (Kind::Rsa, "RS256"),
        (Kind::Rsa, "PS256"),
        (Kind::Ed25519, "EdDSA"),
    ] {
        let key = TestKey::generate(kind, "client");
        let proof = craft::proof(&key, alg, "POST", URI, TOKEN, NOW);
        let checked = check(&proof, &key).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(checked.iat, NOW);
        assert!(!checked.jti.is_empty() && checked.nonce.is_none());
    }
    // `Ed25519`, the fully specified name current clients (panva's dpop) send, is EdDSA.
    let ed = TestKey::generate(Kind::Ed25519, "client");
    let proof = edited(&ed, "EdDSA", |h, _| h["alg"] = json!("Ed25519"));
    assert!(check(&proof, &ed).is_ok(), "Ed25519");
}

#[test]
fn equivalent_uris_and_a_nonce_are_accepted() {
    let key = p256();
    for htu in [
        "HTTPS://API.example:443/mcp/tools",
        "https://api.example/mcp/./tools?x=1#f",
    ] {
        let proof = edited(&key, "ES256", |_, c| c["htu"] = json!(htu));
        assert!(check(&proof, &key).is_ok(), "{htu}");
    }
    let proof = edited(&key, "ES256", |_, c| c["nonce"] = json!("n-1"));
    assert_eq!(check(&proof, &key).unwrap().nonce.as_deref(), Some("n-1"));
}

#[test]
fn the_iat_window_has_leeway_both_ways() {
    let key = p256();
    let at = |iat: u64| edited(&key, "ES256", |_, c| c["iat"] = json!(iat));
    assert!(check(&at(NOW - 65), &key).is_ok(), "window + leeway");
    assert_eq!(check(&at(NOW - 66), &key).err(), Some(ProofError::Stale));
    assert!(check(&at(NOW + 5), &key).is_ok(), "leeway into the future");
    assert_eq!(check(&at(NOW + 6), &key).err(), Some(ProofError::Future));
    let negative = edited(&key, "ES256", |_, c| c["iat"] = json!(-1));
    assert_eq!(check(&negative, &key).err(), Some(ProofError::Malformed));
    let text = edited(&key, "ES256", |_, c| c["iat"] = json!("1800000000"));
    assert_eq!(check(&text, &key).err(), Some(ProofError::Malformed));
}

#[test]
fn each_claim_must_fit_the_request() {
    let key = p256();
    let cases: [(&str, Value, ProofError); 8] = [
        ("htm", json!("GET"), ProofError::WrongMethod),
        ("htm", json!("post"), ProofError::WrongMethod),
        (
            "htu",
            json!("https://api.example/mcp/other"),
            ProofError::WrongUri,
        ),
        (
            "htu",
            json!("http://api.example/mcp/tools"),
            ProofError::WrongUri,
        ),
        (
            "htu",
            json!("https://evil.example/mcp/tools"),
            ProofError::WrongUri,
        ),
        ("htu", json!("/mcp/tools"), ProofError::WrongUri),
        (
            "ath",
            json!(ath("another.access.token")),
            ProofError::WrongAccessTokenHash,
        ),
        ("jti", json!(""), ProofError::Malformed),
    ];
    for (claim, value, want) in cases {
        let proof = edited(&key, "ES256", |_, c| c[claim] = value.clone());
        assert_eq!(check(&proof, &key).err(), Some(want), "{claim}: {value}");
    }
    for missing in ["jti", "htm", "htu", "iat"] {
        let proof = edited(&key, "ES256", |_, c| {
            c.as_object_mut().unwrap().remove(missing);
        });
        assert_eq!(
            check(&proof, &key).err(),
            Some(ProofError::Malformed),
            "{missing}"
        );
    }
    let no_ath = edited(&key, "ES256", |_, c| {
        c.as_object_mut().unwrap().remove("ath");
    });
    assert_eq!(
        check(&no_ath, &key).err(),
        Some(ProofError::WrongAccessTokenHash)
    );
    let long_jti = edited(&key, "ES256", |_, c| c["jti"] = json!("j".repeat(257)));
    assert_eq!(check(&long_jti, &key).err(), Some(ProofError::Malformed));
}

#[test]
fn the_key_must_be_the_tokens_and_public() {
    let key = p256();
    let other = p256();
    let by_other = craft::proof(&other, "ES256", "POST", URI, TOKEN, NOW);
    assert_eq!(check(&by_other, &key).err(), Some(ProofError::KeyMismatch));
    // The token's jwk in the header, signed by another key.
    let swapped = edited(&key, "ES256", |_, _| {});
    let (input, _) = swapped.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", b64(other.sign("ES256", input.as_bytes())));
    assert_eq!(check(&forged, &key).err(), Some(ProofError::BadSignature));
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let proof = edited(&key, "ES256", |h, _| h["jwk"][private] = json!("AAAA"));
        assert_eq!(
            check(&proof, &key).err(),
            Some(ProofError::PrivateKey),
            "{private}"
        );
    }
    let no_jwk = edited(&key, "ES256", |h, _| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    assert_eq!(check(&no_jwk, &key).err(), Some(ProofError::BadKey));
    let oct = edited(&key, "ES256", |h, _| h["jwk"] = json!({"kty": "oct"}));
    assert_eq!(check(&oct, &key).err(), Some(ProofError::BadKey));
    let bad_curve = edited(&key, "ES256", |h, _| h["jwk"]["crv"] = json!("P-521"));
    assert_eq!(check(&bad_curve, &key).err(), Some(ProofError::BadKey));
    // A P-256 key cannot make an RS256 proof, whatever the header says.
    let mismatch = edited(&key, "ES256", |h, _| h["alg"] = json!("RS256"));
    assert_eq!(
        check(&mismatch, &key).err(),
        Some(ProofError::UnsupportedAlgorithm)
    );
}

#[test]
fn none_hmac_and_unlisted_algorithms_are_refused() {
    let key = p256();
    let header = |alg: &str| json!({"typ": "dpop+jwt", "alg": alg, "jwk": craft::proof_jwk(&key)});
    let claims = craft::claims("POST", URI, TOKEN, NOW);
    let none = format!(
        "{}.",
        gatehouse_test_support::keys::signing_input(&header("none"), &claims)
    );
    assert_eq!(
        check(&none, &key).err(),
        Some(ProofError::UnsupportedAlgorithm)
    );
    let hs = forge(
        &header("HS256"),
        &claims,
        b"0123456789abcdef0123456789abcdef",
    );
    assert_eq!(
        check(&hs, &key).err(),
        Some(ProofError::UnsupportedAlgorithm)
    );
    let es256 = craft::proof(&key, "ES256", "POST", URI, TOKEN, NOW);
    let jkt = thumbprint(&craft::proof_jwk(&key));
    let request = ProofRequest {
        method: "POST",
        uri: URI,
        access_token: TOKEN,
        jkt: &jkt,
    };
    let rs_only = ProofRules {
        algorithms: &[Algorithm::RS256],
        ..rules()
    };
    assert_eq!(
        check_proof(&es256, &request, &rs_only, NOW).err(),
        Some(ProofError::UnsupportedAlgorithm)
    );
}

#[test]
fn the_shape_and_type_are_checked() {
    let key = p256();
    let good = craft::proof(&key, "ES256", "POST", URI, TOKEN, NOW);
    let (h, rest) = good.split_once('.').unwrap();
    for bad in [
        String::new(),
        "a.b".to_string(),
        format!("{good}.x"),
        format!("{h}..sig"),
        format!(".{rest}"),
        format!("{}.{rest}", b64("not json")),
        "x".repeat(MAX_PROOF_BYTES + 1),
    ] {
        assert_eq!(
            check(&bad, &key).err(),
            Some(ProofError::Malformed),
            "{bad:.40}"
        );
    }
    let unsigned = format!("{}.", good.rsplit_once('.').unwrap().0);
    assert_eq!(check(&unsigned, &key).err(), Some(ProofError::Malformed));
    for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
        let proof = edited(&key, "ES256", |h, _| h["typ"] = typ.clone());
        assert_eq!(
            check(&proof, &key).err(),
            Some(ProofError::WrongType),
            "{typ}"
        );
    }
    let upper = edited(&key, "ES256", |h, _| h["typ"] = json!("DPoP+JWT"));
    assert!(
        check(&upper, &key).is_ok(),
        "media types compare case-insensitively"
    );
    let crit = edited(&key, "ES256", |h, _| h["crit"] = json!(["exp"]));
    assert_eq!(check(&crit, &key).err(), Some(ProofError::Malformed));
    let array = edited(&key, "ES256", |_, c| *c = json!([1, 2]));
    assert_eq!(check(&array, &key).err(), Some(ProofError::Malformed));
}

#[test]
fn thumbprints_follow_rfc_7638() {
    // RFC 7638 3.1's example key and thumbprint.
    let rfc_key = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        jwk_thumbprint(&rfc_key.to_string()).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    for kind in [Kind::P256, Kind::P384, Kind::Rsa, Kind::Ed25519] {
        let jwk = TestKey::generate(kind, "k").jwk();
        assert_eq!(jwk_thumbprint(&jwk.to_string()), Some(thumbprint(&jwk)));
    }
    assert_eq!(
        jwk_thumbprint(r#"{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}"#),
        None
    );
    assert_eq!(access_token_hash("abc"), ath("abc"));
    // RFC 9449 4.2's example access token and its `ath`.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

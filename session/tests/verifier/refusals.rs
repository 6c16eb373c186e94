//! Refused algorithms, key types that do not fit the stated alg, a missing kid, and tampering.

use super::*;

#[tokio::test]
async fn refused_algorithms() {
    let (idp, v) = setup(&["RS256"]).await;
    let k = keys();
    let payload = claims(&idp.issuer);
    let body = format!(
        "{}.{}",
        b64(json!({"alg": "none", "kid": "rsa-1"}).to_string()),
        b64(payload.to_string())
    );
    assert_eq!(
        v.verify(&format!("{body}.")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    assert_eq!(
        v.verify(&format!("{body}.c2ln")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    let body = format!(
        "{}.{}",
        b64(json!({"alg": "None"}).to_string()),
        b64(payload.to_string())
    );
    assert_eq!(
        v.verify(&format!("{body}.")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );

    // HS256 signed with the RSA public key as the HMAC secret (key confusion).
    for secret in [
        k.rsa.public_key_bytes(),
        serde_json::to_vec(&k.rsa.jwk()).expect("json"),
    ] {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": "rsa-1"}).to_string()),
            b64(payload.to_string())
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            v.verify(&token).await.err(),
            Some(TokenError::UnsupportedAlgorithm)
        );
    }

    // ES256 with a published EC key, but the allowlist is RS256 only.
    let token = k.p256.mint("ES256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // PS256 with the RSA key: same family, still not allowed.
    let token = k.rsa.mint("PS256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    assert_eq!(idp.jwks_hits(), 1, "refusals never refetch");
    assert_eq!(v.cache_len(), 0, "failures are never cached");
}

#[tokio::test]
async fn key_type_and_stated_alg_must_fit() {
    let k = keys();
    let idp = FakeIdp::start(jwks(&[k.rsa.jwk_with_alg("RS256"), k.p256.jwk(), {
        let mut enc = k.rsa2.jwk();
        enc["use"] = json!("enc");
        enc
    }]))
    .await;
    let mut p = provider(&idp.issuer, None, &["RS256", "PS256", "ES256", "ES384"]);
    p.jwks_min_refetch_interval = Duration::from_secs(3600);
    let v = TokenVerifier::new(&p, 10).expect("v");
    v.refresh_keys().await.expect("keys");
    let payload = claims(&idp.issuer);
    // The JWK says RS256; a PS256 token under the same kid is refused.
    let token = k.rsa.mint("PS256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // An ES384 token naming the P-256 key's kid: the curve does not fit.
    let forged = k
        .p384
        .mint_with_header(&json!({"alg": "ES384", "kid": "ec-256"}), &payload);
    assert_eq!(
        v.verify(&forged).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // An RS256 token naming the EC key's kid: the key type does not fit.
    let forged = k
        .rsa
        .mint_with_header(&json!({"alg": "RS256", "kid": "ec-256"}), &payload);
    assert_eq!(
        v.verify(&forged).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // A `use: enc` key is ignored: its kid is unknown.
    let token = k.rsa2.mint("RS256", &payload);
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::UnknownKid));
    assert!(v.verify(&k.rsa.mint("RS256", &payload)).await.is_ok());
}

#[tokio::test]
async fn token_without_kid_uses_the_only_fitting_key() {
    let k = keys();
    let idp = FakeIdp::start(jwks(&[k.rsa.jwk(), k.p256.jwk()])).await;
    let v = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256", "ES256"]), 10).expect("v");
    v.refresh_keys().await.expect("keys");
    let payload = claims(&idp.issuer);
    let token = k.rsa.mint_with_header(&json!({"alg": "RS256"}), &payload);
    assert!(v.verify(&token).await.is_ok());
    let token = k.p256.mint_with_header(&json!({"alg": "ES256"}), &payload);
    assert!(v.verify(&token).await.is_ok());
    // Two RSA keys: a kid-less RS256 token is ambiguous.
    idp.set_jwks(jwks(&[k.rsa.jwk(), k.rsa2.jwk()]));
    v.refresh_keys().await.expect("keys");
    let token = k
        .rsa
        .mint_with_header(&json!({"alg": "RS256", "typ": "JWT"}), &payload);
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::UnknownKid));
}

#[tokio::test]
async fn tampering() {
    let (idp, v) = setup(&["RS256", "ES256", "EdDSA"]).await;
    let k = keys();
    for (key, alg) in [(&k.rsa, "RS256"), (&k.p256, "ES256"), (&k.ed, "EdDSA")] {
        let token = key.mint(alg, &claims(&idp.issuer));
        let parts: Vec<&str> = token.split('.').collect();
        // Payload with a different subject, original signature.
        let evil = with(claims(&idp.issuer), json!({"sub": "admin"}));
        let tampered = format!("{}.{}.{}", parts[0], b64(evil.to_string()), parts[2]);
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // One signature byte flipped (re-encoded so the base64 stays canonical).
        let mut sig = base64_decode(parts[2]);
        sig[10] ^= 0x01;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // Truncated signature.
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..sig.len() - 1]));
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // A valid signature by another key under this key's kid.
        let mut header: Value = serde_json::from_slice(&base64_decode(parts[0])).expect("header");
        header["kid"] = json!(key.kid);
        if alg == "RS256" {
            let forged = k.rogue.mint_with_header(&header, &claims(&idp.issuer));
            assert_eq!(
                v.verify(&forged).await.err(),
                Some(TokenError::BadSignature)
            );
        }
        assert!(v.verify(&token).await.is_ok(), "{alg}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

//! Missing, malformed and forged tokens: 401 with the right challenge, never a 5xx.

use super::*;

#[test]
fn missing_malformed_and_forged_tokens_get_401_with_the_right_challenge() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("forged", |p, _| config(p, &app, &idp.issuer, ""));
    gw.wait_ready();
    let r = gw.get("demo.localhost", "/api/x");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"demo\""));

    let admin = idp.token("svc-admin");
    let (header, payload) = decode(&admin);
    let signature = admin.rsplit('.').next().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Tampered payload: a role added, the IdP's signature kept.
    let mut escalated = payload.clone();
    escalated["realm_access"]["roles"] = serde_json::json!(["admin", "user", "superuser"]);
    escalated["sub"] = serde_json::json!("someone-else");
    let tampered = format!("{}.{signature}", signing_input(&header, &escalated));
    // alg none, with and without a signature part.
    let mut none_header = header.clone();
    none_header["alg"] = serde_json::json!("none");
    let alg_none = forge(&none_header, &payload, b"");
    // HS256 "signed" with the provider's public JWKS as the HMAC secret (key confusion).
    let jwks = get(
        format!("127.0.0.1:{}", idp.port).parse().unwrap(),
        "127.0.0.1",
        "/realms/demo/protocol/openid-connect/certs",
        &[],
    )
    .unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_string);
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(&jwks.body),
    )
    .unwrap();
    // Signed by a key the IdP never published (unknown kid).
    let rogue_dir = TempDir::new("rogue");
    let rogue_keys = make_keys(rogue_dir.path(), "rogue", &["RS256"]);
    let mut rogue_idp = Idp::start(Some(&rogue_keys), &[("IDP_ISSUER", &idp.issuer)]);
    let rogue = rogue_idp.token("svc-admin");
    rogue_idp.stop();
    // Wrong issuer, wrong audience, expired: validly signed by a second provider instance is
    // not possible without its key, so these use the real IdP's claims with a re-signed-by-rogue
    // token whose kid is unknown, plus the checks the session crate's unit tests cover.
    let expired = forge(
        &header,
        &serde_json::json!({"iss": idp.issuer, "aud": "gatehouse", "sub": "x", "exp": now - 3600}),
        b"sig",
    );
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not-a-jwt".to_string()),
        ("two parts", "a.b".to_string()),
        ("five parts", "a.b.c.d.e".to_string()),
        ("bad base64", "%%%.%%%.%%%".to_string()),
        (
            "huge",
            format!(
                "{}.{}.{}",
                "a".repeat(8000),
                "b".repeat(8000),
                "c".repeat(2000)
            ),
        ),
        ("tampered payload", tampered),
        (
            "tampered signature",
            forge(&header, &payload, b"0123456789"),
        ),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("unknown kid", rogue),
        ("expired forged", expired),
    ];
    let before = app.requests().len();
    for (name, token) in &cases {
        let r = gw.get_with(
            "demo.localhost",
            "/api/admin/x",
            &[("Authorization", &bearer(token))],
        );
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
        assert!(
            challenge.starts_with(
                "Bearer realm=\"demo\", error=\"invalid_token\", error_description=\""
            ),
            "{name}: {challenge}"
        );
        assert!(
            !challenge.contains(&token[..token.len().min(30)]) || token.len() < 10,
            "{name}: the challenge does not echo the token"
        );
    }
    for auth in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "Token abc",
        "Negotiate x",
    ] {
        let r = gw.get_with("demo.localhost", "/api/admin/x", &[("Authorization", auth)]);
        assert_eq!(r.status, 401, "{auth}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{auth}"
        );
    }
    assert_eq!(
        app.requests().len(),
        before,
        "no refused request reached the upstream"
    );
    // The genuine token still works.
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/x",
            &[("Authorization", &bearer(&admin))]
        )
        .status,
        200
    );
}

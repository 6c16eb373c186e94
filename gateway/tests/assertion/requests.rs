//! Bearer and browser-session requests carry an assertion the upstream verifies against the served JWKS.

use super::*;

#[test]
fn bearer_requests_carry_an_assertion_the_upstream_verifies_against_the_served_jwks() {
    let Some(s) = stack(
        "bearer_requests_carry_an_assertion",
        &[("p256.pem", Kind::P256)],
    ) else {
        return;
    };
    let token = s.idp.token("svc-admin");
    s.py.expect(&s.gw, "app", "http://demo.localhost");

    let seen = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(seen["verified"], true, "{seen}");
    let claims = &seen["claims"];
    assert_eq!(claims["iss"], "http://demo.localhost");
    assert_eq!(claims["aud"], "app");
    assert!(
        claims["sub"].as_str().is_some_and(|s| !s.is_empty()),
        "{claims}"
    );
    assert!(
        claims["roles"].is_array() && claims["groups"].is_array(),
        "{claims}"
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    let raw = seen["raw"].as_str().unwrap();
    assert_eq!(header_of(raw)["alg"], "ES256");
    assert_eq!(
        header_of(raw)["kid"].as_str(),
        Some(s.jwks_kids()[0].as_str())
    );

    // Warm: the same assertion again (kept with the cached token), not a new signature.
    let again = s.bearer("demo.localhost", "/app/y", &token, &[]);
    assert_eq!(again["raw"], seen["raw"]);

    // Another upstream is another audience; another host or scheme another issuer.
    s.py.expect(&s.gw, "other", "http://demo.localhost");
    let other = s.bearer("demo.localhost", "/other/x", &token, &[]);
    assert_eq!(other["verified"], true, "{other}");
    assert_eq!(other["claims"]["aud"], "other");
    s.py.expect(
        &s.gw,
        "app",
        &format!("http://127.0.0.1:{}", s.gw.listen.port()),
    );
    let by_ip = s.bearer(
        &format!("127.0.0.1:{}", s.gw.listen.port()),
        "/app/x",
        &token,
        &[],
    );
    assert_eq!(by_ip["verified"], true, "{by_ip}");
    // The upstream pins its issuer: an assertion for another host of the tenant fails there.
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    let wrong_iss = s.bearer(
        &format!("127.0.0.1:{}", s.gw.listen.port()),
        "/app/x",
        &token,
        &[],
    );
    assert_eq!(wrong_iss["verified"], false, "{wrong_iss}");

    // The scheme as the gateway sees it: a trusted proxy's X-Forwarded-Proto counts, a
    // client's does not.
    s.py.expect(&s.gw, "app", "https://demo.localhost");
    let via = |source: &str| -> Value {
        let raw = format!(
            "GET /app/x HTTP/1.1\r\nHost: demo.localhost\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
        );
        let r = request_on(socket_from(source, s.gw.listen), &raw);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let proxied = via("127.0.0.2");
    assert_eq!(proxied["verified"], true, "{proxied}");
    assert_eq!(proxied["claims"]["iss"], "https://demo.localhost");
    let claimed = via("127.0.0.1");
    assert_eq!(
        claimed["verified"], false,
        "an untrusted client's https: {claimed}"
    );
    assert_eq!(
        split_claims(claimed["raw"].as_str().unwrap())["iss"],
        "http://demo.localhost"
    );

    // No identity on a white-listed route: no assertion; an optional-identity route carries
    // one when the caller has an identity.
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    for path in ["/public/x", "/maybe/x"] {
        let r = s.gw.get("demo.localhost", path);
        let anonymous: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(anonymous["raw"], Value::Null, "{path}: {anonymous}");
    }
    let public = s.bearer("demo.localhost", "/public/x", &token, &[]);
    assert_eq!(
        public["raw"],
        Value::Null,
        "white-listed authenticates nobody"
    );
    let maybe = s.bearer("demo.localhost", "/maybe/x", &token, &[]);
    assert_eq!(maybe["verified"], true, "{maybe}");

    // The JWKS: public, cacheable, never proxied; 405 for other methods; 404 on a tenant
    // without assertions.
    let jwks =
        s.gw.get("demo.localhost", "/.well-known/gatehouse/jwks.json");
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.header("content-type"), Some("application/json"));
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let keys: Value = serde_json::from_slice(&jwks.body).unwrap();
    assert!(keys["keys"][0].get("d").is_none(), "no private part");
    let post = raw_request(
        s.gw.listen,
        b"POST /.well-known/gatehouse/jwks.json HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let hits = s.plain.requests().len();
    let none =
        s.gw.get("plain.localhost", "/.well-known/gatehouse/jwks.json");
    assert_eq!(none.status, 404);
    assert_eq!(s.plain.requests().len(), hits, "never proxied");
}

#[test]
fn browser_session_requests_carry_a_verified_assertion() {
    let Some(s) = stack(
        "browser_session_requests_carry_an_assertion",
        &[("ed25519.pem", Kind::Ed25519)],
    ) else {
        return;
    };
    let issuer = format!("http://demo.localhost:{}", s.gw.listen.port());
    s.py.expect(&s.gw, "app", &issuer);
    let browser = Browser::new(s.gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let seen: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(header_of(seen["raw"].as_str().unwrap())["alg"], "EdDSA");
    let claims = &seen["claims"];
    assert_eq!(claims["iss"], issuer.as_str());
    assert!(
        claims["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "admin"),
        "alice's realm roles: {claims}"
    );
    assert!(
        claims["email"].as_str().is_some_and(|e| e.contains('@')),
        "{claims}"
    );
    let again: Value = serde_json::from_str(&browser.get("/app/other").body).unwrap();
    assert_eq!(again["raw"], seen["raw"], "kept with the session's claims");
}

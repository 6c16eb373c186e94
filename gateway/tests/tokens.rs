//! A bearer credential is an access token for this gateway, through the real binary and the
//! real OpenID provider: ID tokens (the very one the gateway's login received), logout tokens
//! and other token kinds are refused on routes and on forward-auth; `authorized-parties`;
//! cached tokens leave with their signing key; a useless JWKS keeps the old keys; anchored
//! `match-claims`; https-only providers in `gatehouse check`.

mod support;

use std::path::Path;
use std::time::Duration;

use gatehouse_test_support::keys::now;
use serde_json::json;
use support::idp::{make_keys, sign, Idp};
use support::login::Browser;
use support::*;

fn config(p: &Ports, app: &Upstream, idp_port: u16, extra: &str) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.1/32]
identity-providers:
{provider}
    jwks-refresh-interval: 1s
    jwks-min-refetch-interval: 1s
{extra}
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    token-cookie: access_token
    upstreams:
      - name: app
        targets: ["{app}"]
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
    cookie:
      secure: false
      encryption-key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    routes:
      - uri: /app/*
      - uri: /api/*
      - uri: /api/suffix/*
        match-claims: {{ email: "@example\\.com" }}
      - uri: /api/whole/*
        match-claims: {{ email: "^.*@example\\.com$" }}
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// The gateway and the IdP (signing with the first key of `keys`), each knowing the other.
fn stack(tag: &str, app: &Upstream, keys: &Path, extra: &str) -> (Gateway, Idp) {
    gateway_with_idp(tag, Some(keys), &[], |p, _, idp_port| {
        config(p, app, idp_port, extra)
    })
}

/// Access-token claims as the IdP would issue them to `svc-user`, plus `extra`.
fn access_claims(issuer: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({
        "iss": issuer,
        "aud": "gatehouse",
        "sub": "service-account-svc-user",
        "azp": "svc-user",
        "typ": "Bearer",
        "exp": now() + 300,
        "email": "user@example.com",
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// `GET /oauth/auth` as nginx `auth_request` would ask about `GET uri`.
fn forward_auth(gw: &Gateway, uri: &str, token: &str) -> Response {
    gw.get_with(
        "demo.localhost",
        "/oauth/auth",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", uri),
            ("Authorization", &format!("Bearer {token}")),
        ],
    )
}

fn bearer(gw: &Gateway, path: &str, token: &str) -> Response {
    gw.get_with(
        "demo.localhost",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
    )
}

#[track_caller]
fn assert_not_access_token(r: &Response, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"")
            && challenge.contains("the token is not an access token"),
        "{what}: {challenge}"
    );
}

#[test]
fn id_tokens_and_logout_tokens_are_refused_as_bearer_on_routes_and_forward_auth() {
    let keys_dir = TempDir::new("kinds-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, idp) = stack("kinds", &app, &keys, "");

    // The ID token the gateway itself received at login (and verified, which used to cache
    // it as if it were an access token), as the logout redirect hands it to the browser.
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{}", page.body);
    let out = browser.get("/oauth/logout");
    assert_eq!(out.status, 302);
    let location = out.location.unwrap();
    let id_token = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("id_token_hint="))
        .unwrap_or_else(|| panic!("no id_token_hint in {location}"))
        .to_string();
    assert_eq!(id_token.split('.').count(), 3, "{id_token}");

    let before = app.requests().len();
    assert_not_access_token(&bearer(&gw, "/api/x", &id_token), "ID token from the login");
    assert_not_access_token(
        &bearer(&gw, "/api/x", &id_token),
        "ID token from the login, again",
    );
    assert_not_access_token(
        &forward_auth(&gw, "/api/x", &id_token),
        "ID token at /oauth/auth",
    );
    assert_not_access_token(
        &gw.get_with(
            "demo.localhost",
            "/api/x",
            &[("Cookie", &format!("access_token={id_token}"))],
        ),
        "ID token in the token cookie",
    );

    // Tokens signed with the IdP's own key: each kind that is not an access token is refused.
    let iss = &idp.issuer;
    let refused = [
        (
            "Keycloak ID token (typ ID)",
            sign(&keys, &access_claims(iss, json!({"typ": "ID"})), None),
        ),
        (
            "ID token (nonce)",
            sign(&keys, &access_claims(iss, json!({"nonce": "n-1"})), None),
        ),
        (
            "back-channel logout token",
            sign(
                &keys,
                &access_claims(
                    iss,
                    json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "sid": "s-1"}),
                ),
                Some("logout+jwt"),
            ),
        ),
        (
            "header typ logout+jwt",
            sign(&keys, &access_claims(iss, json!({})), Some("logout+jwt")),
        ),
        (
            "header typ secevent+jwt",
            sign(&keys, &access_claims(iss, json!({})), Some("secevent+jwt")),
        ),
    ];
    for (what, token) in &refused {
        assert_not_access_token(&bearer(&gw, "/api/x", token), what);
        assert_not_access_token(&forward_auth(&gw, "/api/x", token), what);
    }
    assert_eq!(
        app.requests().len(),
        before,
        "no refused request reached the upstream"
    );

    // Access tokens pass: the IdP's own (typ at+jwt) and signed ones with every accepted typ.
    let genuine = idp.token("svc-user");
    assert_eq!(bearer(&gw, "/api/x", &genuine).status, 200);
    assert_eq!(forward_auth(&gw, "/api/x", &genuine).status, 200);
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        let token = sign(&keys, &access_claims(iss, json!({})), typ);
        assert_eq!(bearer(&gw, "/api/x", &token).status, 200, "{typ:?}");
    }

    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("gatehouse_auth_decisions_total{")
                && l.contains("reason=\"not_access_token\"")
                && l.contains("tenant=\"demo\"")),
        "{m}"
    );
}

#[test]
fn authorized_parties_refuse_tokens_of_other_clients() {
    let keys_dir = TempDir::new("azp-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, idp) = stack("azp", &app, &keys, "    authorized-parties: [svc-admin]");
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    assert_eq!(bearer(&gw, "/api/x", &admin).status, 200);
    for (what, token) in [
        ("another client", user),
        (
            "no azp",
            sign(
                &keys,
                &access_claims(&idp.issuer, json!({"azp": null})),
                None,
            ),
        ),
    ] {
        let r = bearer(&gw, "/api/x", &token);
        assert_eq!(r.status, 401, "{what}");
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("invalid_token") && challenge.contains("not accepted"),
            "{what}: {challenge}"
        );
        assert_eq!(forward_auth(&gw, "/api/x", &token).status, 401, "{what}");
    }
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(m.contains("reason=\"unauthorized_party\""), "{m}");
}

/// Restarts the IdP on its port with another key set.
fn restart(idp: &mut Idp, keys: &Path) -> Idp {
    let port = idp.port;
    idp.stop();
    Idp::start_on(port, Some(keys), &[], TempDir::new("idp-again"))
}

#[test]
fn cached_tokens_leave_with_their_key_and_a_useless_jwks_keeps_the_old_keys() {
    let keys_dir = TempDir::new("rotation-keys");
    let k1 = make_keys(keys_dir.path(), "k1", &["RS256"]);
    let k2 = make_keys(keys_dir.path(), "k2", &["RS256"]);
    let es = make_keys(keys_dir.path(), "es", &["ES256"]);
    let both = keys_dir.path().join("both.json");
    let mut merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&k1).unwrap()).unwrap();
    let second: serde_json::Value = serde_json::from_slice(&std::fs::read(&k2).unwrap()).unwrap();
    merged["keys"]
        .as_array_mut()
        .unwrap()
        .extend(second["keys"].as_array().unwrap().iter().cloned());
    std::fs::write(&both, merged.to_string()).unwrap();

    let app = Upstream::start("app");
    let (gw, mut idp) = stack("evict", &app, &both, "");
    let by_k1 = idp.token("svc-user");
    let by_k2 = sign(&k2, &access_claims(&idp.issuer, json!({})), None);
    assert_eq!(bearer(&gw, "/api/x", &by_k1).status, 200);
    assert_eq!(bearer(&gw, "/api/x", &by_k2).status, 200);

    // k1 leaves the JWKS: its token, cached a moment ago, stops working at the next refresh.
    let mut idp = restart(&mut idp, &k2);
    let gone = wait_until(Duration::from_secs(10), || {
        bearer(&gw, "/api/x", &by_k1).status == 401
    });
    assert!(
        gone,
        "a token of a removed key is still served; log:\n{}",
        gw.log()
    );
    assert_eq!(bearer(&gw, "/api/x", &by_k2).status, 200, "k2 stays");

    // A JWKS with no key this provider can use (ES256 is not in its algorithms) is refused:
    // the keys in use stay, so a token of k2 never seen before still verifies.
    let mut idp = restart(&mut idp, &es);
    let fetched = wait_until(Duration::from_secs(10), || idp.jwks_fetches() >= 2);
    assert!(fetched, "the gateway did not refresh its keys");
    let fresh = sign(
        &k2,
        &access_claims(&idp.issuer, json!({"sub": "never-seen-before"})),
        None,
    );
    assert_eq!(
        bearer(&gw, "/api/x", &fresh).status,
        200,
        "log:\n{}",
        gw.log()
    );
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(
        m.contains(r#"gatehouse_jwks_refresh_total{provider="keycloak",result="failure"}"#),
        "{m}"
    );
    idp.stop();
}

#[test]
fn match_claims_patterns_match_the_whole_value() {
    let keys_dir = TempDir::new("anchor-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, idp) = stack("anchor", &app, &keys, "");
    let with_email = |email: &str| {
        sign(
            &keys,
            &access_claims(&idp.issuer, json!({"email": email})),
            None,
        )
    };
    let evil = with_email("x@example.com.evil");
    let good = with_email("alice@example.com");
    assert_eq!(bearer(&gw, "/api/suffix/x", &evil).status, 403);
    assert_eq!(bearer(&gw, "/api/suffix/x", &good).status, 403);
    assert_eq!(bearer(&gw, "/api/whole/x", &evil).status, 403);
    assert_eq!(bearer(&gw, "/api/whole/x", &good).status, 200);

    // `gatehouse check` explains the unanchored pattern and still accepts the config.
    let (code, _, stderr) = run_cli(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains(": warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{stderr}"));
    assert!(
        warning.contains("gatehouse.yaml:")
            && warning.contains("tenants[0].routes[2].match-claims.email")
            && warning.contains(".*x.*"),
        "{warning}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains(": warning: ") && l.contains("match-claims"))
            .count(),
        1,
        "the anchored pattern gets no warning:\n{stderr}"
    );
}

#[test]
fn plain_http_identity_providers_need_allow_insecure_http() {
    let dir = TempDir::new("insecure");
    let config = |provider: &str| {
        format!(
            "identity-providers:\n{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: kc\n    upstreams:\n      - name: app\n        targets: [\"127.0.0.1:18080\"]\n    routes:\n      - uri: /*\n"
        )
    };
    let check = |name: &str, provider: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, config(provider)).unwrap();
        run_cli(&["check", "--config", path.to_str().unwrap()], &[])
    };
    let (code, _, stderr) = check(
        "http.yaml",
        "  - name: kc\n    issuer: http://idp.example/realms/demo\n    client-id: gatehouse\n",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("http.yaml:3: identity-providers[0].issuer:")
            && stderr.contains("allow-insecure-http"),
        "{stderr}"
    );
    let (code, _, stderr) = check(
        "discovery.yaml",
        "  - name: kc\n    issuer: https://idp.example/realms/demo\n    discovery-url: http://idp.internal/realms/demo/.well-known/openid-configuration\n    client-id: gatehouse\n",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("discovery.yaml:4: identity-providers[0].discovery-url:"),
        "{stderr}"
    );
    for (name, provider) in [
        (
            "allowed.yaml",
            "  - name: kc\n    issuer: http://idp.example/realms/demo\n    allow-insecure-http: true\n    client-id: gatehouse\n",
        ),
        (
            "https.yaml",
            "  - name: kc\n    issuer: https://idp.example/realms/demo\n    client-id: gatehouse\n",
        ),
    ] {
        let (code, stdout, stderr) = check(name, provider);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
    }
}

//! Opaque tokens introspected with the client's credentials, revocation-sensitive routes, and
//! white-listed-anon routes (their config is the introspection one).

use super::*;

fn introspection_config(p: &Ports, app: &Upstream, issuer: &str) -> String {
    let provider = keycloak_provider(issuer);
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
identity-providers:
{provider}
    introspection: true
    introspection-cache-ttl: 1s
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    identity-headers:
      X-Auth-Userid: preferred_username
    routes:
      - uri: /anon/*
        white-listed-anon: true
      - uri: /api/admin/*
        roles: [admin]
      - uri: /api/revocable/*
        introspect: true
      - uri: /api/*
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

#[test]
fn opaque_tokens_are_introspected_with_the_clients_credentials() {
    let idp = Idp::start(None, &[("IDP_ACCESS_TOKEN_FORMAT", "opaque")]);
    let app = Upstream::start("app");
    let gw = Gateway::start("introspect", |p, _| {
        introspection_config(p, &app, &idp.issuer)
    });
    gw.wait_ready();
    let admin = idp.token("svc-admin");
    assert_eq!(
        admin.split('.').count(),
        1,
        "the IdP issues opaque tokens here: {admin}"
    );
    let user = idp.token("svc-user");
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/x",
        &[("Authorization", &bearer(&admin))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        app.last().unwrap().header("x-auth-userid"),
        Some("service-account-svc-admin")
    );
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/x",
            &[("Authorization", &bearer(&user))]
        )
        .status,
        403
    );
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/x",
        &[("Authorization", "Bearer not-a-real-opaque-token")],
    );
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate").unwrap().contains("not active"),
        "{:?}",
        r.header("www-authenticate")
    );
}

#[test]
fn revocation_sensitive_routes_ask_the_idp_and_fail_closed_when_it_is_gone() {
    let mut idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("revocable", |p, _| {
        introspection_config(p, &app, &idp.issuer)
    });
    gw.wait_ready();
    let token = idp.token("svc-user");
    let auth = bearer(&token);
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/revocable/x",
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/plain/x",
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    idp.stop();
    std::thread::sleep(Duration::from_millis(1200)); // past introspection-cache-ttl
                                                     // The signature alone still serves ordinary routes; the revocation-sensitive one fails
                                                     // closed with 503 (the token is not at fault), never a 200.
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/plain/x",
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    let r = gw.get_with(
        "demo.localhost",
        "/api/revocable/x",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 503, "{}", r.text());
}

#[test]
fn white_listed_anon_routes_use_an_identity_only_when_one_is_presented() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("anon", |p, _| introspection_config(p, &app, &idp.issuer));
    gw.wait_ready();
    let r = gw.get_with(
        "demo.localhost",
        "/anon/page",
        &[("X-Auth-Userid", "spoofed")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        app.last().unwrap().header("x-auth-userid"),
        None,
        "anonymous, and the spoof is stripped"
    );
    let token = idp.token("svc-user");
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/anon/page",
            &[("Authorization", &bearer(&token))]
        )
        .status,
        200
    );
    assert_eq!(
        app.last().unwrap().header("x-auth-userid"),
        Some("service-account-svc-user")
    );
    let r = gw.get_with(
        "demo.localhost",
        "/anon/page",
        &[("Authorization", "Bearer a.b.c")],
    );
    assert_eq!(
        r.status, 401,
        "an invalid token is refused even where a token is optional"
    );
}

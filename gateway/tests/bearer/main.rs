//! Bearer-token authentication and authorization through the real binary, against the real
//! OpenID provider (`oidc-provider` with Keycloak-shaped claims), and forged tokens of every
//! attack shape.
//!
//! This file: the config, and the Keycloak claims and identity headers; `forged.rs`: missing,
//! malformed and forged tokens; `keys.rs`: key rotation, an IdP down at start, expiry and static
//! JWKS files; `introspection.rs`: opaque tokens, revocation checks and anonymous routes.

#[path = "../support/mod.rs"]
mod support;

mod forged;
mod introspection;
mod keys;

use std::path::Path;
use std::time::Duration;

use gatehouse_test_support::keys::{decode, forge, signing_input};
use support::idp::{make_keys, Idp};
use support::*;

fn config(p: &Ports, app: &Upstream, issuer: &str, extra_provider: &str) -> String {
    let provider = keycloak_provider(issuer);
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
identity-providers:
{provider}
    algorithms: [RS256, ES256]
    jwks-min-refetch-interval: 2s
{extra_provider}
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    token-cookie: access_token
    upstreams:
      - name: app
        targets: ["{app}"]
    identity-headers:
      X-Auth-Subject: sub
      X-Auth-Email: email
      X-Auth-Userid: preferred_username
      X-Auth-Roles: realm_access.roles
      X-Auth-Groups: groups
      X-Auth-Client-Roles: resource_access.gatehouse.roles
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /api/admin/*
        roles: [admin]
      - uri: /api/super/*
        roles: ["gatehouse:super-admin"]
      - uri: /api/upload/*
        roles: [uploader]
      - uri: /api/dev/*
        groups: [developers]
      - uri: /api/reports/*
        match-claims: {{ email_verified: "true", email: "^.*@example\\.com$" }}
      - uri: /api/both/*
        roles: [admin, user]
        require-all: true
      - uri: /api/*
  - name: fwd
    hosts: [fwd.localhost]
    identity-provider: keycloak
    forward-access-token: true
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn real_idp_tokens_authenticate_and_keycloak_roles_groups_and_claims_authorize() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("bearer", |p, _| config(p, &app, &idp.issuer, ""));
    gw.wait_ready();
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let nobody = idp.token("svc-nobody");
    let table: &[(&str, &str, u16)] = &[
        (&admin, "/api/admin/x", 200),
        (&user, "/api/admin/x", 403),
        (&nobody, "/api/admin/x", 403),
        (&admin, "/api/super/x", 200), // client role gatehouse:super-admin
        (&user, "/api/super/x", 403),
        (&admin, "/api/upload/x", 200), // bare role of the provider's own client
        (&user, "/api/upload/x", 403),
        (&admin, "/api/dev/x", 200), // group "/developers" matches "developers"
        (&user, "/api/dev/x", 200),
        (&nobody, "/api/dev/x", 403),
        (&user, "/api/reports/x", 200),
        (&nobody, "/api/reports/x", 403), // email_verified false, other domain
        (&admin, "/api/both/x", 200),
        (&user, "/api/both/x", 403),
        (&nobody, "/api/anything", 200), // authenticated, no role needed
        (&nobody, "/elsewhere", 403),    // default deny with a valid token
    ];
    for &(token, path, status) in table {
        let r = gw.get_with("demo.localhost", path, &[("Authorization", &bearer(token))]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.header("x-request-id").is_some());
    }
    // The scheme is case-insensitive (RFC 7235), and the token cookie works too.
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/x",
        &[("Authorization", &format!("bEaReR {admin}"))],
    );
    assert_eq!(r.status, 200);
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/x",
        &[("Cookie", &format!("theme=dark; access_token={admin}"))],
    );
    assert_eq!(r.status, 200);
    // Metrics count the decisions with bounded labels.
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(m.contains(r#"gatehouse_auth_decisions_total{reason="missing_role",result="forbidden",tenant="demo"}"#), "{m}");
    assert!(
        m.contains(r#"gatehouse_auth_decisions_total{reason="ok",result="allowed",tenant="demo"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"gatehouse_jwks_refresh_total{provider="keycloak",result="success"}"#),
        "{m}"
    );
    assert!(!m.contains(&admin[..20]), "tokens never appear in metrics");
    assert!(
        !gw.log().contains(&admin[..40]),
        "tokens never appear in logs"
    );
}

#[test]
fn identity_headers_come_from_claims_and_client_copies_never_reach_the_upstream() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("idheaders", |p, _| config(p, &app, &idp.issuer, ""));
    gw.wait_ready();
    let admin = idp.token("svc-admin");
    let spoofed = [
        ("Authorization", bearer(&admin)),
        ("X-Auth-Subject", "root".to_string()),
        ("x-auth-roles", "god".to_string()),
        ("X_Auth_Userid", "root".to_string()),
        ("X-AUTH-EXTRA", "1".to_string()),
    ];
    let extra: Vec<(&str, &str)> = spoofed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        gw.get_with("demo.localhost", "/api/admin/h", &extra).status,
        200
    );
    let seen = app.last().unwrap();
    assert_eq!(
        seen.header("x-auth-subject"),
        Some("service-account-svc-admin")
    );
    assert_eq!(
        seen.header("x-auth-userid"),
        Some("service-account-svc-admin")
    );
    assert_eq!(seen.header("x-auth-email"), Some("admin@example.com"));
    assert_eq!(
        seen.header("x-auth-roles"),
        Some("admin,user,offline_access")
    );
    assert_eq!(seen.header("x-auth-groups"), Some("/developers,/admins"));
    assert_eq!(
        seen.header("x-auth-client-roles"),
        Some("super-admin,uploader")
    );
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-auth-subject"))
            .count(),
        1
    );
    assert_eq!(seen.header("x_auth_userid"), None);
    assert_eq!(seen.header("x-auth-extra"), None);
    assert_eq!(
        seen.header("authorization"),
        None,
        "forward-access-token is false by default"
    );
    // On a white-listed route, client identity headers are stripped as well.
    assert_eq!(
        gw.get_with("demo.localhost", "/public/p", &extra).status,
        200
    );
    let seen = app.last().unwrap();
    assert!(
        seen.headers.iter().all(|(k, _)| !k
            .to_ascii_lowercase()
            .replace('_', "-")
            .starts_with("x-auth-")),
        "{seen:?}"
    );
    // forward-access-token: true keeps the Authorization header.
    assert_eq!(
        gw.get_with("fwd.localhost", "/x", &[("Authorization", &bearer(&admin))])
            .status,
        200
    );
    assert_eq!(
        app.last().unwrap().header("authorization"),
        Some(bearer(&admin).as_str())
    );
}

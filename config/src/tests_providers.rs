//! Identity-provider keys of the token hardening: `authorized-parties`, `allow-insecure-http`,
//! `token-cache-size`, the anchored `match-claims` warning, and protected routes on a tenant
//! without a provider. One const snippet per invalid value class, asserting line, key and
//! message.

use crate::tests::{assert_error, errs, ok};

/// A tenant using provider `kc`, for snippets that only vary the provider.
const TENANT: &str = "\
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /*
";

fn with_tenant(providers: &str) -> String {
    format!("{providers}{TENANT}")
}

#[test]
fn new_provider_keys_parse_with_defaults() {
    let c = ok(&with_tenant(
        "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
",
    ));
    let p = &c.identity_providers[0];
    assert_eq!(p.authorized_parties, None);
    assert!(!p.allow_insecure_http);
    assert_eq!(p.token_cache_size, 64 << 20);
    assert_eq!(crate::DEFAULT_TOKEN_CACHE_SIZE, 64 << 20);
    let c = ok(&with_tenant(
        "\
identity-providers:
  - name: kc
    issuer: http://127.0.0.1:18090/realms/demo
    introspection-url: http://127.0.0.1:18090/introspect
    allow-insecure-http: true
    authorized-parties: [web-app, cli]
    token-cache-size: 16MiB
    client-id: gatehouse
",
    ));
    let p = &c.identity_providers[0];
    assert_eq!(
        p.authorized_parties.as_deref(),
        Some(&["web-app".to_string(), "cli".to_string()][..])
    );
    assert!(p.allow_insecure_http);
    assert_eq!(p.token_cache_size, 16 << 20);
    // With a jwks-file and no discovery-url nothing is fetched for bearer tokens: an http
    // issuer is only an identifier there.
    ok(&with_tenant(
        "\
identity-providers:
  - name: kc
    issuer: http://kc.localhost/realms/demo
    jwks-file: /etc/jwks.json
    client-id: gatehouse
    token-cache-size: 0
",
    ));
}

#[test]
fn plain_http_needs_allow_insecure_http() {
    const SRC: &str = "\
identity-providers:
  - name: derived
    issuer: http://kc.localhost/realms/demo
    client-id: gatehouse
  - name: explicit
    issuer: https://kc.localhost/realms/demo
    discovery-url: HTTP://kc.internal/realms/demo/.well-known/openid-configuration
    client-id: gatehouse
  - name: file
    issuer: https://kc.localhost/realms/demo
    jwks-file: /etc/jwks.json
    discovery-url: http://kc.internal/realms/demo/.well-known/openid-configuration
    client-id: gatehouse
  - name: intro
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
    client-secret: s
    introspection: true
    introspection-url: http://kc.internal/introspect
  - name: kc
    issuer: http://kc.localhost/realms/demo
    allow-insecure-http: false
    client-id: gatehouse
";
    let e = errs(&with_tenant(SRC));
    assert_eq!(e.len(), 5, "{e:?}");
    assert_error(
        &e,
        3,
        "identity-providers[0].issuer",
        "discovery over plain http (\"http://kc.localhost/realms/demo/.well-known/openid-configuration\") is refused: use https, or set allow-insecure-http: true",
    );
    assert_error(
        &e,
        7,
        "identity-providers[1].discovery-url",
        "discovery over plain http",
    );
    assert_error(
        &e,
        12,
        "identity-providers[2].discovery-url",
        "discovery over plain http",
    );
    assert_error(
        &e,
        19,
        "identity-providers[3].introspection-url",
        "introspection over plain http",
    );
    assert_error(
        &e,
        21,
        "identity-providers[4].issuer",
        "allow-insecure-http",
    );
}

#[test]
fn bad_values_of_the_new_keys() {
    const SRC: &str = "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
    authorized-parties: []
  - name: kc2
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
    authorized-parties: [web, \"\"]
";
    let e = errs(&with_tenant(SRC));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_error(
        &e,
        5,
        "identity-providers[0].authorized-parties",
        "must list at least one client id",
    );
    assert_error(
        &e,
        9,
        "identity-providers[1].authorized-parties[1]",
        "must not be empty",
    );
    for (line, value, key, text) in [
        (
            "    allow-insecure-http: maybe\n",
            "allow-insecure-http",
            "identity-providers[0].allow-insecure-http",
            "true or false",
        ),
        (
            "    token-cache-size: 64 megabytes\n",
            "token-cache-size",
            "identity-providers[0].token-cache-size",
            "invalid size",
        ),
        (
            "    authorized-parties: web-app\n",
            "authorized-parties",
            "identity-providers[0].authorized-parties",
            "",
        ),
    ] {
        let src = format!(
            "identity-providers:\n  - name: kc\n    issuer: https://kc.localhost/realms/demo\n    client-id: gatehouse\n{line}"
        );
        let e = errs(&with_tenant(&src));
        assert_error(&e, 5, key, text);
        assert!(e.iter().all(|e| e.key.ends_with(value)), "{e:?}");
    }
}

#[test]
fn unanchored_match_claims_patterns_are_explained_not_refused() {
    const SRC: &str = "\
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /a/*
        match-claims: { email: \"@example\\\\.com\", email_verified: \"^true$\" }
      - uri: /b/*
        match-claims:
          hd: \"^example\\\\.com\"
          org: \"corp$\"
          team: \"a|b\"
";
    let c = ok(SRC);
    let w = &c.warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        (w[0].line, w[0].key.as_str()),
        (Some(11), "tenants[0].routes[0].match-claims.email")
    );
    assert!(
        w[0].message.contains("\"@example\\\\.com\"")
            && w[0].message.contains("whole claim value")
            && w[0].message.contains(".*x.*"),
        "{}",
        w[0].message
    );
    assert_eq!(
        (w[1].line, w[1].key.as_str()),
        (Some(16), "tenants[0].routes[1].match-claims.team")
    );
    assert_eq!(
        w[0].to_string(),
        format!(
            "gatehouse.yaml:11: tenants[0].routes[0].match-claims.email: {}",
            w[0].message
        )
    );
    // The anchored regex is what validation compiles: an alternation stays whole.
    assert_eq!(crate::anchored_pattern("a|b"), "^(?:a|b)$");
    assert!(ok(crate::tests::BASE).warnings.is_empty());
}

/// A tenant without `identity-provider` can authenticate nobody: each route that needs
/// authentication is refused where it is written, and so is `enable-default-deny: false`
/// (unmatched paths then need authentication too). Public routes stay valid.
#[test]
fn a_protected_route_needs_the_tenant_to_have_an_identity_provider() {
    const SRC: &str = "\
tenants:
  - name: shop
    hosts: [shop.localhost]
    enable-default-deny: false
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /health
        white-listed: true
      - uri: /catalog/*
        white-listed-anon: true
      - uri: /api/*
        roles: [user]
      - uri: /account/*
";
    let e = errs(SRC);
    assert_eq!(e.len(), 3, "{e:?}");
    let why = "needs authentication but tenant \"shop\" has no identity-provider";
    assert_error(
        &e,
        13,
        "tenants[0].routes[2]",
        &format!("route \"/api/*\" {why}"),
    );
    assert_error(
        &e,
        15,
        "tenants[0].routes[3]",
        &format!("route \"/account/*\" {why}"),
    );
    assert_error(
        &e,
        4,
        "tenants[0].enable-default-deny",
        "false sends unmatched paths to the default upstream with authentication required",
    );
    assert_eq!(
        e[0].to_string().split(": ").take(2).collect::<Vec<_>>(),
        ["gatehouse.yaml:4", "tenants[0].enable-default-deny"],
        "shown as file:line: key"
    );

    // Public routes only, unmatched paths refused: valid without a provider.
    let public = SRC
        .replace("    enable-default-deny: false\n", "")
        .replace("        roles: [user]\n", "        white-listed: true\n")
        .replace("      - uri: /account/*\n", "");
    assert!(ok(&public).tenants[0].identity_provider.is_none());
    // The same routes with a provider: valid.
    let with_provider = format!(
        "identity-providers: [{{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}}]\n{}",
        SRC.replace("    hosts: [shop.localhost]\n", "    hosts: [shop.localhost]\n    identity-provider: kc\n")
    );
    assert_eq!(ok(&with_provider).tenants[0].routes.len(), 4);
}

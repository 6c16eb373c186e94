//! Whole-file tests: the contract, the shipped examples, and a const snippet per invalid-config
//! class (each asserting line, key and message).

use std::path::PathBuf;
use std::time::Duration;

use super::*;

const CONTRACT: &str = include_str!("../tests/contract.yaml");
/// 32 bytes of 0x00, base64.
const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// 32 bytes of 0xff, base64 url-safe without padding.
const KEY_B: &str = "__________________________________________8";

fn test_env(name: &str) -> Option<String> {
    match name {
        "OIDC_CLIENT_SECRET" => Some("s3cret".to_string()),
        "COOKIE_KEY" => Some(KEY_A.to_string()),
        "THREADS" => Some("4".to_string()),
        "PROXY_TLS" => Some("true".to_string()),
        _ => None,
    }
}

pub(crate) fn ok(src: &str) -> Config {
    parse(src, "gatehouse.yaml", &test_env).unwrap_or_else(|e| panic!("expected OK, got:\n{e}"))
}

pub(crate) fn errs(src: &str) -> Vec<ConfigError> {
    match parse(src, "gatehouse.yaml", &test_env) {
        Ok(_) => panic!("expected errors, config was accepted:\n{src}"),
        Err(e) => e.errors,
    }
}

/// Asserts that exactly one error concerns `key`, on `line`, with a message containing `text`.
#[track_caller]
pub(crate) fn assert_error(all: &[ConfigError], line: usize, key: &str, text: &str) {
    let found: Vec<&ConfigError> = all.iter().filter(|e| e.key == key).collect();
    let list = all.iter().map(|e| format!("  {e}\n")).collect::<String>();
    assert_eq!(found.len(), 1, "one error for {key} expected in:\n{list}");
    let e = found[0];
    assert_eq!(e.line, Some(line), "line of {key} in:\n{list}");
    assert!(
        e.message.contains(text),
        "message of {key} should contain {text:?}:\n{list}"
    );
    assert_eq!(e.file, "gatehouse.yaml");
}

/// A valid base the snippets below change in one place.
pub(crate) const BASE: &str = "\
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /health
        white-listed: true
      - uri: /*
";

#[test]
fn contract_parses_with_expected_values() {
    let c = ok(CONTRACT);
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.tls_listen.as_deref(), Some("127.0.0.1:8443"));
    assert_eq!(c.tls_cert, Some(PathBuf::from("/etc/gatehouse/tls.crt")));
    assert_eq!(c.tls_key, Some(PathBuf::from("/etc/gatehouse/tls.key")));
    assert_eq!(c.admin_listen.as_deref(), Some("127.0.0.1:9100"));
    assert_eq!(c.threads, Some(2));
    assert_eq!(c.trusted_proxies, vec!["127.0.0.1/32".parse().unwrap()]);
    assert_eq!(c.forward_auth_headers, ForwardAuthHeaders::XForwarded);
    assert_eq!(c.max_request_header_size, 32 * 1024);
    assert_eq!(c.max_request_headers, 100);
    // Added keys, defaulted.
    assert_eq!(c.grace_period, Duration::from_secs(30));
    assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(c.upgrade_sock, PathBuf::from("/tmp/gatehouse_upgrade.sock"));
    assert_eq!(c.pid_file, PathBuf::from("/tmp/gatehouse.pid"));
    assert_eq!(c.error_log, None);
    assert!(c.watch_config);

    let s = &c.session_store;
    assert_eq!(s.url, "memory://");
    assert_eq!(s.kind, SessionStoreKind::Memory);
    assert_eq!(s.pool_size, 8);
    assert_eq!(s.key_prefix, "gatehouse:");
    assert_eq!(s.timeout, Duration::from_millis(100));
    assert_eq!(s.local_cache_ttl, Duration::from_secs(5));
    assert_eq!(s.on_unavailable, OnUnavailable::FailClosed);

    assert_eq!(c.identity_providers.len(), 1);
    let p = c.identity_provider("keycloak").unwrap();
    assert_eq!(p.issuer, "http://127.0.0.1:18090/realms/demo");
    assert_eq!(
        p.discovery_url,
        "http://127.0.0.1:18090/realms/demo/.well-known/openid-configuration"
    );
    assert_eq!(p.jwks_file, Some(PathBuf::from("./keys/jwks.json")));
    assert_eq!(p.client_id, "gatehouse");
    assert_eq!(p.client_secret.as_ref().map(Secret::expose), Some("s3cret"));
    assert!(
        !format!("{p:?}").contains("s3cret"),
        "Debug must not leak secrets"
    );
    assert_eq!(p.audiences, ["gatehouse", "account"]);
    assert_eq!(p.algorithms, ["RS256", "ES256"]);
    assert_eq!(p.leeway, Duration::from_secs(30));
    assert_eq!(p.scopes, ["openid", "email", "profile"]);
    assert_eq!(
        p.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic
    );
    assert_eq!(p.jwks_refresh_interval, Duration::from_secs(600));
    assert_eq!(p.jwks_min_refetch_interval, Duration::from_secs(30));

    assert_eq!(c.tenants.len(), 1);
    let t = &c.tenants[0];
    assert_eq!(t.name, "demo");
    assert_eq!(t.hosts, ["demo.localhost", "*.demo.localhost"]);
    assert_eq!(t.identity_provider.as_deref(), Some("keycloak"));
    assert!(t.enable_default_deny);
    assert!(!t.enable_https_redirection);
    assert_eq!(t.default_upstream.as_deref(), Some("app"));
    assert_eq!(t.tls_cert, None);

    let u = t.upstream("app").unwrap();
    assert_eq!(u.targets, ["127.0.0.1:18080"]);
    assert_eq!(u.balance, Balance::RoundRobin);
    assert_eq!(
        u.health_check,
        HealthCheck {
            path: Some("/health".to_string()),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
            expected_status: None,
            host: None,
        }
    );
    assert_eq!(u.connect_timeout, Duration::from_secs(2));
    assert_eq!(u.read_timeout, Duration::from_secs(30));
    assert!(!u.tls && u.tls_verify && !u.h2);
    assert_eq!(u.sni, None);

    let uris: Vec<&str> = t.routes.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/health",
            "/api/v1/public/*",
            "/api/v1/admin/*",
            "/api/v1/user/*",
            "/api/v1/reports/*",
            "/api/v1/upload/*",
            "/api/v1/mcp/*",
            "/*"
        ]
    );
    // Keys the contract gained for issues 19-21.
    assert_eq!(c.request_header_timeout, Duration::from_secs(10));
    assert_eq!((c.max_connections, c.max_connections_per_ip), (10000, 256));
    // ... and for issue 22.
    assert!(!c.admin_explain);
    let tracing = c.tracing.as_ref().expect("tracing");
    assert_eq!(tracing.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(tracing.sampling_ratio, 0.01);
    assert_eq!(tracing.service_name, "gatehouse");
    let mcp = t.routes.iter().find(|r| r.uri == "/api/v1/mcp/*").unwrap();
    assert_eq!(
        mcp.resource.as_deref(),
        Some("http://demo.localhost:8080/api/v1/mcp")
    );
    assert_eq!(mcp.acr, ["gold", "platinum"]);
    assert_eq!(mcp.dpop.mode, crate::DpopMode::Required);
    assert_eq!(mcp.dpop.proof_window, Duration::from_secs(60));
    assert!(!mcp.dpop.nonce);
    assert_eq!(mcp.max_auth_age, Some(Duration::from_secs(300)));
    assert_eq!(mcp.rate_limits.len(), 1);
    assert_eq!(
        (
            t.rate_limits[0].count,
            t.rate_limits[0].burst,
            t.rate_limits[0].shared
        ),
        (100, 200, false)
    );
    assert_eq!(
        t.resource_metadata.as_ref().unwrap().scopes_supported,
        ["mcp:tools"]
    );
    let assertion = t.identity_assertion.as_ref().unwrap();
    assert_eq!(assertion.header, "X-Gatehouse-Assertion");
    assert_eq!(assertion.ttl, Duration::from_secs(60));
    let r = &t.routes;
    assert!(r[0].white_listed && !r[0].is_prefix());
    assert_eq!(r[0].name, "/health");
    assert_eq!(r[2].methods, ["GET", "POST", "PUT", "DELETE"]);
    assert_eq!(r[2].roles, ["admin", "gatehouse:super-admin"]);
    assert_eq!(r[2].path(), "/api/v1/admin/");
    assert!(r[2].is_prefix());
    assert_eq!(r[3].groups, ["developers"]);
    assert!(!r[3].require_all);
    assert_eq!(
        r[4].match_claims,
        [
            ("email_verified".to_string(), "true".to_string()),
            ("email".to_string(), "^.*@example\\.com$".to_string())
        ]
    );
    assert_eq!(r[5].max_body_size, 50 * 1024 * 1024);
    assert_eq!(r[5].methods, ["POST"]);
    assert!(r[6].roles.is_empty() && r[6].methods.is_empty() && !r[6].white_listed);
    assert_eq!(r[6].max_body_size, 10 * 1024 * 1024);
    assert!(r.iter().all(|r| r.upstream == "app"));

    let ih: Vec<(&str, &str)> = t
        .identity_headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        ih,
        [
            ("X-Auth-Subject", "sub"),
            ("X-Auth-Email", "email"),
            ("X-Auth-Userid", "preferred_username"),
            ("X-Auth-Roles", "realm_access.roles"),
            ("X-Auth-Groups", "groups"),
        ]
    );
    assert!(t.forward_access_token);

    let cors = t.cors.as_ref().unwrap();
    assert_eq!(cors.origins, ["https://app.demo.localhost"]);
    assert_eq!(cors.methods, ["GET", "POST", "PUT", "DELETE", "OPTIONS"]);
    assert_eq!(
        cors.headers,
        ["Authorization", "Content-Type", "X-Requested-With"]
    );
    assert_eq!(cors.exposed_headers, ["X-Request-ID"]);
    assert!(cors.credentials);
    assert_eq!(cors.max_age, Some(Duration::from_secs(600)));

    assert_eq!(t.security_headers, expected_security_headers());
    assert_eq!(default_security_headers(), expected_security_headers());
    assert_eq!(t.request_id_header, "X-Request-ID");

    let login = t.login.as_ref().unwrap();
    assert_eq!(
        login.redirect_url,
        "http://demo.localhost:8080/oauth/callback"
    );
    assert_eq!(
        login.post_logout_redirect_url.as_deref(),
        Some("http://demo.localhost:8080/")
    );
    assert_eq!(
        login.allowed_redirect_hosts,
        ["demo.localhost", "*.demo.localhost"]
    );
    assert_eq!(login.refresh_before_expiry, Duration::from_secs(60));

    let cookie = &t.cookie;
    assert_eq!(cookie.name, "gatehouse_session");
    assert_eq!(cookie.domain.as_deref(), Some("demo.localhost"));
    assert!(!cookie.secure);
    assert_eq!(cookie.same_site, SameSite::Lax);
    assert_eq!(cookie.encryption_keys, [CookieKey::new([0; 32])]);
    assert_eq!(cookie.session_ttl, Duration::from_secs(8 * 3600));
}

fn expected_security_headers() -> Vec<(String, String)> {
    [
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        (
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ),
        ("Content-Security-Policy", "default-src 'self'"),
        ("Referrer-Policy", "no-referrer"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[test]
fn every_example_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("config/examples exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = parse(&text, &name, &test_env) {
            panic!("{name} does not validate:\n{e}");
        }
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    assert!(names.contains(&"minimal.yaml".to_string()));
    assert!(names.contains(&"full.yaml".to_string()));
}

#[test]
fn defaults_of_a_minimal_config() {
    let c = ok(BASE);
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.tls_listen, None);
    assert_eq!(c.threads, None);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.session_store, SessionStoreConfig::default());
    assert_eq!(c.session_store.pool_size, 1, "one pipelining Redis client");
    let t = &c.tenants[0];
    assert_eq!(t.default_upstream.as_deref(), Some("app"));
    assert!(t.enable_default_deny);
    assert!(!t.forward_access_token);
    assert_eq!(t.cors, None);
    assert_eq!(t.login, None);
    assert_eq!(t.cookie, Cookie::default());
    assert!(t.cookie.secure);
    assert_eq!(t.security_headers, expected_security_headers());
    assert_eq!(default_security_headers(), expected_security_headers());
    assert_eq!(t.routes[1].upstream, "app");
    assert_eq!(t.upstreams[0].health_check, HealthCheck::default());
    assert_eq!(t.upstreams[0].balance, Balance::RoundRobin);
}

#[test]
fn security_headers_override_remove_and_add() {
    let src = format!(
        "{BASE}    security-headers:\n      x-frame-options: SAMEORIGIN\n      Content-Security-Policy: \"\"\n      Permissions-Policy: geolocation=()\n      Referrer-Policy:\n"
    );
    let t = &ok(&src).tenants[0];
    let got: Vec<(&str, &str)> = t
        .security_headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("x-frame-options", "SAMEORIGIN"),
            ("X-Content-Type-Options", "nosniff"),
            (
                "Strict-Transport-Security",
                "max-age=31536000; includeSubDomains"
            ),
            ("Permissions-Policy", "geolocation=()"),
        ]
    );
}

#[test]
fn values_from_env_convert_to_numbers_and_booleans() {
    let src = format!(
        "threads: ${{THREADS}}\n{}        tls: ${{PROXY_TLS}}\n        sni: ${{MISSING:-app.internal}}\n",
        BASE.replace("    routes:\n      - uri: /health\n        white-listed: true\n      - uri: /*\n", "")
    );
    let c = ok(&src);
    assert_eq!(c.threads, Some(4));
    assert!(c.tenants[0].upstreams[0].tls);
    assert_eq!(
        c.tenants[0].upstreams[0].sni.as_deref(),
        Some("app.internal")
    );
}

#[test]
fn added_keys_parse() {
    const SRC: &str = "\
grace-period: 1m
graceful-shutdown-timeout: 5s
keepalive-timeout: 75
upgrade-sock: /run/gh.sock
pid-file: /run/gh.pid
error-log: /var/log/gh.err
watch-config: false
tls-listen: 0.0.0.0:8443
tls-cert: /c.pem
tls-key: /k.pem
trusted-proxies: [10.0.0.0/8, 192.168.1.7, \"::1\"]
session-store:
  url: redis-cluster://r1:6379,r2:6379
  on-unavailable: serve-cached
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: t
    hosts: [T.Example.com]
    identity-provider: kc
    enable-https-redirection: true
    tls-cert: /t.pem
    tls-key: /t.key
    default-upstream: b
    upstreams:
      - name: a
        targets: [\"a:1\"]
      - name: b
        targets: [\"b:2\", \"[::1]:3\"]
        balance: consistent-hash
        h2: true
        tls: true
        sni: b.internal
        tls-verify: false
        health-check:
          path: /ready
          interval: 2s
          timeout: 250ms
          healthy-threshold: 2
          unhealthy-threshold: 3
          expected-status: 204
          host: b.internal
    routes:
      - uri: /a/*
        name: a-api
        upstream: a
        methods: [get, Post]
      - uri: /
";
    let c = ok(SRC);
    assert_eq!(c.grace_period, Duration::from_secs(60));
    assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.upgrade_sock, PathBuf::from("/run/gh.sock"));
    assert_eq!(c.pid_file, PathBuf::from("/run/gh.pid"));
    assert_eq!(c.error_log, Some(PathBuf::from("/var/log/gh.err")));
    assert!(!c.watch_config);
    let nets: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
    assert_eq!(c.session_store.kind, SessionStoreKind::RedisCluster);
    assert_eq!(c.session_store.on_unavailable, OnUnavailable::ServeCached);
    let t = &c.tenants[0];
    assert_eq!(t.hosts, ["t.example.com"]);
    assert!(t.enable_https_redirection);
    assert_eq!(t.tls_cert, Some(PathBuf::from("/t.pem")));
    assert_eq!(t.default_upstream.as_deref(), Some("b"));
    let b = &t.upstreams[1];
    assert_eq!(b.balance, Balance::ConsistentHash);
    assert!(b.h2 && b.tls && !b.tls_verify);
    assert_eq!(b.sni.as_deref(), Some("b.internal"));
    assert_eq!(
        b.health_check,
        HealthCheck {
            path: Some("/ready".into()),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(250),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expected_status: Some(204),
            host: Some("b.internal".into()),
        }
    );
    assert_eq!(t.routes[0].name, "a-api");
    assert_eq!(t.routes[0].upstream, "a");
    assert_eq!(t.routes[0].methods, ["GET", "POST"]);
    assert_eq!(
        t.routes[1].upstream, "b",
        "omitted upstream = default-upstream"
    );
}

#[test]
fn encryption_key_list_rotates() {
    let src = format!(
        "{BASE}    cookie:\n      encryption-key: [\"{KEY_B}\", \"${{COOKIE_KEY}}\"]\n      same-site: strict\n"
    );
    let cookie = &ok(&src).tenants[0].cookie;
    assert_eq!(
        cookie.encryption_keys,
        [CookieKey::new([0xff; 32]), CookieKey::new([0; 32])]
    );
    assert_eq!(cookie.same_site, SameSite::Strict);
    assert!(
        !format!("{cookie:?}").contains("255"),
        "Debug must not leak keys"
    );
}

// ---- one const snippet per invalid-config class ----

#[test]
fn unknown_key() {
    const SRC: &str = "\
listen: 127.0.0.1:8080
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:1\"]
        retries: 3
";
    let e = errs(SRC);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_error(
        &e,
        8,
        "tenants[0].upstreams[0].retries",
        "unknown key \"retries\"; allowed keys: name, targets, balance, health-check",
    );
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml:8: tenants[0].upstreams[0].retries: unknown key \"retries\"; allowed keys: \
         name, targets, balance, health-check, connect-timeout, read-timeout, tls, sni, tls-verify, h2"
    );
}

#[test]
fn missing_required_key() {
    const SRC: &str = "\
tenants:
  - name: demo
    upstreams:
      - targets: [\"127.0.0.1:1\"]
    routes:
      - methods: [GET]
";
    let e = errs(SRC);
    assert_error(&e, 2, "tenants[0].hosts", "missing required key \"hosts\"");
    assert_error(
        &e,
        4,
        "tenants[0].upstreams[0].name",
        "missing required key \"name\"",
    );
    assert_error(
        &e,
        6,
        "tenants[0].routes[0].uri",
        "missing required key \"uri\"",
    );
}

#[test]
fn bad_duration() {
    const SRC: &str = "\
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:1\"]
        connect-timeout: 2 secs
";
    let e = errs(SRC);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml:7: tenants[0].upstreams[0].connect-timeout: invalid duration \"2 secs\" \
         (expected e.g. 250ms, 30s, 15m, 1h30m)"
    );
}

#[test]
fn bad_size() {
    let src = format!("{BASE}        max-body-size: 10XB\n");
    let e = errs(&src);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml:13: tenants[0].routes[1].max-body-size: invalid size \"10XB\" \
         (expected e.g. 512, 16KiB, 10MiB)"
    );
}

#[test]
fn unset_env_var() {
    const SRC: &str = "\
identity-providers:
  - name: kc
    issuer: https://id.example.com/realms/x
    client-id: gh
    client-secret: ${KC_SECRET}
tenants:
  - name: demo
    hosts: [\"${DEMO_HOST}\"]
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
";
    let e = errs(SRC);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_error(
        &e,
        5,
        "identity-providers[0].client-secret",
        "environment variable KC_SECRET is not set",
    );
    assert_error(
        &e,
        8,
        "tenants[0].hosts[0]",
        "environment variable DEMO_HOST is not set",
    );
}

#[test]
fn route_references_unknown_upstream() {
    let src = format!("{BASE}        upstream: api\n");
    let e = errs(&src);
    assert_eq!(e.len(), 1);
    assert_error(
        &e,
        13,
        "tenants[0].routes[1].upstream",
        "route \"/*\": unknown upstream \"api\" (this tenant has: [app])",
    );
}

#[test]
fn duplicate_host_across_tenants() {
    const SRC: &str = "\
tenants:
  - name: first
    hosts: [shop.example.com]
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
  - name: second
    hosts: [\"*.example.com\", Shop.Example.COM]
    upstreams: [{ name: app, targets: [\"127.0.0.1:2\"] }]
";
    let e = errs(SRC);
    assert_eq!(e.len(), 1);
    assert_error(
        &e,
        6,
        "tenants[1].hosts[1]",
        "host \"shop.example.com\" of tenant \"second\" is already claimed by tenant \"first\"",
    );
}

#[test]
fn bad_uri_pattern() {
    const SRC: &str = "\
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
    routes:
      - {uri: /api/*/users, white-listed: true}
      - {uri: api/v1, white-listed: true}
      - {uri: /a//b, white-listed: true}
      - {uri: /files/%2e%2e/*, white-listed: true}
";
    let e = errs(SRC);
    assert_eq!(e.len(), 4, "{e:?}");
    assert_error(
        &e,
        6,
        "tenants[0].routes[0].uri",
        "invalid uri \"/api/*/users\": \"*\" is only allowed as a final \"/*\"",
    );
    assert_error(&e, 7, "tenants[0].routes[1].uri", "must start with \"/\"");
    assert_error(&e, 8, "tenants[0].routes[2].uri", "contains \"//\"");
    assert_error(&e, 9, "tenants[0].routes[3].uri", "contains '%'");
}

#[test]
fn cors_wildcard_with_credentials() {
    let src = format!("{BASE}    cors:\n      origins: [\"*\"]\n      credentials: true\n");
    let e = errs(&src);
    assert_eq!(e.len(), 1);
    assert_error(
        &e,
        15,
        "tenants[0].cors.credentials",
        "credentials: true cannot be combined with origin \"*\"",
    );
}

#[test]
fn tls_listen_without_cert() {
    let src = format!("tls-listen: 0.0.0.0:8443\ntls-key: /k.pem\n{BASE}");
    let e = errs(&src);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml:1: tls-listen: requires tls-cert (PEM certificate chain)"
    );
}

#[test]
fn errors_in_different_tenants_are_all_reported() {
    const SRC: &str = "\
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: one
    hosts: [one.example.com]
    identity-provider: kc
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
    routes:
      - uri: /x
        max-body-size: lots
  - name: two
    hosts: [two.example.com]
    identity-provider: kc
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
    routes:
      - uri: /y
        white-listd: true
        upstream: nowhere
";
    let e = errs(SRC);
    assert_eq!(e.len(), 3, "{e:?}");
    assert_error(
        &e,
        9,
        "tenants[0].routes[0].max-body-size",
        "invalid size \"lots\"",
    );
    assert_error(
        &e,
        16,
        "tenants[1].routes[0].white-listd",
        "unknown key \"white-listd\"",
    );
    assert_error(
        &e,
        17,
        "tenants[1].routes[0].upstream",
        "unknown upstream \"nowhere\"",
    );
    // Ordered by line, one per line of Display.
    let shown = ConfigErrors { errors: e }.to_string();
    assert_eq!(shown.lines().count(), 3);
    assert!(shown.starts_with("gatehouse.yaml:9: "));
}

// ---- further semantic checks ----

#[test]
fn semantic_errors_are_collected() {
    const SRC: &str = "\
listen: localhost:80
admin-listen: 127.0.0.1:9100
threads: 0
trusted-proxies: [10.0.0.0/33]
session-store:
  url: postgres://db
  on-unavailable: retry
identity-providers:
  - name: kc
    issuer: not-a-url
    client-id: gh
    algorithms: [HS256]
tenants:
  - name: demo
    hosts: [demo.localhost, \"demo.localhost\"]
    identity-provider: okta
    default-upstream: api
    request-id-header: \"X Request\"
    upstreams:
      - name: app
        targets: [\"app\"]
        balance: random
      - name: app
        targets: [\"127.0.0.1:1\"]
    routes:
      - uri: /a
        methods: [\"GE T\"]
      - uri: /b/*
        methods: [GET]
      - uri: /b/*
        methods: [get, post]
      - uri: /c
        match-claims: { email: \"(unclosed\" }
      - uri: /d
        white-listed: true
        roles: [admin]
    identity-headers:
      \"Bad Header\": sub
    cookie:
      same-site: none
      secure: false
      encryption-key: not-base64
    login:
      redirect-url: /oauth/callback
  - name: empty
    hosts: [\"*.*.bad\"]
";
    let e = errs(SRC);
    let expect: &[(usize, &str, &str)] = &[
        (1, "listen", "invalid socket address \"localhost:80\""),
        (3, "threads", "must be at least 1"),
        (4, "trusted-proxies[0]", "invalid CIDR or IP address"),
        (6, "session-store.url", "unsupported scheme \"postgres\""),
        (
            7,
            "session-store.on-unavailable",
            "expected fail-closed or serve-cached",
        ),
        (
            10,
            "identity-providers[0].issuer",
            "invalid URL \"not-a-url\"",
        ),
        (
            12,
            "identity-providers[0].algorithms[0]",
            "unsupported algorithm \"HS256\"",
        ),
        (15, "tenants[0].hosts[1]", "listed twice in tenant \"demo\""),
        (
            16,
            "tenants[0].identity-provider",
            "unknown identity provider \"okta\"",
        ),
        (
            17,
            "tenants[0].default-upstream",
            "unknown upstream \"api\"",
        ),
        (18, "tenants[0].request-id-header", "invalid header name"),
        (21, "tenants[0].upstreams[0].targets[0]", "missing port"),
        (
            22,
            "tenants[0].upstreams[0].balance",
            "expected round-robin or consistent-hash",
        ),
        (
            23,
            "tenants[0].upstreams[1].name",
            "duplicate upstream name \"app\"",
        ),
        (27, "tenants[0].routes[0].methods[0]", "invalid HTTP method"),
        (30, "tenants[0].routes[2].uri", "duplicate route \"/b/*\""),
        (
            33,
            "tenants[0].routes[3].match-claims.email",
            "invalid regex \"(unclosed\"",
        ),
        (35, "tenants[0].routes[4].white-listed", "also lists roles"),
        (
            38,
            "tenants[0].identity-headers.Bad Header",
            "invalid header name",
        ),
        (40, "tenants[0].cookie.same-site", "requires secure: true"),
        (
            42,
            "tenants[0].cookie.encryption-key",
            "expected 32 bytes, base64",
        ),
        (44, "tenants[0].login.redirect-url", "invalid URL"),
        (46, "tenants[1].hosts[0]", "invalid host \"*.*.bad\""),
        (45, "tenants[1].upstreams", "has no upstreams"),
    ];
    for (line, key, text) in expect {
        assert_error(&e, *line, key, text);
    }
    assert_eq!(
        e.len(),
        expect.len(),
        "{}",
        ConfigErrors { errors: e.clone() }
    );
}

#[test]
fn several_errors_in_one_item_are_all_reported() {
    const SRC: &str = "\
tenants:
  - name: demo
    hosts: [demo.localhost, 42, {a: b}]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:1\"]
        colour: blue
        read-timeout: soon
        tls: maybe
      - 7
";
    let e = errs(SRC);
    assert_error(&e, 3, "tenants[0].hosts[1]", "expected a string");
    assert_error(&e, 3, "tenants[0].hosts[2]", "expected a string");
    assert_error(&e, 7, "tenants[0].upstreams[0].colour", "unknown key");
    assert_error(
        &e,
        8,
        "tenants[0].upstreams[0].read-timeout",
        "invalid duration \"soon\"",
    );
    assert_error(
        &e,
        9,
        "tenants[0].upstreams[0].tls",
        "invalid boolean \"maybe\"",
    );
    assert_error(
        &e,
        10,
        "tenants[0].upstreams[1]",
        "expected a mapping of keys",
    );
    assert_eq!(e.len(), 6, "{e:?}");
}

#[test]
fn no_tenant_without_upstream_and_tenant_cert_pairs() {
    const SRC: &str = "\
tenants:
  - name: demo
    hosts: [demo.localhost]
    tls-cert: /t.pem
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
";
    let e = errs(SRC);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_error(&e, 4, "tenants[0].tls-cert", "requires tls-key");
}

#[test]
fn duplicate_tenant_names_and_listen_addresses() {
    const SRC: &str = "\
listen: 127.0.0.1:8080
admin-listen: 127.0.0.1:8080
tenants:
  - name: demo
    hosts: [a.localhost]
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
  - name: demo
    hosts: [b.localhost]
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
";
    let e = errs(SRC);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_error(&e, 2, "admin-listen", "already used by listen");
    assert_error(&e, 7, "tenants[1].name", "duplicate tenant name \"demo\"");
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let e = errs("tenants:\n  - name: [unclosed\n    hosts: x\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].line.is_some());
    assert!(e[0].message.starts_with("invalid YAML"), "{}", e[0]);
    let e = errs("- just\n- a list\n");
    assert_eq!(e[0].message, "expected a mapping of keys at the top level");
    let e = errs("");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml: tenants: at least one tenant is required"
    );
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("gatehouse-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, BASE).unwrap();
    let c = load(&good).unwrap();
    assert_eq!(c.tenants[0].name, "demo");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "listen: nope\n").unwrap();
    let e = load(&bad).unwrap_err();
    assert!(e.errors[0]
        .to_string()
        .starts_with(&format!("{}:1: listen:", bad.display())));

    let missing = dir.join("missing.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0].line, None);
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read config file", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn login_needs_a_provider_and_a_cookie_key() {
    // BASE without its provider, its catch-all route public.
    let no_provider = BASE.replace("    identity-provider: kc\n", "").replace(
        "      - uri: /*\n",
        "      - uri: /*\n        white-listed: true\n",
    );
    let src = format!(
        "{no_provider}    login:\n      redirect-url: http://demo.localhost:8080/oauth/callback\n"
    );
    let e = errs(&src);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_error(
        &e,
        13,
        "tenants[0].login",
        "login requires the tenant's identity-provider",
    );
    assert_error(
        &e,
        3,
        "tenants[0].cookie.encryption-key",
        "required when the tenant has login",
    );
}

#[test]
fn duplicate_yaml_key_and_merge_keys() {
    let e = errs("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "gatehouse.yaml:2: listen: duplicate key (first given at line 1)"
    );

    // YAML anchors and merge keys work; errors inside merged content still name the key.
    const SRC: &str = "\
tenants:
  - name: a
    hosts: [a.localhost]
    upstreams:
      - &up { name: app, targets: [\"127.0.0.1:1\"], connect-timeout: 1s }
  - name: b
    hosts: [b.localhost]
    upstreams:
      - <<: *up
        read-timeout: 5s
";
    let c = ok(SRC);
    assert_eq!(c.tenants[1].upstreams[0].name, "app");
    assert_eq!(
        c.tenants[1].upstreams[0].connect_timeout,
        Duration::from_secs(1)
    );
}

#[test]
fn introspection_keys_parse_with_defaults() {
    const SRC: &str = "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
  - name: kc-opaque
    issuer: https://kc.localhost/realms/other
    client-id: gatehouse
    client-secret: ${OIDC_CLIENT_SECRET}
    introspection: true
    introspection-url: https://kc.localhost/realms/other/protocol/openid-connect/token/introspect
    introspection-cache-ttl: 5s
  - name: kc-file
    issuer: https://kc.localhost/realms/file
    client-id: gatehouse
    client-secret: s
    jwks-file: /etc/jwks.json
    introspection: \"true\"
    introspection-url: https://kc.localhost/introspect
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc-opaque
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /admin/*
        introspect: true
      - uri: /*
";
    let c = ok(SRC);
    let kc = &c.identity_providers[0];
    assert!(!kc.introspection);
    assert_eq!(kc.introspection_url, None);
    assert_eq!(kc.introspection_cache_ttl, Duration::from_secs(30));
    let opaque = &c.identity_providers[1];
    assert!(opaque.introspection);
    assert_eq!(
        opaque.introspection_url.as_deref(),
        Some("https://kc.localhost/realms/other/protocol/openid-connect/token/introspect")
    );
    assert_eq!(opaque.introspection_cache_ttl, Duration::from_secs(5));
    assert!(c.identity_providers[2].introspection);
    let routes = &c.tenants[0].routes;
    assert!(routes[0].introspect);
    assert!(!routes[1].introspect, "default false");
    assert!(!ok(BASE).tenants[0].routes[1].introspect);
}

#[test]
fn introspection_needs_a_client_secret() {
    const SRC: &str = "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
    introspection: true
  - name: kc-file
    issuer: https://kc.localhost/realms/file
    client-id: gatehouse
    client-secret: s
    jwks-file: /etc/jwks.json
    introspection: true
    introspection-url: kc.localhost/introspect
  - name: kc-file-no-url
    issuer: https://kc.localhost/realms/file
    client-id: gatehouse
    client-secret: s
    jwks-file: /etc/jwks.json
    introspection: true
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
";
    let e = errs(SRC);
    assert_eq!(e.len(), 3, "{e:?}");
    assert_error(
        &e,
        5,
        "identity-providers[0].introspection",
        "introspection requires a client-secret",
    );
    assert_error(&e, 12, "identity-providers[1].introspection-url", "http");
    // The key is missing: the error points at the provider's entry.
    assert_error(
        &e,
        13,
        "identity-providers[2].introspection-url",
        "required when introspection is on with jwks-file",
    );
}

#[test]
fn introspect_route_needs_an_introspecting_provider() {
    const SRC: &str = "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /health
        white-listed: true
      - uri: /admin/*
        name: admin
        introspect: true
      - uri: /*
  - name: bare
    hosts: [bare.localhost]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /open
        white-listed: true
        introspect: true
      - uri: /*
        introspect: true
";
    let e = errs(SRC);
    assert_eq!(e.len(), 3, "{e:?}");
    assert_error(
        &e,
        17,
        "tenants[0].routes[1].introspect",
        "route \"admin\" has introspect: true but identity provider \"kc\" does not have introspection: true",
    );
    assert_error(
        &e,
        27,
        "tenants[1].routes[0].introspect",
        "white-listed (no authentication) but also has introspect",
    );
    assert_error(
        &e,
        29,
        "tenants[1].routes[1].introspect",
        "route \"/*\" has introspect: true but tenant \"bare\" has no identity-provider",
    );
}

#[test]
fn session_store_debug_never_shows_the_redis_password() {
    let c = ok("
session-store:
  url: redis-cluster://gate:s3cr%40t-pw@r1:6379,r2:6379
tenants:
  - name: t
    hosts: [t.example.com]
    upstreams: [{name: a, targets: [\"a:1\"]}]
");
    let shown = format!("{:?} {:?}", c.session_store, c);
    assert!(!shown.contains("s3cr"), "{shown}");
    assert!(
        shown.contains("redis-cluster://gate:<redacted>@r1:6379,r2:6379"),
        "{shown}"
    );
    for (url, expected) in [
        ("redis://:pw@h:1/2", "redis://:<redacted>@h:1/2"),
        ("rediss://pw@h", "rediss://<redacted>@h"),
        ("redis://h:1", "redis://h:1"),
        ("memory://", "memory://"),
    ] {
        let store = SessionStoreConfig {
            url: url.to_string(),
            ..Default::default()
        };
        assert_eq!(store.redacted_url(), expected);
    }
}

// ---- warnings: valid configs that `gatehouse check` questions ----

/// 32 bytes of 0x01, base64.
const KEY_C: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// Two login tenants on one provider; `{domain}` and `{key2}` vary.
fn two_tenants(domain: &str, key2: &str) -> String {
    format!(
        "\
identity-providers:
  - name: idp
    issuer: https://idp.example.com/realms/a
    client-id: gatehouse
tenants:
  - name: a
    hosts: [a.example.com]
    identity-provider: idp
    upstreams: [{{name: app, targets: [\"127.0.0.1:1\"]}}]
    login:
      redirect-url: https://a.example.com/oauth/callback
    cookie:
      {domain}
      encryption-key: \"{KEY_A}\"
  - name: b
    hosts: [b.example.com, \"*.b.example.com\"]
    identity-provider: idp
    upstreams: [{{name: app, targets: [\"127.0.0.1:2\"]}}]
    login:
      redirect-url: https://b.example.com/oauth/callback
    cookie:
      encryption-key: [\"{KEY_B}\", \"{key2}\"]
"
    )
}

#[test]
fn isolated_tenants_give_no_warning() {
    let c = ok(&two_tenants("domain: a.example.com", KEY_C));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_cookie_domain_covering_another_tenants_host_is_a_warning() {
    let c = ok(&two_tenants("domain: example.com", KEY_C));
    let list: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(list.len(), 1, "{list:?}");
    let w = &c.warnings[0];
    assert_eq!(
        (w.file.as_str(), w.line, w.key.as_str()),
        ("gatehouse.yaml", Some(13), "tenants[0].cookie.domain")
    );
    assert!(
        w.message.contains("\"example.com\"") && w.message.contains("tenant \"b\""),
        "{list:?}"
    );
}

#[test]
fn two_tenants_sharing_an_encryption_key_is_a_warning() {
    // The shared key is tenant b's second (older) key: rotation lists count too.
    let c = ok(&two_tenants("secure: true", KEY_A));
    let list: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(list.len(), 1, "{list:?}");
    let w = &c.warnings[0];
    assert_eq!(
        (w.line, w.key.as_str()),
        (Some(22), "tenants[1].cookie.encryption-key")
    );
    assert!(
        w.message.contains("tenant \"b\"") && w.message.contains("tenant \"a\""),
        "{list:?}"
    );
    assert!(!w.message.contains(KEY_A), "never the key itself");
}

#[test]
fn forward_auth_headers_and_pass_rewrite_headers() {
    const BASE: &str = "tenants:\n  - name: t\n    hosts: [t.localhost]\n    upstreams: [{name: app, targets: [\"127.0.0.1:1\"]}]\n    routes: [{uri: /*, white-listed: true}]\n";
    let c = ok(BASE);
    assert_eq!(c.forward_auth_headers, ForwardAuthHeaders::XForwarded);
    assert!(!c.tenants[0].pass_rewrite_headers);
    let c = ok(&format!("forward-auth-headers: x-original\n{BASE}"));
    assert_eq!(c.forward_auth_headers, ForwardAuthHeaders::XOriginal);
    let c = ok(&BASE.replace("    routes:", "    pass-rewrite-headers: true\n    routes:"));
    assert!(c.tenants[0].pass_rewrite_headers);
    let e = errs(&format!("forward-auth-headers: x-real\n{BASE}"));
    assert_error(
        &e,
        1,
        "forward-auth-headers",
        "invalid value \"x-real\" (expected x-forwarded or x-original)",
    );
}

//! Token refresh of browser sessions through the real binary against the real IdP, whose
//! token endpoint fails the refresh grant on demand (`/__test/refresh-fault`): a blip never
//! loses a session, `invalid_grant` ends it, and a refresh never revives a session that was
//! logged out while it ran.

mod support;

use std::time::Duration;

use gatehouse_test_support::redis;
use support::idp::Idp;
use support::login::Browser;
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// How long a session whose refresh failed for a passing reason waits before the next try
/// (the gateway's retry delay, plus a margin).
const RETRY_AFTER: Duration = Duration::from_millis(2_500);

fn config(p: &Ports, app: &Upstream, idp_port: u16, refresh_before: &str) -> String {
    config_on(p, app, idp_port, refresh_before, "  url: memory://")
}

fn config_on(
    p: &Ports,
    app: &Upstream,
    idp_port: u16,
    refresh_before: &str,
    session_store: &str,
) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
{session_store}
identity-providers:
{provider}
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    identity-headers:
      X-Auth-Userid: preferred_username
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
      allowed-redirect-hosts: [demo.localhost]
      refresh-before-expiry: {refresh_before}
    cookie:
      secure: false
      encryption-key: "{COOKIE_KEY}"
      session-ttl: 1h
    routes:
      - uri: /
        white-listed: true
      - uri: /app/*
        roles: [user]
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// A gateway, the IdP (access tokens living `token_ttl` seconds) and alice logged in.
struct Stack {
    gw: Gateway,
    idp: Idp,
    cookie: String,
    _app: Upstream,
}

impl Stack {
    fn start(tag: &str, token_ttl: &str, refresh_before: &str) -> Stack {
        let app = Upstream::start("app");
        let (gw, idp) = gateway_with_idp(
            tag,
            None,
            &[("IDP_ACCESS_TOKEN_TTL", token_ttl)],
            |p, _, idp_port| config(p, &app, idp_port, refresh_before),
        );
        let browser = Browser::new(gw.listen);
        let page = browser.login_from("/app/page", "alice", "alice-password", false);
        assert_eq!(page.status, 200, "{page:?}");
        Stack {
            cookie: browser.cookies(),
            gw,
            idp,
            _app: app,
        }
    }

    /// Refresh-grant requests and errors at the IdP since `since` (a slow login may already
    /// have refreshed once).
    fn refreshes_since(&self, since: (u64, u64)) -> (u64, u64) {
        let now = self.idp.refreshes();
        (now.0 - since.0, now.1 - since.1)
    }

    /// An API call with the session cookie.
    fn status(&self) -> u16 {
        self.get("/app/page").status
    }

    fn get(&self, path: &str) -> Response {
        get(
            self.gw.listen,
            "demo.localhost",
            path,
            &[("Cookie", &self.cookie), ("Accept", "application/json")],
        )
        .unwrap()
    }
}

#[test]
fn a_refresh_the_idp_answers_with_503_keeps_the_session_and_is_retried_later() {
    // Tokens live 60 s and are refreshed within 59 s of expiry: due after one second.
    let s = Stack::start("refresh-503", "60", "59s");
    let start = s.idp.refreshes();
    s.idp.refresh_fault("503", 0);
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(s.status(), 200, "the session outlives a failed refresh");
    assert_eq!(
        s.refreshes_since(start),
        (1, 1),
        "the refresh was tried and failed"
    );
    assert_eq!(s.status(), 200);
    assert_eq!(
        s.refreshes_since(start),
        (1, 1),
        "a failed refresh is not retried on every request"
    );
    s.idp.refresh_fault("off", 0);
    std::thread::sleep(RETRY_AFTER);
    assert_eq!(s.status(), 200);
    assert_eq!(
        s.refreshes_since(start),
        (2, 1),
        "retried once the retry delay passed, and succeeded"
    );
    assert!(s.gw.log().contains("token refresh failed"), "logged");
}

#[test]
fn an_expired_access_token_while_the_idp_is_down_is_a_503_not_a_logout() {
    // Tokens live 3 s, refreshed within 2 s of expiry.
    let s = Stack::start("refresh-down", "3", "2s");
    s.idp.refresh_fault("503", 0);
    std::thread::sleep(Duration::from_millis(3_500));
    let down = s.get("/app/page");
    assert_eq!(down.status, 503, "IdP unavailable, session kept: {down:?}");
    assert_eq!(s.status(), 503);
    // A person navigating gets a page saying so; the log and metrics name the reason.
    let nav = get(
        s.gw.listen,
        "demo.localhost",
        "/app/page",
        &[("Cookie", &s.cookie), ("Accept", "text/html")],
    )
    .unwrap();
    assert_eq!(nav.status, 503, "{nav:?}");
    assert!(
        nav.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{nav:?}"
    );
    assert!(nav.text().contains("still signed in"), "{}", nav.text());
    assert_eventually!(
        Duration::from_secs(5),
        || s.gw.log().contains("\"reason\":\"session_unavailable\""),
        "the access log names the reason: {}",
        s.gw.log()
    );
    s.idp.refresh_fault("off", 0);
    std::thread::sleep(RETRY_AFTER);
    assert_eq!(
        s.status(),
        200,
        "the same session works once the IdP is back"
    );
}

#[test]
fn a_refresh_the_idp_answers_with_invalid_grant_ends_the_session() {
    let s = Stack::start("refresh-invalid", "60", "59s");
    let start = s.idp.refreshes();
    s.idp.refresh_fault("invalid_grant", 0);
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(
        s.status(),
        401,
        "the refresh token is dead: so is the session"
    );
    s.idp.refresh_fault("off", 0);
    assert_eq!(s.status(), 401, "and it stays ended");
    assert_eq!(s.refreshes_since(start), (1, 1), "one refresh, refused");
}

#[test]
fn a_logout_while_a_refresh_runs_stays_logged_out() {
    let s = Stack::start("refresh-logout", "60", "59s");
    let start = s.idp.refreshes();
    // The IdP holds each refresh for 1.5 s: the logout lands while it runs.
    s.idp.refresh_fault("off", 1_500);
    std::thread::sleep(Duration::from_millis(1_200));
    let (addr, cookie) = (s.gw.listen, s.cookie.clone());
    let during = std::thread::spawn(move || {
        get(addr, "demo.localhost", "/app/page", &[("Cookie", &cookie)])
            .unwrap()
            .status
    });
    // The request is at the IdP well within this (the IdP counts it only when it answers).
    std::thread::sleep(Duration::from_millis(500));
    let out = s.get("/oauth/logout");
    assert_eq!(out.status, 302, "{out:?}");
    let during = during.join().unwrap();
    assert!(
        during == 401,
        "the request whose refresh lost the race has no session: {during}"
    );
    assert_eq!(
        s.refreshes_since(start),
        (1, 0),
        "the refresh itself succeeded"
    );
    assert_eq!(
        s.status(),
        401,
        "the refreshed record did not bring the session back"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.status(), 401);
}

#[test]
fn requests_waiting_on_a_refresh_that_hangs_get_503_once_the_access_token_expired() {
    // Tokens live 3 s, refreshed within 2 s of expiry; the IdP holds the refresh for 4.5 s:
    // within the gateway's IdP timeout (5 s), longer than a request waits for another
    // request's refresh (3 s).
    let s = Stack::start("refresh-hang", "3", "2s");
    s.idp.refresh_fault("off", 4_500);
    std::thread::sleep(Duration::from_millis(3_500));
    let (addr, cookie) = (s.gw.listen, s.cookie.clone());
    let leader = std::thread::spawn(move || {
        get(addr, "demo.localhost", "/app/page", &[("Cookie", &cookie)])
            .unwrap()
            .status
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let waiter = s.get("/app/page");
    assert_eq!(
        waiter.status, 503,
        "a waiter whose wait ran out: unavailable, not logged out: {waiter:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(4_000),
        "it did not wait for the whole refresh: {:?}",
        started.elapsed()
    );
    assert_eq!(leader.join().unwrap(), 200, "the refresh itself completed");
    assert_eq!(s.status(), 200, "and the session goes on");
}

#[test]
fn on_redis_one_replica_refreshes_for_all_and_a_logout_elsewhere_during_it_stays_a_logout() {
    let cluster = redis::Cluster::start();
    let store = format!(
        "  url: {}\n  local-cache-ttl: 1s\n  timeout: 500ms",
        cluster.url()
    );
    let app = Upstream::start("app");
    let idp_port = free_port();
    let start = |tag: &str| Gateway::start(tag, |p, _| config_on(p, &app, idp_port, "59s", &store));
    let (gw1, gw2) = (start("redis-refresh-1"), start("redis-refresh-2"));
    // Cookies ignore ports: both gateways are one site for the browser.
    let redirect = format!("http://demo.localhost:{}/oauth/callback", gw1.listen.port());
    let idp = Idp::start_on(
        idp_port,
        None,
        &[
            ("IDP_REDIRECT_URIS", redirect.as_str()),
            ("IDP_ACCESS_TOKEN_TTL", "60"),
        ],
        TempDir::new("redis-refresh-idp"),
    );
    gw1.wait_ready();
    gw2.wait_ready();
    let browser = Browser::new(gw1.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let cookie = browser.cookies();
    let on = |gw: &Gateway, path: &str| {
        get(gw.listen, "demo.localhost", path, &[("Cookie", &cookie)])
            .unwrap()
            .status
    };
    let in_background = |gw: &Gateway| {
        let (addr, cookie) = (gw.listen, cookie.clone());
        std::thread::spawn(move || {
            get(addr, "demo.localhost", "/app/page", &[("Cookie", &cookie)])
                .unwrap()
                .status
        })
    };

    // gw1 refreshes (the IdP holds it 2 s); gw2, due too, waits for gw1's record.
    idp.refresh_fault("off", 2_000);
    std::thread::sleep(Duration::from_millis(1_200));
    let before = idp.refreshes();
    let leader = in_background(&gw1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        on(&gw2, "/app/page"),
        200,
        "gw2 got gw1's refreshed session"
    );
    assert_eq!(leader.join().unwrap(), 200);
    let after = idp.refreshes();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "one refresh for both replicas"
    );

    // The stored record names its tenant and holds no token in clear (no JWT, no opaque
    // refresh token: both are sealed, the access token is not kept).
    let records: Vec<String> = cluster
        .masters()
        .into_iter()
        .flat_map(|port| {
            let keys = redis::cli(port, &["keys", "gatehouse:s:*"]).unwrap();
            keys.lines()
                .filter(|k| !k.trim().is_empty())
                .map(|k| redis::cli(port, &["get", k.trim()]).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let mut record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(record["tenant"], "demo");
    assert!(record["issuer"].as_str().unwrap().ends_with("/realms/demo"));
    assert!(record.get("access_token").is_none(), "{record}");
    for sealed in ["refresh_token_enc", "id_token_enc"] {
        let value = record[sealed].take();
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("{sealed} in {record}"));
        // Sealed values are one base64url string; a JWT has dots.
        assert!(
            !value.contains('.') && value.len() > 40,
            "{sealed}: {value}"
        );
    }
    assert!(
        !record.to_string().contains("eyJ"),
        "no JWT in the store: {record}"
    );

    // Due again: gw1 refreshes while the user logs out through gw2.
    std::thread::sleep(Duration::from_millis(1_200));
    let refreshing = in_background(&gw1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(on(&gw2, "/oauth/logout"), 302);
    assert_eq!(refreshing.join().unwrap(), 401, "the refresh lost the race");
    let after_logout = idp.refreshes();
    assert_eq!(
        after_logout.0 - after.0,
        1,
        "the refresh itself went through"
    );
    for gw in [&gw1, &gw2, &gw1] {
        assert_eq!(on(gw, "/app/page"), 401, "logged out everywhere");
    }
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(on(&gw1, "/app/page"), 401, "also after local-cache-ttl");
    assert_eq!(on(&gw2, "/app/page"), 401);
}

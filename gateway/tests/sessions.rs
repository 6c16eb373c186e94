//! Browser login and sessions through the real binary against the real IdP: the code flow,
//! identity from the session, single-use state, tampered cookies, session fixation, open
//! redirects, single-flight refresh, logout.

mod support;

use std::time::Duration;

use gatehouse_test_support::redis;
use support::idp::Idp;
use support::login::Browser;
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn config(
    p: &Ports,
    app: &Upstream,
    idp_port: u16,
    session_store: &str,
    refresh_before: &str,
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
      X-Auth-Roles: realm_access.roles
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
      allowed-redirect-hosts: [demo.localhost, "*.demo.localhost"]
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
      - uri: /app/admin/*
        roles: [admin]
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// A gateway on the embedded store and the IdP that knows its callback URL.
fn stack(
    tag: &str,
    app: &Upstream,
    idp_env: &[(&str, &str)],
    refresh_before: &str,
) -> (Gateway, Idp) {
    gateway_with_idp(tag, None, idp_env, |p, _, idp_port| {
        config(p, app, idp_port, "  url: memory://", refresh_before)
    })
}

#[test]
fn a_browser_logs_in_and_its_session_authenticates_and_authorizes() {
    let app = Upstream::start("app");
    let (gw, _idp) = stack("login", &app, &[], "60s");
    let browser = Browser::new(gw.listen);
    // An API call without a session is a 401; a navigation is sent to log in.
    let api = get(
        gw.listen,
        "demo.localhost",
        "/app/page",
        &[("Accept", "application/json")],
    )
    .unwrap();
    assert_eq!(api.status, 401);
    let nav = browser.get("/app/page?x=1");
    assert_eq!(nav.status, 302);
    assert_eq!(
        nav.location.as_deref(),
        Some("/oauth/login?rd=/app/page%3Fx%3D1")
    );
    let page = browser.login_from("/app/page?x=1", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("app GET /app/page?x=1"), "{page:?}");
    let seen = app.last().unwrap();
    assert_eq!(seen.header("x-auth-userid"), Some("alice"));
    assert!(
        seen.header("cookie")
            .is_none_or(|c| !c.contains("gatehouse_session")),
        "the gateway's session cookie never reaches the upstream: {seen:?}"
    );
    assert_eq!(seen.header("x-auth-roles"), Some("admin,user"));
    assert_eq!(browser.get("/app/admin/x").status, 200, "alice is an admin");
    let info = browser.get("/oauth/userinfo");
    assert_eq!(info.status, 200);
    let v: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(v["preferred_username"], "alice");
    // bob is a user, not an admin.
    let bob = Browser::new(gw.listen);
    assert_eq!(
        bob.login_from("/app/page", "bob", "bob-password", false)
            .status,
        200
    );
    assert_eq!(bob.get("/app/admin/x").status, 403);
    // Other cookies of the site still reach the upstream.
    browser.set_cookie("theme", "dark");
    assert_eq!(browser.get("/app/page").status, 200);
    assert_eq!(app.last().unwrap().header("cookie"), Some("theme=dark"));
}

#[test]
fn login_state_is_bound_to_the_browser_single_use_and_the_session_id_is_new() {
    let app = Upstream::start("app");
    let (gw, _idp) = stack("state", &app, &[], "60s");
    let browser = Browser::new(gw.listen);
    // A planted session cookie (fixation attempt) is never promoted.
    browser.set_cookie("gatehouse_session", "attacker-chosen-value");
    let callback = browser.login_from("/app/page", "alice", "alice-password", true);
    let callback_url = callback.url.to_string();
    assert!(
        callback_url.contains("code=") && callback_url.contains("state="),
        "{callback_url}"
    );
    // Another browser cannot complete this login (no state cookie): 403, never a 5xx.
    let other = Browser::new(gw.listen);
    assert_eq!(other.get(&callback_url).status, 403);
    // The right browser completes it once...
    let done = browser.get(&callback_url);
    assert_eq!(done.status, 302, "{done:?}");
    assert_eq!(done.location.as_deref(), Some("/app/page"));
    let cookies = browser.cookies();
    assert!(
        !cookies.contains("attacker-chosen-value"),
        "a new session ID at login: {cookies}"
    );
    assert_eq!(browser.get("/app/page").status, 200);
    // ... and a replay of the same callback is refused.
    let session_cookie = cookies.clone();
    let replay = get(
        gw.listen,
        "demo.localhost",
        callback.url.path().to_string().as_str(),
        &[],
    )
    .unwrap();
    assert!(replay.status == 403, "{replay:?}");
    let replay = raw_request(
        gw.listen,
        format!(
            "GET /oauth/callback?{} HTTP/1.1\r\nHost: demo.localhost\r\nCookie: {session_cookie}\r\nConnection: close\r\n\r\n",
            callback.url.query().unwrap()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(replay.status, 403, "a used state is spent");
    // A forged state parameter: 400 unless shaped like a real one (43 base64url characters:
    // only then may it name a login-state cookie), and a well-shaped one that is not this
    // browser's is 403.
    for bad in [
        "forged",
        "",
        &"A".repeat(42),
        &"A".repeat(44),
        &format!("{}%2F", "A".repeat(42)),
        &format!("{}.", "A".repeat(42)),
    ] {
        let forged = browser.get(&format!("/oauth/callback?code=abc&state={bad}"));
        assert_eq!(forged.status, 400, "state {bad:?}: {forged:?}");
    }
    let forged = browser.get(&format!(
        "/oauth/callback?code=abc&state={}",
        "A-_z".repeat(10) + "xyz"
    ));
    assert_eq!(forged.status, 403, "{forged:?}");
}

#[test]
fn tampered_truncated_and_foreign_cookies_are_no_session_never_an_error() {
    let app = Upstream::start("app");
    let (gw, _idp) = stack("cookies", &app, &[], "60s");
    let browser = Browser::new(gw.listen);
    assert_eq!(
        browser
            .login_from("/app/page", "alice", "alice-password", false)
            .status,
        200
    );
    let cookies = browser.cookies();
    let value = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("gatehouse_session="))
        .expect("session cookie")
        .to_string();
    let mut flipped = value.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.as_str(),
        &value[..value.len() / 2],
        "",
        "not-base64-!!!",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &"x".repeat(5000),
    ] {
        let cookie = format!("gatehouse_session={bad}");
        let api = get(
            gw.listen,
            "demo.localhost",
            "/app/page",
            &[("Cookie", &cookie)],
        )
        .unwrap();
        assert_eq!(api.status, 401, "{bad:.40}");
        let nav = get(
            gw.listen,
            "demo.localhost",
            "/app/page",
            &[("Cookie", &cookie), ("Accept", "text/html")],
        )
        .unwrap();
        assert_eq!(nav.status, 302, "{bad:.40}");
    }
    let good = format!("gatehouse_session={value}");
    assert_eq!(
        get(
            gw.listen,
            "demo.localhost",
            "/app/page",
            &[("Cookie", &good)]
        )
        .unwrap()
        .status,
        200
    );
}

#[test]
fn redirects_after_login_only_go_to_allowed_places() {
    let app = Upstream::start("app");
    let (gw, _idp) = stack("redirects", &app, &[], "60s");
    let table = [
        ("/app/page", "/app/page"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fdemo.localhost.evil.example%2F", "/"),
        ("https%3A%2F%2Fuser%40demo.localhost%2F", "/"),
        ("javascript%3Aalert(1)", "/"),
        (
            "http%3A%2F%2Fapi.demo.localhost%2Fx",
            "http://api.demo.localhost/x",
        ),
    ];
    for (rd, expected) in table {
        let browser = Browser::new(gw.listen);
        let callback = browser.login_from(
            &format!("/oauth/login?rd={rd}"),
            "alice",
            "alice-password",
            true,
        );
        let done = browser.get(callback.url.as_str());
        assert_eq!(done.status, 302, "{rd}");
        assert_eq!(done.location.as_deref(), Some(expected), "rd={rd}");
    }
}

#[test]
fn fifty_concurrent_requests_due_for_refresh_make_one_token_request() {
    let app = Upstream::start("app");
    // Access tokens live 60 s and are refreshed within 57 s of expiry: due 2-3 s after they
    // were issued (`exp` counts whole seconds). The refreshed token is then not due for at
    // least 2 s, more than the 50 requests take: a second refresh would be a second flight.
    let (gw, idp) = stack("refresh", &app, &[("IDP_ACCESS_TOKEN_TTL", "60")], "57s");
    let browser = Browser::new(gw.listen);
    assert_eq!(
        browser
            .login_from("/app/page", "alice", "alice-password", false)
            .status,
        200
    );
    let cookie = browser.cookies();
    let before = idp.stats()["token_requests_by_grant_type"]["refresh_token"]
        .as_u64()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(3500));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (addr, cookie) = (gw.listen, cookie.clone());
            std::thread::spawn(move || {
                get(addr, "demo.localhost", "/app/page", &[("Cookie", &cookie)])
                    .unwrap()
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let after = idp.stats()["token_requests_by_grant_type"]["refresh_token"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        after - before,
        1,
        "exactly one refresh for 50 concurrent requests"
    );
    assert_eq!(
        browser.get("/app/page").status,
        200,
        "the refreshed session keeps working"
    );
}

#[test]
fn logout_ends_the_session_here_and_at_the_idp() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("logout", &app, &[], "60s");
    let browser = Browser::new(gw.listen);
    assert_eq!(
        browser
            .login_from("/app/page", "alice", "alice-password", false)
            .status,
        200
    );
    let old_cookie = browser.cookies();
    let out = browser.get("/oauth/logout");
    assert_eq!(out.status, 302);
    let location = out.location.unwrap();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{}/realms/demo/", idp.port)),
        "{location}"
    );
    assert!(
        location.contains("id_token_hint=") && location.contains("post_logout_redirect_uri="),
        "{location}"
    );
    // The old cookie no longer works anywhere (the record is gone from the store).
    let r = get(
        gw.listen,
        "demo.localhost",
        "/app/page",
        &[("Cookie", &old_cookie)],
    )
    .unwrap();
    assert_eq!(r.status, 401);
}

/// Two gateways on one Redis Cluster, the IdP signing with a key the test holds.
struct Shared {
    cluster: redis::Cluster,
    store: String,
    idp_port: u16,
    keys: std::path::PathBuf,
    _keys_dir: TempDir,
}

impl Shared {
    fn new() -> Shared {
        let cluster = redis::Cluster::start();
        let store = format!(
            "  url: {}\n  local-cache-ttl: 1s\n  on-unavailable: serve-cached\n  timeout: 200ms",
            cluster.url()
        );
        let keys_dir = TempDir::new("bcl-keys");
        let keys = support::idp::make_keys(keys_dir.path(), "idp", &["RS256"]);
        Shared {
            cluster,
            store,
            idp_port: free_port(),
            keys,
            _keys_dir: keys_dir,
        }
    }

    fn gateway(&self, tag: &str, app: &Upstream) -> Gateway {
        Gateway::start(tag, |p, _| {
            config(p, app, self.idp_port, &self.store, "60s")
        })
    }

    fn idp(&self, gw: &Gateway) -> Idp {
        let redirect = format!("http://demo.localhost:{}/oauth/callback", gw.listen.port());
        let logout = format!("http://demo.localhost:{}/", gw.listen.port());
        let env = [
            ("IDP_REDIRECT_URIS", redirect.as_str()),
            ("IDP_POST_LOGOUT_REDIRECT_URIS", logout.as_str()),
        ];
        Idp::start_on(
            self.idp_port,
            Some(&self.keys),
            &env,
            TempDir::new("shared-idp"),
        )
    }
}

fn status_with(gw: &Gateway, cookie: &str) -> u16 {
    get(
        gw.listen,
        "demo.localhost",
        "/app/page",
        &[("Cookie", cookie)],
    )
    .map(|r| r.status)
    .unwrap_or(0)
}

#[test]
fn sessions_on_redis_cluster_are_shared_survive_restarts_and_end_by_back_channel_logout() {
    let shared = Shared::new();
    let app = Upstream::start("app");
    let gw1 = shared.gateway("redis-a", &app);
    let gw2 = shared.gateway("redis-b", &app);
    let idp = shared.idp(&gw1);
    gw1.wait_ready();
    gw2.wait_ready();
    let browser = Browser::new(gw1.listen);
    assert_eq!(
        browser
            .login_from("/app/page", "alice", "alice-password", false)
            .status,
        200
    );
    let cookie = browser.cookies();
    // Shared by a second gateway process (cookies ignore ports: same site).
    assert_eq!(status_with(&gw2, &cookie), 200);
    assert_eq!(app.last().unwrap().header("x-auth-userid"), Some("alice"));
    // Survives a restart of the gateway that created it.
    drop(gw1);
    let gw3 = shared.gateway("redis-c", &app);
    // Ready: its pool's first health check is done (before it, a loaded machine could see a
    // 503 that has nothing to do with the session).
    gw3.wait_ready();
    assert_eq!(status_with(&gw3, &cookie), 200);

    // Back-channel logout from the IdP (a logout token signed with its key) ends alice's
    // sessions everywhere within local-cache-ttl.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let alice_sub = "00000000-0000-4000-8000-0000000a11ce";
    let forged_nonce = support::idp::sign(
        &shared.keys,
        &serde_json::json!({"iss": idp.issuer, "aud": "gatehouse", "exp": now + 120, "jti": "x1", "sub": alice_sub, "nonce": "n",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
        Some("logout+jwt"),
    );
    let logout_token = support::idp::sign(
        &shared.keys,
        &serde_json::json!({"iss": idp.issuer, "aud": "gatehouse", "exp": now + 120, "jti": "x2", "sub": alice_sub,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
        Some("logout+jwt"),
    );
    let post = |token: &str| {
        let body = format!("logout_token={token}");
        raw_request(
            gw2.listen,
            format!("POST /oauth/backchannel-logout HTTP/1.1\r\nHost: demo.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        )
        .unwrap()
        .status
    };
    assert_eq!(post("not-a-token"), 400);
    assert_eq!(
        post(&forged_nonce),
        400,
        "a token with a nonce is not a logout token"
    );
    assert_eq!(
        status_with(&gw3, &cookie),
        200,
        "refused logout tokens end nothing"
    );
    assert_eq!(post(&logout_token), 200);
    assert_eventually!(
        Duration::from_secs(5),
        || status_with(&gw3, &cookie) == 401,
        "session ended on gw3"
    );
    assert_eq!(status_with(&gw2, &cookie), 401, "and on gw2");
}

#[test]
fn sessions_keep_working_when_a_redis_master_dies_during_traffic() {
    let shared = Shared::new();
    let app = Upstream::start("app");
    let gw = shared.gateway("failover", &app);
    let _idp = shared.idp(&gw);
    gw.wait_ready();
    let browser = Browser::new(gw.listen);
    assert_eq!(
        browser
            .login_from("/app/page", "alice", "alice-password", false)
            .status,
        200
    );
    let cookie = browser.cookies();
    assert!(
        shared.cluster.wait_replicated(Duration::from_secs(10)),
        "replicas caught up"
    );
    // Traffic for 14 s (bounded), one master killed after 2 s.
    let started = std::time::Instant::now();
    let (addr, c) = (gw.listen, cookie.clone());
    let load = std::thread::spawn(move || {
        let mut results = Vec::new();
        while started.elapsed() < Duration::from_secs(14) && results.len() < 20_000 {
            let status = get(addr, "demo.localhost", "/app/page", &[("Cookie", &c)])
                .map(|r| r.status)
                .unwrap_or(0);
            results.push((started.elapsed(), status));
            std::thread::sleep(Duration::from_millis(5));
        }
        results
    });
    std::thread::sleep(Duration::from_secs(2));
    let dead = shared.cluster.kill_a_master();
    assert!(
        shared.cluster.wait_failover(dead, Duration::from_secs(15)),
        "a replica took over"
    );
    let failed_over_at = started.elapsed();
    let results = load.join().unwrap();
    let bad: Vec<_> = results.iter().filter(|(_, s)| *s != 200).collect();
    // serve-cached: a validated session keeps being served from the local cache while its
    // master is down; nothing fails after the failover window.
    assert!(
        bad.iter()
            .all(|(t, s)| *s != 0 && *t <= failed_over_at + Duration::from_secs(2)),
        "failures after the failover window ({failed_over_at:?}): {bad:?}"
    );
    assert!(
        bad.iter().all(|(_, s)| *s < 500 || *s == 503),
        "never a 500-class error other than a 503 from fail-closed: {bad:?}"
    );
    let slow = results
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    eprintln!(
        "failover at {failed_over_at:?}; {} requests, {} not 200, longest gap {slow:?}",
        results.len(),
        bad.len()
    );
    assert!(
        results.len() > 50,
        "the load ran: {} requests",
        results.len()
    );
    assert_eventually!(
        Duration::from_secs(10),
        || status_with(&gw, &cookie) == 200,
        "the session works after failover (failover at {failed_over_at:?})"
    );
}

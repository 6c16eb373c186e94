//! Browser login and sessions through the real binary against the real IdP: the code flow,
//! identity from the session, single-use state, tampered cookies, session fixation, open
//! redirects, single-flight refresh, logout.

mod support;

use std::time::Duration;

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
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
{session_store}
identity-providers:
  - name: keycloak
    issuer: http://127.0.0.1:{idp_port}/realms/demo
    client-id: gatehouse
    client-secret: gatehouse-secret
    audiences: [gatehouse]
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
    let idp_port = free_port();
    let gw = Gateway::start(tag, |p, _| {
        config(p, app, idp_port, "  url: memory://", refresh_before)
    });
    let mut env = vec![
        (
            "IDP_REDIRECT_URIS".to_string(),
            format!("http://demo.localhost:{}/oauth/callback", gw.listen.port()),
        ),
        (
            "IDP_POST_LOGOUT_REDIRECT_URIS".to_string(),
            format!("http://demo.localhost:{}/", gw.listen.port()),
        ),
    ];
    env.extend(idp_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let idp = Idp::start_on(idp_port, None, &env, TempDir::new("sessions-idp"));
    gw.wait_ready();
    (gw, idp)
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
    // A forged state parameter: 403.
    let forged = browser.get("/oauth/callback?code=abc&state=forged");
    assert_eq!(forged.status, 403);
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
    // Access tokens live 60 s and are refreshed within 59 s of expiry: due after one second.
    let (gw, idp) = stack("refresh", &app, &[("IDP_ACCESS_TOKEN_TTL", "60")], "59s");
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
    std::thread::sleep(Duration::from_millis(1500));
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

//! Sessions and cookies stay in their tenant, through the real binary: two tenants that share
//! a cookie key and a session store (as the shipped deploy config does) never accept each
//! other's session cookies, and no upstream sees any tenant's gateway cookies.

mod support;

use support::login::Browser;
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// Tenant `demo` (demo.localhost, cookie `gatehouse_session`) and tenant `other`
/// (other.localhost, cookie `other_session`): one provider, one key, one memory store.
fn config(p: &Ports, app: &Upstream, other_app: &Upstream, idp_port: u16) -> String {
    let tenant = |name: &str, host: &str, cookie: &str, app: &Upstream| {
        format!(
            r#"
  - name: {name}
    hosts: [{host}]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    identity-headers:
      X-Auth-Userid: preferred_username
    login:
      redirect-url: http://{host}:{listen}/oauth/callback
      allowed-redirect-hosts: [{host}]
    cookie:
      name: {cookie}
      secure: false
      encryption-key: "{COOKIE_KEY}"
      session-ttl: 1h
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /app/*
        roles: [user]
"#,
            listen = p.listen,
            app = app.target(),
        )
    };
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
  url: memory://
identity-providers:
{provider}
tenants:{demo}{other}"#,
        listen = p.listen,
        admin = p.admin,
        demo = tenant("demo", "demo.localhost", "gatehouse_session", app),
        other = tenant("other", "other.localhost", "other_session", other_app),
    )
}

fn session_value(browser: &Browser) -> String {
    browser
        .cookies()
        .split("; ")
        .find_map(|c| c.strip_prefix("gatehouse_session="))
        .expect("a session cookie")
        .to_string()
}

#[test]
fn a_session_cookie_of_one_tenant_is_no_session_on_another_that_shares_its_key_and_store() {
    let app = Upstream::start("demo-app");
    let other_app = Upstream::start("other-app");
    let (gw, _idp) = gateway_with_idp("tenants", None, &[], |p, _, idp_port| {
        config(p, &app, &other_app, idp_port)
    });
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let value = session_value(&browser);
    let on_demo = |cookie: &str| {
        get(
            gw.listen,
            "demo.localhost",
            "/app/page",
            &[("Cookie", cookie)],
        )
        .unwrap()
        .status
    };
    assert_eq!(on_demo(&format!("gatehouse_session={value}")), 200);

    // The same sealed value presented to the other tenant, under its cookie name: the key and
    // the store are the same, the tenant is not.
    let stolen = format!("other_session={value}");
    let api = get(
        gw.listen,
        "other.localhost",
        "/app/page",
        &[("Cookie", &stolen)],
    )
    .unwrap();
    assert_eq!(api.status, 401, "no session on the other tenant: {api:?}");
    let nav = get(
        gw.listen,
        "other.localhost",
        "/app/page",
        &[("Cookie", &stolen), ("Accept", "text/html")],
    )
    .unwrap();
    assert_eq!(nav.status, 302, "a navigation is sent to log in: {nav:?}");
    assert!(
        nav.header("location")
            .is_some_and(|l| l.starts_with("/oauth/login")),
        "{nav:?}"
    );
    assert!(
        other_app
            .requests()
            .iter()
            .all(|r| !r.target.starts_with("/app/")),
        "nothing reached the other tenant's upstream"
    );
    assert_eq!(
        on_demo(&format!("gatehouse_session={value}")),
        200,
        "the session still works on its own tenant"
    );

    // Every tenant's gateway cookies (session and login-state) are removed before proxying,
    // not only the current tenant's; the site's own cookies pass.
    let cookies = format!(
        "theme=dark; gatehouse_session={value}; gatehouse_session_login_AbCdEfGhIjKl=x; other_session=y; other_session_login_0123456789ab=z; lang=en"
    );
    let public = get(
        gw.listen,
        "other.localhost",
        "/public/x",
        &[("Cookie", &cookies)],
    )
    .unwrap();
    assert_eq!(public.status, 200, "{public:?}");
    let seen = other_app
        .last()
        .expect("the public route reached the upstream");
    assert_eq!(seen.target, "/public/x");
    assert_eq!(
        seen.header("cookie"),
        Some("theme=dark; lang=en"),
        "the other tenant's upstream sees no gateway cookie of any tenant"
    );
    // And the tenant that issued the session passes none of them either.
    assert_eq!(on_demo(&cookies), 200);
    assert_eq!(
        app.last().unwrap().header("cookie"),
        Some("theme=dark; lang=en")
    );
}

#[test]
fn check_warns_when_tenants_share_a_key_or_a_cookie_domain_covers_another_tenant() {
    let dir = TempDir::new("tenants-check");
    let app = Upstream::start("unused");
    let ports = Ports {
        listen: free_port(),
        admin: free_port(),
        tls: free_port(),
    };
    // Both tenants use COOKIE_KEY; add a domain on the first that covers the second's host.
    let config = config(&ports, &app, &app, free_port()).replacen(
        "      name: gatehouse_session\n",
        "      name: gatehouse_session\n      domain: localhost\n",
        1,
    );
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, &config).unwrap();
    let line_of = |needle: &str, nth: usize| {
        config
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .map(|(i, _)| i + 1)
            .unwrap()
    };
    let (code, _out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "warnings do not fail the check: {err}");
    let file = path.display();
    let shared = format!(
        "{file}:{}: warning: tenants[1].cookie.encryption-key: tenant \"other\" uses an encryption key of tenant \"demo\"",
        line_of("encryption-key", 1)
    );
    let domain = format!(
        "{file}:{}: warning: tenants[0].cookie.domain: cookie domain \"localhost\" of tenant \"demo\" covers host \"other.localhost\" of tenant \"other\"",
        line_of("domain: localhost", 0)
    );
    assert!(err.contains(&shared), "{shared}\nin:\n{err}");
    assert!(err.contains(&domain), "{domain}\nin:\n{err}");
}

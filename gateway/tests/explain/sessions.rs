//! Sessions explained from the cookie to the store, and the admin listener's endpoint.

use super::*;

#[test]
fn sessions_are_explained_from_the_cookie_to_the_store_and_the_live_store_answers_on_the_admin_listener(
) {
    let keys_dir = TempDir::new("explain-session-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, _idp) = stack("explain-session", &app, &keys, true);
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "login: {}", page.body);
    let cookie = browser.cookies();
    assert!(!cookie.is_empty());
    let live = case(
        "live session",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![("Cookie".into(), cookie.clone())],
        None,
        "ok",
    );
    // The running process finds the session in its store.
    let (status, body) = explain_admin(&gw, &admin_query(&gw, &live));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&live, &body);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["verdict"]["allowed"], true, "{body}");
    let session = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "session")
        .unwrap_or_else(|| panic!("no session step: {body}"));
    assert_eq!(session["outcome"], "pass", "{body}");
    assert!(
        session["summary"]
            .as_str()
            .unwrap()
            .contains("found in the store"),
        "{body}"
    );
    assert_eq!(gateway_answer(&gw, &live).0, 200);
    // A separate `gatehouse explain` has its own (empty) memory store, and says so.
    let (code, out, _) = explain_cli(&gw, &live, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("memory:// is this process's own store"),
        "{out}"
    );
    assert_no_secret(&live, &out);

    // Logged out: the cookie names a session the store no longer has.
    let ended = browser.get("/oauth/logout");
    assert!(ended.status < 400, "logout: {}", ended.status);
    let gone = case(
        "session ended",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![("Cookie".into(), cookie.clone())],
        Some("session"),
        "unauthenticated",
    );
    check_case(&gw, &gone);
    let (status, body) = explain_admin(&gw, &admin_query(&gw, &gone));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&gone, &body);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["verdict"]["reason"], "unauthenticated", "{body}");
    assert!(body.contains("unknown session: not in the store"), "{body}");

    // A cookie sealed with another key does not open.
    let name = cookie.split('=').next().unwrap().trim().to_string();
    let foreign = case(
        "foreign cookie",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![(
            "Cookie".into(),
            format!("{name}=v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )],
        Some("session"),
        "unauthenticated",
    );
    check_case(&gw, &foreign);
    let (_, out, _) = explain_cli(&gw, &foreign, false);
    assert!(
        out.contains("does not open with this tenant's cookie keys"),
        "{out}"
    );
}

#[test]
fn the_admin_endpoint_is_off_unless_configured_and_agrees_with_the_cli_when_on() {
    let keys_dir = TempDir::new("explain-admin-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (off, idp) = stack("explain-off", &app, &keys, false);
    let expired = sign(
        &keys,
        &claims(&idp.issuer, json!({"exp": now() - 600})),
        None,
    );
    let c = case(
        "expired",
        "GET",
        "demo.localhost",
        "/api/x",
        bearer(&expired),
        Some("token"),
        "expired",
    );
    let (status, body) = explain_admin(&off, &admin_query(&off, &c));
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("expired"), "{body}");
    drop(off);
    drop(idp);

    let (on, idp) = stack("explain-on", &app, &keys, true);
    let expired = sign(
        &keys,
        &claims(&idp.issuer, json!({"exp": now() - 600})),
        None,
    );
    let c = case(
        "expired",
        "GET",
        "demo.localhost",
        "/api/x",
        bearer(&expired),
        Some("token"),
        "expired",
    );
    let (status, body) = explain_admin(&on, &admin_query(&on, &c));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&c, &body);
    let live: Value = serde_json::from_str(&body).unwrap();
    let (_, out, _) = explain_cli(&on, &c, true);
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(live["verdict"], cli["verdict"], "{body}\n{out}");
    assert_eq!(live["verdict"]["reason"], "expired");
    // GET is not the method; a body that is not a request is 400 and not echoed.
    let r = get(on.admin, "admin", "/debug/explain", &[]).unwrap();
    assert_eq!(r.status, 405);
    let (status, body) = explain_admin(
        &on,
        &format!("{{\"method\": \"GET\", \"url\": 5, \"headers\": \"Bearer {expired}\"}}"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains(&expired), "{body}");
    let (status, body) = explain_admin(&on, r#"{"method": "GET", "url": "/relative"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("absolute"), "{body}");
}

//! The resource server for agents and strong clients, through the real binary and the real
//! OpenID provider (`testing/idp`, oidc-provider with resource indicators and acr values):
//! RFC 9728 protected resource metadata and the `resource_metadata` of every 401, RFC 8707
//! audience-bound tokens on a route with `resource`, RFC 9470 step-up (`acr`, `max-auth-age`).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::idp::{percent_encode, Idp};
use support::login::Browser;
use support::*;

fn config(listen: u16, admin: u16, app: &Upstream, idp_port: u16) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.1/32]
identity-providers:
{provider}
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    resource-metadata:
      scopes-supported: [mcp:tools]
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
    cookie:
      secure: false
      encryption-key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /mcp/*
        resource: http://demo.localhost:{listen}/mcp
      - uri: /gold/*
        acr: [gold, platinum]
      - uri: /fresh/*
        max-auth-age: 3s
      - uri: /api/*
  - name: cors
    hosts: [cors.localhost]
    identity-provider: keycloak
    resource-metadata: {{}}
    cors:
      origins: ["https://app.example"]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
  - name: plain
    hosts: [plain.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /.well-known/*
        white-listed: true
      - uri: /*
"#,
        app = app.target(),
    )
}

/// The gateway and the IdP, each knowing the other (the IdP accepts the gateway's callback as
/// a redirect URI, which the code-flow helper below stops at).
fn stack(tag: &str, app: &Upstream) -> (Gateway, Idp) {
    gateway_with_idp(tag, None, &[], |p, _, idp_port| {
        config(p.listen, p.admin, app, idp_port)
    })
}

/// The tenant's host as a client names it (with the port, as HTTP clients send it).
fn demo(gw: &Gateway) -> String {
    format!("demo.localhost:{}", gw.listen.port())
}

fn origin(gw: &Gateway) -> String {
    format!("http://{}", demo(gw))
}

fn callback(gw: &Gateway) -> String {
    format!("{}/oauth/callback", origin(gw))
}

fn bearer(gw: &Gateway, host: &str, path: &str, token: &str) -> Response {
    gw.get_with(host, path, &[("Authorization", &format!("Bearer {token}"))])
}

fn challenge(r: &Response) -> String {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", r.status, r.text()))
        .to_string()
}

/// An access token for alice from the authorization-code grant, her login asking for
/// `acr_values` (the IdP's login reaches the first level it knows of them).
fn user_token(gw: &Gateway, idp: &Idp, acr_values: &str) -> String {
    let redirect = callback(gw);
    let start = format!(
        "{}/protocol/openid-connect/auth?client_id=gatehouse&response_type=code&scope=openid&redirect_uri={}&acr_values={}&state=s1&nonce=n1",
        idp.issuer,
        percent_encode(&redirect),
        percent_encode(acr_values)
    );
    let browser = Browser::new(gw.listen);
    let page = browser.login_from(&start, "alice", "alice-password", true);
    let code = page
        .url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {}", page.url));
    let tokens = idp.exchange_code(&code, &redirect);
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The payload of a JWT, unverified (to show what the IdP issued).
fn payload(token: &str) -> Value {
    gatehouse_test_support::keys::decode(token).1
}

#[test]
fn metadata_documents_are_served_here_and_every_401_names_them() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("resource-metadata", &app);
    let origin = origin(&gw);

    let bare = gw.get(&demo(&gw), "/.well-known/oauth-protected-resource");
    assert_eq!(bare.status, 200, "{}", bare.text());
    assert_eq!(bare.header("content-type"), Some("application/json"));
    assert_eq!(bare.header("cache-control"), Some("public, max-age=300"));
    // Any page may read it (a browser-based MCP client discovers the authorization server here).
    assert_eq!(bare.header("access-control-allow-origin"), Some("*"));
    let doc: Value = serde_json::from_slice(&bare.body).unwrap();
    assert_eq!(doc["resource"], format!("{origin}/"));
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([idp.issuer])
    );
    assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp:tools"]));
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header"])
    );

    // RFC 9728 3.1: the path after the well-known prefix is the resource identifier's path.
    let mcp = gw.get(&demo(&gw), "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(mcp.status, 200, "{}", mcp.text());
    let doc: Value = serde_json::from_slice(&mcp.body).unwrap();
    assert_eq!(doc["resource"], format!("{origin}/mcp"));
    let api = gw.get(&demo(&gw), "/.well-known/oauth-protected-resource/api");
    let doc: Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(doc["resource"], format!("{origin}/api"));
    // Under the bound route but another identifier: no document states a resource that
    // tokens are not checked against.
    let nested = gw.get(
        &demo(&gw),
        "/.well-known/oauth-protected-resource/mcp/tools",
    );
    assert_eq!(nested.status, 404, "{}", nested.text());
    let post = raw(
        &gw,
        &format!("POST /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", demo(&gw)),
    );
    assert_eq!(post.status, 405);
    assert_eq!(
        app.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never proxied"
    );

    // Every 401 of the tenant names the metadata: of the route's resource, else of the host.
    let r = gw.get(&demo(&gw), "/mcp/tools");
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        format!("Bearer realm=\"demo\", scope=\"mcp:tools\", resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\"")
    );
    let r = bearer(&gw, &demo(&gw), "/api/x", "not-a-token");
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        format!("Bearer realm=\"demo\", error=\"invalid_token\", error_description=\"the token is malformed\", scope=\"mcp:tools\", resource_metadata=\"{origin}/.well-known/oauth-protected-resource\"")
    );

    // A forward-auth check names the metadata of the original request's host and scheme, and
    // of its route's resource.
    let check = |uri: &str| {
        gw.get_with(
            "auth.internal",
            "/oauth/auth",
            &[
                ("X-Forwarded-Host", "demo.localhost"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", uri),
            ],
        )
    };
    let r = check("/api/x");
    assert_eq!(r.status, 401);
    assert!(
        challenge(&r).ends_with(
            "resource_metadata=\"https://demo.localhost/.well-known/oauth-protected-resource\""
        ),
        "{}",
        challenge(&r)
    );
    let r = check("/mcp/tools");
    assert!(
        challenge(&r).ends_with(&format!(
            "resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{}",
        challenge(&r)
    );
    let r = gw.get(&demo(&gw), "/oauth/userinfo");
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        format!("Bearer realm=\"demo\", scope=\"mcp:tools\", resource_metadata=\"{origin}/.well-known/oauth-protected-resource\"")
    );

    // A tenant without resource-metadata: the path is its own, and its 401s are as before.
    let proxied = gw.get("plain.localhost", "/.well-known/oauth-protected-resource");
    assert_eq!(proxied.status, 200);
    assert_eq!(proxied.header("x-upstream"), Some("app"));
    let r = gw.get("plain.localhost", "/x");
    assert_eq!(challenge(&r), "Bearer realm=\"plain\"");

    // A tenant with a CORS policy of its own: that policy decides who may read the document.
    let path = "/.well-known/oauth-protected-resource";
    let allowed = gw.get_with("cors.localhost", path, &[("Origin", "https://app.example")]);
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let other = gw.get_with(
        "cors.localhost",
        path,
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// Sends raw bytes to the gateway and reads one response.
fn raw(gw: &Gateway, request: &str) -> Response {
    raw_request(gw.listen, request.as_bytes()).expect("response")
}

#[test]
fn a_resource_route_takes_only_tokens_issued_for_its_resource() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("resource-audience", &app);
    let resource = format!("{}/mcp", origin(&gw));

    let for_mcp = idp.token_for_resource("svc-user", &resource);
    assert_eq!(
        payload(&for_mcp)["aud"],
        resource.as_str(),
        "the IdP's resource token"
    );
    let r = bearer(&gw, &demo(&gw), "/mcp/tools", &for_mcp);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(bearer(&gw, &demo(&gw), "/mcp", &for_mcp).status, 200);
    // Cached now for /mcp, and still not a token for the provider's audiences.
    let r = bearer(&gw, &demo(&gw), "/api/x", &for_mcp);
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""));

    // A token for another resource.
    let other = idp.token_for_resource("svc-user", "http://other.localhost/mcp");
    let r = bearer(&gw, &demo(&gw), "/mcp/tools", &other);
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    assert!(
        c.contains("error_description=\"the token is not meant for this audience\""),
        "{c}"
    );
    assert!(
        !c.contains(&format!("{resource}\"")),
        "never the expected value: {c}"
    );

    // A token with the provider's audience but not the resource: refused on the resource
    // route, still good on a normal one, whichever route saw (and cached) it first.
    let provider_token = idp.token("svc-user");
    assert_eq!(
        bearer(&gw, &demo(&gw), "/api/x", &provider_token).status,
        200
    );
    assert_eq!(
        bearer(&gw, &demo(&gw), "/mcp/tools", &provider_token).status,
        401
    );
    let fresh = idp.token("svc-admin");
    assert_eq!(bearer(&gw, &demo(&gw), "/mcp/tools", &fresh).status, 401);
    assert_eq!(bearer(&gw, &demo(&gw), "/api/x", &fresh).status, 200);
    let proxied = app.requests();
    assert!(
        proxied
            .iter()
            .all(|s| !s.target.starts_with("/mcp") || s.header("authorization").is_none()),
        "the Authorization header is not forwarded by default"
    );
    assert_eq!(
        proxied
            .iter()
            .filter(|s| s.target.starts_with("/mcp"))
            .count(),
        2,
        "only the resource token reached the resource"
    );
}

#[test]
fn step_up_refuses_weak_or_old_authentication_with_its_challenge() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("resource-step-up", &app);
    let origin = origin(&gw);

    let silver = user_token(&gw, &idp, "silver");
    assert_eq!(payload(&silver)["acr"], "silver");
    let r = bearer(&gw, &demo(&gw), "/gold/page", &silver);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        challenge(&r),
        format!("Bearer realm=\"demo\", error=\"insufficient_user_authentication\", error_description=\"a stronger authentication is required\", scope=\"mcp:tools\", resource_metadata=\"{origin}/.well-known/oauth-protected-resource\", acr_values=\"gold platinum\"")
    );
    // The same token where no step-up applies.
    assert_eq!(bearer(&gw, &demo(&gw), "/api/x", &silver).status, 200);

    let gold = user_token(&gw, &idp, "gold");
    let claims = payload(&gold);
    assert_eq!(claims["acr"], "gold");
    assert!(claims["auth_time"].is_u64(), "{claims}");
    assert_eq!(bearer(&gw, &demo(&gw), "/gold/page", &gold).status, 200);
    assert_eq!(bearer(&gw, &demo(&gw), "/fresh/page", &gold).status, 200);

    // No auth_time at all (a client-credentials token) is no recent authentication.
    let service = idp.token("svc-admin");
    let r = bearer(&gw, &demo(&gw), "/fresh/page", &service);
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert!(
        c.contains("error=\"insufficient_user_authentication\""),
        "{c}"
    );
    assert!(
        c.contains("error_description=\"a more recent authentication is required\""),
        "{c}"
    );
    assert!(c.ends_with(", max_age=3"), "{c}");
    assert!(!c.contains("acr_values"), "{c}");

    // The same good token, once its authentication is older than max-auth-age.
    std::thread::sleep(Duration::from_secs(4));
    let r = bearer(&gw, &demo(&gw), "/fresh/page", &gold);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(challenge(&r).ends_with(", max_age=3"));
    assert_eq!(bearer(&gw, &demo(&gw), "/gold/page", &gold).status, 200);
}

#[test]
fn a_browser_session_that_falls_short_logs_in_again_with_the_routes_demand() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("resource-browser", &app);
    let browser = Browser::new(gw.listen);
    // A first login, on a page without step-up: the IdP's lowest level.
    let page = browser.login_from("/api/start", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(idp.stats()["logins"], 1);
    // The gold page sends the session back to the IdP with the route's demand ...
    let short = browser.get("/gold/page?x=1");
    assert_eq!(short.status, 302, "{}", short.body);
    let location = short.location.expect("a redirect");
    assert_eq!(
        location,
        "/oauth/login?rd=/gold/page%3Fx%3D1&acr_values=gold%20platinum"
    );
    let to_idp = browser.get(&location);
    let authorize = to_idp.location.expect("to the IdP");
    assert!(
        authorize.contains("acr_values=gold+platinum") && authorize.contains("prompt=login"),
        "{authorize}"
    );
    // ... where the user logs in again (prompt=login), and comes back to the page.
    let page = browser.login_from(&location, "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body, "app GET /gold/page?x=1");
    assert_eq!(idp.stats()["logins"], 2);
    // An API call with the weak session (not a navigation) would have had the 401; with the
    // new session the route is satisfied.
    let api = gw.get_with(&demo(&gw), "/gold/page", &[("Cookie", &browser.cookies())]);
    assert_eq!(api.status, 200);
}

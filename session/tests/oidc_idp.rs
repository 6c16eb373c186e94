//! The authorization code flow client against the real test IdP (`testing/idp`,
//! oidc-provider): discovery, begin (PKCE/state/nonce), the browser login driven over plain
//! HTTP like `testing/idp/selftest.mjs` does, code exchange, nonce and code-replay refusals,
//! refresh with rotation, and the end-session URL. Skipped (with a message; failed when
//! `CI=true`) only when `node` is not installed.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_config::{IdentityProvider, Secret, TokenEndpointAuthMethod};
use gatehouse_session::oidc::{pkce_challenge, LoginState, OidcClient, OidcError};
use gatehouse_session::TokenVerifier;
use gatehouse_test_support::config::idp_client;
use gatehouse_test_support::idp::Idp;
use gatehouse_test_support::keys::{decode, now};
use gatehouse_test_support::process::{node_available, skip_or_fail};
use reqwest::Url;
use serde_json::{json, Value};

/// The IdP's default redirect and post-logout URIs for the `gatehouse` client.
const REDIRECT_URI: &str = "http://demo.localhost:8080/oauth/callback";
const POST_LOGOUT: &str = "http://demo.localhost:8080/";
const ALICE_SUB: &str = "00000000-0000-4000-8000-0000000a11ce";

fn start_idp() -> Idp {
    Idp::start(
        None,
        &[
            ("IDP_REDIRECT_URIS", REDIRECT_URI),
            ("IDP_POST_LOGOUT_REDIRECT_URIS", POST_LOGOUT),
            ("IDP_REFRESH_ROTATE", "1"),
        ],
    )
}

fn provider(issuer: &str, method: TokenEndpointAuthMethod) -> IdentityProvider {
    let mut p = idp_client(issuer, method);
    p.scopes = vec![
        "openid".to_string(),
        "email".to_string(),
        "profile".to_string(),
    ];
    p
}

fn client(provider: &IdentityProvider) -> OidcClient {
    let verifier = Arc::new(TokenVerifier::new(provider, 1000).expect("verifier"));
    OidcClient::new(provider, verifier).expect("OIDC client")
}

/// A minimal browser: a cookie jar (name -> value, paths ignored, as selftest.mjs does) and
/// manual redirects.
struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, String>,
}

/// Where a [`Browser::browse`] stopped.
enum Landing {
    /// A redirect that leaves the IdP (to the client's redirect URI, say).
    Left(Url),
    /// A non-redirect response from the IdP: final URL, status and body.
    Page(Url, u16, String),
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("browser client"),
            jar: HashMap::new(),
        }
    }

    fn store(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attr| {
                let attr = attr.trim().to_ascii_lowercase();
                attr == "max-age=0" || (attr.starts_with("expires=") && attr.contains("1970"))
            });
            if expired || value.trim().is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Requests `url` (a POST of `form` when given) and follows redirects while they stay on
    /// `origin`.
    async fn browse(&mut self, url: Url, form: Option<&[(&str, &str)]>, origin: &str) -> Landing {
        let mut current = url;
        let mut form = form;
        for _ in 0..20 {
            if !current.as_str().starts_with(origin) {
                return Landing::Left(current);
            }
            let request = match form.take() {
                Some(fields) => self.http.post(current.clone()).form(fields),
                None => self.http.get(current.clone()),
            };
            let response = request
                .header(reqwest::header::COOKIE, self.cookie_header())
                .send()
                .await
                .expect("IdP request");
            self.store(&response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .expect("Location")
                    .to_str()
                    .expect("ASCII Location");
                current = current.join(location).expect("Location URL");
                continue;
            }
            let body = response.text().await.expect("IdP body");
            return Landing::Page(current, status.as_u16(), body);
        }
        panic!("too many redirects");
    }

    /// Runs the login at the authorization `url` as `user` (or silently when the IdP session
    /// is still alive) and returns the callback's `code` and `state`.
    async fn login(
        &mut self,
        url: &str,
        origin: &str,
        user: &str,
        password: &str,
    ) -> (String, String) {
        let landing = self
            .browse(Url::parse(url).expect("authorization URL"), None, origin)
            .await;
        let callback = match landing {
            Landing::Left(callback) => callback,
            Landing::Page(page_url, status, html) => {
                assert_eq!(status, 200, "login form: {html:.300}");
                assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
                let action = form_action(&html);
                let action = page_url.join(&action).expect("form action URL");
                match self
                    .browse(
                        action,
                        Some(&[("username", user), ("password", password)]),
                        origin,
                    )
                    .await
                {
                    Landing::Left(callback) => callback,
                    Landing::Page(_, status, html) => {
                        panic!("login did not redirect to the client: {status} {html:.300}")
                    }
                }
            }
        };
        assert!(
            callback.as_str().starts_with(REDIRECT_URI),
            "callback {callback}"
        );
        let query: HashMap<String, String> = callback.query_pairs().into_owned().collect();
        (
            query.get("code").expect("code").clone(),
            query.get("state").expect("state").clone(),
        )
    }
}

/// The `action` of the first `<form>`, `&amp;` unescaped.
fn form_action(html: &str) -> String {
    let form = &html[html.find("<form").expect("a <form>")..];
    let start = form.find("action=\"").expect("form action") + "action=\"".len();
    let end = start + form[start..].find('"').expect("closing quote");
    form[start..end].replace("&amp;", "&")
}

fn decode_payload(jwt: &str) -> Value {
    decode(jwt).1
}

#[tokio::test]
async fn code_flow_against_the_real_idp() {
    if !node_available() {
        skip_or_fail(
            "code_flow_against_the_real_idp",
            "`node` is not installed; the real-IdP login-flow test needs it",
        );
        return;
    }
    let idp = tokio::task::spawn_blocking(start_idp)
        .await
        .expect("start task");
    let issuer = idp.issuer.clone();
    let origin = {
        let url = Url::parse(&issuer).expect("issuer URL");
        format!("{}://{}", url.scheme(), url.authority())
    };
    let oidc = client(&provider(
        &issuer,
        TokenEndpointAuthMethod::ClientSecretBasic,
    ));

    // ---- discovery
    let endpoints = oidc.endpoints().await.expect("discovery");
    assert_eq!(endpoints.issuer, issuer);
    assert_eq!(
        endpoints.authorization_endpoint,
        format!("{issuer}/protocol/openid-connect/auth")
    );
    assert_eq!(
        endpoints.token_endpoint,
        format!("{issuer}/protocol/openid-connect/token")
    );
    assert_eq!(
        endpoints.end_session_endpoint.as_deref(),
        Some(format!("{issuer}/protocol/openid-connect/logout").as_str())
    );
    assert!(endpoints.userinfo_endpoint.is_some());
    let again = oidc.endpoints().await.expect("cached");
    assert!(Arc::ptr_eq(&endpoints, &again), "discovery is cached");

    // ---- begin
    let (auth_url, state) = oidc.begin(REDIRECT_URI, "/app?x=1").await.expect("begin");
    let url = Url::parse(&auth_url).expect("URL");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(auth_url.starts_with(&endpoints.authorization_endpoint));
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], "gatehouse");
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["scope"], "openid email profile");
    assert_eq!(query["state"], state.state);
    assert_eq!(query["nonce"], state.nonce);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["code_challenge"],
        pkce_challenge(&state.code_verifier)
    );
    assert!((43..=128).contains(&state.code_verifier.len()));
    assert_eq!(state.state.len(), 43);
    assert_eq!(state.return_to, "/app?x=1");
    assert!(state.expires_at > now() && state.expires_at <= now() + 600);
    let (_, other) = oidc.begin(REDIRECT_URI, "/").await.expect("begin");
    assert_ne!(other.state, state.state);
    assert_ne!(other.nonce, state.nonce);
    assert_ne!(other.code_verifier, state.code_verifier);
    assert_eq!(LoginState::from_json(&state.to_json()), Some(state.clone()));

    // ---- login #1: a wrong nonce is refused, then the (used) code cannot be replayed
    let mut browser = Browser::new();
    let (code, returned_state) = browser
        .login(&auth_url, &origin, "alice", "alice-password")
        .await;
    assert!(state.state_matches(&returned_state));
    let mut wrong_nonce = state.clone();
    wrong_nonce.nonce = "not-the-nonce".to_string();
    assert_eq!(
        oidc.exchange(&code, &wrong_nonce, REDIRECT_URI)
            .await
            .expect_err("wrong nonce"),
        OidcError::NonceMismatch
    );
    match oidc.exchange(&code, &state, REDIRECT_URI).await {
        Err(OidcError::TokenEndpoint(status, error)) => {
            assert_eq!(status, 400);
            assert!(error.starts_with("invalid_grant"), "{error}");
        }
        other => panic!("a replayed code must fail at the token endpoint: {other:?}"),
    }
    let mut expired = state.clone();
    expired.expires_at = now() - 1;
    assert_eq!(
        oidc.exchange(&code, &expired, REDIRECT_URI)
            .await
            .expect_err("expired"),
        OidcError::LoginExpired
    );

    // ---- login #2 (silent: the IdP session is alive): the real exchange
    let (auth_url, state) = oidc.begin(REDIRECT_URI, "/").await.expect("begin");
    let (code, returned_state) = browser
        .login(&auth_url, &origin, "alice", "alice-password")
        .await;
    assert!(state.state_matches(&returned_state));
    let tokens = oidc
        .exchange(&code, &state, REDIRECT_URI)
        .await
        .expect("code exchange");
    assert_eq!(tokens.sub, ALICE_SUB);
    assert_eq!(tokens.claims["preferred_username"], "alice");
    assert_eq!(tokens.claims["nonce"], json!(state.nonce));
    assert_eq!(tokens.claims["aud"], "gatehouse", "the ID token's aud wins");
    let roles = tokens.claims["realm_access"]["roles"]
        .as_array()
        .expect("realm roles");
    assert!(roles.contains(&json!("admin")), "{roles:?}");
    assert!(tokens.claims["groups"]
        .as_array()
        .expect("groups")
        .contains(&json!("/developers")));
    assert_eq!(tokens.claims["email"], "alice@example.com");
    // `scope` and `azp` are only in the (verified, JWT) access token: merged in.
    assert!(tokens.claims["scope"]
        .as_str()
        .expect("scope")
        .contains("openid"));
    let sid = tokens.sid.clone().expect("sid");
    assert!(!sid.is_empty());
    assert_eq!(tokens.claims["sid"], json!(sid));
    let id_token = tokens.id_token.clone().expect("ID token");
    assert_eq!(decode_payload(&id_token)["sub"], ALICE_SUB);
    let access_exp = decode_payload(&tokens.access_token)["exp"]
        .as_u64()
        .expect("access exp");
    assert!(tokens.access_token_exp <= access_exp && tokens.access_token_exp > now());
    let refresh1 = tokens.refresh_token.clone().expect("refresh token");
    assert!(!format!("{tokens:?}").contains(&tokens.access_token));

    // ---- refresh: a new access token and a rotated refresh token; the old one is used up
    let refreshed = oidc.refresh(&refresh1).await.expect("refresh");
    assert_ne!(refreshed.access_token, tokens.access_token);
    let refresh2 = refreshed
        .refresh_token
        .clone()
        .expect("rotated refresh token");
    assert_ne!(refresh2, refresh1);
    assert_eq!(refreshed.sub, ALICE_SUB);
    assert_eq!(refreshed.claims["preferred_username"], "alice");
    assert!(refreshed.access_token_exp > now());
    match oidc.refresh(&refresh1).await {
        Err(OidcError::TokenEndpoint(400, error)) => {
            assert!(error.starts_with("invalid_grant"), "{error}")
        }
        other => panic!("a used-up refresh token must fail: {other:?}"),
    }
    assert!(matches!(
        oidc.refresh("garbage").await,
        Err(OidcError::TokenEndpoint(400, _))
    ));

    // ---- client_secret_post, bob, a fresh browser
    let post = client(&provider(
        &issuer,
        TokenEndpointAuthMethod::ClientSecretPost,
    ));
    let (auth_url, state) = post.begin(REDIRECT_URI, "/").await.expect("begin");
    let mut bob_browser = Browser::new();
    let (code, _) = bob_browser
        .login(&auth_url, &origin, "bob", "bob-password")
        .await;
    let bob = post
        .exchange(&code, &state, REDIRECT_URI)
        .await
        .expect("client_secret_post exchange");
    assert_eq!(bob.claims["preferred_username"], "bob");
    assert_eq!(bob.claims["groups"], json!([]));

    // ---- wrong client secret: the token endpoint refuses with 401
    let mut bad_secret = provider(&issuer, TokenEndpointAuthMethod::ClientSecretBasic);
    bad_secret.client_secret = Some(Secret::new("wrong"));
    let bad = client(&bad_secret);
    let (auth_url, state) = bad.begin(REDIRECT_URI, "/").await.expect("begin");
    let (code, _) = bob_browser
        .login(&auth_url, &origin, "bob", "bob-password")
        .await;
    match bad.exchange(&code, &state, REDIRECT_URI).await {
        Err(error @ OidcError::TokenEndpoint(401, _)) => {
            assert!(!error.to_string().contains("wrong"), "{error}");
        }
        other => panic!("a wrong secret must fail: {other:?}"),
    }

    // ---- end session: the URL carries the hint and the post-logout URI, and the IdP takes it
    let logout = oidc
        .end_session_url(Some(&id_token), Some(POST_LOGOUT), Some("bye"))
        .await
        .expect("end session")
        .expect("the IdP has an end_session_endpoint");
    let url = Url::parse(&logout).expect("logout URL");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(logout.starts_with(&format!("{issuer}/protocol/openid-connect/logout?")));
    assert_eq!(query["id_token_hint"], id_token);
    assert_eq!(query["post_logout_redirect_uri"], POST_LOGOUT);
    assert_eq!(query["state"], "bye");
    assert_eq!(query["client_id"], "gatehouse");
    match browser.browse(url, None, &origin).await {
        Landing::Page(_, status, html) => {
            assert_eq!(status, 200, "{html:.300}");
            assert!(html.contains("logout"), "{html:.300}");
        }
        Landing::Left(to) => panic!("unexpected redirect to {to}"),
    }
    let bare = oidc
        .end_session_url(None, None, None)
        .await
        .expect("end session")
        .expect("endpoint");
    assert_eq!(
        bare,
        format!("{issuer}/protocol/openid-connect/logout?client_id=gatehouse")
    );

    // ---- discovery failures
    let mut wrong_issuer = provider(&issuer, TokenEndpointAuthMethod::ClientSecretBasic);
    wrong_issuer.issuer = format!("{issuer}/other");
    match client(&wrong_issuer).endpoints().await {
        Err(OidcError::Discovery(msg)) => assert!(msg.contains("issuer"), "{msg}"),
        other => panic!("issuer mismatch must fail discovery: {other:?}"),
    }
    let mut unreachable = provider(&issuer, TokenEndpointAuthMethod::ClientSecretBasic);
    unreachable.discovery_url = "http://127.0.0.1:1/.well-known/openid-configuration".into();
    let unreachable = client(&unreachable);
    assert!(matches!(
        unreachable.begin(REDIRECT_URI, "/").await,
        Err(OidcError::Discovery(_))
    ));
    assert!(matches!(
        unreachable.end_session_url(None, None, None).await,
        Err(OidcError::Discovery(_))
    ));
    drop(idp);
}

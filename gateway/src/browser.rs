//! Browser login and sessions: the OIDC authorization code flow with PKCE on the built-in paths
//! (`/oauth/login`, `/oauth/callback`, `/oauth/logout`, `/oauth/userinfo`,
//! `/oauth/backchannel-logout`), the encrypted session cookie, session records in the configured
//! store (embedded memory store or Redis Cluster) behind a short local cache, and single-flight
//! token refresh across requests (in process) and replicas (a store lock; see `sessions.rs`).
//!
//! The cookie holds only a random session ID, sealed with AES-256-GCM and bound to the tenant
//! and the cookie name; the record (tenant, issuer, claims, expiry, and the refresh and ID
//! tokens sealed again; the access token is not kept) lives in the store. A new ID is minted at every
//! login (no fixation). The pre-login state (state, nonce, PKCE verifier, return URL) travels in
//! its own short-lived sealed cookie, one per login attempt so several tabs can log in at once;
//! it is single use (a store lock marks it spent) and expires.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatehouse_policy::redirect::safe_redirect;
use gatehouse_session::claims::Claims;
use gatehouse_session::cookie::{
    clear_cookie_header, find_cookie, new_session_id, set_cookie_header,
};
use gatehouse_session::oidc::LoginState;
use gatehouse_session::store::SessionRecord;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;

use crate::login::{
    TenantLogin, PURPOSE_ID_TOKEN, PURPOSE_REFRESH, PURPOSE_SESSION, PURPOSE_STATE,
};
pub use crate::responses::wants_html;
pub use crate::sessions::{session_claims, SessionOutcome, Sessions};

/// How long a login attempt may take at the IdP.
const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

/// The built-in browser paths on every tenant host (recognized during admission).
pub use gatehouse_policy::admit::Builtin;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes a form-urlencoded value (`+` is a space, `%XX` a byte; a bad escape stays as is).
fn percent_decode(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Whether a callback's `state` has the shape of the ones [`OidcClient::begin`] makes: 43
/// base64url characters (32 random bytes). Anything else never names a cookie.
pub(crate) fn is_state_shaped(state: &str) -> bool {
    state.len() == 43
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn state_cookie_name(login: &TenantLogin, state: &str) -> String {
    let tag: String = state.chars().take(12).collect();
    format!("{}_login_{tag}", login.cookie.name)
}

/// Writes a response with the common headers, `Set-Cookie`s and an optional body.
async fn respond(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    location: Option<&str>,
    cookies: &[String],
    body: Option<(&str, Bytes)>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(8))?;
    if let Some(l) = location {
        resp.insert_header(LOCATION, l)?;
    }
    for c in cookies {
        resp.append_header(SET_COOKIE, c.as_str())?;
    }
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    let len = body.as_ref().map(|(_, b)| b.len()).unwrap_or(0);
    if let Some((content_type, _)) = &body {
        resp.insert_header(CONTENT_TYPE, *content_type)?;
    }
    resp.insert_header(CONTENT_LENGTH, len)?;
    crate::responses::apply_common_headers(&mut resp, ctx);
    let head = session.req_header().method == http::Method::HEAD;
    match body {
        Some((_, b)) if !head => {
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(b), true).await
        }
        _ => session.write_response_header(Box::new(resp), true).await,
    }
}

/// A small HTML page for login failures a person sees (no details an attacker could use).
fn page(title: &str, message: &str, request_id: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{message}</p><p><a href=\"/oauth/login\">Log in again</a></p><p><small>Request ID: {request_id}</small></p></body></html>\n"
    ))
}

/// Answers with the small HTML page for a login that cannot go on.
async fn refusal(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    cookies: &[String],
    title: &str,
    message: &str,
) -> pingora::Result<()> {
    let body = page(title, message, ctx.request_id());
    respond(
        session,
        ctx,
        status,
        None,
        cookies,
        Some(("text/html; charset=utf-8", body)),
    )
    .await
}

/// The refusal when the session store cannot take a new session.
async fn store_unavailable(session: &mut Session, ctx: &RequestCtx) -> pingora::Result<()> {
    refusal(
        session,
        ctx,
        503,
        &[],
        "Login unavailable",
        "Sessions cannot be stored right now. Try again shortly.",
    )
    .await
}

/// `/oauth/login?rd=<path>` for the current request's path and query, for a 302.
pub fn login_location(path_and_query: &str) -> String {
    let mut rd = String::with_capacity(path_and_query.len() + 16);
    for b in path_and_query.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                rd.push(b as char)
            }
            _ => rd.push_str(&format!("%{b:02X}")),
        }
    }
    format!("/oauth/login?rd={rd}")
}

/// Serves a built-in browser path. Returns after writing the response.
pub async fn serve_builtin(
    which: Builtin,
    session: &mut Session,
    ctx: &mut RequestCtx,
    login: Option<&TenantLogin>,
    sessions: &Sessions,
    claims: Option<Arc<Claims>>,
) -> pingora::Result<()> {
    let Some(login) = login else {
        // A tenant without `login`: only userinfo (for bearer callers) makes sense.
        return match (which, claims) {
            (Builtin::Userinfo, Some(c)) => userinfo(session, ctx, &c).await,
            _ => {
                respond(
                    session,
                    ctx,
                    404,
                    None,
                    &[],
                    Some(("text/plain", Bytes::from_static(b"not found\n"))),
                )
                .await
            }
        };
    };
    let host = session
        .req_header()
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query = session.req_header().uri.query().map(str::to_string);
    match which {
        Builtin::Login => {
            let rd = query_param(query.as_deref(), "rd").unwrap_or(std::borrow::Cow::Borrowed("/"));
            let return_to = safe_redirect(&rd, &host, &login.redirect_hosts);
            match login
                .oidc
                .begin(&login.login.redirect_url, &return_to)
                .await
            {
                Ok((url, state)) => {
                    let sealed = serde_json::to_vec(&state)
                        .ok()
                        .and_then(|json| login.codec.seal(PURPOSE_STATE, &json).ok());
                    let Some(sealed) = sealed else {
                        return respond(session, ctx, 500, None, &[], None).await;
                    };
                    let cookie = set_cookie_header(
                        &login.cookie,
                        &state_cookie_name(login, &state.state),
                        &sealed,
                        Some(LOGIN_STATE_TTL),
                    );
                    respond(session, ctx, 302, Some(&url), &[cookie], None).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a login: the identity provider is unavailable");
                    refusal(
                        session,
                        ctx,
                        503,
                        &[],
                        "Login unavailable",
                        "The identity provider cannot be reached. Try again shortly.",
                    )
                    .await
                }
            }
        }
        Builtin::Callback => callback(session, ctx, login, sessions, query.as_deref()).await,
        Builtin::Logout => logout(session, ctx, login, sessions).await,
        Builtin::Userinfo => match claims {
            Some(c) => userinfo(session, ctx, &c).await,
            None => {
                respond(
                    session,
                    ctx,
                    401,
                    None,
                    &[],
                    Some((
                        "application/json",
                        Bytes::from_static(b"{\"error\":\"unauthenticated\"}\n"),
                    )),
                )
                .await
            }
        },
        Builtin::BackchannelLogout => backchannel_logout(session, ctx, login, sessions).await,
    }
}

async fn callback(
    session: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
    query: Option<&str>,
) -> pingora::Result<()> {
    let request_id = ctx.request_id().to_string();
    let code = query_param(query, "code");
    let state_param = query_param(query, "state");
    let (Some(code), Some(state_param)) = (code, state_param) else {
        return refusal(
            session,
            ctx,
            403,
            &[],
            "Login failed",
            "The identity provider did not complete the login.",
        )
        .await;
    };
    if !is_state_shaped(&state_param) {
        tracing::info!(request_id = %request_id, "login callback refused: malformed state");
        return refusal(
            session,
            ctx,
            400,
            &[],
            "Login failed",
            "The login response is malformed.",
        )
        .await;
    }
    let cookie_name = state_cookie_name(login, &state_param);
    let clear_state = clear_cookie_header(&login.cookie, &cookie_name);
    let cookies = session
        .req_header()
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let state: Option<LoginState> = find_cookie(cookies, &cookie_name)
        .and_then(|sealed| login.codec.open(PURPOSE_STATE, sealed))
        .and_then(|json| serde_json::from_slice(&json).ok());
    let valid = state
        .as_ref()
        .filter(|s| s.state_matches(&state_param) && !s.is_expired(unix_now()));
    let Some(state) = valid else {
        tracing::info!(request_id = %request_id, "login callback refused: state missing, mismatched or expired");
        return refusal(session, ctx, 403, &[clear_state], "Login expired", "This login link is not valid in this browser any more (expired, already used, or started elsewhere).").await;
    };
    let store = match sessions.store().await {
        Ok(s) => s,
        Err(_) => {
            return store_unavailable(session, ctx).await;
        }
    };
    // Single use: the first callback for a state takes its marker; a replay finds it taken.
    match store
        .try_lock(&format!("login-state:{}", state.state), LOGIN_STATE_TTL)
        .await
    {
        Ok(Some(marker)) => marker.keep(), // held until it expires with the state
        Ok(None) => {
            return refusal(
                session,
                ctx,
                403,
                &[clear_state],
                "Login expired",
                "This login was already completed.",
            )
            .await;
        }
        Err(_) => {
            return store_unavailable(session, ctx).await;
        }
    }
    let tokens = match login
        .oidc
        .exchange(&code, state, &login.login.redirect_url)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            sessions.metrics.record_login(&login.tenant, false);
            tracing::info!(request_id = %request_id, error = %e, "login callback refused by the token exchange");
            return refusal(
                session,
                ctx,
                403,
                &[clear_state],
                "Login failed",
                "The identity provider did not accept this login.",
            )
            .await;
        }
    };
    let now = unix_now();
    let ttl = login.cookie.session_ttl;
    let seal = |purpose: &str, token: &Option<String>| {
        token
            .as_deref()
            .and_then(|t| login.codec.seal(purpose, t.as_bytes()).ok())
    };
    let record = SessionRecord {
        tenant: login.tenant.clone(),
        issuer: login.issuer.clone(),
        sub: tokens.sub.clone(),
        sid: tokens.sid.clone(),
        claims: tokens.claims.clone().into(),
        access_token_exp: tokens.access_token_exp,
        refresh_token_enc: seal(PURPOSE_REFRESH, &tokens.refresh_token),
        id_token_enc: seal(PURPOSE_ID_TOKEN, &tokens.id_token),
        created_at: now,
        expires_at: now + ttl.as_secs(),
        parsed: Default::default(),
    };
    // A fresh ID at every login: a session cookie planted before login is never promoted.
    let id = new_session_id();
    if store.put(&id, &record, ttl).await.is_err() {
        return store_unavailable(session, ctx).await;
    }
    let Ok(sealed) = login.codec.seal(PURPOSE_SESSION, id.as_bytes()) else {
        return respond(session, ctx, 500, None, &[], None).await;
    };
    let session_cookie = set_cookie_header(&login.cookie, &login.cookie.name, &sealed, Some(ttl));
    sessions.metrics.record_login(&login.tenant, true);
    let target = state.return_to.clone();
    respond(
        session,
        ctx,
        302,
        Some(&target),
        &[session_cookie, clear_state],
        None,
    )
    .await
}

async fn logout(
    session: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
) -> pingora::Result<()> {
    let mut id_token = None;
    if let (Some(id), Ok(store)) = (
        crate::sessions::session_id(session, login),
        sessions.store().await,
    ) {
        match store.get(&id).await {
            Ok(Some(record)) if !record.belongs_to(&login.tenant, &login.issuer) => {}
            Ok(Some(record)) => {
                id_token = record
                    .id_token_enc
                    .as_deref()
                    .and_then(|sealed| login.codec.open(PURPOSE_ID_TOKEN, sealed))
                    .and_then(|t| String::from_utf8(t).ok());
                let _ = store.delete(&id).await;
            }
            // Unreadable or unreachable: delete anyway, logging out must not depend on it.
            _ => {
                let _ = store.delete(&id).await;
            }
        }
    }
    let clear = clear_cookie_header(&login.cookie, &login.cookie.name);
    sessions.metrics.record_logout(&login.tenant);
    let post_logout = login.login.post_logout_redirect_url.as_deref();
    let location = match login
        .oidc
        .end_session_url(id_token.as_deref(), post_logout, None)
        .await
    {
        Ok(Some(url)) => url,
        _ => post_logout.unwrap_or("/").to_string(),
    };
    respond(session, ctx, 302, Some(&location), &[clear], None).await
}

async fn userinfo(
    session: &mut Session,
    ctx: &mut RequestCtx,
    claims: &Claims,
) -> pingora::Result<()> {
    let body = serde_json::json!({
        "sub": claims.sub,
        "preferred_username": claims.preferred_username,
        "email": claims.email,
        "realm_roles": claims.realm_roles,
        "client_roles": claims.client_roles.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "groups": claims.groups,
    });
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    bytes.push(b'\n');
    respond(
        session,
        ctx,
        200,
        None,
        &[],
        Some(("application/json", Bytes::from(bytes))),
    )
    .await
}

async fn backchannel_logout(
    session: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
) -> pingora::Result<()> {
    let bad = Some((
        "application/json",
        Bytes::from_static(b"{\"error\":\"invalid_request\"}\n"),
    ));
    if session.req_header().method != http::Method::POST {
        return respond(session, ctx, 405, None, &[], None).await;
    }
    // The body is a small form: logout_token=<JWT>.
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            return respond(session, ctx, 413, None, &[], None).await;
        }
    }
    let form = String::from_utf8_lossy(&body).into_owned();
    let Some(token) = query_param(Some(&form), "logout_token") else {
        return respond(session, ctx, 400, None, &[], bad).await;
    };
    let Some((sub, sid)) = logout_token_subject(login, &token).await else {
        return respond(session, ctx, 400, None, &[], bad).await;
    };
    let Ok(store) = sessions.store().await else {
        return respond(session, ctx, 503, None, &[], None).await;
    };
    match store
        .delete_by_sub_or_sid(sub.as_deref(), sid.as_deref())
        .await
    {
        Ok(n) => {
            tracing::info!(sessions = n, "back-channel logout");
            respond(session, ctx, 200, None, &[], None).await
        }
        Err(_) => respond(session, ctx, 503, None, &[], None).await,
    }
}

/// The `sub`/`sid` a back-channel logout token names, once it is verified like any token of the
/// provider (signature, iss, aud, exp) and is shaped as OpenID Back-Channel Logout 1.0 demands:
/// the logout event present, no `nonce`, and a `sub` or a `sid`.
async fn logout_token_subject(
    login: &TenantLogin,
    token: &str,
) -> Option<(Option<String>, Option<String>)> {
    let claims = match login
        .verifier
        .verify_for(token, gatehouse_session::TokenUse::Logout)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = e.reason(), "back-channel logout token refused");
            return None;
        }
    };
    let has_event = claims
        .lookup("events")
        .and_then(|e| e.as_object())
        .is_some_and(|e| e.contains_key("http://schemas.openid.net/event/backchannel-logout"));
    if !has_event || claims.lookup("nonce").is_some() {
        tracing::info!("back-channel logout token refused: not a logout token");
        return None;
    }
    let sid = claims
        .lookup("sid")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let sub = claims.sub.clone();
    (sub.is_some() || sid.is_some()).then_some((sub, sid))
}

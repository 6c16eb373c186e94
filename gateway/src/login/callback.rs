//! `/oauth/callback?code=…&state=…`: completes a login. The state must be well shaped, match
//! this browser's login-state cookie, be unexpired and unused (a store marker makes it single
//! use); then the code is exchanged and a session with a fresh ID is stored.

use gatehouse_policy::login::LoginRefusal;
use gatehouse_session::cookie::{clear_cookie_header, new_session_id, set_cookie_header};
use gatehouse_session::oidc::TokenSet;
use gatehouse_session::store::SessionRecord;
use pingora::proxy::Session;

use super::store::Sessions;
use super::{form, state};
use crate::clock::unix_now;
use crate::ctx::RequestCtx;
use crate::login_settings::tenant::{
    TenantLogin, PURPOSE_ID_TOKEN, PURPOSE_REFRESH, PURPOSE_SESSION,
};
use crate::responses;

/// Completes the login and redirects to its return path with the session cookie, or refuses.
pub(super) async fn serve(
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
) -> pingora::Result<()> {
    let query = downstream.req_header().uri.query().map(str::to_string);
    let code = form::param(query.as_deref(), "code");
    let state_param = form::param(query.as_deref(), "state");
    let (Some(code), Some(state_param)) = (code, state_param) else {
        return responses::refuse_login(downstream, ctx, LoginRefusal::Incomplete, &[]).await;
    };
    if !state::is_state_shaped(&state_param) {
        return responses::refuse_login(downstream, ctx, LoginRefusal::MalformedState, &[]).await;
    }
    let cookie_name = state::cookie_name(login, &state_param);
    let clear_state = [clear_cookie_header(&login.cookie, &cookie_name)];
    let valid = state::open(downstream, login, &cookie_name)
        .filter(|s| s.state_matches(&state_param) && !s.is_expired(unix_now()));
    let Some(login_state) = valid else {
        return responses::refuse_login(downstream, ctx, LoginRefusal::UnknownState, &clear_state)
            .await;
    };
    let Ok(store) = sessions.store().await else {
        return responses::refuse_login(downstream, ctx, LoginRefusal::StoreUnavailable, &[]).await;
    };
    // Single use: the first callback for a state takes its marker; a replay finds it taken.
    let marker = format!("login-state:{}", login_state.state);
    match store.try_lock(&marker, state::LOGIN_STATE_TTL).await {
        Ok(Some(marker)) => marker.keep(), // held until it expires with the state
        Ok(None) => {
            return responses::refuse_login(downstream, ctx, LoginRefusal::StateUsed, &clear_state)
                .await
        }
        Err(_) => {
            return responses::refuse_login(downstream, ctx, LoginRefusal::StoreUnavailable, &[])
                .await
        }
    }
    let tokens = match login
        .oidc
        .exchange(&code, &login_state, &login.login.redirect_url)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            sessions.metrics.record_login(&login.tenant, false);
            tracing::info!(request_id = ctx.request_id(), error = %e, "login callback refused by the token exchange");
            let refusal = LoginRefusal::ExchangeRefused;
            return responses::refuse_login(downstream, ctx, refusal, &clear_state).await;
        }
    };
    let record = new_record(login, &tokens);
    let ttl = login.cookie.session_ttl;
    // A fresh ID at every login: a session cookie planted before login is never promoted.
    let id = new_session_id();
    if store.put(&id, &record, ttl).await.is_err() {
        return responses::refuse_login(downstream, ctx, LoginRefusal::StoreUnavailable, &[]).await;
    }
    let Ok(sealed) = login.codec.seal(PURPOSE_SESSION, id.as_bytes()) else {
        return responses::error_status(downstream, ctx, 500).await;
    };
    let session_cookie = set_cookie_header(&login.cookie, &login.cookie.name, &sealed, Some(ttl));
    sessions.metrics.record_login(&login.tenant, true);
    let [clear_state] = clear_state;
    let cookies = [session_cookie, clear_state];
    let target = login_state.return_to.as_str();
    responses::answer(downstream, ctx, 302, Some(target), &cookies, None).await
}

/// The session record of a completed login: the tenant and its issuer, the identity, and the
/// refresh and ID tokens sealed (the access token is not kept).
fn new_record(login: &TenantLogin, tokens: &TokenSet) -> SessionRecord {
    let now = unix_now();
    let seal = |purpose: &str, token: &Option<String>| {
        token
            .as_deref()
            .and_then(|t| login.codec.seal(purpose, t.as_bytes()).ok())
    };
    SessionRecord {
        tenant: login.tenant.clone(),
        issuer: login.issuer.clone(),
        sub: tokens.sub.clone(),
        sid: tokens.sid.clone(),
        claims: tokens.claims.clone().into(),
        access_token_exp: tokens.access_token_exp,
        refresh_token_enc: seal(PURPOSE_REFRESH, &tokens.refresh_token),
        id_token_enc: seal(PURPOSE_ID_TOKEN, &tokens.id_token),
        created_at: now,
        expires_at: now + login.cookie.session_ttl.as_secs(),
        parsed: Default::default(),
    }
}

//! `/oauth/backchannel-logout` (OpenID Back-Channel Logout 1.0): the IdP posts a logout token;
//! every session of its `sub` or `sid` ends, on every replica sharing the store.

use gatehouse_policy::login::LoginRefusal;
use gatehouse_session::TokenUse;
use pingora::proxy::Session;

use super::form;
use super::store::Sessions;
use crate::ctx::RequestCtx;
use crate::login_settings::tenant::TenantLogin;
use crate::responses;

/// The largest logout request body read.
const MAX_BODY: usize = 64 * 1024;

/// Ends the sessions a valid logout token names: 200, or a refusal.
pub(super) async fn serve(
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
) -> pingora::Result<()> {
    if downstream.req_header().method != http::Method::POST {
        return responses::refuse_login(downstream, ctx, LoginRefusal::LogoutMethod, &[]).await;
    }
    // The body is a small form: logout_token=<JWT>.
    let mut body = Vec::new();
    while let Some(chunk) = downstream.read_request_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return responses::refuse_login(downstream, ctx, LoginRefusal::LogoutTooLarge, &[])
                .await;
        }
    }
    let form = String::from_utf8_lossy(&body);
    let subject = match form::param(Some(&form), "logout_token") {
        Some(token) => logout_token_subject(login, &token).await,
        None => None,
    };
    let Some((sub, sid)) = subject else {
        return responses::refuse_login(downstream, ctx, LoginRefusal::InvalidLogoutToken, &[])
            .await;
    };
    let Ok(store) = sessions.store().await else {
        return responses::refuse_login(downstream, ctx, LoginRefusal::LogoutStoreUnavailable, &[])
            .await;
    };
    match store
        .delete_by_sub_or_sid(sub.as_deref(), sid.as_deref())
        .await
    {
        Ok(n) => {
            tracing::info!(sessions = n, "back-channel logout");
            responses::answer(downstream, ctx, 200, None, &[], None).await
        }
        Err(_) => {
            responses::refuse_login(downstream, ctx, LoginRefusal::LogoutStoreUnavailable, &[])
                .await
        }
    }
}

/// The `sub`/`sid` a back-channel logout token names, once it is verified like any token of the
/// provider (signature, iss, aud, exp) and is shaped as OpenID Back-Channel Logout 1.0 demands:
/// the logout event present, no `nonce`, and a `sub` or a `sid`.
async fn logout_token_subject(
    login: &TenantLogin,
    token: &str,
) -> Option<(Option<String>, Option<String>)> {
    let claims = match login.verifier.verify_for(token, TokenUse::Logout).await {
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

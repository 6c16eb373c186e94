//! `/oauth/logout`: ends the browser's session (the record is deleted even when it cannot be
//! read) and redirects to the IdP's end-session endpoint, or to `post-logout-redirect-url`.

use gatehouse_session::cookie::clear_cookie_header;
use pingora::proxy::Session;

use super::sessions::session_id;
use super::store::Sessions;
use crate::ctx::RequestCtx;
use crate::login_settings::tenant::{TenantLogin, PURPOSE_ID_TOKEN};
use crate::responses;

/// Deletes the session, clears its cookie and redirects.
pub(super) async fn serve(
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
    sessions: &Sessions,
) -> pingora::Result<()> {
    let mut id_token = None;
    if let (Some(id), Ok(store)) = (
        session_id(downstream.req_header(), login),
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
    responses::answer(downstream, ctx, 302, Some(&location), &[clear], None).await
}

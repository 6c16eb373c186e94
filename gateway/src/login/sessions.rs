//! Browser sessions on requests: the session a request's cookie names (only ever for the tenant
//! that created it), refreshed when due (`refresh.rs`).

use std::sync::Arc;

use gatehouse_session::claims::Claims;
use gatehouse_session::cookie::find_cookie;
use pingora::http::RequestHeader;

use super::refresh::{refresh, refresh_due, Refreshed};
use super::store::Sessions;
use crate::clock::unix_now;
use crate::login_settings::cookies::request_cookies;
use crate::login_settings::tenant::{TenantLogin, PURPOSE_SESSION};

/// The session ID in the request's session cookie, if the cookie opens for this tenant.
pub(crate) fn session_id(req: &RequestHeader, login: &TenantLogin) -> Option<String> {
    let sealed = find_cookie(request_cookies(req), &login.cookie.name)?;
    let id = login.codec.open(PURPOSE_SESSION, sealed)?;
    String::from_utf8(id).ok()
}

/// Why a browser request could not be served with a session.
pub enum SessionOutcome {
    /// A valid session: its claims.
    Authenticated(Arc<Claims>),
    /// No (usable) session cookie.
    None,
    /// The store cannot be reached and the tenant fails closed, or the session's access token
    /// has expired and the IdP cannot refresh it right now.
    Unavailable,
}

/// The claims of the request's browser session, refreshing its tokens when its access token
/// is within `refresh-before-expiry` of expiring (see the module docs for the rules). A record
/// created for another tenant or issuer is no session.
pub async fn session_claims(
    req: &RequestHeader,
    login: &TenantLogin,
    sessions: &Sessions,
) -> SessionOutcome {
    let Some(id) = session_id(req, login) else {
        return SessionOutcome::None;
    };
    let store = match sessions.store().await {
        Ok(s) => s,
        Err(_) => return SessionOutcome::Unavailable,
    };
    let record = match store.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return SessionOutcome::None,
        Err(_) => return SessionOutcome::Unavailable,
    };
    if !record.belongs_to(&login.tenant, &login.issuer) {
        tracing::info!(tenant = %login.tenant, "session refused: it belongs to another tenant");
        return SessionOutcome::None;
    }
    let before = login.login.refresh_before_expiry.as_secs();
    if !refresh_due(&record, unix_now(), before) || record.refresh_token_enc.is_none() {
        return SessionOutcome::Authenticated(record.identity());
    }
    match refresh(&id, login, sessions, store, record).await {
        Refreshed::Record(r) => SessionOutcome::Authenticated(r.identity()),
        Refreshed::Ended => SessionOutcome::None,
        Refreshed::Unavailable => SessionOutcome::Unavailable,
    }
}

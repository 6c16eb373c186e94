//! The login-state cookie: one per login attempt, named after its `state`, carrying the sealed
//! [`LoginState`] (state, nonce, PKCE verifier, return URL) from `/oauth/login` to
//! `/oauth/callback`.

use std::time::Duration;

use gatehouse_session::cookie::find_cookie;
use gatehouse_session::oidc::LoginState;
use pingora::proxy::Session;

use crate::login_settings::cookies::request_cookies;
use crate::login_settings::tenant::{TenantLogin, PURPOSE_STATE};

/// How long a login attempt may take at the IdP.
pub(super) const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

/// Whether a callback's `state` has the shape of the ones `OidcClient::begin` makes: 43
/// base64url characters (32 random bytes). Anything else never names a cookie.
pub(super) fn is_state_shaped(state: &str) -> bool {
    state.len() == 43
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The name of the login-state cookie of `state`: the session cookie's name, `_login_` and the
/// state's first 12 characters.
pub(super) fn cookie_name(login: &TenantLogin, state: &str) -> String {
    let tag: String = state.chars().take(12).collect();
    format!("{}_login_{tag}", login.cookie.name)
}

/// Seals `state` for its cookie (`None` only if it cannot be serialized or sealed).
pub(super) fn seal(login: &TenantLogin, state: &LoginState) -> Option<String> {
    let json = serde_json::to_vec(state).ok()?;
    login.codec.seal(PURPOSE_STATE, &json).ok()
}

/// The login state in the request's cookie `name`, if one opens for this tenant.
pub(super) fn open(downstream: &Session, login: &TenantLogin, name: &str) -> Option<LoginState> {
    let sealed = find_cookie(request_cookies(downstream.req_header()), name)?;
    let json = login.codec.open(PURPOSE_STATE, sealed)?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_43_base64url_characters_are_a_state() {
        assert!(is_state_shaped(&("A-_z".repeat(10) + "xyz")));
        for bad in [
            "forged".to_string(),
            String::new(),
            "A".repeat(42),
            "A".repeat(44),
            format!("{}.", "A".repeat(42)),
            format!("{}%", "A".repeat(42)),
        ] {
            assert!(!is_state_shaped(&bad), "{bad:?}");
        }
    }
}

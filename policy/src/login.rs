//! Why the built-in browser paths (`/oauth/login`, `/oauth/callback`, `/oauth/logout`,
//! `/oauth/userinfo`, `/oauth/backchannel-logout`) refuse a request: each reason with its status
//! and a stable metric label, carried by [`Denial::Login`](crate::snapshot::Denial::Login).

use std::fmt;

/// A refusal of a built-in browser path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// A built-in login path on a tenant without `login`: 404.
    NotConfigured,
    /// The identity provider cannot be reached to start a login: 503.
    ProviderUnavailable,
    /// A callback without `code` or `state` (the IdP did not complete the login): 403.
    Incomplete,
    /// A callback `state` not shaped like the ones the gateway makes: 400.
    MalformedState,
    /// No login-state cookie opens for the callback's `state`, or it does not match or has
    /// expired: 403.
    UnknownState,
    /// The callback's `state` was already used (a replay): 403.
    StateUsed,
    /// The identity provider refused the authorization code: 403.
    ExchangeRefused,
    /// The session store cannot take the new session: 503.
    StoreUnavailable,
    /// `/oauth/userinfo` without a bearer token or a session: 401.
    NoIdentity,
    /// A back-channel logout that is not a POST: 405.
    LogoutMethod,
    /// A back-channel logout body over the limit: 413.
    LogoutTooLarge,
    /// A back-channel logout without a valid logout token: 400.
    InvalidLogoutToken,
    /// The session store cannot end the sessions a logout token names: 503.
    LogoutStoreUnavailable,
}

impl LoginRefusal {
    /// The HTTP status for this reason.
    pub fn status(&self) -> u16 {
        match self {
            LoginRefusal::NotConfigured => 404,
            LoginRefusal::MalformedState | LoginRefusal::InvalidLogoutToken => 400,
            LoginRefusal::NoIdentity => 401,
            LoginRefusal::Incomplete
            | LoginRefusal::UnknownState
            | LoginRefusal::StateUsed
            | LoginRefusal::ExchangeRefused => 403,
            LoginRefusal::LogoutMethod => 405,
            LoginRefusal::LogoutTooLarge => 413,
            LoginRefusal::ProviderUnavailable
            | LoginRefusal::StoreUnavailable
            | LoginRefusal::LogoutStoreUnavailable => 503,
        }
    }

    /// A short, stable reason for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginRefusal::NotConfigured => "login_not_configured",
            LoginRefusal::ProviderUnavailable => "login_provider_unavailable",
            LoginRefusal::Incomplete => "login_incomplete",
            LoginRefusal::MalformedState => "login_state_malformed",
            LoginRefusal::UnknownState => "login_state_unknown",
            LoginRefusal::StateUsed => "login_state_used",
            LoginRefusal::ExchangeRefused => "login_code_refused",
            LoginRefusal::StoreUnavailable => "login_store_unavailable",
            LoginRefusal::NoIdentity => "userinfo_unauthenticated",
            LoginRefusal::LogoutMethod => "logout_method_not_allowed",
            LoginRefusal::LogoutTooLarge => "logout_body_too_large",
            LoginRefusal::InvalidLogoutToken => "logout_token_invalid",
            LoginRefusal::LogoutStoreUnavailable => "logout_store_unavailable",
        }
    }
}

impl fmt::Display for LoginRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_login_refusal_maps_to_its_status_and_a_distinct_reason() {
        use LoginRefusal::*;
        let table = [
            (NotConfigured, 404),
            (ProviderUnavailable, 503),
            (Incomplete, 403),
            (MalformedState, 400),
            (UnknownState, 403),
            (StateUsed, 403),
            (ExchangeRefused, 403),
            (StoreUnavailable, 503),
            (NoIdentity, 401),
            (LogoutMethod, 405),
            (LogoutTooLarge, 413),
            (InvalidLogoutToken, 400),
            (LogoutStoreUnavailable, 503),
        ];
        let mut reasons = std::collections::HashSet::new();
        for (refusal, status) in table {
            assert_eq!(refusal.status(), status, "{refusal:?}");
            let reason = refusal.reason();
            assert!(
                reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{reason}"
            );
            assert!(reasons.insert(reason), "{reason} used twice");
        }
    }
}

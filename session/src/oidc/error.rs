//! Why a login step failed, as a stable reason for logs and metrics.

/// Why a login step failed. `Display` never includes tokens, codes or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcError {
    /// The discovery document could not be fetched or lacks what the flow needs (issuer
    /// mismatch, no `authorization_endpoint` / `token_endpoint`, a non-http(s) URL).
    Discovery(String),
    /// The token endpoint answered with this non-2xx status; the string is the OAuth `error`
    /// code (and a sanitized, truncated `error_description`), or a description of an unusable
    /// 2xx body (status then as received).
    TokenEndpoint(u16, String),
    /// The ID token is missing or invalid; the reason is a stable snake_case word (the
    /// [`TokenError::reason`](crate::TokenError::reason) of the verifier, or `missing`,
    /// `wrong_audience`, `wrong_azp`, `missing_sub`, `sub_mismatch`).
    InvalidIdToken(&'static str),
    /// The ID token's `nonce` is missing or differs from the login's.
    NonceMismatch,
    /// The login state expired before the callback ([`LOGIN_STATE_TTL`](super::LOGIN_STATE_TTL)).
    LoginExpired,
    /// The IdP could not be reached (connect error, timeout, body too large or unreadable).
    Network(String),
}

impl OidcError {
    /// A stable snake_case reason, for logs and metric labels (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Discovery(_) => "discovery",
            OidcError::TokenEndpoint(..) => "token_endpoint",
            OidcError::InvalidIdToken(_) => "invalid_id_token",
            OidcError::NonceMismatch => "nonce_mismatch",
            OidcError::LoginExpired => "login_expired",
            OidcError::Network(_) => "network",
        }
    }
}

impl std::fmt::Display for OidcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OidcError::Discovery(msg) => write!(f, "OIDC discovery failed: {msg}"),
            OidcError::TokenEndpoint(status, msg) => {
                write!(f, "token endpoint answered {status}: {msg}")
            }
            OidcError::InvalidIdToken(reason) => write!(f, "invalid ID token: {reason}"),
            OidcError::NonceMismatch => f.write_str("the ID token's nonce does not match"),
            OidcError::LoginExpired => f.write_str("the login state has expired"),
            OidcError::Network(msg) => write!(f, "identity provider unreachable: {msg}"),
        }
    }
}

impl std::error::Error for OidcError {}

/// Printable ASCII without quotes or backslashes, at most 200 characters: what of an IdP's
/// `error_description` may reach a log.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_without_details_leaking() {
        assert_eq!(
            OidcError::TokenEndpoint(400, "invalid_grant".into()).to_string(),
            "token endpoint answered 400: invalid_grant"
        );
        assert_eq!(OidcError::NonceMismatch.reason(), "nonce_mismatch");
        assert_eq!(
            OidcError::InvalidIdToken("wrong_audience").to_string(),
            "invalid ID token: wrong_audience"
        );
        assert_eq!(sanitize("a\"b\\c\nd\u{e9}"), "abcd");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
    }
}

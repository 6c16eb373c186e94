//! Why a token was refused: one variant per reason, each a 401 at the gateway.

/// Why a bearer token was refused. Each maps to a 401; the gateway turns it into a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a compact JWS: wrong number of parts, bad base64url, non-JSON header or payload,
    /// missing `alg` or `exp`, a `crit` header, or over [`MAX_TOKEN_BYTES`](super::MAX_TOKEN_BYTES).
    Malformed,
    /// `alg` is not in the provider's allowlist, or is `none` / `HS*` (always refused), or the
    /// key named by `kid` cannot verify that algorithm.
    UnsupportedAlgorithm,
    /// No key has the token's `kid` (after at most one refetch).
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp + leeway <= now`.
    Expired,
    /// `nbf - leeway > now` or `iat - leeway > now`.
    NotYetValid,
    /// `iss` differs from the provider's issuer.
    WrongIssuer,
    /// No `aud` value is one of the provider's audiences.
    WrongAudience,
    /// `auth_time` is older than the max token age (or missing when one is set).
    TooOld,
    /// No JWKS has been loaded yet for the provider.
    KeysUnavailable,
    /// The introspection endpoint answered `active: false` (revoked, expired, unknown or
    /// garbage token).
    Inactive,
    /// The introspection endpoint could not be asked or gave no usable answer (network error,
    /// timeout, non-2xx status such as 401 for bad client credentials, a response that is not
    /// a JSON object with a boolean `active`, no endpoint known, or introspection disabled).
    IntrospectionUnavailable,
    /// Validly signed, but not an access token: an ID token (a `nonce`, or Keycloak's payload
    /// `typ: ID`), a logout token (an `events` claim), a refresh token, or a JOSE header `typ`
    /// other than `JWT` / `at+jwt` (see [`TokenUse`](super::TokenUse)).
    NotAccessToken,
    /// The provider lists `authorized-parties` and the token's `azp` is missing or not listed.
    UnauthorizedParty,
}

impl TokenError {
    /// A stable snake_case reason, for logs and metric labels (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnsupportedAlgorithm => "unsupported_alg",
            TokenError::UnknownKid => "unknown_kid",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::TooOld => "too_old",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::Inactive => "inactive",
            TokenError::IntrospectionUnavailable => "introspection_unavailable",
            TokenError::NotAccessToken => "not_access_token",
            TokenError::UnauthorizedParty => "unauthorized_party",
        }
    }

    /// A short client-safe description (no token contents, no key ids, no issuer).
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is malformed",
            TokenError::UnsupportedAlgorithm => "the token's signing algorithm is not accepted",
            TokenError::UnknownKid => "the token was signed with an unknown key",
            TokenError::BadSignature => "the token's signature is invalid",
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::WrongIssuer => "the token was issued by another issuer",
            TokenError::WrongAudience => "the token is not meant for this audience",
            TokenError::TooOld => "the authentication is too old",
            TokenError::KeysUnavailable => "the signing keys are not available yet",
            TokenError::Inactive => "the token is not active",
            TokenError::IntrospectionUnavailable => "the token could not be checked",
            TokenError::NotAccessToken => "the token is not an access token",
            TokenError::UnauthorizedParty => {
                "the token was issued to a client that is not accepted"
            }
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable() {
        let all = [
            (TokenError::Malformed, "malformed"),
            (TokenError::UnsupportedAlgorithm, "unsupported_alg"),
            (TokenError::UnknownKid, "unknown_kid"),
            (TokenError::BadSignature, "bad_signature"),
            (TokenError::Expired, "expired"),
            (TokenError::NotYetValid, "not_yet_valid"),
            (TokenError::WrongIssuer, "wrong_issuer"),
            (TokenError::WrongAudience, "wrong_audience"),
            (TokenError::TooOld, "too_old"),
            (TokenError::KeysUnavailable, "keys_unavailable"),
            (TokenError::Inactive, "inactive"),
            (
                TokenError::IntrospectionUnavailable,
                "introspection_unavailable",
            ),
            (TokenError::NotAccessToken, "not_access_token"),
            (TokenError::UnauthorizedParty, "unauthorized_party"),
        ];
        for (error, reason) in all {
            assert_eq!(error.reason(), reason);
            assert!(!error.description().is_empty());
            assert_eq!(error.to_string(), error.description());
        }
        assert_eq!(TokenError::Expired.description(), "the token has expired");
        assert_eq!(
            TokenError::Inactive.description(),
            "the token is not active"
        );
        assert_eq!(
            TokenError::IntrospectionUnavailable.description(),
            "the token could not be checked"
        );
    }
}

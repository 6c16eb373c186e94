//! What a started login remembers until its callback: state, nonce, PKCE verifier, where to
//! return, and until when.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a started login may take, from [`OidcClient::begin`](super::OidcClient::begin) to
/// the callback (10 minutes); also a sensible `Max-Age` for the pre-login cookie.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

/// What a started login must remember until its callback; sealed into the pre-login cookie
/// (purpose `"login-state"`) by the gateway. `Debug` shows neither the state, the nonce nor
/// the PKCE verifier.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct LoginState {
    /// The OAuth `state` sent to the IdP (32 random bytes, base64url); the callback's `state`
    /// must equal it ([`LoginState::state_matches`]).
    pub state: String,
    /// The OIDC `nonce` (32 random bytes, base64url); the ID token must carry it.
    pub nonce: String,
    /// The PKCE `code_verifier` (43 characters of base64url).
    pub code_verifier: String,
    /// Where to send the user after the login (already checked by
    /// `gatehouse_policy::redirect::safe_redirect`).
    pub return_to: String,
    /// Seconds since the Unix epoch after which the login is refused.
    pub expires_at: u64,
}

impl std::fmt::Debug for LoginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginState")
            .field("state", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("code_verifier", &"<redacted>")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl LoginState {
    /// Whether the callback's `state` parameter is this login's (constant-time comparison).
    pub fn state_matches(&self, state: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.state.as_bytes(), state.as_bytes())
            .is_ok()
    }

    /// Whether the login is past its deadline at `now` (seconds since the Unix epoch).
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// The JSON form to seal into the pre-login cookie.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and an integer cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses [`to_json`](Self::to_json)'s output; `None` for anything else.
    pub fn from_json(bytes: &[u8]) -> Option<LoginState> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)), no padding.
pub fn pkce_challenge(code_verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, code_verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_s256() {
        // Expected value computed independently (Python hashlib + urlsafe_b64encode).
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ0xVqOP5tpFCRmb4bCvaSGGrEtfw1g"),
            "txPx3tMY7XmC0bzUGbj6Na4bQa_tFuJyMfDmqH4uOoc"
        );
    }

    #[test]
    fn login_state_round_trip_and_checks() {
        let state = LoginState {
            state: "abc".into(),
            nonce: "n".into(),
            code_verifier: "v".repeat(43),
            return_to: "/app".into(),
            expires_at: 100,
        };
        assert_eq!(LoginState::from_json(&state.to_json()), Some(state.clone()));
        assert_eq!(LoginState::from_json(b"{}"), None);
        assert!(state.state_matches("abc"));
        assert!(!state.state_matches("abd"));
        assert!(!state.state_matches("ab"));
        assert!(!state.state_matches(""));
        assert!(!state.is_expired(99));
        assert!(state.is_expired(100));
    }

    #[test]
    fn login_state_debug_hides_its_secrets() {
        let state = LoginState {
            state: "the-state-value".into(),
            nonce: "the-nonce-value".into(),
            code_verifier: "the-pkce-verifier".into(),
            return_to: "/app".into(),
            expires_at: 100,
        };
        let text = format!("{state:?}");
        for secret in ["the-state-value", "the-nonce-value", "the-pkce-verifier"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("/app") && text.contains("100"), "{text}");
    }
}

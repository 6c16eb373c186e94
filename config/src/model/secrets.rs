//! Secrets read from the config (client secrets, cookie keys): `Debug` never shows them.

use std::fmt;

/// A secret string (client secret). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A 32-byte cookie encryption key (decoded from base64). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieKey([u8; 32]);

impl CookieKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; 32]) -> CookieKey {
        CookieKey(bytes)
    }

    /// The key bytes; never log them.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(<redacted>)")
    }
}

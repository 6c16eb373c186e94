//! `tenants[].identity-assertion`: what the gateway signs for upstreams, and with which keys.

use std::fmt;
use std::path::PathBuf;

/// `tenants[].identity-assertion`: the signed identity an upstream can verify.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAssertion {
    /// `header` (required): the request header that carries the JWT; a client's own header of
    /// this name is always removed.
    pub header: String,
    /// `signing-key` (required): one PEM file or a list; the first signs, every one is
    /// published in the tenant's JWKS (rotation: add the new key second, then move it first,
    /// then drop the old one).
    pub signing_keys: Vec<AssertionKey>,
    /// `ttl`: the assertion's lifetime, `exp - iat` (default 60s; 1s..=1h).
    pub ttl: std::time::Duration,
    /// `audience`: the `aud` of every assertion; default: the name of the upstream the request
    /// goes to.
    pub audience: Option<String>,
}

/// Which signature a [`AssertionKey`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    /// ECDSA on P-256 with SHA-256 (JWS `ES256`).
    Es256,
    /// Ed25519 (JWS `EdDSA`).
    EdDsa,
}

/// A private key read from a PEM file: its DER (PKCS#8, or SEC1 for EC keys) and the
/// algorithm it signs with. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AssertionKey {
    /// The file it was read from, as written in the config.
    pub path: PathBuf,
    /// The algorithm the key's type implies.
    pub algorithm: AssertionAlgorithm,
    der: Vec<u8>,
}

impl AssertionKey {
    /// Wraps a key's DER bytes.
    pub fn new(path: PathBuf, algorithm: AssertionAlgorithm, der: Vec<u8>) -> AssertionKey {
        AssertionKey {
            path,
            algorithm,
            der,
        }
    }

    /// The private key's DER bytes; never log them.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionKey")
            .field("path", &self.path)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

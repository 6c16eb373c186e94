//! Identity assertions: a short-lived JWT the gateway signs for the upstream, so an upstream can
//! verify who is calling without trusting the network (the shape of Pomerium's
//! `X-Pomerium-Jwt-Assertion`, Cloudflare Access and Google IAP assertions).
//!
//! A tenant's [`AssertionSigner`] holds its parsed keys (the first signs; all are published in
//! the tenant's JWKS, so upstreams keep verifying assertions of a key being rotated out), the
//! prebuilt JWS header and the JWKS body. Signing is an ECDSA or Ed25519 signature over a
//! small JSON payload; [`AssertionSigner::assertion`] avoids it on most requests by keeping the
//! signed value with the caller's claims ([`AssertionCache`]) until three quarters of its
//! lifetime have passed, so an upstream always receives an assertion with at least a quarter
//! of its lifetime left.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use gatehouse_config::{AssertionAlgorithm, AssertionKey, IdentityAssertion};
use http::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::json;

use crate::claims::Claims;

mod cache;

pub use cache::{AssertionCache, CacheKey, MAX_ENTRIES};

/// A key of `signing-key` that cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The file's key does not parse as the algorithm its type names.
    #[error("identity-assertion: signing-key {path}: not a usable {algorithm} private key")]
    Key {
        /// The key file, as written in the config.
        path: String,
        /// `ES256` or `EdDSA`.
        algorithm: &'static str,
    },
    /// The configured header name is not a header name.
    #[error("identity-assertion: invalid header name {0:?}")]
    Header(String),
}

enum SigningKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// One tenant's assertion settings and keys.
pub struct AssertionSigner {
    /// Unique per signer in this process, so a cached assertion of an older signer (a reload
    /// with another key, ttl or audience) is never reused.
    id: u64,
    header: HeaderName,
    ttl: u64,
    audience: Option<Box<str>>,
    key: SigningKey,
    /// `base64url(JWS header)` followed by `.`.
    header_prefix: Box<str>,
    jwks: Bytes,
    kids: Vec<String>,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("header", &self.header)
            .field("ttl", &self.ttl)
            .field("kids", &self.kids)
            .finish_non_exhaustive()
    }
}

/// The JWS `alg` of a key's algorithm.
fn alg_name(a: AssertionAlgorithm) -> &'static str {
    match a {
        AssertionAlgorithm::Es256 => "ES256",
        AssertionAlgorithm::EdDsa => "EdDSA",
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses a configured key; its public JWK with `kid` (RFC 7638 thumbprint), `use`, `alg`.
fn parse_key(k: &AssertionKey) -> Result<(SigningKey, serde_json::Value), AssertionError> {
    let bad = || AssertionError::Key {
        path: k.path.display().to_string(),
        algorithm: alg_name(k.algorithm),
    };
    let (key, mut jwk) = match k.algorithm {
        AssertionAlgorithm::Es256 => {
            let pair =
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, k.der())
                    .map_err(|_| bad())?;
            let point = pair.public_key().as_ref();
            // Uncompressed SEC1 point: 0x04 || x || y.
            if point.len() != 65 || point[0] != 4 {
                return Err(bad());
            }
            let jwk = json!({
                "crv": "P-256",
                "kty": "EC",
                "x": b64(&point[1..33]),
                "y": b64(&point[33..]),
            });
            (SigningKey::Es256(pair), jwk)
        }
        AssertionAlgorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(k.der()).map_err(|_| bad())?;
            let jwk = json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": b64(pair.public_key().as_ref()),
            });
            (SigningKey::EdDsa(pair), jwk)
        }
    };
    let kid = thumbprint(&jwk);
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    jwk["alg"] = alg_name(k.algorithm).into();
    Ok((key, jwk))
}

/// RFC 7638 thumbprint of a public JWK holding only its required members: SHA-256 over the
/// members in lexicographic order without whitespace (`serde_json` keeps objects sorted),
/// base64url.
#[must_use]
pub fn thumbprint(required_members: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(required_members).unwrap_or_default();
    b64(digest(&SHA256, &canonical).as_ref())
}

static NEXT_SIGNER_ID: AtomicU64 = AtomicU64::new(1);

/// The payload of an assertion.
#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    groups: &'a [String],
    roles: Vec<Cow<'a, str>>,
    iat: u64,
    exp: u64,
}

/// The roles an assertion names: realm roles as they are, client roles as `client:role` (the
/// spelling routes' `roles` use).
#[must_use]
pub fn roles(claims: &Claims) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = claims
        .realm_roles
        .iter()
        .map(|r| Cow::Borrowed(r.as_str()))
        .collect();
    for (client, roles) in &claims.client_roles {
        out.extend(roles.iter().map(|r| Cow::Owned(format!("{client}:{r}"))));
    }
    out
}

/// `exp` of an assertion issued at `iat`: `iat + ttl`, but never after the identity's own
/// `exp` (an assertion must not outlive the token or session it vouches for).
#[must_use]
pub fn expiry(iat: u64, ttl: u64, identity_exp: u64) -> u64 {
    let exp = iat.saturating_add(ttl);
    if identity_exp > iat {
        exp.min(identity_exp)
    } else {
        exp
    }
}

impl AssertionSigner {
    /// Parses the keys of `config` (the config crate checked their type; this parses them).
    ///
    /// # Errors
    ///
    /// [`AssertionError`] for a key that does not parse or a header name that is not one.
    pub fn new(config: &IdentityAssertion) -> Result<AssertionSigner, AssertionError> {
        let header = HeaderName::try_from(config.header.as_str())
            .map_err(|_| AssertionError::Header(config.header.clone()))?;
        let mut first = None;
        let mut jwks = Vec::new();
        let mut kids: Vec<String> = Vec::new();
        for k in &config.signing_keys {
            let (key, jwk) = parse_key(k)?;
            let kid = jwk["kid"].as_str().unwrap_or_default().to_string();
            if first.is_none() {
                let jws_header = json!({"alg": alg_name(k.algorithm), "kid": kid, "typ": "JWT"});
                let encoded = b64(&serde_json::to_vec(&jws_header).unwrap_or_default());
                first = Some((key, format!("{encoded}.").into_boxed_str()));
            }
            // The same key listed twice is published once.
            if !kids.contains(&kid) {
                kids.push(kid);
                jwks.push(jwk);
            }
        }
        let Some((key, header_prefix)) = first else {
            return Err(AssertionError::Key {
                path: "(none)".to_string(),
                algorithm: "ES256 or EdDSA",
            });
        };
        let jwks = serde_json::to_vec(&json!({ "keys": jwks })).unwrap_or_default();
        Ok(AssertionSigner {
            id: NEXT_SIGNER_ID.fetch_add(1, Ordering::Relaxed),
            header,
            ttl: config.ttl.as_secs().max(1),
            audience: config.audience.as_deref().map(Into::into),
            key,
            header_prefix,
            jwks: Bytes::from(jwks),
            kids,
        })
    }

    /// The request header that carries the assertion.
    #[must_use]
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The JWKS document (`{"keys":[...]}`) with every configured key, the signing key first.
    #[must_use]
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// The `kid` of every published key, the signing key first.
    #[must_use]
    pub fn kids(&self) -> &[String] {
        &self.kids
    }

    /// The assertion for `claims` going to upstream `upstream` (its index in the tenant, and
    /// its name, the default `aud`), reached as `https://host` (`secure`) or `http://host`:
    /// the one kept with the claims while more than a quarter of its lifetime is left, else a
    /// freshly signed one (then kept). `now` is Unix seconds.
    pub fn assertion(
        &self,
        claims: &Claims,
        upstream: usize,
        upstream_name: &str,
        secure: bool,
        host: &str,
        now: u64,
    ) -> HeaderValue {
        let key = CacheKey {
            signer: self.id,
            upstream,
            secure,
            host,
        };
        if let Some(v) = claims.assertions.get(&key, now) {
            return v;
        }
        let iss = issuer(secure, host);
        let (value, exp) = self.sign(claims, self.audience_or(upstream_name), &iss, now);
        // Reused until a quarter of its lifetime is left.
        let refresh_at = now + (exp.saturating_sub(now)) * 3 / 4;
        claims.assertions.insert(&key, now, refresh_at, &value);
        value
    }

    fn audience_or<'a>(&'a self, upstream_name: &'a str) -> &'a str {
        self.audience.as_deref().unwrap_or(upstream_name)
    }

    /// Signs a new assertion issued at `iat`; returns it with its `exp`.
    pub fn sign(&self, claims: &Claims, aud: &str, iss: &str, iat: u64) -> (HeaderValue, u64) {
        let exp = expiry(iat, self.ttl, claims.exp);
        let payload = Payload {
            iss,
            aud,
            sub: claims.sub.as_deref(),
            email: claims.email.as_deref(),
            groups: &claims.groups,
            roles: roles(claims),
            iat,
            exp,
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let mut token = String::with_capacity(self.header_prefix.len() + json.len() * 4 / 3 + 100);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let signature = match &self.key {
            SigningKey::Es256(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            SigningKey::EdDsa(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        // Base64url and dots only: always a valid header value.
        let value = HeaderValue::from_maybe_shared(Bytes::from(token.into_bytes()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        (value, exp)
    }
}

/// `https://host` or `http://host`, the host lowercased (with its port, as the client sent it).
#[must_use]
pub fn issuer(secure: bool, host: &str) -> String {
    let scheme = if secure { "https://" } else { "http://" };
    let mut iss = String::with_capacity(scheme.len() + host.len());
    iss.push_str(scheme);
    iss.push_str(&host.to_ascii_lowercase());
    iss
}

#[cfg(test)]
mod tests;

//! gatehouse sessions and tokens: bearer-token verification (OIDC discovery, JWKS, the
//! verified-token cache) and the Keycloak claim helpers.
//!
//! The gateway builds a [`TokenVerifier`] per identity provider, refreshes its keys on its own
//! schedule (one that spans config reloads) and calls [`TokenVerifier::verify`] per request
//! (or, for opaque tokens and `introspect` routes, [`TokenVerifier::introspect`], RFC 7662).
//! The provider's login client ([`oidc::OidcClient`]) shares the verifier's
//! [`ProviderDiscovery`]: one discovery document and one HTTP client per provider.
//! This crate never imports pingora or the gateway.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assertion;
pub mod assertion_cache;
mod cache;
pub mod claims;
pub mod cookie;
pub mod discovery;
pub mod dpop;
mod encoding;
pub mod error;
pub mod http;
pub mod jwks;
pub mod memo;
pub mod oidc;
mod shapes;
pub mod store;
pub mod verifier;

pub use cache::DEFAULT_CACHE_CAPACITY;
pub use claims::Claims;
pub use discovery::{DiscoveryError, ProviderDiscovery};
pub use error::BuildError;
pub use jwks::{JwksSource, KeySet};
pub use store::{
    CachedStore, LockGuard, MemoryStore, RedisStore, SessionRecord, SessionStore, StoreError,
};
pub use verifier::{
    looks_like_jwt, Audience, Introspector, TokenError, TokenUse, TokenVerifier,
    MAX_CONCURRENT_INTROSPECTIONS, MAX_TOKEN_BYTES, REFUSED_CACHE_SECS,
};

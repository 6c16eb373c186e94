//! What gatehouse's tests and benches share: signing keys and token minting ([`keys`]), a base
//! identity-provider config ([`config`]), a counting fake IdP ([`fake_idp`]), the real test IdP
//! in `testing/idp` ([`idp`]), real Redis servers from `testing/redis` ([`redis`]), a raw
//! HTTP/1.1 client ([`http`]), and ports, folders, polling and skips ([`process`]).
//!
//! Every helper panics with a message on a setup failure: they run only in tests and benches.

/// Base configs: the provider the session tests verify against and the test IdP's client.
pub mod config;
/// DPoP proofs crafted by hand, thumbprints, `ath`.
pub mod dpop;
/// A counting fake IdP: discovery, JWKS, introspection.
pub mod fake_idp;
/// A raw HTTP/1.1 client.
pub mod http;
/// The real test IdP (`testing/idp`, node).
pub mod idp;
/// Signing keys, JWKs and token minting.
pub mod keys;
/// Ports, temp folders, polling, signals and skips.
pub mod process;
/// Real Redis servers (`testing/redis/cluster.sh`).
pub mod redis;

//! What gatehouse's tests and benches share: signing keys and token minting ([`keys`]), a base
//! identity-provider config ([`config`]), a counting fake IdP ([`fake_idp`]), the real test IdP
//! in `testing/idp` ([`idp`]), real Redis servers from `testing/redis` ([`redis`]), a raw
//! HTTP/1.1 client ([`http`]), and ports, folders, polling and skips ([`process`]).
//!
//! Every helper panics with a message on a setup failure: they run only in tests and benches.

pub mod config;
pub mod fake_idp;
pub mod http;
pub mod idp;
pub mod keys;
pub mod process;
pub mod redis;

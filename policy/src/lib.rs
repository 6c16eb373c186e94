//! gatehouse policy: the pure, allocation-averse building blocks the gateway runs on every
//! request.
//!
//! - [`admit`]: everything decided about a request before any I/O, as one function.
//! - [`authz`]: route authorization requirements (roles, groups, claims) over an [`authz::Identity`].
//! - [`path`]: request path normalization (percent-decoding, dot segments, refusals).
//! - [`cors`]: per-tenant CORS: preflight answers and actual-response headers.
//! - [`forward_auth`]: which original request a forward-auth check (`/oauth/auth`) is about.
//! - [`headers`]: what the upstream sees of a request, and what every response carries.
//! - [`host`]: host table (exact names, IPv6 literals, `*.suffix` wildcards).
//! - [`login`]: why the built-in browser paths refuse a request.
//! - [`routes`]: per-tenant route matcher (exact and segment-prefix patterns, method sets).
//! - [`request_id`]: request ID validation and cheap generation.
//! - [`proxies`]: trusted proxy CIDRs and `X-Forwarded-For`.
//! - [`ratelimit`]: token buckets (GCRA) in a lock-free table, and the address a limit counts by.
//! - [`redirect`]: post-login redirect targets (open-redirect defence).
//! - [`snapshot`]: a validated config compiled into the per-request lookup structures, and the
//!   [`snapshot::Denial`] reasons with their one status mapping.
//!
//! Nothing here does I/O, takes a lock or depends on the config file format (only [`snapshot`] reads the validated config types): the gateway
//! compiles its config into these structures once per (re)load.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admit;
pub mod authz;
pub mod challenge;
pub mod cors;
pub mod denial;
pub mod forward_auth;
pub mod headers;
pub mod host;
pub mod login;
pub mod path;
pub mod proxies;
pub mod ratelimit;
pub mod redirect;
pub mod request_id;
pub mod resource;
pub mod routes;
pub mod snapshot;

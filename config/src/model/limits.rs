//! `rate-limits` on tenants and routes.

use std::time::Duration;

/// What a rate limit counts by (`key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// `client-ip`: the client's address (the TCP peer, or the address a trusted proxy's
    /// `X-Forwarded-For` names).
    ClientIp,
    /// `subject`: the authenticated `sub`; anonymous requests count by client address.
    Subject,
    /// `tenant`: one bucket for the whole tenant (or route).
    Tenant,
}

impl RateLimitKey {
    /// The name as written in the config (`client-ip`, `subject`, `tenant`).
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitKey::ClientIp => "client-ip",
            RateLimitKey::Subject => "subject",
            RateLimitKey::Tenant => "tenant",
        }
    }
}

/// One entry of a tenant's or a route's `rate-limits`: a token bucket of `burst` tokens
/// refilled at `count` per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// `key` (required).
    pub key: RateLimitKey,
    /// `rate` (required) `N/s | N/m | N/h`: N, at least 1.
    pub count: u64,
    /// The unit of `rate`: 1s, 1m or 1h.
    pub period: Duration,
    /// `burst`: bucket size, at least 1 (default: the rate per second, rounded up, at least 1).
    pub burst: u64,
    /// `shared`: counted across replicas in the session store's Redis (default false).
    pub shared: bool,
}

//! `session-store`: where browser sessions (and shared counters) live.

use std::fmt;
use std::time::Duration;

/// Which kind of session store `session-store.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// `memory://`: embedded, per instance.
    Memory,
    /// `redis://host:port[/db]`.
    Redis,
    /// `rediss://host:port[/db]`: Redis over TLS.
    Rediss,
    /// `redis-cluster://host1:port1,host2:port2,...`.
    RedisCluster,
    /// `rediss-cluster://host1:port1,...`: Redis Cluster over TLS.
    RedissCluster,
}

/// What to do with a session when the session store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// `fail-closed` (default): refuse (401/503).
    FailClosed,
    /// `serve-cached`: trust the local cache until its TTL; never a session never validated.
    ServeCached,
}

/// `session-store`. `Debug` shows the URL with its password replaced by `<redacted>`.
#[derive(Clone, PartialEq)]
pub struct SessionStoreConfig {
    /// `url`: `memory://` (default) | `redis://` | `rediss://` | `redis-cluster://` |
    /// `rediss-cluster://` URL, as written.
    pub url: String,
    /// The kind of store, from the URL's scheme.
    pub kind: SessionStoreKind,
    /// `pool-size`: pooled Redis clients per instance (default 1, >= 1). One client multiplexes
    /// and pipelines every request's commands over one connection per node; more clients spread
    /// the same commands thinner and batch less (measured in loadtest/README.md).
    pub pool_size: usize,
    /// `key-prefix`: every Redis key starts with this (default `gatehouse:`).
    pub key_prefix: String,
    /// `timeout`: per Redis command (default 100ms).
    pub timeout: Duration,
    /// `local-cache-ttl`: a validated session is trusted this long without the store (default 5s).
    pub local_cache_ttl: Duration,
    /// `on-unavailable` (default fail-closed).
    pub on_unavailable: OnUnavailable,
}

impl SessionStoreConfig {
    /// `url` with the password of its userinfo (`scheme://user:PASSWORD@host`) replaced by
    /// `<redacted>`, for logs and `Debug`.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

/// `scheme://user:password@hosts/...` → `scheme://user:<redacted>@hosts/...`; a URL without
/// a password is returned as it is.
pub(crate) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') {
                format!("{user}:<redacted>")
            } else {
                // `redis://secret@host`: a lone userinfo is the password for Redis.
                "<redacted>".to_string()
            };
            format!("{scheme}://{hidden}@{hosts}{path}")
        }
        None => url.to_string(),
    }
}

impl fmt::Debug for SessionStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreConfig")
            .field("url", &self.redacted_url())
            .field("kind", &self.kind)
            .field("pool_size", &self.pool_size)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("local_cache_ttl", &self.local_cache_ttl)
            .field("on_unavailable", &self.on_unavailable)
            .finish()
    }
}

impl Default for SessionStoreConfig {
    fn default() -> Self {
        SessionStoreConfig {
            url: "memory://".to_string(),
            kind: SessionStoreKind::Memory,
            pool_size: 1,
            key_prefix: "gatehouse:".to_string(),
            timeout: Duration::from_millis(100),
            local_cache_ttl: Duration::from_secs(5),
            on_unavailable: OnUnavailable::FailClosed,
        }
    }
}

//! Rate-limit buckets shared by every replica, in the session store's Redis: one GCRA step
//! per request as one Lua script (one round trip), on one key.

use fred::prelude::LuaInterface;

use super::{Failure, RedisStore};
use crate::store::StoreError;

/// One GCRA step on KEYS[1] (the theoretical arrival time, in milliseconds of Redis's clock,
/// so every replica shares one clock): ARGV[1] the interval, ARGV[2] the capacity (burst ×
/// interval), both milliseconds. Returns {1, tokens left} and moves the time, or {0, ms until a
/// token is back}. The key lives only as long as it matters (until the bucket is full again).
const GCRA_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local used = tat + interval - now
if used > capacity then
  return {0, used - capacity}
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', used + 1)
return {1, math.floor((capacity - used) / interval)}
"#;

/// A hash of a bucket's key that every replica (and every build) computes alike, so Redis
/// keys name callers without holding their address or subject (SipHash-1-3 with fixed keys:
/// stable, not secret).
pub type StableHasher = siphasher::sip::SipHasher13;

/// A shared bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedVerdict {
    /// Allowed; this many tokens are left.
    Allowed(u64),
    /// Over the limit: a token is back after this many milliseconds.
    Limited(u64),
}

impl RedisStore {
    /// The Redis key of a shared rate-limit bucket: under `key-prefix`, its variable part in
    /// a hash tag, so the bucket is one key in one slot.
    pub fn limit_key(&self, id: &str) -> String {
        format!("{}rl:{{{id}}}", self.prefix)
    }

    /// Takes one token from the shared bucket `key` ([`Self::limit_key`]) refilled every
    /// `interval_ms` and holding `burst` tokens. One round trip, bounded by the store's
    /// `timeout`; [`StoreError::Unavailable`] when Redis cannot answer in time.
    pub async fn take_token(
        &self,
        key: String,
        interval_ms: u64,
        burst: u64,
    ) -> Result<SharedVerdict, StoreError> {
        let interval = interval_ms.max(1);
        let capacity = interval.saturating_mul(burst.max(1));
        let (allowed, n): (i64, i64) = self
            .pool
            .eval(
                GCRA_SCRIPT,
                key,
                vec![interval.to_string(), capacity.to_string()],
            )
            .await
            .map_err(|e| StoreError::from(Failure::Redis(e)))?;
        let n = u64::try_from(n).unwrap_or(0);
        Ok(if allowed == 1 {
            SharedVerdict::Allowed(n)
        } else {
            SharedVerdict::Limited(n)
        })
    }
}

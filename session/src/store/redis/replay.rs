//! The DPoP replay memory every replica shares (RFC 9449 11.1): a proof's key is set once, with
//! `SET NX` and an expiry, in one round trip; a second `SET` of the same key finds it.

use fred::prelude::KeysInterface;
use fred::types::{Expiration, SetOptions};

use super::{Failure, RedisStore};
use crate::store::StoreError;

impl RedisStore {
    /// The Redis key of a used DPoP proof ([`crate::dpop::replay_key`]): under `key-prefix`,
    /// its variable part in a hash tag (one key, one slot).
    pub fn replay_key(&self, proof_key: &str) -> String {
        format!("{}dpop:{{{proof_key}}}", self.prefix)
    }

    /// Records `key` ([`Self::replay_key`]) as used for `ttl_secs`: `true` when this call
    /// set it (the proof's first use), `false` when it was already there. One round trip,
    /// bounded by the store's `timeout`; [`StoreError::Unavailable`] when Redis cannot answer.
    pub async fn first_use(&self, key: String, ttl_secs: u64) -> Result<bool, StoreError> {
        let ttl = i64::try_from(ttl_secs.max(1)).unwrap_or(i64::MAX);
        let set: Option<String> = self
            .pool
            .set(
                key,
                "1",
                Some(Expiration::EX(ttl)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(|e| StoreError::from(Failure::Redis(e)))?;
        Ok(set.is_some())
    }
}

//! Rate limits: the generic cell rate algorithm (GCRA, a token bucket kept as one timestamp)
//! over a fixed table of atomics, and the client address a limit counts by.
//!
//! A bucket of `burst` tokens refilled at one token per `interval` is the "theoretical arrival
//! time" (TAT) of the next request: a request at `now` is allowed while
//! `max(TAT, now) + interval - now <= burst * interval`, and then moves TAT by one interval.
//! One `u64` per key is the whole state, so a check is a load and a compare-and-swap: no lock
//! and no allocation per request.
//!
//! Keys (a client address, a subject) are hashed with a per-table random seed (so nobody can
//! aim collisions) into a fixed table. A slot holds a 16-bit fingerprint of its key and a
//! 48-bit TAT in microseconds; four neighbouring slots are probed. A slot whose TAT has passed
//! is as good as empty (its bucket is full again) and is taken over. When all four hold other
//! keys that are still limited, the request shares the first slot with them: a crowded table
//! can limit a key early, never let a request through that its own bucket would refuse.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderValue;

/// Slots per table of a limit counted by client address or subject.
pub const TABLE_SLOTS: usize = 1 << 14;
/// Neighbouring slots probed for a key.
const PROBES: usize = 4;
const TAT_BITS: u32 = 48;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;

/// One bucket's parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Time to earn one token back.
    pub interval_us: u64,
    /// Tokens the bucket holds (`burst`).
    pub burst: u64,
}

impl Bucket {
    /// A bucket of `burst` tokens refilled at `count` per `period`.
    pub fn new(count: u64, period: Duration, burst: u64) -> Bucket {
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        Bucket {
            interval_us: (period_us / count.max(1)).max(1),
            burst: burst.max(1),
        }
    }

    fn capacity_us(&self) -> u64 {
        self.interval_us.saturating_mul(self.burst)
    }

    /// The GCRA step: given the stored TAT and `now` (same clock, microseconds), either the new
    /// TAT and the tokens left after this request, or the wait until one token is back.
    pub fn step(&self, tat: u64, now: u64) -> Result<(u64, u64), u64> {
        let next = tat.max(now).saturating_add(self.interval_us);
        let used = next - now;
        let capacity = self.capacity_us();
        if used > capacity {
            Err(used - capacity)
        } else {
            Ok((next, (capacity - used) / self.interval_us))
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; this many tokens are left.
    Allowed {
        /// Tokens left in the bucket.
        remaining: u64,
    },
    /// Over the limit: a token is back after this long.
    Limited {
        /// Until the next token, microseconds.
        wait_us: u64,
    },
}

/// The per-key state of one limit: a fixed table of GCRA timestamps. Shared by the requests of
/// every worker thread; kept across config reloads while the limit is unchanged.
#[derive(Debug)]
pub struct LocalLimiter {
    bucket: Bucket,
    slots: Box<[AtomicU64]>,
    mask: usize,
    seed: ahash::RandomState,
    epoch: Instant,
}

impl LocalLimiter {
    /// A limiter of `slots` slots (a power of two; 1 for a single bucket).
    pub fn new(bucket: Bucket, slots: usize) -> LocalLimiter {
        let slots = slots.max(1).next_power_of_two();
        LocalLimiter {
            bucket,
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            mask: slots - 1,
            seed: ahash::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// The bucket's parameters.
    pub fn bucket(&self) -> Bucket {
        self.bucket
    }

    /// Microseconds since this limiter was made (its clock), at least 1.
    pub fn now_us(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// The hash of a key's bytes under this table's seed.
    pub fn hash(&self, key: &impl std::hash::Hash) -> u64 {
        self.seed.hash_one(key)
    }

    /// Takes one token from the bucket of the key hashed to `hash`, at `now` (from
    /// [`Self::now_us`]).
    pub fn check(&self, hash: u64, now: u64) -> Verdict {
        let fingerprint = (hash >> TAT_BITS) | 1;
        let slot = &self.slots[self.pick(hash, fingerprint, now)];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (fp, tat) = (current >> TAT_BITS, current & TAT_MASK);
            // A stale slot of another key is a full bucket; a live one is shared.
            let tat = if fp == fingerprint || tat > now {
                tat
            } else {
                0
            };
            match self.bucket.step(tat, now) {
                Err(wait_us) => return Verdict::Limited { wait_us },
                Ok((next, remaining)) => {
                    let new = (fingerprint << TAT_BITS) | (next & TAT_MASK);
                    match slot.compare_exchange_weak(
                        current,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Verdict::Allowed { remaining },
                        Err(seen) => current = seen,
                    }
                }
            }
        }
    }

    /// The slot for a key: the one holding its fingerprint, else the first free one, else the
    /// first probed.
    fn pick(&self, hash: u64, fingerprint: u64, now: u64) -> usize {
        let start = hash as usize & self.mask;
        let mut free = None;
        for p in 0..PROBES.min(self.mask + 1) {
            let i = (start + p) & self.mask;
            let v = self.slots[i].load(Ordering::Relaxed);
            if v >> TAT_BITS == fingerprint {
                return i;
            }
            if free.is_none() && v & TAT_MASK <= now {
                free = Some(i);
            }
        }
        free.unwrap_or(start)
    }
}

/// Whole seconds, rounded up, at least 1: the `Retry-After` of a wait.
pub fn wait_seconds(wait_us: u64) -> u64 {
    wait_us.div_ceil(1_000_000).max(1)
}

/// The `RateLimit-Policy` item of a limit (draft-ietf-httpapi-ratelimit-headers-11, section 3):
/// `"name";q=burst;w=seconds` with the window the time a full bucket takes to refill.
pub fn policy_item(name: &str, bucket: Bucket) -> HeaderValue {
    let window = wait_seconds(bucket.capacity_us());
    HeaderValue::try_from(format!("\"{name}\";q={};w={window}", bucket.burst))
        .unwrap_or_else(|_| HeaderValue::from_static("\"limit\";q=1;w=1"))
}

/// The `RateLimit` item of a refused request (section 4): nothing left, back after `seconds`.
pub fn exhausted_item(name: &str, seconds: u64) -> HeaderValue {
    HeaderValue::try_from(format!("\"{name}\";r=0;t={seconds}"))
        .unwrap_or_else(|_| HeaderValue::from_static("\"limit\";r=0;t=1"))
}

/// The client address a limit counts by: the peer, or, when the peer is a trusted proxy, the
/// last address of its `X-Forwarded-For` values that is not itself a trusted proxy (the one
/// the first trusted hop saw). `forwarded` yields the header values in order; anything that
/// does not parse ends the walk at the peer, so a client cannot choose its bucket.
pub fn client_address<'a>(
    peer: IpAddr,
    trusted: &crate::proxies::TrustedProxies,
    forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for value in forwarded.rev() {
        for part in value.rsplit(|&b| b == b',') {
            let Some(ip) = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
            else {
                return client;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxies::TrustedProxies;

    const SEC: u64 = 1_000_000;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let b = Bucket::new(10, Duration::from_secs(1), 3);
        assert_eq!(b.interval_us, SEC / 10);
        let mut tat = 0;
        let now = 50 * SEC;
        for left in [2, 1, 0] {
            let (next, remaining) = b.step(tat, now).unwrap();
            assert_eq!(remaining, left);
            tat = next;
        }
        assert_eq!(b.step(tat, now), Err(SEC / 10));
        // A tenth of a second later one token is back, and only one.
        let later = now + SEC / 10;
        let (next, remaining) = b.step(tat, later).unwrap();
        assert_eq!(remaining, 0);
        assert!(b.step(next, later).is_err());
        // A full refill after burst intervals.
        assert_eq!(b.step(next, later + 3 * SEC / 10).unwrap().1, 2);
    }

    #[test]
    fn the_table_keeps_keys_apart_and_refills() {
        let l = LocalLimiter::new(Bucket::new(1, Duration::from_secs(60), 2), TABLE_SLOTS);
        let (a, b) = (l.hash(&"alice"), l.hash(&"bob"));
        let now = l.now_us(Instant::now());
        assert_eq!(l.check(a, now), Verdict::Allowed { remaining: 1 });
        assert_eq!(l.check(a, now), Verdict::Allowed { remaining: 0 });
        assert!(matches!(l.check(a, now), Verdict::Limited { wait_us } if wait_us == 60 * SEC));
        assert_eq!(l.check(b, now), Verdict::Allowed { remaining: 1 });
        assert_eq!(
            l.check(a, now + 60 * SEC),
            Verdict::Allowed { remaining: 0 }
        );
    }

    #[test]
    fn a_crowded_table_never_lets_a_limited_key_through() {
        // One slot for every key: whatever collides shares the bucket.
        let l = LocalLimiter::new(Bucket::new(1, Duration::from_secs(1), 1), 1);
        let now = 10 * SEC;
        assert!(matches!(l.check(1 << 50, now), Verdict::Allowed { .. }));
        assert!(matches!(l.check(2 << 50, now), Verdict::Limited { .. }));
        assert!(matches!(l.check(1 << 50, now), Verdict::Limited { .. }));
        // Once the slot is stale, another key takes it over with a full bucket.
        assert!(matches!(
            l.check(2 << 50, now + SEC),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn concurrent_checks_hand_out_exactly_the_burst() {
        let l = std::sync::Arc::new(LocalLimiter::new(
            Bucket::new(1, Duration::from_secs(3600), 1000),
            TABLE_SLOTS,
        ));
        let now = l.now_us(Instant::now());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let h = l.hash(&"k");
                    (0..500)
                        .filter(|_| matches!(l.check(h, now), Verdict::Allowed { .. }))
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(allowed, 1000);
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let b = Bucket::new(10, Duration::from_secs(1), 20);
        assert_eq!(
            policy_item("route.subject", b),
            "\"route.subject\";q=20;w=2"
        );
        assert_eq!(
            exhausted_item("route.subject", 3),
            "\"route.subject\";r=0;t=3"
        );
        assert_eq!(wait_seconds(1), 1);
        assert_eq!(wait_seconds(SEC), 1);
        assert_eq!(wait_seconds(SEC + 1), 2);
    }

    #[test]
    fn the_client_address_behind_trusted_proxies() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let outsider: IpAddr = "192.0.2.7".parse().unwrap();
        let xff = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        // An untrusted peer is the client, whatever it claims.
        let claim = xff(&["203.0.113.9"]);
        assert_eq!(
            client_address(outsider, &trusted, claim.into_iter()),
            outsider
        );
        // Behind a trusted proxy: the last untrusted address, across header lines.
        let v = xff(&["203.0.113.9, 198.51.100.4", "10.1.1.1"]);
        assert_eq!(
            client_address(peer, &trusted, v.into_iter()),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        // Garbage stops the walk at the last trusted hop.
        let v = xff(&["198.51.100.4, nonsense, 10.2.2.2"]);
        assert_eq!(
            client_address(peer, &trusted, v.into_iter()),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(client_address(peer, &trusted, std::iter::empty()), peer);
    }
}

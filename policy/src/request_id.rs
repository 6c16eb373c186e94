//! Request IDs: validating a client-supplied `X-Request-ID` and generating new ones.
//!
//! Generation uses a per-thread xoshiro256++ generator seeded once per thread from std's
//! randomly keyed `RandomState` (OS randomness), the thread id and the clock, so a new ID costs
//! a few nanoseconds, no syscall and no allocation. IDs are unique for practical purposes
//! (128 random bits) but are not secrets: never use one as a token or nonce.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

/// Longest request ID [`is_valid_request_id`] accepts.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client-supplied request ID may be kept and echoed: 1 to
/// [`MAX_REQUEST_ID_LEN`] bytes of `A-Z a-z 0-9 . _ -`. Anything else (empty, too long,
/// spaces, quotes, control or non-ASCII bytes) is replaced with a fresh [`new_request_id`], so
/// a logged or echoed ID can never inject into logs or headers.
#[must_use]
pub fn is_valid_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A generated request ID: 32 lowercase hex characters (128 random bits), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 32]);

impl RequestId {
    /// The ID as text (32 lowercase hex characters).
    pub fn as_str(&self) -> &str {
        // Only ever filled with ASCII hex digits, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The ID as bytes, e.g. for a header value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Generates a fresh request ID (see the module docs for how, and what it guarantees).
#[must_use]
pub fn new_request_id() -> RequestId {
    let mut out = [0u8; 32];
    write_hex(&mut out, random_u128());
    RequestId(out)
}

/// 128 fresh bits from this thread's generator (not cryptographic: ids and trace ids only).
#[must_use]
pub fn random_u128() -> u128 {
    RNG.with(Xoshiro256pp::next_u128)
}

/// Writes `value` as lowercase hex into `out` (two digits per byte, most significant first).
pub(crate) fn write_hex(out: &mut [u8], value: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = out.len();
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *digit = HEX[((value >> shift) & 0xf) as usize];
    }
}

thread_local! {
    static RNG: Xoshiro256pp = Xoshiro256pp::from_seed(thread_seed());
}

/// 128 bits of seed for this thread. Each `RandomState` is keyed from OS randomness (once per
/// thread, then incremented), and the thread id and clock are mixed in for good measure.
fn thread_seed() -> [u64; 2] {
    let mut seed = [0u64; 2];
    for (i, word) in seed.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        i.hash(&mut h);
        std::thread::current().id().hash(&mut h);
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            d.as_nanos().hash(&mut h);
        }
        *word = h.finish();
    }
    seed
}

/// xoshiro256++ (Blackman and Vigna): fast, 256 bits of state, good statistical quality; not
/// cryptographic.
struct Xoshiro256pp {
    s: Cell<[u64; 4]>,
}

impl Xoshiro256pp {
    fn from_seed(seed: [u64; 2]) -> Self {
        // SplitMix64 expands the seed, as the authors recommend. Its output is a bijection of
        // its state, so two consecutive outputs are never both zero: the state is never all
        // zeros (the one state xoshiro must avoid).
        let mut x = seed[0];
        let mut y = seed[1];
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut y),
            splitmix64(&mut y),
        ];
        Xoshiro256pp { s: Cell::new(s) }
    }

    fn next_u64(s: &mut [u64; 4]) -> u64 {
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn next_u128(&self) -> u128 {
        let mut s = self.s.get();
        let hi = Self::next_u64(&mut s);
        let lo = Self::next_u64(&mut s);
        self.s.set(s);
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn validity() {
        assert!(is_valid_request_id(b"a"));
        assert!(is_valid_request_id(b"abc-DEF_123.xyz"));
        assert!(is_valid_request_id(&[b'x'; MAX_REQUEST_ID_LEN]));
        assert!(!is_valid_request_id(&[b'x'; MAX_REQUEST_ID_LEN + 1]));
        for bad in [
            &b""[..],
            b"a b",
            b"a\r\nX-Evil: 1",
            b"a/b",
            b"a\"b",
            b"caf\xc3\xa9",
            b"a\0",
            b"{}",
        ] {
            assert!(
                !is_valid_request_id(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn generated_ids_are_valid_hex() {
        let id = new_request_id();
        assert_eq!(id.as_str().len(), 32);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(is_valid_request_id(id.as_bytes()));
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(format!("{id:?}"), format!("RequestId({id})"));
    }

    #[test]
    fn unique_over_100k() {
        let ids: HashSet<RequestId> = (0..100_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn unique_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..10_000).map(|_| new_request_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().expect("thread") {
                assert!(all.insert(id));
            }
        }
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn bits_look_random() {
        // Every hex position takes many values, and the ones are roughly half of the bits.
        let ids: Vec<RequestId> = (0..1_000).map(|_| new_request_id()).collect();
        for pos in 0..32 {
            let distinct: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
            assert!(distinct.len() >= 12, "position {pos}");
        }
        let ones: u32 = ids
            .iter()
            .flat_map(|id| id.as_bytes().iter())
            .map(|&c| char::from(c).to_digit(16).unwrap_or(0).count_ones())
            .sum();
        let total = 1_000 * 128;
        assert!(
            (total * 45 / 100..total * 55 / 100).contains(&ones),
            "{ones}"
        );
    }
}

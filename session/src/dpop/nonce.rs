//! Server nonces (RFC 9449 9): stateless, so any replica holding the same secret accepts
//! what another issued. A nonce is the time slot it was issued in and an HMAC-SHA256 tag of
//! that slot; it is accepted in its slot and the next one, so it lives between one and two
//! periods.

use aws_lc_rs::hmac;
use base64::Engine;

use crate::encoding::B64URL;

/// Bytes of the tag kept in a nonce (128 bits).
const TAG_BYTES: usize = 16;

/// Issues and checks one tenant's DPoP nonces.
pub struct NonceIssuer {
    key: hmac::Key,
    period: u64,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer whose nonces change every `period` seconds, keyed by `secret` and `context`
    /// (for example a tenant's name: its nonces are refused by another tenant).
    #[must_use]
    pub fn new(secret: &[u8], context: &str, period: u64) -> NonceIssuer {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(
            &master,
            format!("gatehouse dpop-nonce v1\0{context}").as_bytes(),
        );
        NonceIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            period: period.max(1),
        }
    }

    fn tagged(&self, slot: u64) -> [u8; 8 + TAG_BYTES] {
        let mut out = [0u8; 8 + TAG_BYTES];
        out[..8].copy_from_slice(&slot.to_be_bytes());
        let tag = hmac::sign(&self.key, &out[..8]);
        out[8..].copy_from_slice(&tag.as_ref()[..TAG_BYTES]);
        out
    }

    /// The nonce to hand out at `now` (seconds since the epoch).
    #[must_use]
    pub fn issue(&self, now: u64) -> String {
        B64URL.encode(self.tagged(now / self.period))
    }

    /// Whether `nonce` was issued by this issuer (same secret and context) in the current
    /// slot or the one before. The tag is compared in constant time.
    #[must_use]
    pub fn check(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = B64URL.decode(nonce) else {
            return false;
        };
        if bytes.len() != 8 + TAG_BYTES {
            return false;
        }
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&bytes[..8]);
        let slot = u64::from_be_bytes(slot);
        let current = now / self.period;
        if slot != current && slot.saturating_add(1) != current {
            return false;
        }
        let expected = self.tagged(slot);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_for_its_slot_and_the_next() {
        let issuer = NonceIssuer::new(b"secret", "demo", 60);
        let nonce = issuer.issue(600);
        assert!(issuer.check(&nonce, 600));
        assert!(issuer.check(&nonce, 659));
        assert!(issuer.check(&nonce, 719), "the next slot still accepts it");
        assert!(!issuer.check(&nonce, 720), "two slots later it is stale");
        assert!(
            !issuer.check(&nonce, 599),
            "a nonce from the future is refused"
        );
        assert_ne!(issuer.issue(660), nonce, "each slot has its own nonce");
    }

    #[test]
    fn replicas_with_the_same_secret_agree_and_others_do_not() {
        let a = NonceIssuer::new(b"secret", "demo", 60);
        let b = NonceIssuer::new(b"secret", "demo", 60);
        let nonce = a.issue(1_000);
        assert!(b.check(&nonce, 1_000));
        assert!(!NonceIssuer::new(b"other", "demo", 60).check(&nonce, 1_000));
        assert!(!NonceIssuer::new(b"secret", "other-tenant", 60).check(&nonce, 1_000));
    }

    #[test]
    fn forged_or_garbled_nonces_are_refused() {
        let issuer = NonceIssuer::new(b"secret", "demo", 60);
        let nonce = issuer.issue(1_000);
        let mut bytes = B64URL.decode(&nonce).expect("base64url");
        bytes[10] ^= 1;
        assert!(!issuer.check(&B64URL.encode(&bytes), 1_000));
        // Moving the slot forward without the tag does not make a nonce fresh.
        let mut moved = B64URL.decode(issuer.issue(0)).expect("base64url");
        moved[..8].copy_from_slice(&(1_000u64 / 60).to_be_bytes());
        assert!(!issuer.check(&B64URL.encode(&moved), 1_000));
        for garbage in ["", "!!!", "AAAA", &nonce[..nonce.len() - 2]] {
            assert!(!issuer.check(garbage, 1_000), "{garbage:?}");
        }
    }
}

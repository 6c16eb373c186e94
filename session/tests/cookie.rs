//! The cookie codec: round trips, key rotation, tampering, truncation, purpose binding and
//! garbage input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::CookieKey;
use gatehouse_session::cookie::{CookieCodec, MAX_SEALED_LEN};
use proptest::prelude::*;

fn key(byte: u8) -> CookieKey {
    CookieKey::new([byte; 32])
}

fn codec(bytes: &[u8]) -> CookieCodec {
    let keys: Vec<CookieKey> = bytes.iter().map(|b| key(*b)).collect();
    CookieCodec::new(&keys).expect("at least one key")
}

#[test]
fn round_trip() {
    let c = codec(&[1]);
    for plain in [&b""[..], b"x", b"hello session", &[0u8; 3000][..]] {
        let sealed = c.seal("session", plain).expect("seal");
        assert!(sealed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(c.open("session", &sealed).as_deref(), Some(plain));
    }
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let c = codec(&[1]);
    let a = c.seal("session", b"same").expect("seal");
    let b = c.seal("session", b"same").expect("seal");
    assert_ne!(a, b);
}

#[test]
fn rotation() {
    let old = codec(&[1]);
    let sealed_old = old.seal("session", b"old").expect("seal");

    // A new key is prepended: old values still open, new ones are sealed with the new key.
    let rotated = codec(&[2, 1]);
    assert_eq!(rotated.key_count(), 2);
    assert_eq!(
        rotated.open("session", &sealed_old).as_deref(),
        Some(&b"old"[..])
    );
    let sealed_new = rotated.seal("session", b"new").expect("seal");
    assert_eq!(
        rotated.open("session", &sealed_new).as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(old.open("session", &sealed_new), None, "sealed with key 2");
    let only_new = codec(&[2]);
    assert_eq!(
        only_new.open("session", &sealed_new).as_deref(),
        Some(&b"new"[..])
    );

    // The old key is removed: values sealed with it no longer open.
    assert_eq!(only_new.open("session", &sealed_old), None);
    // A codec with an unrelated key opens nothing.
    assert_eq!(codec(&[3]).open("session", &sealed_old), None);
    assert_eq!(codec(&[3]).open("session", &sealed_new), None);
}

#[test]
fn purpose_mismatch() {
    let c = codec(&[1]);
    let state = c.seal("login-state", b"state").expect("seal");
    assert_eq!(c.open("session", &state), None);
    assert_eq!(c.open("login-state ", &state), None);
    assert_eq!(c.open("", &state), None);
    let session = c.seal("session", b"sid").expect("seal");
    assert_eq!(c.open("login-state", &session), None);
    assert_eq!(
        c.open("login-state", &state).as_deref(),
        Some(&b"state"[..])
    );
}

#[test]
fn tampering_any_byte_fails() {
    let c = codec(&[2, 1]);
    let sealed = c
        .seal("session", b"a session id of some length")
        .expect("seal");
    let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
    for i in 0..raw.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = raw.clone();
            bad[i] ^= flip;
            let bad = URL_SAFE_NO_PAD.encode(&bad);
            assert_eq!(c.open("session", &bad), None, "byte {i} ^ {flip:#x}");
        }
    }
    // Character-level edits of the base64 text too (any other alphabet character).
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..sealed.len() {
        for &ch in alphabet.iter().step_by(7) {
            if sealed.as_bytes()[i] == ch {
                continue;
            }
            let mut bad = sealed.clone().into_bytes();
            bad[i] = ch;
            let bad = String::from_utf8(bad).expect("ascii");
            assert_eq!(c.open("session", &bad), None, "char {i} -> {}", ch as char);
        }
    }
}

#[test]
fn truncations_and_extensions_fail() {
    let c = codec(&[1]);
    let sealed = c.seal("session", b"0123456789abcdef").expect("seal");
    for len in 0..sealed.len() {
        assert_eq!(c.open("session", &sealed[..len]), None, "prefix {len}");
        assert_eq!(
            c.open("session", &sealed[len + 1..]),
            None,
            "suffix from {len}"
        );
    }
    let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
    for len in 0..raw.len() {
        let cut = URL_SAFE_NO_PAD.encode(&raw[..len]);
        assert_eq!(c.open("session", &cut), None, "raw prefix {len}");
    }
    let mut longer = raw.clone();
    longer.push(0);
    assert_eq!(c.open("session", &URL_SAFE_NO_PAD.encode(&longer)), None);
    assert_eq!(c.open("session", &format!("{sealed}=")), None, "padding");
    assert_eq!(c.open("session", &format!("{sealed}A")), None);
}

#[test]
fn odd_inputs_fail() {
    let c = codec(&[1]);
    let long = "A".repeat(MAX_SEALED_LEN + 1);
    for bad in [
        "",
        "A",
        "====",
        "not base64 at all!",
        "////",
        "+/+/",
        "\u{e9}\u{e9}\u{e9}",
        long.as_str(),
    ] {
        assert_eq!(c.open("session", bad), None, "{bad:.40}");
    }
    // Valid base64 of exactly nonce + tag (an empty ciphertext that was never sealed).
    let zeros = URL_SAFE_NO_PAD.encode([0u8; 28]);
    assert_eq!(c.open("session", &zeros), None);
}

proptest! {
    #[test]
    fn garbage_never_opens(s in ".{0,300}") {
        let c = codec(&[1, 2]);
        prop_assert_eq!(c.open("session", &s), None);
    }

    #[test]
    fn random_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let c = codec(&[1, 2]);
        prop_assert_eq!(c.open("session", &URL_SAFE_NO_PAD.encode(&bytes)), None);
    }

    #[test]
    fn any_plaintext_round_trips(plain in proptest::collection::vec(any::<u8>(), 0..512), purpose in "[a-z-]{0,16}") {
        let c = codec(&[9, 1]);
        let sealed = c.seal(&purpose, &plain).expect("seal");
        prop_assert_eq!(c.open(&purpose, &sealed), Some(plain));
    }
}

//! Compact JWS parsing: the token's shape and its decoded header, before any key is used.

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::error::TokenError;
use super::rules::MAX_TOKEN_BYTES;
use crate::encoding::B64URL;
use crate::jwks;

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The parts of a compact JWS, header decoded.
pub(super) struct Parts<'a> {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
    /// The header's `typ`, checked against the token's use after the signature.
    pub(super) typ: Option<String>,
    /// `header.payload`, the signed bytes.
    pub(super) signing_input: &'a [u8],
    pub(super) payload_b64: &'a str,
    pub(super) signature: Vec<u8>,
}

pub(super) fn split_token(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(TokenError::Malformed);
    };
    if h.is_empty() || p.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header_bytes = B64URL.decode(h).map_err(|_| TokenError::Malformed)?;
    let header: RawHeader =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        // We understand no JWS extensions, and RFC 7515 says a `crit` we do not know must fail.
        return Err(TokenError::Malformed);
    }
    let alg = header.alg.ok_or(TokenError::Malformed)?;
    // Checked before the signature's shape so an unsigned `alg: none` token ("h.p.") is
    // reported as the algorithm problem it is.
    let alg = jwks::parse_algorithm(&alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    if s.is_empty() {
        return Err(TokenError::Malformed);
    }
    let signature = B64URL.decode(s).map_err(|_| TokenError::Malformed)?;
    Ok(Parts {
        alg,
        kid: header.kid,
        typ: header.typ,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        payload_b64: p,
        signature,
    })
}

/// Whether `token` has the shape of a compact JWS: three non-empty dot-separated parts. Says
/// nothing about validity; the gateway uses it to pick [`TokenVerifier::verify`](super::TokenVerifier::verify) (JWT) or
/// [`TokenVerifier::introspect`](super::TokenVerifier::introspect) (opaque token).
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
        for opaque in [
            "", "abc", "a.b", "a.b.", ".b.c", "a..c", "a.b.c.d", "...", "a.b.c.",
        ] {
            assert!(!looks_like_jwt(opaque), "{opaque:?}");
        }
    }

    #[test]
    fn split_rejects_bad_shapes() {
        let h = B64URL.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let p = B64URL.encode(br#"{}"#);
        let good = format!("{h}.{p}.c2ln");
        let parts = split_token(&good).expect("three parts");
        assert_eq!(parts.alg, Algorithm::RS256);
        assert_eq!(parts.kid.as_deref(), Some("k"));
        assert_eq!(parts.signing_input, format!("{h}.{p}").as_bytes());
        for bad in [
            String::new(),
            "a".into(),
            "a.b".into(),
            format!("{h}.{p}.c2ln.x"),
            format!("{h}.{p}."),
            format!("{h}..c2ln"),
            format!("{h}.{p}.c2ln.x.y"),
            format!("{h}.{p}.***"),
            format!("{}.{p}.c2ln", B64URL.encode(b"not json")),
            format!("{}.{p}.c2ln", B64URL.encode(br#"{"kid":"k"}"#)),
            format!(
                "{}.{p}.c2ln",
                B64URL.encode(br#"{"alg":"RS256","crit":["x"]}"#)
            ),
            "a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                split_token(&bad).err(),
                Some(TokenError::Malformed),
                "{bad:.60}"
            );
        }
        for alg in ["none", "HS256", "HS512", "XX1"] {
            let h = B64URL.encode(format!(r#"{{"alg":"{alg}"}}"#));
            for token in [format!("{h}.{p}.c2ln"), format!("{h}.{p}.")] {
                assert_eq!(
                    split_token(&token).err(),
                    Some(TokenError::UnsupportedAlgorithm)
                );
            }
        }
    }
}

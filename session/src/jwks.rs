//! JSON Web Key Sets: where they come from ([`JwksSource`]) and the verification keys built
//! from them ([`KeySet`]).
//!
//! Keys are parsed with `jsonwebtoken`'s JWK types and then turned ONCE, at load time, into
//! `aws-lc-rs` [`ParsedPublicKey`]s, one per algorithm the key may verify. `jsonwebtoken`'s own
//! `decode` rebuilds the public key from its components on every call; pre-parsing moves that
//! cost from every cache miss to every JWKS fetch (the `tokens` bench shows both side by side).

use std::path::PathBuf;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::error::JwksFileError;

/// The algorithms a token may be signed with when the config allows them. `none` and the HMAC
/// algorithms are never here: a public JWKS must not double as a shared secret.
pub const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parses a JWS `alg` name into one of [`ASYMMETRIC_ALGORITHMS`]; `none`, `HS*` and unknown
/// names are `None`.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    ASYMMETRIC_ALGORITHMS
        .iter()
        .copied()
        .find(|alg| algorithm_name(*alg) == name)
}

/// The JWS name of an algorithm (`RS256`, `EdDSA`, ...).
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non_exhaustive; a future variant is simply never accepted.
        _ => "unknown",
    }
}

/// One usable verification key: its `kid` and a parsed public key per algorithm it may verify.
struct VerifyKey {
    kid: Option<String>,
    /// Names this key (its `kid` and key material) across key sets, so tokens it verified can
    /// be found when it leaves the JWKS; never 0.
    fingerprint: u64,
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyKey {
    fn for_alg(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_alg
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, key)| key)
    }
}

/// Why no key could be picked for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMiss {
    /// No key with this `kid` (or, without a `kid`, not exactly one key fits the algorithm).
    UnknownKid,
    /// A key has this `kid` but cannot verify this algorithm (wrong type, curve or stated alg).
    WrongAlgorithm,
}

/// The verification keys of one JWKS, restricted to a provider's algorithm allowlist.
///
/// A JWK is kept when its `use` is absent or `sig`, its type and curve fit at least one allowed
/// algorithm (RSA for RS*/PS*, EC P-256 for ES256, EC P-384 for ES384, OKP Ed25519 for
/// EdDSA), its stated `alg` (if any) is that algorithm, and its key material parses. Other
/// JWKs (encryption keys, symmetric keys, unknown types, malformed entries) are skipped, not
/// fatal, so one odd key cannot take down verification for the whole provider.
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

impl KeySet {
    /// Builds a key set from a JWKS document (`{"keys": [...]}`) for the allowed algorithms.
    ///
    /// Errors when the document is not JSON or has no `keys` array; individual unusable keys
    /// are skipped (an empty result is not an error).
    pub fn from_jwks_json(document: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        let doc: Value =
            serde_json::from_slice(document).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "JWKS has no \"keys\" array".to_string())?;
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                tracing::debug!("skipping a JWK that does not parse");
                continue;
            };
            if let Some(key) = build_key(&jwk, allowed) {
                keys.push(key);
            }
        }
        Ok(KeySet { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys (keys without one are skipped).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// Whether a key with this fingerprint (see [`select`](Self::select)) is in the set.
    pub(crate) fn has_fingerprint(&self, fingerprint: u64) -> bool {
        self.keys.iter().any(|k| k.fingerprint == fingerprint)
    }

    /// The fingerprints of this set's keys that `next` does not have.
    pub(crate) fn gone_in(&self, next: &KeySet) -> Vec<u64> {
        self.keys
            .iter()
            .map(|k| k.fingerprint)
            .filter(|f| !next.has_fingerprint(*f))
            .collect()
    }

    /// Picks the key for a token: by `kid`; without a `kid`, the only key that can verify
    /// `alg` (if exactly one). Returns it with the key's fingerprint.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(&ParsedPublicKey, u64), KeyMiss> {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for key in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    seen = true;
                    if let Some(parsed) = key.for_alg(alg) {
                        return Ok((parsed, key.fingerprint));
                    }
                }
                Err(if seen {
                    KeyMiss::WrongAlgorithm
                } else {
                    KeyMiss::UnknownKid
                })
            }
            None => {
                let mut fitting = self
                    .keys
                    .iter()
                    .filter_map(|k| k.for_alg(alg).map(|p| (p, k.fingerprint)));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(KeyMiss::UnknownKid),
                }
            }
        }
    }
}

/// Whether a JWK's type and curve fit `alg`.
pub(crate) fn key_fits(params: &AlgorithmParameters, alg: Algorithm) -> bool {
    match params {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA
        }
        _ => false,
    }
}

fn build_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return None,
    }
    let stated = match jwk.common.key_algorithm {
        None => None,
        // A stated alg that is not a signing algorithm we know (RSA-OAEP, HS256, ...) makes the
        // key unusable for us rather than "any algorithm".
        Some(ka) => Some(parse_algorithm(&ka.to_string())?),
    };
    let mut by_alg = Vec::new();
    for &alg in allowed {
        if stated.is_some_and(|s| s != alg) || !key_fits(&jwk.algorithm, alg) {
            continue;
        }
        match parse_public_key(&jwk.algorithm, alg) {
            Some(parsed) => by_alg.push((alg, parsed)),
            None => {
                tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK whose key does not parse");
                return None;
            }
        }
    }
    if by_alg.is_empty() {
        return None;
    }
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        fingerprint: fingerprint(jwk),
        by_alg,
    })
}

/// A hash of a JWK's `kid` and key material: the same key in two fetches has the same
/// fingerprint, a key replaced under the same `kid` a different one.
fn fingerprint(jwk: &Jwk) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new();
    h.write(jwk.common.key_id.as_deref().unwrap_or("").as_bytes());
    h.write_u8(0);
    h.write(
        serde_json::to_string(&jwk.algorithm)
            .unwrap_or_default()
            .as_bytes(),
    );
    h.finish().max(1)
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    crate::encoding::B64URL.decode(s).ok()
}

pub(crate) fn parse_public_key(
    params: &AlgorithmParameters,
    alg: Algorithm,
) -> Option<ParsedPublicKey> {
    match params {
        AlgorithmParameters::RSA(rsa) => {
            let n = b64url(&rsa.n)?;
            let e = b64url(&rsa.e)?;
            let params: &'static sig::RsaParameters = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            // Leading zero octets are legal in a JWK's base64 but not in the components.
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .ok()
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (verify_alg, width): (&'static sig::EcdsaVerificationAlgorithm, usize) = match alg {
                Algorithm::ES256 => (&sig::ECDSA_P256_SHA256_FIXED, 32),
                Algorithm::ES384 => (&sig::ECDSA_P384_SHA384_FIXED, 48),
                _ => return None,
            };
            let x = b64url(&ec.x)?;
            let y = b64url(&ec.y)?;
            if x.len() != width || y.len() != width {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * width);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(verify_alg, point).ok()
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            let x = b64url(&okp.x)?;
            if x.len() != 32 || alg != Algorithm::EdDSA {
                return None;
            }
            ParsedPublicKey::new(&sig::ED25519, x).ok()
        }
        _ => None,
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks-file`: a static JWKS read from disk (no network).
    File(PathBuf),
    /// The `jwks_uri` of the provider's discovery document
    /// ([`ProviderDiscovery`](crate::discovery::ProviderDiscovery)).
    Discovery,
}

impl JwksSource {
    /// The source for a configured identity provider: its `jwks-file` if set, else discovery.
    pub fn for_provider(provider: &gatehouse_config::IdentityProvider) -> JwksSource {
        match &provider.jwks_file {
            Some(path) => JwksSource::File(path.clone()),
            None => JwksSource::Discovery,
        }
    }

    /// Reads the JWKS file synchronously (for construction and reload, never on a request
    /// path). `None` for a discovery source.
    pub fn load_file_blocking(
        &self,
        allowed: &[Algorithm],
    ) -> Option<Result<KeySet, JwksFileError>> {
        match self {
            JwksSource::File(path) => Some(
                std::fs::read(path)
                    .map_err(|e| JwksFileError::Read {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                    .and_then(|bytes| {
                        KeySet::from_jwks_json(&bytes, allowed).map_err(|reason| {
                            JwksFileError::Parse {
                                path: path.clone(),
                                reason,
                            }
                        })
                    }),
            ),
            JwksSource::Discovery => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for alg in ASYMMETRIC_ALGORITHMS {
            assert_eq!(parse_algorithm(algorithm_name(alg)), Some(alg));
        }
        for refused in ["none", "HS256", "HS384", "HS512", "rs256", ""] {
            assert_eq!(parse_algorithm(refused), None, "{refused}");
        }
    }

    #[test]
    fn odd_jwks_documents() {
        assert!(KeySet::from_jwks_json(b"not json", &[Algorithm::RS256]).is_err());
        assert!(KeySet::from_jwks_json(b"{}", &[Algorithm::RS256]).is_err());
        let set = KeySet::from_jwks_json(
            br#"{"keys":[
                {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
                {"kty":"RSA","n":"!!","e":"AQAB","kid":"badb64"},
                {"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"short"},
                {"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"shorted"},
                {"kty":"weird"},
                42
            ]}"#,
            &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        )
        .expect("document parses");
        assert!(set.is_empty());
        assert_eq!(
            set.select(Some("hmac"), Algorithm::RS256).err(),
            Some(KeyMiss::UnknownKid)
        );
        assert_eq!(
            set.select(None, Algorithm::RS256).err(),
            Some(KeyMiss::UnknownKid)
        );
    }

    #[test]
    fn fingerprints_follow_the_key_material_not_just_the_kid() {
        // Two P-256 points: the curve's generator G and 2G.
        let g = (
            "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
            "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
        );
        let g2 = (
            "fPJ7GI0DT36KUjgDBLUaw8CJaeJ38hs1pgtI_EdmmXg",
            "B3dVENuO0EApPZrGn3Qw27p9reY86YIpngS3nSJ4c9E",
        );
        let set = |keys: &[(&str, (&str, &str))]| {
            let body: Vec<String> = keys
                .iter()
                .map(|(kid, (x, y))| {
                    format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{x}","y":"{y}"}}"#)
                })
                .collect();
            KeySet::from_jwks_json(
                format!(r#"{{"keys":[{}]}}"#, body.join(",")).as_bytes(),
                &[Algorithm::ES256],
            )
            .expect("JWKS parses")
        };
        let a = set(&[("k1", g), ("k2", g2)]);
        assert_eq!(a.len(), 2);
        let (_, f1) = a.select(Some("k1"), Algorithm::ES256).expect("k1");
        let (_, f2) = a.select(Some("k2"), Algorithm::ES256).expect("k2");
        assert_ne!(f1, f2);
        assert!(f1 != 0 && f2 != 0);
        assert_eq!(a.gone_in(&set(&[("k1", g), ("k2", g2)])), Vec::<u64>::new());
        assert_eq!(a.gone_in(&set(&[("k2", g2)])), vec![f1]);
        // The same kid with other key material is another key.
        assert_eq!(a.gone_in(&set(&[("k1", g2), ("k2", g2)])), vec![f1]);
        assert_eq!(a.gone_in(&set(&[])).len(), 2);
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[0]);
        assert_eq!(strip_leading_zeros(&[]), &[] as &[u8]);
    }
}

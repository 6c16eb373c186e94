//! The check of one DPoP proof JWT against the request it came with (RFC 9449 4.3).

use aws_lc_rs::digest::{digest, SHA256};
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType,
    OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::htu::normalize_htu;
use crate::encoding::B64URL;
use crate::jwks;

/// Proofs longer than this (bytes) are refused unread: an RSA 4096 proof is about 1.5 KiB.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` accepted (RFC 9449 asks for enough randomness, not for length).
const MAX_JTI_BYTES: usize = 256;

/// Why a proof was refused. Each is a 401 `invalid_dpop_proof`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// No `DPoP` header with a DPoP-bound token.
    Missing,
    /// More than one `DPoP` header (RFC 9449 4.3: exactly one).
    Multiple,
    /// Not a compact JWS, undecodable header or claims, a `crit` header, a missing or
    /// mistyped claim, or over [`MAX_PROOF_BYTES`].
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is `none`, `HS*`, unknown or not in the provider's allowlist, or does not fit the
    /// `jwk`'s key type.
    UnsupportedAlgorithm,
    /// The `jwk` carries private key material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) or is a
    /// symmetric key (`k`).
    PrivateKey,
    /// The `jwk` is missing or is not a usable public key.
    BadKey,
    /// The `jwk`'s RFC 7638 thumbprint is not the token's `cnf.jkt`.
    KeyMismatch,
    /// The signature does not verify with the `jwk`.
    BadSignature,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URI.
    WrongUri,
    /// `iat` is older than the proof window (plus leeway).
    Stale,
    /// `iat` is further in the future than the leeway.
    Future,
    /// `ath` is missing or is not the hash of the access token sent with the proof.
    WrongAccessTokenHash,
    /// The route wants a nonce the gateway issued and the proof has none, or an expired or
    /// foreign one (answered with `use_dpop_nonce` and a fresh `DPoP-Nonce`).
    NonceRequired,
    /// Its `jti` was seen before within the window.
    Replayed,
}

impl ProofError {
    /// A stable snake_case reason for logs and metric labels (bounded set).
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            ProofError::Missing => "dpop_missing",
            ProofError::Multiple => "dpop_multiple",
            ProofError::Malformed => "dpop_malformed",
            ProofError::WrongType => "dpop_wrong_typ",
            ProofError::UnsupportedAlgorithm => "dpop_unsupported_alg",
            ProofError::PrivateKey => "dpop_private_key",
            ProofError::BadKey => "dpop_bad_key",
            ProofError::KeyMismatch => "dpop_key_mismatch",
            ProofError::BadSignature => "dpop_bad_signature",
            ProofError::WrongMethod => "dpop_wrong_htm",
            ProofError::WrongUri => "dpop_wrong_htu",
            ProofError::Stale => "dpop_stale",
            ProofError::Future => "dpop_future",
            ProofError::WrongAccessTokenHash => "dpop_wrong_ath",
            ProofError::NonceRequired => "dpop_nonce_required",
            ProofError::Replayed => "dpop_replayed",
        }
    }

    /// A short client-safe `error_description`.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            ProofError::Missing => "a DPoP proof is required",
            ProofError::Multiple => "exactly one DPoP proof is allowed",
            ProofError::Malformed => "the DPoP proof is malformed",
            ProofError::WrongType => "the DPoP proof's typ is not dpop+jwt",
            ProofError::UnsupportedAlgorithm => "the DPoP proof's algorithm is not accepted",
            ProofError::PrivateKey => "the DPoP proof's jwk must be a public key",
            ProofError::BadKey => "the DPoP proof's jwk is not a usable public key",
            ProofError::KeyMismatch => "the DPoP proof's key is not the token's key",
            ProofError::BadSignature => "the DPoP proof's signature is invalid",
            ProofError::WrongMethod => "the DPoP proof is for another method",
            ProofError::WrongUri => "the DPoP proof is for another URI",
            ProofError::Stale => "the DPoP proof is too old",
            ProofError::Future => "the DPoP proof is issued in the future",
            ProofError::WrongAccessTokenHash => "the DPoP proof is for another access token",
            ProofError::NonceRequired => "the resource server requires a nonce in the DPoP proof",
            ProofError::Replayed => "the DPoP proof was used before",
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for ProofError {}

/// What proofs must satisfy on a route.
#[derive(Debug, Clone, Copy)]
pub struct ProofRules<'a> {
    /// The accepted `alg` values (the provider's `algorithms`; never `none`/`HS*`).
    pub algorithms: &'a [Algorithm],
    /// How old `iat` may be, seconds (the route's `dpop-proof-window`).
    pub window: u64,
    /// Clock leeway, seconds (the provider's `leeway`), added to the window and allowed into
    /// the future.
    pub leeway: u64,
}

/// The request a proof came with.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The request's method, as sent.
    pub method: &'a str,
    /// The request's URI without query and fragment, already in normal form
    /// ([`normalize_htu`]).
    pub uri: &'a str,
    /// The access token the proof must name in `ath`.
    pub access_token: &'a str,
    /// The token's `cnf.jkt`: the thumbprint the proof's key must have.
    pub jkt: &'a str,
}

/// A proof that passed every check but the nonce and replay ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub iat: u64,
    /// `nonce`, when present.
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    jwk: Option<PublicJwk>,
    crit: Option<IgnoredAny>,
}

/// The members of a proof's `jwk` that matter: the public ones of each key type, and the
/// private ones only to refuse them.
#[derive(Deserialize)]
struct PublicJwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Number>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// The JWS `alg` of a proof: the names of [`jwks::parse_algorithm`], and `Ed25519` (RFC
/// 9864's fully specified name, which current clients send) as `EdDSA` with an Ed25519 key.
fn proof_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "Ed25519" => Some(Algorithm::EdDSA),
        name => jwks::parse_algorithm(name),
    }
}

impl PublicJwk {
    /// The key's parameters and its RFC 7638 thumbprint input (the required members in
    /// lexicographic order, no whitespace).
    fn parameters(&self) -> Result<(AlgorithmParameters, String), ProofError> {
        let private = [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ];
        if private.iter().any(|m| m.is_some()) {
            return Err(ProofError::PrivateKey);
        }
        let text = |v: &Option<String>| v.clone().ok_or(ProofError::BadKey);
        let json = |v: &str| serde_json::to_string(v).unwrap_or_default();
        match self.kty.as_deref() {
            Some("EC") => {
                let (crv, x, y) = (text(&self.crv)?, text(&self.x)?, text(&self.y)?);
                let curve = match crv.as_str() {
                    "P-256" => EllipticCurve::P256,
                    "P-384" => EllipticCurve::P384,
                    _ => return Err(ProofError::BadKey),
                };
                let input = format!(
                    r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                    json(&crv),
                    json(&x),
                    json(&y)
                );
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve,
                    x,
                    y,
                });
                Ok((params, input))
            }
            Some("RSA") => {
                let (n, e) = (text(&self.n)?, text(&self.e)?);
                let input = format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, json(&e), json(&n));
                let params = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n,
                    e,
                });
                Ok((params, input))
            }
            Some("OKP") => {
                let (crv, x) = (text(&self.crv)?, text(&self.x)?);
                if crv != "Ed25519" {
                    return Err(ProofError::BadKey);
                }
                let input = format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, json(&crv), json(&x));
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x,
                });
                Ok((params, input))
            }
            _ => Err(ProofError::BadKey),
        }
    }
}

/// base64url(SHA-256(`input`)).
fn sha256_b64(input: &[u8]) -> String {
    B64URL.encode(digest(&SHA256, input).as_ref())
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK given as JSON, as a token's
/// `cnf.jkt` names it; `None` for JSON that is not a public EC (P-256/P-384), RSA or Ed25519
/// key.
#[must_use]
pub fn jwk_thumbprint(jwk_json: &str) -> Option<String> {
    let jwk: PublicJwk = serde_json::from_str(jwk_json).ok()?;
    let (_, input) = jwk.parameters().ok()?;
    Some(sha256_b64(input.as_bytes()))
}

/// The `ath` a proof sent with `access_token` must carry: base64url(SHA-256(token)).
#[must_use]
pub fn access_token_hash(access_token: &str) -> String {
    sha256_b64(access_token.as_bytes())
}

/// Checks `proof` (the `DPoP` header's value) against `request` under `rules` at `now`
/// (seconds since the epoch): everything RFC 9449 4.3 asks but the nonce and the `jti`'s
/// single use, which need state (see the module's doc for the order).
pub fn check_proof(
    proof: &str,
    request: &ProofRequest<'_>,
    rules: &ProofRules<'_>,
    now: u64,
) -> Result<CheckedProof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    if h.is_empty() || p.is_empty() {
        return Err(ProofError::Malformed);
    }
    let header_bytes = B64URL.decode(h).map_err(|_| ProofError::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| ProofError::Malformed)?;
    if header.crit.is_some() {
        return Err(ProofError::Malformed);
    }
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError::WrongType);
    }
    let alg = header
        .alg
        .as_deref()
        .and_then(proof_algorithm)
        .filter(|alg| rules.algorithms.contains(alg))
        .ok_or(ProofError::UnsupportedAlgorithm)?;
    let jwk = header.jwk.ok_or(ProofError::BadKey)?;
    let (params, thumbprint_input) = jwk.parameters()?;
    if !jwks::key_fits(&params, alg) {
        return Err(ProofError::UnsupportedAlgorithm);
    }
    // Before the signature: a proof made with any other key costs a hash, not a verification.
    if sha256_b64(thumbprint_input.as_bytes()) != request.jkt {
        return Err(ProofError::KeyMismatch);
    }
    let key = jwks::parse_public_key(&params, alg).ok_or(ProofError::BadKey)?;
    if s.is_empty() {
        return Err(ProofError::Malformed);
    }
    let signature = B64URL.decode(s).map_err(|_| ProofError::Malformed)?;
    key.verify_sig(&proof.as_bytes()[..h.len() + 1 + p.len()], &signature)
        .map_err(|_| ProofError::BadSignature)?;
    let claims_bytes = B64URL.decode(p).map_err(|_| ProofError::Malformed)?;
    let claims: ProofClaims =
        serde_json::from_slice(&claims_bytes).map_err(|_| ProofError::Malformed)?;
    let (Some(jti), Some(htm), Some(htu), Some(iat)) =
        (claims.jti, claims.htm, claims.htu, claims.iat)
    else {
        return Err(ProofError::Malformed);
    };
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::Malformed);
    }
    let iat = iat.as_u64().ok_or(ProofError::Malformed)?;
    if htm != request.method {
        return Err(ProofError::WrongMethod);
    }
    if normalize_htu(&htu).as_deref() != Some(request.uri) {
        return Err(ProofError::WrongUri);
    }
    if iat
        .saturating_add(rules.window)
        .saturating_add(rules.leeway)
        < now
    {
        return Err(ProofError::Stale);
    }
    if iat > now.saturating_add(rules.leeway) {
        return Err(ProofError::Future);
    }
    if claims.ath.as_deref() != Some(access_token_hash(request.access_token).as_str()) {
        return Err(ProofError::WrongAccessTokenHash);
    }
    Ok(CheckedProof {
        jti,
        iat,
        nonce: claims.nonce,
    })
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;

//! Locally generated signing keys (RSA, P-256, P-384, Ed25519) that mint JWTs and describe
//! themselves as JWKs, so tests and benches sign exactly what a real IdP would.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// Base64url without padding (JWT segments, JWK members).
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The kind of a test key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key with a `kid`, able to mint tokens and describe itself as a JWK.
pub struct TestKey {
    /// The `kid` its tokens and its JWK carry.
    pub kid: String,
    /// Its key type.
    pub kind: Kind,
    signer: Signer,
}

impl TestKey {
    /// A fresh key of `kind` named `kid`.
    pub fn generate(kind: Kind, kid: &str) -> TestKey {
        let signer = match kind {
            Kind::Rsa => Signer::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA keygen"),
            ),
            Kind::P256 => Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 keygen"),
            ),
            Kind::P384 => Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("P-384 keygen"),
            ),
            Kind::Ed25519 => Signer::Ed(Ed25519KeyPair::generate().expect("Ed25519 keygen")),
        };
        TestKey {
            kid: kid.to_string(),
            kind,
            signer,
        }
    }

    /// The public JWK (`use: sig`, no `alg`).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                let width = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if width == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + width]),
                    "y": b64(&point[1 + width..]),
                })
            }
            Signer::Ed(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(k.public_key().as_ref()),
            }),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// The public JWK stating `alg`.
    pub fn jwk_with_alg(&self, alg: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["alg"] = json!(alg);
        jwk
    }

    /// The RSA public key's DER bytes (for the HS256 key-confusion attack).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
            Signer::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The private key as PKCS#8 DER (EC and Ed25519 keys).
    pub fn pkcs8_der(&self) -> Vec<u8> {
        let der = match &self.signer {
            Signer::Ec(k) => k.to_pkcs8v1().expect("EC PKCS#8"),
            Signer::Ed(k) => k.to_pkcs8v1().expect("Ed25519 PKCS#8"),
            Signer::Rsa(_) => panic!("PKCS#8 export is for EC and Ed25519 keys"),
        };
        der.as_ref().to_vec()
    }

    /// The private key as a PKCS#8 PEM file's text (EC and Ed25519 keys), as `openssl genpkey`
    /// writes it.
    pub fn pkcs8_pem(&self) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(self.pkcs8_der());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    /// Signs `input` with `alg` (which must fit the key).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(k) => {
                let encoding: &'static dyn sig::RsaEncoding = match alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    other => panic!("{other} is not an RSA algorithm"),
                };
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(encoding, &rng, input, &mut out).expect("RSA sign");
                out
            }
            Signer::Ec(k) => k.sign(&rng, input).expect("ECDSA sign").as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with header `{"alg", "kid", "typ": "JWT"}`.
    pub fn mint(&self, alg: &str, claims: &Value) -> String {
        self.mint_with_header(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// A token with the given header, signed with the header's `alg`.
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().expect("header alg");
        let input = signing_input(header, claims);
        let signature = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(signature))
    }
}

/// `BASE64URL(header).BASE64URL(claims)`: what a JWS signature covers.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A token of these parts whose third segment is `signature` (base64url-encoded here), which
/// need not be a valid signature: for tampered, unsigned (`b""`) and forged tokens.
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, claims), b64(signature))
}

/// The header and the payload of a three-part token, decoded (panics on anything else).
pub fn decode(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut part = || {
        let bytes = URL_SAFE_NO_PAD
            .decode(it.next().expect("a JWT segment"))
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("a JSON segment")
    };
    (part(), part())
}

/// `token` with one byte of its signature flipped: a valid shape, a bad signature.
pub fn with_bad_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("a JWT");
    let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    signature[0] ^= 0x55;
    format!("{input}.{}", b64(signature))
}

/// `token` with its header's `kid` replaced by `kid`, the payload and signature kept.
pub fn with_kid(token: &str, kid: &str) -> String {
    let (header, rest) = token.split_once('.').expect("a JWT");
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON");
    header["kid"] = json!(kid);
    format!("{}.{rest}", b64(header.to_string()))
}

/// The default algorithm for a key kind.
pub fn default_alg(kind: Kind) -> &'static str {
    match kind {
        Kind::Rsa => "RS256",
        Kind::P256 => "ES256",
        Kind::P384 => "ES384",
        Kind::Ed25519 => "EdDSA",
    }
}

/// Keys generated once per test binary (RSA generation is the slow part).
pub struct Keys {
    /// RSA 2048, kid `rsa-1`.
    pub rsa: TestKey,
    /// A second RSA key, kid `rsa-2`.
    pub rsa2: TestKey,
    /// P-256, kid `ec-256`.
    pub p256: TestKey,
    /// P-384, kid `ec-384`.
    pub p384: TestKey,
    /// Ed25519, kid `ed-1`.
    pub ed: TestKey,
    /// Never published.
    pub rogue: TestKey,
}

/// This test binary's [`Keys`], generated on first use.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::generate(Kind::Rsa, "rsa-1"),
        rsa2: TestKey::generate(Kind::Rsa, "rsa-2"),
        p256: TestKey::generate(Kind::P256, "ec-256"),
        p384: TestKey::generate(Kind::P384, "ec-384"),
        ed: TestKey::generate(Kind::Ed25519, "ed-1"),
        rogue: TestKey::generate(Kind::Rsa, "rogue"),
    })
}

/// A JWKS document (`{"keys": [...]}`) of these JWKs.
pub fn jwks(jwks: &[Value]) -> String {
    json!({ "keys": jwks }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_parts_decode_back_and_edits_touch_only_their_part() {
        let header = json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
        let claims = json!({"sub": "alice", "exp": 1});
        let token = forge(&header, &claims, b"signature");
        assert_eq!(decode(&token), (header.clone(), claims.clone()));
        assert_eq!(token.rsplit('.').next(), Some(b64("signature").as_str()));
        assert_eq!(
            forge(&header, &claims, b""),
            format!("{}.", signing_input(&header, &claims))
        );

        let rekeyed = with_kid(&token, "other");
        let (new_header, new_claims) = decode(&rekeyed);
        assert_eq!(new_header["kid"], "other");
        assert_eq!(new_header["alg"], "RS256");
        assert_eq!(new_claims, claims);
        assert_eq!(
            rekeyed.split_once('.').unwrap().1,
            token.split_once('.').unwrap().1
        );

        let broken = with_bad_signature(&token);
        assert_ne!(broken, token);
        assert_eq!(
            broken.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().0
        );
    }

    #[test]
    fn every_kind_mints_with_its_default_alg_and_publishes_its_kid() {
        for (kind, kty) in [
            (Kind::P256, "EC"),
            (Kind::P384, "EC"),
            (Kind::Ed25519, "OKP"),
        ] {
            let key = TestKey::generate(kind, "k");
            let token = key.mint(default_alg(kind), &json!({"sub": "a"}));
            let (header, claims) = decode(&token);
            assert_eq!(header["alg"], default_alg(kind));
            assert_eq!(header["kid"], "k");
            assert_eq!(claims["sub"], "a");
            assert_eq!(key.jwk()["kty"], kty);
            assert_eq!(key.jwk()["kid"], "k");
        }
    }
}

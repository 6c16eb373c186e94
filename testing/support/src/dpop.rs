//! DPoP proofs (RFC 9449) crafted by hand for the negative cases a client library will not
//! make (stale `iat`, a private `jwk`, `alg: none`, ...), the RFC 7638 thumbprint computed
//! independently of the gateway's, and the `ath` of a token.

use aws_lc_rs::digest::{digest, SHA256};
use serde_json::{json, Value};

use crate::keys::{b64, TestKey};

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over the required members, sorted and
/// without whitespace (serde_json's maps are sorted), base64url.
pub fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        other => panic!("no thumbprint for kty {other:?}"),
    };
    let mut required = serde_json::Map::new();
    for m in members {
        required.insert((*m).to_string(), jwk[*m].clone());
    }
    b64(digest(
        &SHA256,
        Value::Object(required).to_string().as_bytes(),
    ))
}

/// The public JWK of `key` as a proof carries it (no `kid`, no `use`).
pub fn proof_jwk(key: &TestKey) -> Value {
    let mut jwk = key.jwk();
    let map = jwk.as_object_mut().expect("a JWK is an object");
    map.remove("kid");
    map.remove("use");
    jwk
}

/// `ath`: base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    b64(digest(&SHA256, token.as_bytes()))
}

/// A unique `jti`.
pub fn jti() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    b64(bytes)
}

/// The header of a well-formed proof by `key` with `alg`.
pub fn header(key: &TestKey, alg: &str) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg, "jwk": proof_jwk(key)})
}

/// The claims of a well-formed proof for `htm` `htu` with `token`, issued at `iat`.
pub fn claims(htm: &str, htu: &str, token: &str, iat: u64) -> Value {
    json!({"jti": jti(), "htm": htm, "htu": htu, "iat": iat, "ath": ath(token)})
}

/// A well-formed proof signed by `key` with `alg`.
pub fn proof(key: &TestKey, alg: &str, htm: &str, htu: &str, token: &str, iat: u64) -> String {
    key.mint_with_header(&header(key, alg), &claims(htm, htu, token, iat))
}

/// The DPoP client's folder (`testing/dpop`, panva's `dpop` library).
pub fn client_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dpop")
}

/// Runs `testing/dpop/client.mjs` with `input` (see its README) and returns its answer:
/// proofs made by a maintained library, and DPoP-bound tokens from the test IdP.
pub fn client(input: &Value) -> Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    assert!(
        client_dir().join("node_modules/dpop").exists(),
        "testing/dpop has no node_modules: run ./scripts/install-deps.sh (it runs npm ci there)"
    );
    let mut child = Command::new("node")
        .arg(client_dir().join("client.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node testing/dpop/client.mjs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the client's input");
    let out = child.wait_with_output().expect("the DPoP client ends");
    assert!(
        out.status.success(),
        "testing/dpop/client.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the DPoP client answers JSON")
}

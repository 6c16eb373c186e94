//! `tenants[].identity-assertion`: the header, the signing keys (read and classified here, so a
//! missing file, an RSA key or a key on the wrong curve is an error with its file and line),
//! the lifetime and the audience.
//!
//! Only the key's type is decided here, from its DER structure; the key itself is parsed by
//! the signer (`gatehouse_session::assertion`), which `gatehouse check` builds too.

use super::*;

use crate::model::{AssertionAlgorithm, AssertionKey, IdentityAssertion};

/// Default `ttl`.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Longest `ttl`: an assertion is a per-request credential, not a session.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// Request headers the assertion must not be carried in: the gateway sets or reads them for
/// other purposes.
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    "authorization",
    "cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "traceparent",
];

/// Validates one `identity-assertion`; `taken` are the tenant's other header names
/// (`identity-headers`, `request-id-header`).
pub(super) fn identity_assertion(
    d: &mut Diag<'_>,
    f: FileIdentityAssertion,
    path: &str,
    taken: &[&str],
) -> IdentityAssertion {
    let header = required(d, f.header, path, "header").unwrap_or_default();
    if let Some(problem) = header_problem(&header, taken) {
        d.error(&join(path, "header"), problem);
    }

    let keys_key = join(path, "signing-key");
    let mut signing_keys = Vec::new();
    match f.signing_key {
        None => d.error(&keys_key, "missing required key \"signing-key\""),
        Some(keys) if keys.items.is_empty() => {
            d.error(&keys_key, "must list at least one key file")
        }
        Some(keys) => {
            for (i, file) in keys.items.iter().enumerate() {
                let key = if keys.list {
                    index(&keys_key, i)
                } else {
                    keys_key.clone()
                };
                match read_key(file) {
                    Ok(k) => signing_keys.push(k),
                    Err(e) => d.error(&key, e),
                }
            }
        }
    }

    let ttl = dur(f.ttl, DEFAULT_TTL);
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        d.error(
            &join(path, "ttl"),
            format!("must be between 1s and 1h (got {}ms)", ttl.as_millis()),
        );
    }

    let audience = f.audience.map(|a| a.0);
    if let Some(a) = &audience {
        if a.trim().is_empty() || a.bytes().any(|b| b.is_ascii_control()) {
            d.error(
                &join(path, "audience"),
                format!("invalid audience {a:?} (expected e.g. https://app.example.com)"),
            );
        }
    }

    IdentityAssertion {
        header,
        signing_keys,
        ttl,
        audience,
    }
}

/// Why `header` cannot carry the assertion, if it cannot.
fn header_problem(header: &str, taken: &[&str]) -> Option<String> {
    if header.is_empty() {
        return None; // reported as missing
    }
    if !is_token(header) {
        return Some(format!("invalid header name {header:?}"));
    }
    let lower = header.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Some(format!(
            "header {header:?} is used by HTTP or the gateway itself; pick another name such as X-Gatehouse-Assertion"
        ));
    }
    if lower.starts_with("x-auth-") {
        return Some(format!(
            "header {header:?}: X-Auth-* names are identity headers; pick another name such as X-Gatehouse-Assertion"
        ));
    }
    taken
        .iter()
        .find(|t| t.eq_ignore_ascii_case(header))
        .map(|t| format!("header {header:?} is already the tenant's {t:?} header"))
}

/// Reads a PEM private key file and decides its algorithm.
fn read_key(file: &str) -> Result<AssertionKey, String> {
    if file.trim().is_empty() {
        return Err("empty path".to_string());
    }
    let text = std::fs::read(file).map_err(|e| format!("cannot read key file {file:?}: {e}"))?;
    let (label, der) = pem_private_key(&text).map_err(|e| format!("key file {file:?}: {e}"))?;
    let algorithm = key_algorithm(label, &der).map_err(|e| format!("key file {file:?}: {e}"))?;
    Ok(AssertionKey::new(PathBuf::from(file), algorithm, der))
}

/// The first PEM block that is not `EC PARAMETERS` (which `openssl ecparam -genkey` writes
/// before the key): its label and decoded body.
fn pem_private_key(text: &[u8]) -> Result<(&'static str, Vec<u8>), String> {
    let text = std::str::from_utf8(text).map_err(|_| "not a PEM file (not text)".to_string())?;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| "malformed PEM header".to_string())?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label:?} has no END line"))?;
        let body = &body_start[..body_end];
        rest = &body_start[body_end + end_marker.len()..];
        let label = match label {
            "EC PARAMETERS" => continue,
            "PRIVATE KEY" => "PRIVATE KEY",
            "EC PRIVATE KEY" => "EC PRIVATE KEY",
            "RSA PRIVATE KEY" => {
                return Err("an RSA key; identity-assertion signs with EC P-256 (ES256) or Ed25519 (EdDSA) keys".to_string())
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err("an encrypted private key; write it unencrypted (openssl pkey -in KEY -out KEY.pem)".to_string())
            }
            other => {
                return Err(format!(
                    "a PEM {other:?} block, not a private key (expected BEGIN PRIVATE KEY or BEGIN EC PRIVATE KEY)"
                ))
            }
        };
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| format!("PEM block {label:?} is not valid base64"))?;
        return Ok((label, der));
    }
    Err("not a PEM file (no BEGIN line); expected an EC P-256 or Ed25519 private key".to_string())
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

/// The algorithm of a PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) key.
fn key_algorithm(label: &str, der: &[u8]) -> Result<AssertionAlgorithm, String> {
    let malformed = || format!("the {label} block is not a well-formed key");
    let key = Der(der).sequence().ok_or_else(malformed)?;
    if label == "EC PRIVATE KEY" {
        // SEC1: version, privateKey, [0] parameters (the curve), [1] publicKey.
        let (_, rest) = key.next(0x02).ok_or_else(malformed)?;
        let (_, rest) = rest.next(0x04).ok_or_else(malformed)?;
        let (params, _) = rest.next(0xa0).ok_or_else(|| {
            "an EC key without its curve; write it as PKCS#8 (openssl pkey -in KEY -out KEY.pem)"
                .to_string()
        })?;
        let (curve, _) = params.next(0x06).ok_or_else(malformed)?;
        return curve_algorithm(curve.0);
    }
    // PKCS#8: version, AlgorithmIdentifier { algorithm, parameters }, privateKey.
    let (_, rest) = key.next(0x02).ok_or_else(malformed)?;
    let (alg_id, _) = rest.next(0x30).ok_or_else(malformed)?;
    let (oid, params) = alg_id.next(0x06).ok_or_else(malformed)?;
    match oid.0 {
        OID_ED25519 => Ok(AssertionAlgorithm::EdDsa),
        OID_EC_PUBLIC_KEY => {
            let (curve, _) = params.next(0x06).ok_or_else(malformed)?;
            curve_algorithm(curve.0)
        }
        OID_RSA | OID_RSA_PSS => Err(
            "an RSA key; identity-assertion signs with EC P-256 (ES256) or Ed25519 (EdDSA) keys"
                .to_string(),
        ),
        _ => Err(
            "an unsupported key type; identity-assertion signs with EC P-256 (ES256) or Ed25519 (EdDSA) keys"
                .to_string(),
        ),
    }
}

fn curve_algorithm(curve: &[u8]) -> Result<AssertionAlgorithm, String> {
    if curve == OID_P256 {
        Ok(AssertionAlgorithm::Es256)
    } else {
        Err("an EC key on another curve than P-256 (prime256v1); ES256 needs P-256, or use an Ed25519 key".to_string())
    }
}

/// A DER reader over the contents of one constructed value.
#[derive(Clone, Copy)]
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The contents of the outer SEQUENCE (which must span the whole input).
    fn sequence(self) -> Option<Der<'a>> {
        let (inner, rest) = self.next(0x30)?;
        rest.0.is_empty().then_some(inner)
    }

    /// The next element, which must have tag `tag`: its contents and what follows it.
    fn next(self, tag: u8) -> Option<(Der<'a>, Der<'a>)> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((Der(&rest[..len]), Der(&rest[len..])))
    }
}

#[cfg(test)]
mod tests;

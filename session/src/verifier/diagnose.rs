//! A diagnostic walk over a bearer token's checks, for `gatehouse explain`: every check the
//! verifier makes, in its order, each with what was expected and what the token carries,
//! instead of stopping at the first failure. The verdict is never taken from here: explain
//! asks [`TokenVerifier::verify_for_audience`] for it, and this walk only says why. It reads
//! the keys in use now (no refetch, no network), never the verified-token cache, and reports
//! claims only, never the token.

use base64::Engine;

use super::error::TokenError;
use super::jws::split_token;
use super::kind::{self, TokenUse};
use super::rules::MAX_TOKEN_BYTES;
use super::{Audience, TokenVerifier};
use crate::claims::{Claims, Registered};
use crate::encoding::B64URL;
use crate::jwks::{self, KeyMiss};

/// One check of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCheck {
    /// What was checked: `size`, `shape`, `alg`, `kid`, `signature`, `exp`, `nbf`, `iat`,
    /// `iss`, `aud`, `kind`, `azp`, `auth_time`.
    pub name: &'static str,
    /// The refusal this check gives when it fails; `None` when it passed.
    pub failed: Option<TokenError>,
    /// What the provider (or the route) expects, when that is a value.
    pub expected: Option<String>,
    /// What the token carries.
    pub got: Option<String>,
    /// One line for a person (e.g. `expired 120 s ago (leeway 30 s)`).
    pub detail: String,
}

/// Every check of one token, and the claims it carries (decoded whether or not the signature
/// verified: they are what the token says, which is what a person needs to see).
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// The JOSE header's `alg`, `kid` and `typ`, when the header decodes.
    pub alg: Option<String>,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The checks, in the verifier's order.
    pub checks: Vec<TokenCheck>,
    /// The payload, when it decodes.
    pub claims: Option<Claims>,
}

impl Diagnosis {
    /// The first failed check, which is the one [`TokenVerifier::verify_for_audience`]
    /// stops at.
    pub fn first_failure(&self) -> Option<&TokenCheck> {
        self.checks.iter().find(|c| c.failed.is_some())
    }
}

/// Collects checks.
struct Walk(Vec<TokenCheck>);

impl Walk {
    fn check(
        &mut self,
        name: &'static str,
        failed: Option<TokenError>,
        expected: Option<String>,
        got: Option<String>,
        detail: String,
    ) {
        self.0.push(TokenCheck {
            name,
            failed,
            expected,
            got,
            detail,
        });
    }
}

fn fail_if(bad: bool, e: TokenError) -> Option<TokenError> {
    bad.then_some(e)
}

/// A short name for a secret (a token, a cookie) that does not reveal it: `sha256:` and the
/// first 12 hex digits of its SHA-256, enough to tell two values apart in a report.
pub fn fingerprint(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// `N s ago` / `in N s`.
fn relative(at: u64, now: u64) -> String {
    if at <= now {
        format!("{} s ago", now - at)
    } else {
        format!("in {} s", at - now)
    }
}

impl TokenVerifier {
    /// Walks every check of `token` as a bearer access token for `audience` at `now` (unix
    /// seconds). See the module documentation.
    pub fn diagnose(&self, token: &str, audience: Audience<'_>, now: u64) -> Diagnosis {
        let mut walk = Walk(Vec::new());
        let mut out = Diagnosis {
            alg: None,
            kid: None,
            typ: None,
            checks: Vec::new(),
            claims: None,
        };
        let size_bad = token.len() > MAX_TOKEN_BYTES;
        walk.check(
            "size",
            fail_if(size_bad, TokenError::Malformed),
            Some(format!("at most {MAX_TOKEN_BYTES} bytes")),
            Some(format!("{} bytes", token.len())),
            String::new(),
        );
        if size_bad {
            out.checks = walk.0;
            return out;
        }
        let parts = match split_token(token) {
            Ok(parts) => parts,
            Err(e) => {
                let (name, detail) = if e == TokenError::UnsupportedAlgorithm {
                    ("alg", "the header's alg is none, HS* or unknown")
                } else {
                    (
                        "shape",
                        "not a compact JWS (three base64url parts, a JSON header with alg, no crit)",
                    )
                };
                walk.check(name, Some(e), None, None, detail.to_string());
                out.checks = walk.0;
                return out;
            }
        };
        out.alg = Some(jwks::algorithm_name(parts.alg).to_string());
        out.kid = parts.kid.clone();
        out.typ = parts.typ.clone();
        let allowed: Vec<&str> = self
            .algorithms
            .iter()
            .map(|a| jwks::algorithm_name(*a))
            .collect();
        walk.check(
            "alg",
            fail_if(
                !self.algorithms.contains(&parts.alg),
                TokenError::UnsupportedAlgorithm,
            ),
            Some(allowed.join(", ")),
            out.alg.clone(),
            String::new(),
        );
        let keys = self.keys.load();
        let selected = match keys.as_ref() {
            None => {
                walk.check(
                    "kid",
                    Some(TokenError::KeysUnavailable),
                    None,
                    parts.kid.clone(),
                    "no signing keys are loaded for the provider".to_string(),
                );
                None
            }
            Some(set) => {
                let known: Vec<&str> = set.kids().collect();
                let expected = Some(format!("one of [{}]", known.join(", ")));
                match set.select(parts.kid.as_deref(), parts.alg) {
                    Ok((key, _)) => {
                        walk.check(
                            "kid",
                            None,
                            expected,
                            parts.kid.clone(),
                            "found".to_string(),
                        );
                        Some(key)
                    }
                    Err(miss) => {
                        let (e, detail) = match miss {
                            KeyMiss::UnknownKid => (
                                TokenError::UnknownKid,
                                "no key in the provider's JWKS has this kid",
                            ),
                            KeyMiss::WrongAlgorithm => (
                                TokenError::UnsupportedAlgorithm,
                                "the key with this kid cannot verify this alg",
                            ),
                        };
                        walk.check("kid", Some(e), expected, parts.kid.clone(), detail.into());
                        None
                    }
                }
            }
        };
        if let Some(key) = selected {
            let bad = key
                .verify_sig(parts.signing_input, &parts.signature)
                .is_err();
            let detail = if bad { "does not verify" } else { "verifies" };
            walk.check(
                "signature",
                fail_if(bad, TokenError::BadSignature),
                None,
                None,
                detail.to_string(),
            );
        }
        let payload = B64URL
            .decode(parts.payload_b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| Claims::from_json(text).ok());
        let Some((claims, registered)) = payload else {
            walk.check(
                "payload",
                Some(TokenError::Malformed),
                None,
                None,
                "the payload is not a JSON object with well-formed dates".to_string(),
            );
            out.checks = walk.0;
            return out;
        };
        self.claim_checks(
            &mut walk,
            parts.typ.as_deref(),
            &claims,
            &registered,
            audience,
            now,
        );
        out.claims = Some(claims);
        out.checks = walk.0;
        out
    }

    /// The checks of the payload, in [`TokenVerifier::check_claims`]'s order.
    fn claim_checks(
        &self,
        walk: &mut Walk,
        header_typ: Option<&str>,
        claims: &Claims,
        registered: &Registered,
        audience: Audience<'_>,
        now: u64,
    ) {
        let leeway = self.rules.leeway;
        match registered.exp {
            None => walk.check(
                "exp",
                Some(TokenError::Malformed),
                None,
                None,
                "missing".to_string(),
            ),
            Some(exp) => {
                let bad = exp.saturating_add(leeway) <= now;
                let detail = if bad {
                    format!("{} (leeway {leeway} s)", relative(exp, now))
                } else {
                    format!("expires {}", relative(exp, now))
                };
                walk.check(
                    "exp",
                    fail_if(bad, TokenError::Expired),
                    None,
                    Some(exp.to_string()),
                    detail,
                );
            }
        }
        for (name, at) in [("nbf", registered.nbf), ("iat", registered.iat)] {
            if let Some(at) = at {
                let bad = at.saturating_sub(leeway) > now;
                let detail = format!("{} (leeway {leeway} s)", relative(at, now));
                walk.check(
                    name,
                    fail_if(bad, TokenError::NotYetValid),
                    None,
                    Some(at.to_string()),
                    detail,
                );
            }
        }
        let iss_bad = registered.iss.as_deref() != Some(self.rules.issuer.as_str());
        walk.check(
            "iss",
            fail_if(iss_bad, TokenError::WrongIssuer),
            Some(self.rules.issuer.clone()),
            registered.iss.clone(),
            String::new(),
        );
        let (expected, aud_bad) = match audience {
            Audience::Provider => (
                format!("one of [{}]", self.rules.audiences.join(", ")),
                !registered.aud.iter().any(|a| self.rules.audience_ok(a)),
            ),
            Audience::Resource(resource) => (
                format!("{resource} (the route's resource)"),
                !registered.aud.iter().any(|a| a == resource),
            ),
        };
        walk.check(
            "aud",
            fail_if(aud_bad, TokenError::WrongAudience),
            Some(expected),
            Some(format!("[{}]", registered.aud.join(", "))),
            String::new(),
        );
        let kind_result = kind::check_use(TokenUse::Access, header_typ, registered);
        walk.check(
            "kind",
            kind_result.err(),
            Some("an access token".to_string()),
            Some(token_kind(header_typ, registered)),
            String::new(),
        );
        let parties = self.rules.authorized_parties.as_deref();
        walk.check(
            "azp",
            kind::check_azp(parties, registered.azp.as_deref()).err(),
            Some(match parties {
                Some(list) => format!("one of [{}]", list.join(", ")),
                None => "any (no authorized-parties)".to_string(),
            }),
            registered.azp.clone(),
            String::new(),
        );
        if let Some(max_age) = self.rules.max_token_age {
            let (failed, detail) = match claims.auth_time {
                _ if registered.auth_time_malformed => {
                    (Some(TokenError::Malformed), "malformed".to_string())
                }
                None => (Some(TokenError::TooOld), "missing".to_string()),
                Some(at) => (
                    fail_if(at.saturating_add(max_age) < now, TokenError::TooOld),
                    format!("authenticated {}", relative(at, now)),
                ),
            };
            walk.check(
                "auth_time",
                failed,
                Some(format!("at most {max_age} s old (max-token-age)")),
                claims.auth_time.map(|t| t.to_string()),
                detail,
            );
        }
    }
}

/// What kind of token the header and payload say this is, in words.
fn token_kind(header_typ: Option<&str>, registered: &Registered) -> String {
    let mut said = Vec::new();
    if let Some(t) = header_typ {
        said.push(format!("header typ {t}"));
    }
    if let Some(t) = &registered.typ {
        said.push(format!("payload typ {t}"));
    }
    if registered.nonce {
        said.push("a nonce (ID tokens carry one)".to_string());
    }
    if registered.events {
        said.push("events (logout tokens carry them)".to_string());
    }
    if said.is_empty() {
        "no typ, no nonce, no events".to_string()
    } else {
        said.join(", ")
    }
}

#[cfg(test)]
mod tests;

//! Browser cookies: the AEAD codec that seals session and pre-login cookies, session IDs, and
//! `Set-Cookie` / `Cookie` header helpers.
//!
//! A sealed value is `base64url(nonce[12] || ciphertext || tag[16])` (no padding), encrypted
//! with AES-256-GCM under the first configured key. The associated data binds the value to
//! its *scope* (the tenant's name and its session cookie's name, see [`CookieCodec::scoped`])
//! and its *purpose* (`"session"`, `"login-state"`, ...): a value sealed for one purpose never
//! opens as another (a pre-login state cookie cannot be replayed as a session cookie), and a
//! value sealed for one tenant never opens for another, even when two tenants share a key.
//!
//! Key rotation: `cookie.encryption-key` lists keys newest first. [`CookieCodec::seal`] always
//! uses the first; [`CookieCodec::open`] tries each in order. There is no key id in the value
//! (it would tell an observer which key is in use and buys little: a failed GCM open is cheap
//! and the list is short). To rotate, prepend a new key; drop the old one once every cookie
//! sealed with it has expired (`session-ttl`).
//!
//! Nonces are 96 random bits per seal. With random nonces AES-GCM stays within its bounds for
//! about 2^32 seals per key, far beyond what a rotation period sees.

use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::{Cookie, CookieKey, SameSite};
use rand::RngCore;

/// Longest cookie value [`CookieCodec::open`] looks at (bytes of base64); longer values are
/// refused without decoding. Browsers cap a whole cookie at about 4 KiB anyway.
pub const MAX_SEALED_LEN: usize = 8 * 1024;

/// AES-GCM authentication tag length.
const TAG_LEN: usize = 16;

/// Prefix of the associated data; a future value format changes it, so old and new values
/// never open as each other (v1 bound only the purpose: its cookies no longer open, and their
/// users log in again).
const AAD_PREFIX: &[u8] = b"gatehouse-cookie-v2:";

/// Why a [`CookieCodec`] could not be built or could not seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// No key was given (the config requires at least one when a tenant has `login`).
    NoKeys,
    /// The cryptographic library refused the key or the operation (not expected in practice:
    /// keys are always 32 bytes; a plaintext would have to be gigabytes long).
    Crypto,
}

impl std::fmt::Display for CookieError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CookieError::NoKeys => "no cookie encryption key is configured",
            CookieError::Crypto => "cookie encryption failed",
        })
    }
}

impl std::error::Error for CookieError {}

/// Seals and opens cookie values with AES-256-GCM and key rotation (see the module docs).
///
/// Keys are expanded once, at construction. `Debug` never shows them.
pub struct CookieCodec {
    /// Newest first; the first seals, all open.
    keys: Vec<LessSafeKey>,
    /// The associated data before the purpose: [`AAD_PREFIX`] and the length-prefixed scope.
    scope: Vec<u8>,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl CookieCodec {
    /// Builds a codec from the tenant's `cookie.encryption-key` list (newest first).
    ///
    /// # Errors
    ///
    /// [`CookieError::NoKeys`] for an empty list.
    pub fn new(keys: &[CookieKey]) -> Result<CookieCodec, CookieError> {
        if keys.is_empty() {
            return Err(CookieError::NoKeys);
        }
        let keys = keys
            .iter()
            .map(|k| {
                UnboundKey::new(&AES_256_GCM, k.bytes())
                    .map(LessSafeKey::new)
                    .map_err(|_| CookieError::Crypto)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CookieCodec {
            keys,
            scope: scope_aad("", ""),
        })
    }

    /// Binds every value this codec seals or opens to one tenant and its session cookie's
    /// name: a value sealed under another scope (another tenant, or the same tenant with
    /// another cookie name) never opens, whatever the keys. [`new`](Self::new) gives the empty
    /// scope.
    pub fn scoped(mut self, tenant: &str, cookie_name: &str) -> CookieCodec {
        self.scope = scope_aad(tenant, cookie_name);
        self
    }

    /// Number of keys (the first seals, all open).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Encrypts `plaintext` for `purpose` under the newest key with a fresh random nonce and
    /// returns the cookie-safe value (base64url, no padding).
    ///
    /// # Errors
    ///
    /// [`CookieError::Crypto`] only if the cryptographic library fails (not expected).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, CookieError> {
        let key = self.keys.first().ok_or(CookieError::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.aad(purpose)),
            &mut body,
        )
        .map_err(|_| CookieError::Crypto)?;
        buf.extend_from_slice(&body);
        Ok(URL_SAFE_NO_PAD.encode(&buf))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same `purpose` under any of the
    /// keys. Malformed, truncated, over-long ([`MAX_SEALED_LEN`]), tampered, foreign-key or
    /// other-purpose input gives `None`; this never panics.
    pub fn open(&self, purpose: &str, value: &str) -> Option<Vec<u8>> {
        if value.len() > MAX_SEALED_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = self.aad(purpose);
        for key in &self.keys {
            let mut in_out = sealed.to_vec();
            if let Ok(plain) = key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_slice()),
                &mut in_out,
            ) {
                let len = plain.len();
                in_out.truncate(len);
                return Some(in_out);
            }
        }
        None
    }
}

impl CookieCodec {
    fn aad(&self, purpose: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.scope.len() + purpose.len());
        aad.extend_from_slice(&self.scope);
        aad.extend_from_slice(purpose.as_bytes());
        aad
    }
}

/// `AAD_PREFIX || len(tenant) || tenant || len(cookie) || cookie` (lengths as 4 bytes, big
/// endian), so no two different scopes give the same bytes whatever their characters.
fn scope_aad(tenant: &str, cookie_name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 8 + tenant.len() + cookie_name.len());
    aad.extend_from_slice(AAD_PREFIX);
    for part in [tenant, cookie_name] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// A fresh session ID: 32 random bytes from a CSPRNG (the thread-local ChaCha generator seeded
/// by the OS), base64url without padding (43 characters).
pub fn new_session_id() -> String {
    random_token()
}

/// 32 random bytes, base64url without padding (43 characters); for session IDs, OAuth `state`,
/// `nonce` and PKCE verifiers.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds a `Set-Cookie` value:
/// `name=value; Path=/; HttpOnly[; Secure]; SameSite=Lax|Strict|None[; Domain=d][; Max-Age=s]`.
///
/// `Secure`, `SameSite` and `Domain` come from the tenant's `cookie` settings; `max_age` in
/// whole seconds (`None` = a browser-session cookie). The caller passes a cookie-safe `name`
/// (a token) and `value` (e.g. a sealed value, which is base64url); they are not escaped.
pub fn set_cookie_header(
    cookie: &Cookie,
    name: &str,
    value: &str,
    max_age: Option<Duration>,
) -> String {
    let mut header = String::with_capacity(name.len() + value.len() + 96);
    header.push_str(name);
    header.push('=');
    header.push_str(value);
    header.push_str("; Path=/; HttpOnly");
    if cookie.secure {
        header.push_str("; Secure");
    }
    header.push_str(match cookie.same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
        SameSite::None => "; SameSite=None",
    });
    if let Some(domain) = &cookie.domain {
        header.push_str("; Domain=");
        header.push_str(domain);
    }
    if let Some(max_age) = max_age {
        header.push_str("; Max-Age=");
        header.push_str(&max_age.as_secs().to_string());
    }
    header
}

/// A `Set-Cookie` value that deletes cookie `name`: empty value, `Max-Age=0`, and the same
/// `Path`, `Domain`, `Secure` and `SameSite` as [`set_cookie_header`] (a browser only replaces
/// a cookie with matching path and domain).
pub fn clear_cookie_header(cookie: &Cookie, name: &str) -> String {
    set_cookie_header(cookie, name, "", Some(Duration::ZERO))
}

/// Every value of cookie `name` in `Cookie` request headers, in order (a browser sends
/// several when cookies with the same name exist for different paths or domains). Names
/// compare case-sensitively; a value wrapped in double quotes is unwrapped.
pub fn find_cookies<'a, 'n>(
    cookie_headers: impl Iterator<Item = &'a str> + 'n,
    name: &'n str,
) -> impl Iterator<Item = &'a str> + 'n
where
    'a: 'n,
{
    cookie_headers
        .flat_map(|header| header.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=')?;
            if n.trim() != name {
                return None;
            }
            let v = v.trim();
            Some(
                v.strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(v),
            )
        })
}

/// The first value of cookie `name` in `Cookie` request headers (see [`find_cookies`]).
pub fn find_cookie<'a>(
    cookie_headers: impl Iterator<Item = &'a str>,
    name: &str,
) -> Option<&'a str> {
    find_cookies(cookie_headers, name).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(secure: bool, same_site: SameSite, domain: Option<&str>) -> Cookie {
        Cookie {
            name: "gatehouse_session".to_string(),
            domain: domain.map(str::to_owned),
            secure,
            same_site,
            encryption_keys: vec![CookieKey::new([7; 32])],
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }

    #[test]
    fn set_cookie_variants() {
        assert_eq!(
            set_cookie_header(
                &cookie(true, SameSite::Lax, None),
                "s",
                "v",
                Some(Duration::from_secs(60))
            ),
            "s=v; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=60"
        );
        assert_eq!(
            set_cookie_header(
                &cookie(false, SameSite::Strict, Some("example.com")),
                "s",
                "v",
                None
            ),
            "s=v; Path=/; HttpOnly; SameSite=Strict; Domain=example.com"
        );
        assert_eq!(
            set_cookie_header(&cookie(true, SameSite::None, None), "s", "v", None),
            "s=v; Path=/; HttpOnly; Secure; SameSite=None"
        );
        assert_eq!(
            clear_cookie_header(&cookie(true, SameSite::Lax, Some("example.com")), "s"),
            "s=; Path=/; HttpOnly; Secure; SameSite=Lax; Domain=example.com; Max-Age=0"
        );
    }

    #[test]
    fn finds_cookies() {
        let headers = ["a=1; gatehouse_session=abc; b=2", "gatehouse_session=def"];
        assert_eq!(
            find_cookie(headers.iter().copied(), "gatehouse_session"),
            Some("abc")
        );
        assert_eq!(
            find_cookies(headers.iter().copied(), "gatehouse_session").collect::<Vec<_>>(),
            vec!["abc", "def"]
        );
        assert_eq!(find_cookie(headers.iter().copied(), "b"), Some("2"));
        assert_eq!(find_cookie(headers.iter().copied(), "B"), None);
        assert_eq!(find_cookie(headers.iter().copied(), "gatehouse"), None);
        assert_eq!(find_cookie(["x=\"q\""].into_iter(), "x"), Some("q"));
        assert_eq!(find_cookie(["x="].into_iter(), "x"), Some(""));
        assert_eq!(find_cookie(["x; y=1", ""].into_iter(), "x"), None);
        assert_eq!(find_cookie(std::iter::empty(), "x"), None);
    }

    #[test]
    fn session_ids_are_random_and_url_safe() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn empty_key_list_is_refused() {
        assert_eq!(CookieCodec::new(&[]).err(), Some(CookieError::NoKeys));
        let codec = CookieCodec::new(&[CookieKey::new([1; 32])]).expect("codec");
        assert_eq!(format!("{codec:?}"), "CookieCodec { keys: 1 }");
    }

    #[test]
    fn a_value_opens_only_in_its_own_scope() {
        let keys = [CookieKey::new([5; 32])];
        let a = CookieCodec::new(&keys)
            .unwrap()
            .scoped("a", "gatehouse_session");
        let sealed = a.seal("session", b"id").unwrap();
        assert_eq!(a.open("session", &sealed).as_deref(), Some(&b"id"[..]));
        for (tenant, cookie) in [
            ("b", "gatehouse_session"),
            ("a", "other_session"),
            ("", ""),
            // Moving bytes between the parts gives another scope.
            ("ag", "atehouse_session"),
        ] {
            let other = CookieCodec::new(&keys).unwrap().scoped(tenant, cookie);
            assert_eq!(other.open("session", &sealed), None, "{tenant}/{cookie}");
        }
        let unscoped = CookieCodec::new(&keys).unwrap();
        assert_eq!(unscoped.open("session", &sealed), None);
        assert_ne!(scope_aad("ab", "c"), scope_aad("a", "bc"));
    }
}

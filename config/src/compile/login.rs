//! `tenants[].login` and `tenants[].cookie`: the browser flow and its session cookie.

use super::*;

pub(super) fn login(d: &mut Diag<'_>, f: FileLogin, path: &str, tenant_hosts: &[String]) -> Login {
    let redirect_url = required(d, f.redirect_url, path, "redirect-url").unwrap_or_default();
    if !redirect_url.is_empty() {
        if let Err(e) = http_url(&redirect_url) {
            d.error(&join(path, "redirect-url"), e);
        }
    }
    if let Some(u) = &f.post_logout_redirect_url {
        if let Err(e) = http_url(u) {
            d.error(&join(path, "post-logout-redirect-url"), e);
        }
    }
    let allowed_redirect_hosts = match f.allowed_redirect_hosts {
        Some(h) => {
            let key = join(path, "allowed-redirect-hosts");
            let mut out = Vec::new();
            for (i, raw) in h.iter().enumerate() {
                match host_pattern(raw) {
                    Ok(p) => out.push(p),
                    Err(e) => d.error(&index(&key, i), e),
                }
            }
            out
        }
        None => tenant_hosts.to_vec(),
    };
    Login {
        redirect_url,
        post_logout_redirect_url: f.post_logout_redirect_url,
        allowed_redirect_hosts,
        refresh_before_expiry: dur(f.refresh_before_expiry, Duration::from_secs(60)),
    }
}

pub(super) fn decode_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(s).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
}

pub(super) fn cookie(d: &mut Diag<'_>, f: FileCookie, path: &str) -> Cookie {
    let base = Cookie::default();
    let name = f.name.unwrap_or(base.name);
    if !is_token(&name) {
        d.error(&join(path, "name"), format!("invalid cookie name {name:?}"));
    }
    let domain = f.domain.map(|dm| {
        let lc = dm.trim().trim_start_matches('.').to_ascii_lowercase();
        if !crate::checks::is_host_name(&lc) {
            d.error(
                &join(path, "domain"),
                format!("invalid cookie domain {dm:?} (expected e.g. example.com)"),
            );
        }
        lc
    });
    let secure = flag(f.secure, base.secure);
    let same_site = match f
        .same_site
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("lax") => SameSite::Lax,
        Some("strict") => SameSite::Strict,
        Some("none") => SameSite::None,
        Some(_) => {
            d.error(
                &join(path, "same-site"),
                format!(
                    "invalid value {:?} (expected lax, strict or none)",
                    f.same_site.as_deref().unwrap_or_default()
                ),
            );
            SameSite::Lax
        }
    };
    if same_site == SameSite::None && !secure {
        d.error(
            &join(path, "same-site"),
            "same-site: none requires secure: true (browsers reject it otherwise)",
        );
    }
    let mut encryption_keys = Vec::new();
    let keys_key = join(path, "encryption-key");
    if let Some(keys) = f.encryption_key {
        let list = keys.list;
        if keys.items.is_empty() {
            d.error(&keys_key, "must list at least one key");
        }
        for (i, k) in keys.items.iter().enumerate() {
            let key = if list {
                index(&keys_key, i)
            } else {
                keys_key.clone()
            };
            match decode_key(k) {
                Some(bytes) => encryption_keys.push(CookieKey::new(bytes)),
                // The value may be a secret: never echo it.
                None => d.error(
                    &key,
                    "invalid key: expected 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)",
                ),
            }
        }
    }
    let session_ttl = dur(f.session_ttl, base.session_ttl);
    positive(d, &join(path, "session-ttl"), session_ttl);
    Cookie {
        name,
        domain,
        secure,
        same_site,
        encryption_keys,
        session_ttl,
    }
}

//! Value conversions: Go durations, byte counts, listen addresses, URLs and `${ENV}` references.

use serde_yaml::Value;

use super::notes::Notes;
use super::options::Options;

/// A Go duration gatehouse can read (`30s`, `1m30s`, `500ms`), or a note and `None`.
pub fn duration(o: &Options, key: &str, notes: &mut Notes) -> Option<String> {
    let d = o.text(key)?;
    let ok = !d.is_empty() && {
        let mut rest = d.as_str();
        let mut good = true;
        while !rest.is_empty() && good {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit_len = ["ms", "h", "m", "s"]
                .iter()
                .find(|u| rest[digits..].starts_with(*u))
                .map(|u| u.len());
            match (digits, unit_len) {
                (1.., Some(n)) => rest = &rest[digits + n..],
                _ => good = false,
            }
        }
        good
    };
    if ok {
        Some(d)
    } else {
        notes.not_carried(
            key,
            &format!("duration {d:?} is not one gatehouse reads"),
            Some("write it as e.g. 30s or 1m30s"),
        );
        None
    }
}

/// `key` as a byte count, as Gatekeeper takes it: a plain integer (`50000000`); anything else
/// is a note and `None`.
pub fn bytes(o: &Options, key: &str, notes: &mut Notes) -> Option<u64> {
    let text = o.text(key)?;
    let n = text.trim().parse().ok();
    if n.is_none() {
        notes.not_carried(
            key,
            &format!("{text:?} is not a byte count"),
            Some("write the size by hand (e.g. 10MiB)"),
        );
    }
    n
}

/// `0.0.0.0:3000`, `:3000` -> `0.0.0.0:3000`; `None` for unix sockets and garbage.
pub fn listen_addr(listen: &str) -> Option<String> {
    let l = listen.trim();
    if l.starts_with("unix://") {
        return None;
    }
    let (host, port) = l.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(if host.is_empty() {
        format!("0.0.0.0:{port}")
    } else {
        l.to_string()
    })
}

/// The issuer a discovery URL names (its `/.well-known/openid-configuration` removed).
pub fn issuer_of(discovery: &str) -> String {
    let d = discovery.trim().trim_end_matches('/');
    let d = d
        .strip_suffix("/.well-known/openid-configuration")
        .unwrap_or(d);
    if d.is_empty() {
        "https://keycloak.example.invalid/realms/REALM".into()
    } else {
        d.to_string()
    }
}

/// The lowercased host of an absolute URL.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => authority,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A value that is entirely `${NAME}`.
pub fn is_env_reference(s: &str) -> bool {
    s.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A YAML list of strings.
pub fn strings(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
}

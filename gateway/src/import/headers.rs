//! The tenant's header options: Gatekeeper's upstream identity headers and `add-claims`, CORS,
//! and the response headers (`enable-security-filter`, `response-headers`).

use serde_yaml::{Mapping, Value};

use super::notes::Notes;
use super::options::Options;
use super::values::{duration, strings};

/// Gatekeeper's upstream identity headers (minus `exclude-claims`) plus `add-claims`.
pub fn identity_headers(o: &Options, notes: &mut Notes) -> Value {
    let exclude: Vec<String> = o
        .list("exclude-claims")
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let defaults = [
        ("audience", "X-Auth-Audience", "aud"),
        ("email", "X-Auth-Email", "email"),
        ("expiresin", "X-Auth-ExpiresIn", "exp"),
        ("groups", "X-Auth-Groups", "groups"),
        ("roles", "X-Auth-Roles", "realm_access.roles"),
        ("subject", "X-Auth-Subject", "sub"),
        ("userid", "X-Auth-Userid", "preferred_username"),
        ("username", "X-Auth-Username", "preferred_username"),
    ];
    let mut h = Mapping::new();
    for (name, header, claim) in defaults {
        if !exclude.contains(&name.to_string()) {
            h.insert(header.into(), claim.into());
        }
    }
    if !exclude.contains(&"roles".to_string()) {
        notes.changed(
            "X-Auth-Roles",
            "carries the realm roles (realm_access.roles); Gatekeeper added client roles as client:role",
        );
    }
    if !exclude.contains(&"expiresin".to_string()) {
        notes.changed(
            "X-Auth-ExpiresIn",
            "the token's exp in seconds since the epoch, not a date",
        );
    }
    for spec in o.list("add-claims") {
        let (claim, header) = match spec.split_once('|') {
            Some((c, h)) => (c.trim().to_string(), h.trim().to_string()),
            None => (
                spec.trim().to_string(),
                format!("X-Auth-{}", header_case(&spec)),
            ),
        };
        h.insert(header.into(), claim.into());
    }
    Value::Mapping(h)
}

/// `given_name` -> `Given-Name`, as Gatekeeper names added claim headers.
pub fn header_case(claim: &str) -> String {
    claim
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            let first = cs
                .next()
                .map(|c| c.to_ascii_uppercase())
                .unwrap_or_default();
            format!("{first}{}", cs.as_str().to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `cors-*` as the tenant's `cors` (none without `cors-origins`).
pub fn cors(o: &Options, notes: &mut Notes) -> Option<Value> {
    let origins = o.list("cors-origins");
    if origins.is_empty() {
        return None;
    }
    let mut c = Mapping::new();
    let wildcard = origins.iter().any(|x| x == "*");
    let origins = if wildcard {
        vec!["*".to_string()]
    } else {
        origins
    };
    c.insert("origins".into(), strings(&origins));
    for (from, to) in [("cors-methods", "methods"), ("cors-headers", "headers")] {
        let items = o.list(from);
        if !items.is_empty() {
            c.insert(to.into(), strings(&items));
        }
    }
    let mut exposed = o.list("cors-exposed-headers");
    exposed.extend(o.list("cors-exposes-headers"));
    if !exposed.is_empty() {
        c.insert("exposed-headers".into(), strings(&exposed));
    }
    if o.flag("cors-credentials", false) {
        if wildcard {
            notes.not_carried(
                "cors-credentials",
                "credentials with the origin * is refused by browsers and by gatehouse",
                Some("list the exact origins"),
            );
        } else {
            c.insert("credentials".into(), true.into());
        }
    }
    if let Some(d) = duration(o, "cors-max-age", notes)
        .filter(|d| d.trim_start_matches('0') != "s" && !d.is_empty())
    {
        c.insert("max-age".into(), d.into());
    }
    Some(Value::Mapping(c))
}

/// The security filter options and `response-headers` as `security-headers` additions.
pub fn security_headers(o: &Options, notes: &mut Notes) -> Mapping {
    let mut s = Mapping::new();
    if !o.flag("enable-security-filter", false) {
        notes.changed(
            "enable-security-filter",
            "gatehouse sends X-Frame-Options: DENY, X-Content-Type-Options: nosniff, Content-Security-Policy: default-src 'self', \
             Referrer-Policy: no-referrer (and HSTS over TLS) by default; set one to \"\" in security-headers to drop it",
        );
    }
    if o.flag("filter-browser-xss", false) {
        s.insert("X-XSS-Protection".into(), "1; mode=block".into());
    }
    if let Some(csp) = o.text("content-security-policy").filter(|c| !c.is_empty()) {
        s.insert("Content-Security-Policy".into(), csp.into());
    }
    for (name, value) in o.pairs("response-headers") {
        s.insert(name.into(), value.into());
    }
    s
}

//! Warnings: configurations that are valid but probably not what was meant. `gatehouse check`
//! prints them (file, line, key) and still exits 0.

use crate::model::Tenant;
use crate::source::{index, join, Diag};

/// Tenants that can reach each other's sessions or cookies:
/// - a tenant's cookie `domain` that covers another tenant's host: browsers send the session
///   cookie to that host too (the gateway strips it before proxying, but anything else served
///   there sees it), and a cookie of the same name set there replaces it;
/// - two tenants with the same cookie encryption key: sessions are bound to their tenant, but
///   one leaked key opens every tenant's cookies, and rotating it logs out every tenant.
pub(crate) fn tenant_isolation(tenants: &[Tenant], d: &mut Diag<'_>) {
    for (i, t) in tenants.iter().enumerate() {
        let cookie = join(&index("tenants", i), "cookie");
        if let (Some(domain), Some(_)) = (&t.cookie.domain, &t.login) {
            for other in tenants.iter().filter(|o| o.name != t.name) {
                if let Some(host) = other.hosts.iter().find(|h| domain_covers(domain, h)) {
                    d.warn(
                        &join(&cookie, "domain"),
                        format!(
                            "cookie domain {domain:?} of tenant {:?} covers host {host:?} of tenant {:?}: browsers send this tenant's session cookie there too; narrow the domain or leave it unset",
                            t.name, other.name
                        ),
                    );
                }
            }
        }
        for earlier in &tenants[..i] {
            let shared = t.cookie.encryption_keys.iter().any(|k| {
                earlier
                    .cookie
                    .encryption_keys
                    .iter()
                    .any(|e| e.bytes() == k.bytes())
            });
            if shared && !t.name.is_empty() && earlier.name != t.name {
                d.warn(
                    &join(&cookie, "encryption-key"),
                    format!(
                        "tenant {:?} uses an encryption key of tenant {:?}: give each tenant its own key (one leaked key would open both tenants' cookies)",
                        t.name, earlier.name
                    ),
                );
            }
        }
    }
}

/// Whether a cookie for `domain` is sent to (some of) the hosts `host` matches: `host` is a
/// name or a `*.` wildcard as in tenants' `hosts`.
fn domain_covers(domain: &str, host: &str) -> bool {
    let under = |name: &str, parent: &str| {
        name == parent
            || name
                .strip_suffix(parent)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    match host.strip_prefix("*.") {
        // `*.s` is every name under `s`: the domain covers some when it is `s` or under it,
        // or when it is one of those names (its own subdomains are then `*.s` hosts too).
        Some(suffix) => under(suffix, domain) || under(domain, suffix),
        None => under(host, domain),
    }
}

#[cfg(test)]
mod tests {
    use super::domain_covers;

    #[test]
    fn which_hosts_a_cookie_domain_covers() {
        assert!(domain_covers("example.com", "example.com"));
        assert!(domain_covers("example.com", "app.example.com"));
        assert!(domain_covers("example.com", "*.example.com"));
        assert!(domain_covers("example.com", "*.a.example.com"));
        assert!(domain_covers("a.example.com", "*.example.com"));
        assert!(!domain_covers("example.com", "badexample.com"));
        assert!(!domain_covers("example.com", "*.badexample.com"));
        assert!(!domain_covers("app.example.com", "example.com"));
        assert!(!domain_covers("app.example.com", "api.example.com"));
        assert!(!domain_covers("a.example.com", "*.b.example.com"));
    }
}

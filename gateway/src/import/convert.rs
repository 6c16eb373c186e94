//! The Gatekeeper options -> gatehouse config mapping (everything except routes, which
//! `routes.rs` builds). Pure: options in, a YAML value and notes out.

use serde_yaml::{Mapping, Value};

use super::headers::{cors, identity_headers, security_headers};
use super::notes::{is_known, nearest, Notes, NOT_CARRIED};
use super::options::{scalar_text, Options};
use super::routes;
use super::values::{bytes, duration, is_env_reference, issuer_of, listen_addr, strings, url_host};

/// The names the output uses.
const PROVIDER: &str = "keycloak";
const TENANT: &str = "gatekeeper";
const UPSTREAM: &str = "app";
/// The variable the output reads a literal client secret from.
pub const CLIENT_SECRET_VAR: &str = "GATEKEEPER_CLIENT_SECRET";
/// The variable the output reads the session cookie key from.
pub const COOKIE_KEY_VAR: &str = "GATEHOUSE_COOKIE_KEY";
/// The variable the output reads a literal session-store password from.
pub const STORE_PASSWORD_VAR: &str = "GATEKEEPER_STORE_PASSWORD";

/// Converts merged Gatekeeper options into a gatehouse config.
pub fn convert(o: &Options, notes: &mut Notes) -> Value {
    list_unmapped(o, notes);
    let mut top = Mapping::new();
    let set = |k: &str| o.text(k).is_some_and(|v| !v.is_empty());
    let tls = set("tls-cert") && set("tls-private-key");
    if let Some(listen) = o.text("listen") {
        match listen_addr(&listen) {
            Some(addr) if tls => {
                top.insert("tls-listen".into(), addr.into());
                top.insert(
                    "tls-cert".into(),
                    o.text("tls-cert").unwrap_or_default().into(),
                );
                top.insert(
                    "tls-key".into(),
                    o.text("tls-private-key").unwrap_or_default().into(),
                );
                match o.text("listen-http").as_deref().and_then(listen_addr) {
                    Some(plain) => {
                        top.insert("listen".into(), plain.into());
                    }
                    None => notes.changed(
                        "listen",
                        "TLS on the listen address; gatehouse also serves plain HTTP on its listen default (127.0.0.1:8080)",
                    ),
                }
            }
            Some(addr) => {
                top.insert("listen".into(), addr.into());
            }
            None => notes.not_carried(
                "listen",
                "not a host:port (unix sockets are not supported)",
                Some("listen on a TCP address"),
            ),
        }
    }
    let admin = o.text("listen-admin").as_deref().and_then(listen_addr);
    if admin.is_none() && o.text("listen-admin").is_some_and(|l| !l.is_empty()) {
        notes.not_carried(
            "listen-admin",
            "not a host:port (unix sockets are not supported)",
            Some("set admin-listen to a TCP address"),
        );
    }
    let main = o.text("listen").as_deref().and_then(listen_addr);
    if admin.is_some() && admin == main {
        notes.changed(
            "listen-admin",
            "the same address as listen: gatehouse serves /metrics on a separate admin-listen (127.0.0.1:9100)",
        );
        top.insert("admin-listen".into(), "127.0.0.1:9100".into());
    } else if let Some(admin) = admin {
        top.insert("admin-listen".into(), admin.into());
    } else if o.flag("enable-metrics", false) {
        top.insert("admin-listen".into(), "127.0.0.1:9100".into());
        notes.changed(
            "enable-metrics",
            "Prometheus metrics are on the admin listener (127.0.0.1:9100/metrics), not /oauth/metrics",
        );
    }
    if let Some(size) = bytes(o, "max-header-size", notes) {
        top.insert("max-request-header-size".into(), size.into());
    }
    if let Some(d) = duration(o, "server-idle-timeout", notes) {
        top.insert("keepalive-timeout".into(), d.into());
    }
    if let Some(d) = duration(o, "server-grace-timeout", notes) {
        top.insert("grace-period".into(), d.into());
    }
    if let Some(store) = session_store(o, notes) {
        top.insert("session-store".into(), store);
    }
    top.insert("access-log".into(), access_log(o, notes));
    top.insert(
        "identity-providers".into(),
        Value::Sequence(vec![provider(o, notes)]),
    );
    top.insert(
        "tenants".into(),
        Value::Sequence(vec![tenant(o, tls, notes)]),
    );
    Value::Mapping(top)
}

/// Every option that is neither mapped nor in the not-carried table is unknown to Gatekeeper.
fn list_unmapped(o: &Options, notes: &mut Notes) {
    for key in o.map.keys().filter_map(scalar_text) {
        if let Some((_, why, instead)) = NOT_CARRIED.iter().find(|(k, _, _)| *k == key) {
            notes.not_carried(&key, why, Some(instead));
        } else if !is_known(&key) {
            let hint = match nearest(&key) {
                Some(n) => format!(
                    "not a Gatekeeper option, ignored by Gatekeeper too (did you mean {n}?)"
                ),
                None => "not a Gatekeeper option, ignored by Gatekeeper too".into(),
            };
            notes.unknown(&key, &hint);
        }
    }
}

fn provider(o: &Options, notes: &mut Notes) -> Value {
    let mut p = Mapping::new();
    p.insert("name".into(), PROVIDER.into());
    let discovery = o.text("discovery-url").unwrap_or_default();
    if discovery.is_empty() {
        notes.not_carried(
            "discovery-url",
            "not set: the output's issuer is a placeholder",
            Some("set identity-providers[0].issuer to the realm URL"),
        );
    }
    let issuer = issuer_of(&discovery);
    p.insert("issuer".into(), issuer.clone().into());
    if discovery.trim_end_matches('/') != issuer
        && discovery != format!("{issuer}/.well-known/openid-configuration")
    {
        p.insert("discovery-url".into(), discovery.clone().into());
    }
    if discovery.starts_with("http://") {
        notes.changed(
            "discovery-url",
            "plain http: keys and tokens travel unencrypted, so the output sets allow-insecure-http: true; use https outside loopback tests",
        );
    }
    for (k, v) in insecure_http_keys(discovery.starts_with("http://")) {
        p.insert(k.into(), v);
    }
    p.insert(
        "client-id".into(),
        o.text("client-id")
            .unwrap_or_else(|| "gatekeeper".into())
            .into(),
    );
    let secret = match o
        .text("client-secret")
        .filter(|s| !s.is_empty() && s != "true")
    {
        Some(s) if is_env_reference(&s) => {
            notes.secret(
                "client-secret",
                &format!("kept the reference {s}; set it in gatehouse's environment"),
            );
            s
        }
        Some(_) => {
            notes.secret(
                "client-secret",
                &format!("the literal secret was not copied: the output reads ${{{CLIENT_SECRET_VAR}}}; set {CLIENT_SECRET_VAR}"),
            );
            format!("${{{CLIENT_SECRET_VAR}}}")
        }
        None => {
            notes.secret(
                "client-secret",
                "not set: Gatekeeper read it from PROXY_CLIENT_SECRET, and so does the output (${PROXY_CLIENT_SECRET})",
            );
            "${PROXY_CLIENT_SECRET}".into()
        }
    };
    p.insert("client-secret".into(), secret.into());
    let extra = o.list("scopes");
    if !extra.is_empty() {
        let mut scopes = vec!["openid".to_string(), "email".into(), "profile".into()];
        for s in extra {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        p.insert("scopes".into(), strings(&scopes));
    }
    if o.flag("skip-access-token-clientid-check", true) {
        notes.changed(
            "skip-access-token-clientid-check",
            "Gatekeeper did not check the access token's aud (its default); gatehouse requires the client-id in aud: \
             add an audience mapper for the client in Keycloak, or list the audiences your tokens carry in identity-providers[0].audiences",
        );
    }
    if o.flag("skip-access-token-issuer-check", true) {
        notes.changed(
            "skip-access-token-issuer-check",
            "gatehouse always checks the token's iss against the issuer",
        );
    }
    Value::Mapping(p)
}

/// Provider keys an `http://` identity provider needs: gatehouse refuses plain-http providers
/// unless `allow-insecure-http` says so.
fn insecure_http_keys(http: bool) -> Vec<(&'static str, Value)> {
    if http {
        vec![("allow-insecure-http", Value::Bool(true))]
    } else {
        Vec::new()
    }
}

fn tenant(o: &Options, tls: bool, notes: &mut Notes) -> Value {
    let mut t = Mapping::new();
    t.insert("name".into(), TENANT.into());
    let redirection = o.text("redirection-url").filter(|s| !s.is_empty());
    let mut hosts: Vec<String> = o
        .list("hostnames")
        .iter()
        .map(|h| {
            // Gatekeeper hostnames may carry a port; tenant hosts never do.
            let h = h.to_ascii_lowercase();
            match h.rsplit_once(':') {
                Some((name, port)) if port.parse::<u16>().is_ok() && !name.contains(':') => {
                    name.to_string()
                }
                _ => h,
            }
        })
        .collect();
    if hosts.is_empty() {
        if let Some(host) = redirection.as_deref().and_then(url_host) {
            hosts.push(host);
        } else {
            hosts.push("localhost".into());
        }
        notes.changed(
            "hostnames",
            &format!(
                "Gatekeeper answered any Host; a gatehouse tenant answers only its hosts ({}): add the names clients use",
                hosts.join(", ")
            ),
        );
    }
    t.insert("hosts".into(), strings(&hosts));
    t.insert("identity-provider".into(), PROVIDER.into());
    // Every path gets a route below (Gatekeeper's default deny or public fallback is a `/*`
    // route), so only strictly denied paths are left unmatched, and those must be refused.
    t.insert("enable-default-deny".into(), true.into());
    if o.flag("enable-https-redirection", false) {
        // Gatekeeper redirects only on its plain `listen-http` listener beside a TLS one.
        if tls && o.text("listen-http").is_some_and(|l| !l.is_empty()) {
            t.insert("enable-https-redirection".into(), true.into());
        } else {
            notes.changed(
                "enable-https-redirection",
                "without TLS and listen-http Gatekeeper never redirected, so neither does the output",
            );
        }
    }
    t.insert(
        "upstreams".into(),
        Value::Sequence(upstream(o, notes).into_iter().collect()),
    );
    let table = routes::table(o, notes);
    let claims = match_claims(o, notes);
    let max_body = bytes(o, "max-body-size", notes)
        .filter(|n| *n > 0)
        .map(Value::from);
    if max_body.is_none() {
        notes.changed(
            "max-body-size",
            "gatehouse limits request bodies to 10MiB per route by default (Gatekeeper: unlimited); raise max-body-size where needed",
        );
    }
    let routes = routes::routes(&table, &claims, max_body.as_ref(), notes);
    t.insert("routes".into(), Value::Sequence(routes));
    t.insert("identity-headers".into(), identity_headers(o, notes));
    let forward = o.flag("enable-authorization-header", true);
    if forward {
        t.insert("forward-access-token".into(), true.into());
    }
    if o.flag("enable-token-header", true) {
        notes.not_carried(
            "enable-token-header",
            "gatehouse puts no access token in X-Auth-Token",
            Some(if forward {
                "the upstream reads it from Authorization: Bearer (forward-access-token: true)"
            } else {
                "set forward-access-token: true and read Authorization: Bearer"
            }),
        );
    }
    if let Some(cors) = cors(o, notes) {
        t.insert("cors".into(), cors);
    }
    let security = security_headers(o, notes);
    if !security.is_empty() {
        t.insert("security-headers".into(), Value::Mapping(security));
    }
    if let Some(h) = o
        .text("request-id-header")
        .filter(|h| !h.eq_ignore_ascii_case("X-Request-ID"))
    {
        t.insert("request-id-header".into(), h.into());
    }
    if !o.flag("enable-request-id", false) {
        notes.changed(
            "enable-request-id",
            "gatehouse always sets a request ID (kept from the client when well-formed) on the upstream request and the response",
        );
    }
    if o.flag("no-redirects", false) {
        notes.changed(
            "no-redirects",
            "true: no browser login (no login block); requests without a token get 401",
        );
    } else {
        let scheme = if tls { "https" } else { "http" };
        let base = redirection
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", hosts[0]))
            .trim_end_matches('/')
            .to_string();
        if redirection.is_none() {
            notes.changed(
                "redirection-url",
                &format!("not set (Gatekeeper used the Host header): the login callback is {base}/oauth/callback; register it at the provider"),
            );
        }
        let mut login = Mapping::new();
        login.insert(
            "redirect-url".into(),
            format!("{base}/oauth/callback").into(),
        );
        if let Some(u) = o.text("post-logout-redirect-uri").filter(|s| !s.is_empty()) {
            login.insert("post-logout-redirect-url".into(), u.into());
        }
        t.insert("login".into(), Value::Mapping(login));
        if !o.flag("enable-refresh-tokens", false) {
            notes.changed(
                "enable-refresh-tokens",
                "gatehouse refreshes a session's access token before it expires (login.refresh-before-expiry) instead of ending the session",
            );
        }
        t.insert("cookie".into(), cookie(o, notes));
    }
    Value::Mapping(t)
}

fn upstream(o: &Options, notes: &mut Notes) -> Option<Value> {
    let mut u = Mapping::new();
    u.insert("name".into(), UPSTREAM.into());
    let url = o.text("upstream-url").unwrap_or_default();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url.as_str()));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let tls = scheme.eq_ignore_ascii_case("https");
    let target = if authority.is_empty() || scheme.eq_ignore_ascii_case("unix") {
        notes.not_carried(
            "upstream-url",
            &format!("{url:?} is not an http(s)://host:port URL"),
            Some("set tenants[0].upstreams[0].targets to host:port"),
        );
        "127.0.0.1:80".to_string()
    } else if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    if !path.is_empty() && path != "/" {
        notes.not_carried(
            "upstream-url",
            &format!("the path {path} is dropped: gatehouse sends the request's own path"),
            Some("serve the application at the same path, or rewrite in the upstream"),
        );
    }
    u.insert("targets".into(), Value::Sequence(vec![target.into()]));
    if tls {
        u.insert("tls".into(), true.into());
        if o.flag("skip-upstream-tls-verify", false) {
            u.insert("tls-verify".into(), false.into());
        }
    }
    if let Some(d) = duration(o, "upstream-timeout", notes) {
        u.insert("connect-timeout".into(), d.into());
    }
    if let Some(d) = duration(o, "upstream-response-header-timeout", notes) {
        u.insert("read-timeout".into(), d.into());
    }
    if !o.flag("upstream-keepalives", true) {
        notes.changed(
            "upstream-keepalives",
            "gatehouse always keeps upstream connections alive",
        );
    }
    Some(Value::Mapping(u))
}

fn match_claims(o: &Options, notes: &mut Notes) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (claim, pattern) in o.pairs("match-claims") {
        if pattern.starts_with('!') {
            notes.not_carried(
                &format!("match-claims {claim}"),
                "a negated (!) match has no gatehouse equivalent: the routes do not check it",
                Some("write the positive pattern, or refuse in the upstream"),
            );
            continue;
        }
        if claim.contains('.') {
            notes.changed(
                &format!("match-claims {claim}"),
                "gatehouse reads a dotted name as a path into nested claims",
            );
        }
        out.push((claim, search_pattern(&pattern)));
    }
    out
}

/// Gatekeeper's regex as a gatehouse whole-value pattern: Go's `MatchString` finds the pattern
/// anywhere in the value, so an unanchored one is wrapped in `.*` on both sides (a pattern
/// already anchored at both ends means the same either way).
pub fn search_pattern(pattern: &str) -> String {
    let anchored = pattern.starts_with('^') && pattern.ends_with('$') && !pattern.ends_with("\\$");
    if anchored {
        pattern.to_string()
    } else {
        format!("^(?s:.*)(?:{pattern})(?s:.*)$")
    }
}

fn cookie(o: &Options, notes: &mut Notes) -> Value {
    let mut c = Mapping::new();
    if let Some(d) = o.text("cookie-domain").filter(|d| !d.is_empty()) {
        c.insert(
            "domain".into(),
            d.trim_start_matches('.').to_string().into(),
        );
    }
    c.insert("secure".into(), o.flag("secure-cookie", true).into());
    if let Some(ss) = o.text("same-site-cookie").filter(|s| !s.is_empty()) {
        c.insert("same-site".into(), ss.to_ascii_lowercase().into());
    }
    if !o.flag("http-only-cookie", true) {
        notes.changed(
            "http-only-cookie",
            "the gatehouse session cookie is always HttpOnly",
        );
    }
    notes.secret(
        "encryption-key",
        &format!(
            "gatehouse seals its cookie with its own key (32 bytes, base64): set {COOKIE_KEY_VAR} to the output of \
             `openssl rand -base64 32`; Gatekeeper's key and cookies are not reused (users log in once more)"
        ),
    );
    c.insert(
        "encryption-key".into(),
        format!("${{{COOKIE_KEY_VAR}}}").into(),
    );
    Value::Mapping(c)
}

fn session_store(o: &Options, notes: &mut Notes) -> Option<Value> {
    let url = o.text("store-url").filter(|u| !u.is_empty())?;
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url.as_str()));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !query.is_empty() {
        notes.not_carried(
            "store-url",
            &format!("the query ({query}) is dropped"),
            Some("see session-store in config/README.md"),
        );
    }
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let userinfo = userinfo.map(|u| match u.split_once(':') {
        Some((user, pw)) if !is_env_reference(pw) => {
            notes.secret(
                "store-url",
                &format!("the literal Redis password was not copied: set {STORE_PASSWORD_VAR}"),
            );
            format!("{user}:${{{STORE_PASSWORD_VAR}}}@")
        }
        _ => format!("{u}@"),
    });
    let cluster = o.flag("enable-store-ha", false);
    let scheme = match (scheme.to_ascii_lowercase().as_str(), cluster) {
        ("rediss", true) => "rediss-cluster",
        ("rediss", false) => "rediss",
        (_, true) => "redis-cluster",
        _ => "redis",
    };
    let mut s = Mapping::new();
    s.insert(
        "url".into(),
        format!("{scheme}://{}{hostpath}", userinfo.unwrap_or_default()).into(),
    );
    Some(Value::Mapping(s))
}

fn access_log(o: &Options, notes: &mut Notes) -> Value {
    let mut a = Mapping::new();
    let enabled = o.flag("enable-logging", false) && !o.flag("disable-all-logging", false);
    a.insert("enabled".into(), enabled.into());
    let json = o.flag("enable-json-logging", true);
    a.insert("format".into(), (if json { "json" } else { "text" }).into());
    if o.flag("verbose", false) {
        notes.changed(
            "verbose",
            "run gatehouse with GATEHOUSE_LOG=debug for debug logs",
        );
    }
    Value::Mapping(a)
}

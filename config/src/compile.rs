//! From the file schema to the runtime [`Config`]: defaults, semantic validation, cross
//! references. Every problem is reported through [`Diag`]; nothing stops at the first one.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;

use crate::checks::{host_pattern, http_url, is_header_value, is_token, origin, route_uri, target};
use crate::model::*;
use crate::schema::*;
use crate::source::{index, join, Diag};

/// Default `listen`: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default route `max-body-size` (10MiB); also sensible for requests that match no route.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 << 20;
/// Default identity provider `token-cache-size` (64MiB): room for tens of thousands of typical
/// tokens, well inside the shipped 512MiB pod.
pub const DEFAULT_TOKEN_CACHE_SIZE: u64 = 64 << 20;
/// Default tenant `request-id-header`.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "X-Request-ID";
/// The security headers a tenant sends unless its `security-headers` says otherwise, in order.
pub const DEFAULT_SECURITY_HEADERS: [(&str, &str); 5] = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Strict-Transport-Security",
        "max-age=31536000; includeSubDomains",
    ),
    ("Content-Security-Policy", "default-src 'self'"),
    ("Referrer-Policy", "no-referrer"),
];
/// JWS algorithms accepted in `algorithms` (asymmetric only: keys come from a JWKS).
const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// [`DEFAULT_SECURITY_HEADERS`] as owned pairs: a tenant's `security_headers` when its file
/// says nothing about them (e.g. for responses to hosts that match no tenant).
pub fn default_security_headers() -> Vec<(String, String)> {
    DEFAULT_SECURITY_HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn dur(v: Option<Dur>, default: Duration) -> Duration {
    v.map_or(default, |d| d.0)
}

fn flag(v: Option<Flag>, default: bool) -> bool {
    v.map_or(default, |f| f.0)
}

fn texts(v: Option<Vec<Text>>) -> Vec<String> {
    v.unwrap_or_default().into_iter().map(|t| t.0).collect()
}

/// Reports a missing required key; returns the value when present.
fn required<T>(d: &mut Diag<'_>, v: Option<T>, path: &str, key: &str) -> Option<T> {
    if v.is_none() {
        d.error(&join(path, key), format!("missing required key {key:?}"));
    }
    v
}

fn socket_addr(d: &mut Diag<'_>, key: &str, s: &str) -> Option<SocketAddr> {
    match s.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            d.error(
                key,
                format!("invalid socket address {s:?} (expected e.g. 127.0.0.1:8080 or [::]:8080)"),
            );
            None
        }
    }
}

fn path_value(d: &mut Diag<'_>, key: &str, s: Option<String>) -> Option<PathBuf> {
    match s {
        Some(p) if p.trim().is_empty() => {
            d.error(key, "empty path");
            None
        }
        Some(p) => Some(PathBuf::from(p)),
        None => None,
    }
}

fn positive(d: &mut Diag<'_>, key: &str, v: Duration) {
    if v.is_zero() {
        d.error(key, "must be greater than zero");
    }
}

/// Uppercases and checks HTTP method names.
fn methods(d: &mut Diag<'_>, key: &str, v: Option<Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, m) in v.unwrap_or_default().into_iter().enumerate() {
        let up = m.trim().to_ascii_uppercase();
        if !is_token(&up) {
            d.error(&index(key, i), format!("invalid HTTP method {m:?}"));
        } else if !out.contains(&up) {
            out.push(up);
        }
    }
    out
}

fn header_names(d: &mut Diag<'_>, key: &str, v: Option<Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in v.unwrap_or_default().into_iter().enumerate() {
        if is_token(&h) {
            out.push(h);
        } else {
            d.error(&index(key, i), format!("invalid header name {h:?}"));
        }
    }
    out
}

/// Compiles the whole file.
pub(crate) fn compile(f: FileConfig, d: &mut Diag<'_>) -> Config {
    let listen = f.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let mut addrs: Vec<(&str, SocketAddr)> = Vec::new();
    if let Some(a) = socket_addr(d, "listen", &listen) {
        addrs.push(("listen", a));
    }
    if let Some(t) = &f.tls_listen {
        if let Some(a) = socket_addr(d, "tls-listen", t) {
            addrs.push(("tls-listen", a));
        }
    }
    if let Some(t) = &f.admin_listen {
        if let Some(a) = socket_addr(d, "admin-listen", t) {
            addrs.push(("admin-listen", a));
        }
    }
    for (i, (k, a)) in addrs.iter().enumerate() {
        if let Some((other, _)) = addrs[..i].iter().find(|(_, b)| b == a) {
            d.error(k, format!("address {a} is already used by {other}"));
        }
    }

    let tls_cert = path_value(d, "tls-cert", f.tls_cert);
    let tls_key = path_value(d, "tls-key", f.tls_key);
    if f.tls_listen.is_some() {
        match (&tls_cert, &tls_key) {
            (None, None) => d.error("tls-listen", "requires tls-cert and tls-key (PEM files)"),
            (None, Some(_)) => d.error("tls-listen", "requires tls-cert (PEM certificate chain)"),
            (Some(_), None) => d.error("tls-listen", "requires tls-key (PEM private key)"),
            (Some(_), Some(_)) => {}
        }
    }

    let threads = f.threads.map(|t| t.0);
    if threads == Some(0) {
        d.error("threads", "must be at least 1");
    }

    let mut trusted_proxies = Vec::new();
    for (i, p) in f.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let s = p.trim();
        let net = s
            .parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => trusted_proxies.push(n.trunc()),
            None => d.error(
                &index("trusted-proxies", i),
                format!("invalid CIDR or IP address {p:?} (expected e.g. 10.0.0.0/8 or 127.0.0.1)"),
            ),
        }
    }

    let forward_auth_headers = match f.forward_auth_headers.as_deref().map(str::trim) {
        None | Some("x-forwarded") => ForwardAuthHeaders::XForwarded,
        Some("x-original") => ForwardAuthHeaders::XOriginal,
        Some(other) => {
            d.error(
                "forward-auth-headers",
                format!("invalid value {other:?} (expected x-forwarded or x-original)"),
            );
            ForwardAuthHeaders::XForwarded
        }
    };

    let max_request_header_size = f.max_request_header_size.map_or(32 << 10, |s| s.0);
    if max_request_header_size == 0 {
        d.error("max-request-header-size", "must be greater than zero");
    }
    let max_request_headers = f.max_request_headers.map_or(100, |n| n.0);
    if max_request_headers == 0 {
        d.error("max-request-headers", "must be at least 1");
    }

    let upgrade_sock = path_value(d, "upgrade-sock", f.upgrade_sock)
        .unwrap_or_else(|| PathBuf::from("/tmp/gatehouse_upgrade.sock"));
    let pid_file = path_value(d, "pid-file", f.pid_file)
        .unwrap_or_else(|| PathBuf::from("/tmp/gatehouse.pid"));
    let error_log = path_value(d, "error-log", f.error_log);

    let session_store = session_store(d, f.session_store.unwrap_or_default());
    let access_log = access_log(d, f.access_log.unwrap_or_default());

    let mut identity_providers = Vec::new();
    let mut provider_names: HashMap<String, usize> = HashMap::new();
    for (i, p) in f
        .identity_providers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = index("identity-providers", i);
        if let Some(idp) = identity_provider(d, p, &path) {
            if let Some(first) = provider_names.get(&idp.name) {
                d.error(
                    &join(&path, "name"),
                    format!(
                        "duplicate identity provider name {:?} (also identity-providers[{first}])",
                        idp.name
                    ),
                );
            } else {
                provider_names.insert(idp.name.clone(), i);
            }
            identity_providers.push(idp);
        }
    }

    let file_tenants = f.tenants.unwrap_or_default();
    if file_tenants.is_empty() {
        d.error("tenants", "at least one tenant is required");
    }
    let ctx = TenantCtx {
        providers: &identity_providers,
        tls_listen: f.tls_listen.is_some(),
    };
    let mut tenants: Vec<Tenant> = Vec::new();
    let mut tenant_names: HashMap<String, usize> = HashMap::new();
    // host → (tenant name, tenant index)
    let mut host_owner: HashMap<String, (String, usize)> = HashMap::new();
    for (i, ft) in file_tenants.into_iter().enumerate() {
        let path = index("tenants", i);
        let t = tenant(d, ft, &path, &ctx);
        if !t.name.is_empty() {
            if let Some(first) = tenant_names.get(&t.name) {
                d.error(
                    &join(&path, "name"),
                    format!("duplicate tenant name {:?} (also tenants[{first}])", t.name),
                );
            } else {
                tenant_names.insert(t.name.clone(), i);
            }
        }
        for (h, host) in t.hosts.iter().enumerate() {
            let key = index(&join(&path, "hosts"), h);
            match host_owner.get(host) {
                Some((owner, j)) if *j == i => d.error(
                    &key,
                    format!("host {host:?} is listed twice in tenant {owner:?}"),
                ),
                Some((owner, _)) => d.error(
                    &key,
                    format!(
                        "host {host:?} of tenant {:?} is already claimed by tenant {owner:?}",
                        t.name
                    ),
                ),
                None => {
                    host_owner.insert(host.clone(), (t.name.clone(), i));
                }
            }
        }
        tenants.push(t);
    }
    crate::warnings::tenant_isolation(&tenants, d);

    Config {
        listen: listen.trim().to_string(),
        tls_listen: f.tls_listen.map(|s| s.trim().to_string()),
        tls_cert,
        tls_key,
        admin_listen: f.admin_listen.map(|s| s.trim().to_string()),
        threads,
        trusted_proxies,
        forward_auth_headers,
        max_request_header_size,
        max_request_headers,
        grace_period: dur(f.grace_period, Duration::from_secs(30)),
        graceful_shutdown_timeout: dur(f.graceful_shutdown_timeout, Duration::from_secs(10)),
        keepalive_timeout: dur(f.keepalive_timeout, Duration::from_secs(60)),
        upgrade_sock,
        pid_file,
        error_log,
        watch_config: flag(f.watch_config, true),
        session_store,
        access_log,
        identity_providers,
        tenants,
        warnings: Vec::new(),
    }
}

fn access_log(d: &mut Diag<'_>, f: FileAccessLog) -> AccessLogConfig {
    let base = AccessLogConfig::default();
    let format = match f.format.as_deref() {
        None | Some("json") => AccessLogFormat::Json,
        Some("text") => AccessLogFormat::Text,
        Some(other) => {
            d.error(
                "access-log.format",
                format!("invalid value {other:?} (expected json or text)"),
            );
            base.format
        }
    };
    let sample_rate = f.sample_rate.unwrap_or(base.sample_rate);
    if !(0.0..=1.0).contains(&sample_rate) {
        d.error(
            "access-log.sample-rate",
            format!("{sample_rate} is not between 0.0 and 1.0"),
        );
    }
    AccessLogConfig {
        enabled: flag(f.enabled, base.enabled),
        format,
        sample_rate: sample_rate.clamp(0.0, 1.0),
    }
}

fn session_store(d: &mut Diag<'_>, f: FileSessionStore) -> SessionStoreConfig {
    let base = SessionStoreConfig::default();
    let url = f.url.unwrap_or_else(|| base.url.clone()).trim().to_string();
    let kind = match url.split_once("://") {
        Some((scheme, rest)) => {
            let kind = match scheme.to_ascii_lowercase().as_str() {
                "memory" => Some(SessionStoreKind::Memory),
                "redis" => Some(SessionStoreKind::Redis),
                "rediss" => Some(SessionStoreKind::Rediss),
                "redis-cluster" => Some(SessionStoreKind::RedisCluster),
                "rediss-cluster" => Some(SessionStoreKind::RedissCluster),
                _ => None,
            };
            match kind {
                None => {
                    d.error(
                        "session-store.url",
                        format!(
                            "unsupported scheme {scheme:?} (expected memory://, redis://, rediss:// or redis-cluster://)"
                        ),
                    );
                    base.kind
                }
                Some(SessionStoreKind::Memory) => {
                    if !rest.is_empty() {
                        d.error("session-store.url", "memory:// takes no host or path");
                    }
                    SessionStoreKind::Memory
                }
                Some(k) => {
                    let authority = rest.split('/').next().unwrap_or("");
                    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                    let cluster = matches!(
                        k,
                        SessionStoreKind::RedisCluster | SessionStoreKind::RedissCluster
                    );
                    if hosts.is_empty() {
                        d.error("session-store.url", format!("no host in {url:?}"));
                    } else if cluster {
                        for node in hosts.split(',') {
                            if let Err(e) = target(node) {
                                d.error("session-store.url", format!("cluster node: {e}"));
                            }
                        }
                    } else if hosts.contains(',') {
                        d.error(
                            "session-store.url",
                            "several hosts need redis-cluster://host1:port1,host2:port2",
                        );
                    }
                    k
                }
            }
        }
        None => {
            d.error(
                "session-store.url",
                format!("invalid URL {url:?} (expected memory://, redis://host:port, rediss://host:port or redis-cluster://host1:port1,host2:port2)"),
            );
            base.kind
        }
    };
    let pool_size = f.pool_size.map_or(base.pool_size, |n| n.0);
    if pool_size == 0 {
        d.error("session-store.pool-size", "must be at least 1");
    }
    let timeout = dur(f.timeout, base.timeout);
    positive(d, "session-store.timeout", timeout);
    let on_unavailable = match f.on_unavailable.as_deref() {
        None | Some("fail-closed") => OnUnavailable::FailClosed,
        Some("serve-cached") => OnUnavailable::ServeCached,
        Some(other) => {
            d.error(
                "session-store.on-unavailable",
                format!("invalid value {other:?} (expected fail-closed or serve-cached)"),
            );
            base.on_unavailable
        }
    };
    SessionStoreConfig {
        url,
        kind,
        pool_size,
        key_prefix: f.key_prefix.unwrap_or(base.key_prefix),
        timeout,
        local_cache_ttl: dur(f.local_cache_ttl, base.local_cache_ttl),
        on_unavailable,
    }
}

fn check_name(d: &mut Diag<'_>, key: &str, what: &str, name: &str) {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        d.error(
            key,
            format!("invalid {what} name {name:?} (letters, digits, '-', '_', '.')"),
        );
    }
}

fn identity_provider(
    d: &mut Diag<'_>,
    f: FileIdentityProvider,
    path: &str,
) -> Option<IdentityProvider> {
    let name = required(d, f.name, path, "name");
    if let Some(n) = &name {
        check_name(d, &join(path, "name"), "identity provider", n);
    }
    let issuer = required(d, f.issuer, path, "issuer");
    if let Some(iss) = &issuer {
        if let Err(e) = http_url(iss) {
            d.error(&join(path, "issuer"), e);
        }
    }
    let allow_insecure_http = flag(f.allow_insecure_http, false);
    let discovery_key = if f.discovery_url.is_some() {
        "discovery-url"
    } else {
        "issuer"
    };
    let discovery_url = match f.discovery_url {
        Some(u) => {
            if let Err(e) = http_url(&u) {
                d.error(&join(path, "discovery-url"), e);
            }
            u
        }
        None => issuer.as_deref().map_or_else(String::new, |iss| {
            format!(
                "{}/.well-known/openid-configuration",
                iss.trim_end_matches('/')
            )
        }),
    };
    let client_id = required(d, f.client_id, path, "client-id").map(|t| t.0);
    if client_id.as_deref() == Some("") {
        d.error(&join(path, "client-id"), "must not be empty");
    }
    let audiences = match f.audiences {
        Some(a) => {
            let a: Vec<String> = a.into_iter().map(|t| t.0).collect();
            if a.is_empty() {
                d.error(
                    &join(path, "audiences"),
                    "must list at least one audience (omit it for [client-id])",
                );
            }
            a
        }
        None => client_id.iter().cloned().collect(),
    };
    let algorithms = match f.algorithms {
        Some(algs) => {
            let key = join(path, "algorithms");
            if algs.is_empty() {
                d.error(&key, "must list at least one algorithm");
            }
            for (i, a) in algs.iter().enumerate() {
                if !ALGORITHMS.contains(&a.as_str()) {
                    d.error(
                        &index(&key, i),
                        format!(
                            "unsupported algorithm {a:?} (expected one of {})",
                            ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            algs
        }
        None => vec!["RS256".to_string()],
    };
    let scopes = match f.scopes {
        Some(s) => {
            if !s.iter().any(|x| x == "openid") {
                d.error(&join(path, "scopes"), "must include \"openid\"");
            }
            s
        }
        None => vec!["openid".into(), "email".into(), "profile".into()],
    };
    let token_endpoint_auth_method = match f.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => TokenEndpointAuthMethod::ClientSecretBasic,
        Some("client_secret_post") => TokenEndpointAuthMethod::ClientSecretPost,
        Some(other) => {
            d.error(
                &join(path, "token-endpoint-auth-method"),
                format!(
                    "invalid value {other:?} (expected client_secret_basic or client_secret_post)"
                ),
            );
            TokenEndpointAuthMethod::ClientSecretBasic
        }
    };
    let jwks_refresh_interval = dur(f.jwks_refresh_interval, Duration::from_secs(600));
    positive(
        d,
        &join(path, "jwks-refresh-interval"),
        jwks_refresh_interval,
    );
    let jwks_file = path_value(d, &join(path, "jwks-file"), f.jwks_file);
    let introspection = flag(f.introspection, false);
    if let Some(u) = &f.introspection_url {
        if let Err(e) = http_url(u) {
            d.error(&join(path, "introspection-url"), e);
        }
    }
    if !allow_insecure_http {
        // With a jwks-file and no discovery-url nothing is fetched for bearer tokens; a login
        // that discovers over http is refused when it happens.
        if discovery_key == "discovery-url" || jwks_file.is_none() {
            insecure(d, &join(path, discovery_key), "discovery", &discovery_url);
        }
        if let Some(u) = &f.introspection_url {
            insecure(d, &join(path, "introspection-url"), "introspection", u);
        }
    }
    let authorized_parties = f.authorized_parties.map(|list| {
        let key = join(path, "authorized-parties");
        if list.is_empty() {
            d.error(
                &key,
                "must list at least one client id (omit it to accept any azp)",
            );
        }
        for (i, party) in list.iter().enumerate() {
            if party.0.is_empty() {
                d.error(&index(&key, i), "must not be empty");
            }
        }
        list.into_iter().map(|t| t.0).collect()
    });
    if introspection {
        if f.client_secret.as_ref().is_none_or(|s| s.0.is_empty()) {
            d.error(
                &join(path, "introspection"),
                "introspection requires a client-secret (the client authenticates at the introspection endpoint)",
            );
        }
        if jwks_file.is_some() && f.introspection_url.is_none() {
            d.error(
                &join(path, "introspection-url"),
                "required when introspection is on with jwks-file (there is no discovery)",
            );
        }
    }
    Some(IdentityProvider {
        name: name?,
        issuer: issuer?,
        discovery_url,
        jwks_file,
        client_id: client_id?,
        client_secret: f.client_secret.map(|t| Secret::new(t.0)),
        audiences,
        algorithms,
        leeway: dur(f.leeway, Duration::from_secs(30)),
        scopes,
        token_endpoint_auth_method,
        jwks_refresh_interval,
        jwks_min_refetch_interval: dur(f.jwks_min_refetch_interval, Duration::from_secs(30)),
        max_token_age: f.max_token_age.map(|d| d.0),
        introspection,
        introspection_url: f.introspection_url,
        introspection_cache_ttl: dur(f.introspection_cache_ttl, Duration::from_secs(30)),
        authorized_parties,
        allow_insecure_http,
        token_cache_size: f.token_cache_size.map_or(DEFAULT_TOKEN_CACHE_SIZE, |s| s.0),
    })
}

/// Reports `url` (used for `what`) when it is plain http: only `allow-insecure-http` permits
/// that.
fn insecure(d: &mut Diag<'_>, key: &str, what: &str, url: &str) {
    if url
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    {
        d.error(
            key,
            format!(
                "{what} over plain http ({url:?}) is refused: use https, or set allow-insecure-http: true on this identity provider (loopback tests and development only)"
            ),
        );
    }
}

struct TenantCtx<'a> {
    providers: &'a [IdentityProvider],
    tls_listen: bool,
}

fn tenant(d: &mut Diag<'_>, f: FileTenant, path: &str, ctx: &TenantCtx<'_>) -> Tenant {
    let name = required(d, f.name, path, "name").unwrap_or_default();
    if !name.is_empty() {
        check_name(d, &join(path, "name"), "tenant", &name);
    }

    let hosts_key = join(path, "hosts");
    let mut hosts = Vec::new();
    match f.hosts {
        None => d.error(&hosts_key, "missing required key \"hosts\""),
        Some(h) if h.is_empty() => d.error(&hosts_key, "must list at least one host"),
        Some(h) => {
            for (i, raw) in h.iter().enumerate() {
                match host_pattern(raw) {
                    Ok(p) => hosts.push(p),
                    Err(e) => d.error(&index(&hosts_key, i), e),
                }
            }
        }
    }

    if let Some(p) = &f.identity_provider {
        if !ctx.providers.iter().any(|x| &x.name == p) {
            let known: Vec<&str> = ctx.providers.iter().map(|x| x.name.as_str()).collect();
            d.error(
                &join(path, "identity-provider"),
                format!(
                    "unknown identity provider {p:?} (identity-providers: [{}])",
                    known.join(", ")
                ),
            );
        }
    }

    // Upstreams.
    let mut upstreams: Vec<Upstream> = Vec::new();
    let ups_key = join(path, "upstreams");
    for (i, fu) in f.upstreams.unwrap_or_default().into_iter().enumerate() {
        let upath = index(&ups_key, i);
        if let Some(u) = upstream(d, fu, &upath) {
            if let Some(j) = upstreams.iter().position(|x| x.name == u.name) {
                d.error(
                    &join(&upath, "name"),
                    format!("duplicate upstream name {:?} (also upstreams[{j}])", u.name),
                );
            }
            upstreams.push(u);
        }
    }
    let mut upstream_names: Vec<&str> = Vec::new();
    for u in &upstreams {
        if !upstream_names.contains(&u.name.as_str()) {
            upstream_names.push(&u.name);
        }
    }
    let known = upstream_names.join(", ");
    let default_upstream = match &f.default_upstream {
        Some(n) if upstream_names.contains(&n.as_str()) => Some(n.clone()),
        Some(n) => {
            d.error(
                &join(path, "default-upstream"),
                format!("unknown upstream {n:?} (tenant {name:?} has: [{known}])"),
            );
            None
        }
        None => upstream_names.first().map(|s| s.to_string()),
    };
    if upstream_names.is_empty() {
        d.error(
            &ups_key,
            format!("tenant {name:?} has no upstreams; at least one is required"),
        );
    }

    // Routes.
    let routes_key = join(path, "routes");
    let mut routes: Vec<Route> = Vec::new();
    let mut route_index: Vec<usize> = Vec::new();
    for (i, fr) in f.routes.unwrap_or_default().into_iter().enumerate() {
        let rpath = index(&routes_key, i);
        if let Some(r) = route(d, fr, &rpath, &upstream_names, default_upstream.as_deref()) {
            let overlap = routes.iter().zip(&route_index).find(|(o, _)| {
                o.uri == r.uri
                    && (o.methods.is_empty()
                        || r.methods.is_empty()
                        || o.methods.iter().any(|m| r.methods.contains(m)))
            });
            if let Some((_, j)) = overlap {
                d.error(
                    &join(&rpath, "uri"),
                    format!(
                        "duplicate route {:?}: same uri and overlapping methods as routes[{j}]",
                        r.uri
                    ),
                );
            }
            routes.push(r);
            route_index.push(i);
        }
    }

    // Routes with `introspect` need a provider that introspects.
    for (r, i) in routes.iter().zip(&route_index) {
        if !r.introspect || r.white_listed {
            continue;
        }
        let key = join(&index(&routes_key, *i), "introspect");
        match &f.identity_provider {
            None => d.error(
                &key,
                format!(
                    "route {:?} has introspect: true but tenant {name:?} has no identity-provider",
                    r.name
                ),
            ),
            Some(p) => {
                if let Some(provider) = ctx.providers.iter().find(|x| &x.name == p) {
                    if !provider.introspection {
                        d.error(
                            &key,
                            format!(
                                "route {:?} has introspect: true but identity provider {p:?} does not have introspection: true",
                                r.name
                            ),
                        );
                    }
                }
            }
        }
    }

    // Identity headers.
    let ih_key = join(path, "identity-headers");
    let mut identity_headers: Vec<(String, String)> = Vec::new();
    for (h, claim) in f.identity_headers.map(|m| m.0).unwrap_or_default() {
        let key = join(&ih_key, &h);
        if !is_token(&h) {
            d.error(&key, format!("invalid header name {h:?}"));
        } else if identity_headers
            .iter()
            .any(|(o, _)| o.eq_ignore_ascii_case(&h))
        {
            d.error(&key, format!("header {h:?} is listed twice"));
        } else if claim.0.trim().is_empty() {
            d.error(
                &key,
                "expected a claim name such as sub or realm_access.roles",
            );
        } else {
            identity_headers.push((h, claim.0));
        }
    }

    let cors = f.cors.map(|c| cors(d, c, &join(path, "cors")));
    let security_headers = security_headers(
        d,
        f.security_headers.map(|m| m.0),
        &join(path, "security-headers"),
    );

    let request_id_header = f
        .request_id_header
        .unwrap_or_else(|| DEFAULT_REQUEST_ID_HEADER.to_string());
    if !is_token(&request_id_header) {
        d.error(
            &join(path, "request-id-header"),
            format!("invalid header name {request_id_header:?}"),
        );
    }

    let login = f.login.map(|l| login(d, l, &join(path, "login"), &hosts));
    if login.is_some() && f.identity_provider.is_none() {
        d.error(
            &join(path, "login"),
            "login requires the tenant's identity-provider",
        );
    }
    let cookie_key = join(path, "cookie");
    let key_given = f
        .cookie
        .as_ref()
        .is_some_and(|c| c.encryption_key.is_some());
    let cookie = cookie(d, f.cookie.unwrap_or_default(), &cookie_key);
    if login.is_some() && !key_given {
        d.error(
            &join(&cookie_key, "encryption-key"),
            "required when the tenant has login (32 bytes, base64)",
        );
    }

    let tls_cert = path_value(d, &join(path, "tls-cert"), f.tls_cert);
    let tls_key = path_value(d, &join(path, "tls-key"), f.tls_key);
    match (&tls_cert, &tls_key) {
        (Some(_), None) => d.error(
            &join(path, "tls-cert"),
            "requires tls-key in the same tenant",
        ),
        (None, Some(_)) => d.error(
            &join(path, "tls-key"),
            "requires tls-cert in the same tenant",
        ),
        (Some(_), Some(_)) if !ctx.tls_listen => d.error(
            &join(path, "tls-cert"),
            "a tenant certificate needs the top-level tls-listen",
        ),
        _ => {}
    }

    Tenant {
        name,
        hosts,
        identity_provider: f.identity_provider,
        enable_default_deny: flag(f.enable_default_deny, true),
        enable_https_redirection: flag(f.enable_https_redirection, false),
        default_upstream,
        upstreams,
        routes,
        identity_headers,
        forward_access_token: flag(f.forward_access_token, false),
        pass_rewrite_headers: flag(f.pass_rewrite_headers, false),
        token_cookie: f.token_cookie,
        cors,
        security_headers,
        request_id_header,
        login,
        cookie,
        tls_cert,
        tls_key,
    }
}

fn upstream(d: &mut Diag<'_>, f: FileUpstream, path: &str) -> Option<Upstream> {
    let name = required(d, f.name, path, "name");
    if let Some(n) = &name {
        check_name(d, &join(path, "name"), "upstream", n);
    }
    let targets_key = join(path, "targets");
    let targets = match f.targets {
        None => {
            d.error(&targets_key, "missing required key \"targets\"");
            Vec::new()
        }
        Some(t) => {
            if t.is_empty() {
                d.error(&targets_key, "must list at least one host:port target");
            }
            for (i, x) in t.iter().enumerate() {
                if let Err(e) = target(x) {
                    d.error(&index(&targets_key, i), e);
                }
            }
            t
        }
    };
    let balance = match f.balance.as_deref() {
        None | Some("round-robin") => Balance::RoundRobin,
        Some("consistent-hash") => Balance::ConsistentHash,
        Some(other) => {
            d.error(
                &join(path, "balance"),
                format!("invalid value {other:?} (expected round-robin or consistent-hash)"),
            );
            Balance::RoundRobin
        }
    };
    let health_check = health_check(
        d,
        f.health_check.unwrap_or_default(),
        &join(path, "health-check"),
    );
    let connect_timeout = dur(f.connect_timeout, Duration::from_secs(2));
    positive(d, &join(path, "connect-timeout"), connect_timeout);
    let read_timeout = dur(f.read_timeout, Duration::from_secs(30));
    positive(d, &join(path, "read-timeout"), read_timeout);
    if let Some(sni) = &f.sni {
        if sni.is_empty() || !crate::checks::is_host_name(&sni.to_ascii_lowercase()) {
            d.error(&join(path, "sni"), format!("invalid server name {sni:?}"));
        }
    }
    Some(Upstream {
        name: name?,
        targets,
        balance,
        health_check,
        connect_timeout,
        read_timeout,
        tls: flag(f.tls, false),
        sni: f.sni,
        tls_verify: flag(f.tls_verify, true),
        h2: flag(f.h2, false),
    })
}

fn health_check(d: &mut Diag<'_>, f: FileHealthCheck, path: &str) -> HealthCheck {
    let base = HealthCheck::default();
    if let Some(p) = &f.path {
        if !p.starts_with('/') || !is_header_value(p) || p.contains(' ') {
            d.error(
                &join(path, "path"),
                format!("invalid path {p:?} (expected e.g. /health)"),
            );
        }
    }
    let interval = dur(f.interval, base.interval);
    positive(d, &join(path, "interval"), interval);
    let timeout = dur(f.timeout, base.timeout);
    positive(d, &join(path, "timeout"), timeout);
    let healthy_threshold = f.healthy_threshold.map_or(1, |n| n.0);
    if healthy_threshold == 0 {
        d.error(&join(path, "healthy-threshold"), "must be at least 1");
    }
    let unhealthy_threshold = f.unhealthy_threshold.map_or(1, |n| n.0);
    if unhealthy_threshold == 0 {
        d.error(&join(path, "unhealthy-threshold"), "must be at least 1");
    }
    let expected_status = f.expected_status.map(|n| n.0);
    if let Some(s) = expected_status {
        if !(100..=599).contains(&s) {
            d.error(
                &join(path, "expected-status"),
                format!("invalid HTTP status {s} (expected 100..=599)"),
            );
        }
    }
    if let Some(h) = &f.host {
        if !is_header_value(h) || h.is_empty() {
            d.error(&join(path, "host"), format!("invalid Host header {h:?}"));
        }
    }
    HealthCheck {
        path: f.path,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        expected_status,
        host: f.host,
    }
}

/// The regex a `match-claims` pattern compiles to: anchored at both ends, so it matches the
/// whole claim value (`@example\.com` does not match `x@example.com.evil`; a substring match
/// is written `.*x.*`). The group keeps an alternation such as `a|b` whole.
pub fn anchored_pattern(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn route(
    d: &mut Diag<'_>,
    f: FileRoute,
    path: &str,
    upstreams: &[&str],
    default_upstream: Option<&str>,
) -> Option<Route> {
    let uri = required(d, f.uri, path, "uri");
    if let Some(u) = &uri {
        if let Err(e) = route_uri(u) {
            d.error(&join(path, "uri"), e);
        }
    }
    let shown = uri.as_deref().unwrap_or("?");
    let methods = methods(d, &join(path, "methods"), f.methods);
    let white_listed = flag(f.white_listed, false);
    let white_listed_anon = flag(f.white_listed_anon, false);
    let roles = texts(f.roles);
    let groups = texts(f.groups);
    let mut match_claims = Vec::new();
    let mc_key = join(path, "match-claims");
    for (claim, re) in f.match_claims.map(|m| m.0).unwrap_or_default() {
        if !re.0.starts_with('^') && !re.0.ends_with('$') {
            d.warn(
                &join(&mc_key, &claim),
                format!(
                    "the pattern {:?} must match the whole claim value (it is anchored at both ends); write \".*x.*\" to match a substring",
                    re.0
                ),
            );
        }
        if let Err(e) = regex::Regex::new(&anchored_pattern(&re.0)) {
            let first_line = e.to_string();
            let detail = first_line.lines().last().unwrap_or("").trim().to_string();
            d.error(
                &join(&mc_key, &claim),
                format!("invalid regex {:?}: {detail}", re.0),
            );
        }
        match_claims.push((claim, re.0));
    }
    if white_listed && (!roles.is_empty() || !groups.is_empty() || !match_claims.is_empty()) {
        d.error(
            &join(path, "white-listed"),
            format!(
                "route {shown:?} is white-listed (no authentication) but also lists roles, groups or match-claims"
            ),
        );
    }
    if white_listed_anon
        && (white_listed || !roles.is_empty() || !groups.is_empty() || !match_claims.is_empty())
    {
        d.error(
            &join(path, "white-listed-anon"),
            format!(
                "route {shown:?} is white-listed-anon (authentication optional): it cannot also be white-listed or list roles, groups or match-claims"
            ),
        );
    }
    let upstream = match &f.upstream {
        Some(u) if upstreams.contains(&u.as_str()) => u.clone(),
        Some(u) => {
            d.error(
                &join(path, "upstream"),
                format!(
                    "route {shown:?}: unknown upstream {u:?} (this tenant has: [{}])",
                    upstreams.join(", ")
                ),
            );
            u.clone()
        }
        // No upstream at all is reported once, on the tenant.
        None => default_upstream.unwrap_or_default().to_string(),
    };
    let introspect = flag(f.introspect, false);
    if white_listed && introspect {
        d.error(
            &join(path, "introspect"),
            format!("route {shown:?} is white-listed (no authentication) but also has introspect"),
        );
    }
    let uri = uri?;
    Some(Route {
        name: f.name.unwrap_or_else(|| uri.clone()),
        uri,
        methods,
        white_listed,
        white_listed_anon,
        roles,
        groups,
        require_all: flag(f.require_all, false),
        match_claims,
        max_body_size: f.max_body_size.map_or(DEFAULT_MAX_BODY_SIZE, |s| s.0),
        upstream,
        introspect,
    })
}

fn cors(d: &mut Diag<'_>, f: FileCors, path: &str) -> Cors {
    let origins_key = join(path, "origins");
    let mut origins = Vec::new();
    match f.origins {
        None => d.error(&origins_key, "missing required key \"origins\""),
        Some(o) if o.is_empty() => d.error(&origins_key, "must list at least one origin"),
        Some(o) => {
            for (i, x) in o.iter().enumerate() {
                match origin(x) {
                    Ok(v) => origins.push(v),
                    Err(e) => d.error(&index(&origins_key, i), e),
                }
            }
        }
    }
    let wildcard = origins.iter().any(|o| o == "*");
    if wildcard && origins.len() > 1 {
        d.error(&origins_key, "\"*\" must be the only origin");
    }
    let credentials = flag(f.credentials, false);
    if wildcard && credentials {
        d.error(
            &join(path, "credentials"),
            "credentials: true cannot be combined with origin \"*\" (list exact origins)",
        );
    }
    let methods = match f.methods {
        Some(_) => methods(d, &join(path, "methods"), f.methods),
        None => vec!["GET".into(), "HEAD".into(), "POST".into()],
    };
    Cors {
        origins,
        methods,
        headers: header_names(d, &join(path, "headers"), f.headers),
        exposed_headers: header_names(d, &join(path, "exposed-headers"), f.exposed_headers),
        credentials,
        max_age: f.max_age.map(|m| m.0),
    }
}

fn security_headers(
    d: &mut Diag<'_>,
    given: Option<Vec<(String, Text)>>,
    path: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, Option<String>)> = default_security_headers()
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    for (name, value) in given.unwrap_or_default() {
        let key = join(path, &name);
        if !is_token(&name) {
            d.error(&key, format!("invalid header name {name:?}"));
            continue;
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            d.error(&key, format!("header {name:?} is listed twice"));
            continue;
        }
        if !is_header_value(&value.0) {
            d.error(&key, format!("invalid header value {:?}", value.0));
            continue;
        }
        let v = (!value.0.is_empty()).then_some(value.0);
        match out.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            Some(slot) => *slot = (name, v),
            None => out.push((name, v)),
        }
    }
    out.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn login(d: &mut Diag<'_>, f: FileLogin, path: &str, tenant_hosts: &[String]) -> Login {
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

fn decode_key(s: &str) -> Option<[u8; 32]> {
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

fn cookie(d: &mut Diag<'_>, f: FileCookie, path: &str) -> Cookie {
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

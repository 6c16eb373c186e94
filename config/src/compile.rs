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
    if f.admin_explain.as_ref().is_some_and(|v| v.0) && f.admin_listen.is_none() {
        d.warn(
            "admin-explain",
            "has no effect without admin-listen (POST /debug/explain is an admin endpoint)",
        );
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

    let request_header_timeout = dur(f.request_header_timeout, Duration::from_secs(10));
    positive(d, "request-header-timeout", request_header_timeout);
    let max_connections = f.max_connections.map_or(10_000, |n| n.0);
    let max_connections_per_ip = f.max_connections_per_ip.map_or(256, |n| n.0);

    let upgrade_sock = path_value(d, "upgrade-sock", f.upgrade_sock)
        .unwrap_or_else(|| PathBuf::from("/tmp/gatehouse_upgrade.sock"));
    let pid_file = path_value(d, "pid-file", f.pid_file)
        .unwrap_or_else(|| PathBuf::from("/tmp/gatehouse.pid"));
    let error_log = path_value(d, "error-log", f.error_log);

    let session_store = session_store(d, f.session_store.unwrap_or_default());
    let access_log = access_log(d, f.access_log.unwrap_or_default());
    let tracing = f.tracing.and_then(|t| tracing::tracing(d, t));

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
        redis: session_store.kind != SessionStoreKind::Memory,
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
        admin_explain: flag(f.admin_explain, false),
        threads,
        trusted_proxies,
        forward_auth_headers,
        max_request_header_size,
        max_request_headers,
        request_header_timeout,
        max_connections,
        max_connections_per_ip,
        grace_period: dur(f.grace_period, Duration::from_secs(30)),
        graceful_shutdown_timeout: dur(f.graceful_shutdown_timeout, Duration::from_secs(10)),
        keepalive_timeout: dur(f.keepalive_timeout, Duration::from_secs(60)),
        listen_h2c: flag(f.listen_h2c, false),
        upgrade_sock,
        pid_file,
        error_log,
        watch_config: flag(f.watch_config, true),
        session_store,
        access_log,
        tracing,
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

mod assertion;
mod limits;
mod login;
mod provider;
mod route;
mod tenant;
mod tracing;

use provider::identity_provider;
pub use route::anchored_pattern;
use tenant::{tenant, TenantCtx};

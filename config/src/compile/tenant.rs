//! `tenants[]`: hosts, upstream pools and health checks, and the parts each tenant is built from.

use super::*;

use super::assertion::identity_assertion;
use super::login::{cookie, login};
use super::route::{cors, route, security_headers};

pub(super) struct TenantCtx<'a> {
    pub(super) providers: &'a [IdentityProvider],
    pub(super) tls_listen: bool,
    /// The session store is Redis (`shared` rate limits count there).
    pub(super) redis: bool,
}

pub(super) fn tenant(d: &mut Diag<'_>, f: FileTenant, path: &str, ctx: &TenantCtx<'_>) -> Tenant {
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
        if let Some(r) = route(
            d,
            fr,
            &rpath,
            &upstream_names,
            default_upstream.as_deref(),
            ctx.redis,
        ) {
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

    if f.identity_provider.is_none() {
        let default_deny = flag(f.enable_default_deny, true);
        protected_without_provider(d, path, &name, &routes, &route_index, default_deny);
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

    let resource_metadata = f
        .resource_metadata
        .map(|m| resource_metadata(d, m, &join(path, "resource-metadata")));
    if resource_metadata.is_some() && f.identity_provider.is_none() {
        d.error(
            &join(path, "resource-metadata"),
            "resource-metadata requires the tenant's identity-provider (its issuer is the authorization server)",
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

    let identity_assertion = f.identity_assertion.map(|a| {
        let reserved: Vec<&str> = identity_headers
            .iter()
            .map(|(h, _)| h.as_str())
            .chain([request_id_header.as_str()])
            .collect();
        identity_assertion(d, a, &join(path, "identity-assertion"), &reserved)
    });
    let rate_limits =
        super::limits::rate_limits(d, f.rate_limits, &join(path, "rate-limits"), ctx.redis);
    let upgrade_idle_timeout = dur(f.upgrade_idle_timeout, DEFAULT_UPGRADE_IDLE_TIMEOUT);
    positive(d, &join(path, "upgrade-idle-timeout"), upgrade_idle_timeout);

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
        resource_metadata,
        identity_assertion,
        rate_limits,
        upgrade_idle_timeout,
    }
}

/// A tenant without an `identity-provider` can authenticate nobody, so every path of it that
/// needs authentication would answer 401 forever: refused, on the route (or on
/// `enable-default-deny: false`, which sends unmatched paths on with authentication required).
/// White-listed routes need no one; `white-listed-anon` routes serve anonymous callers; routes
/// with `introspect` are already refused for the same reason.
fn protected_without_provider(
    d: &mut Diag<'_>,
    path: &str,
    name: &str,
    routes: &[Route],
    route_index: &[usize],
    enable_default_deny: bool,
) {
    let routes_key = join(path, "routes");
    for (r, i) in routes.iter().zip(route_index) {
        if r.white_listed || r.white_listed_anon || r.introspect {
            continue;
        }
        d.error(
            &index(&routes_key, *i),
            format!(
                "route {:?} needs authentication but tenant {name:?} has no identity-provider, so no request could pass; set the tenant's identity-provider, or white-listed: true for a public route",
                r.name
            ),
        );
    }
    if !enable_default_deny {
        d.error(
            &join(path, "enable-default-deny"),
            format!(
                "false sends unmatched paths to the default upstream with authentication required, but tenant {name:?} has no identity-provider; set identity-provider, or leave enable-default-deny true"
            ),
        );
    }
}

/// `resource-metadata`: RFC 9728 metadata for the tenant's hosts.
fn resource_metadata(d: &mut Diag<'_>, f: FileResourceMetadata, path: &str) -> ResourceMetadata {
    let key = join(path, "scopes-supported");
    let mut scopes_supported = Vec::new();
    for (i, scope) in f
        .scopes_supported
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if crate::checks::is_scope_token(&scope.0) {
            scopes_supported.push(scope.0);
        } else {
            d.error(
                &index(&key, i),
                format!(
                    "invalid scope {:?} (no spaces, quotes or backslashes)",
                    scope.0
                ),
            );
        }
    }
    ResourceMetadata { scopes_supported }
}

pub(super) fn upstream(d: &mut Diag<'_>, f: FileUpstream, path: &str) -> Option<Upstream> {
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

pub(super) fn health_check(d: &mut Diag<'_>, f: FileHealthCheck, path: &str) -> HealthCheck {
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

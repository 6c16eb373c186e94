//! The compiled policy: a validated [`Config`] turned into an immutable [`Snapshot`] that
//! answers, per request and without allocation, "which tenant", "which route", "which headers"
//! — and [`Denial`], the one list of reasons the gateway answers a request itself, with the one
//! mapping of each reason to a status.

use std::fmt;

use gatehouse_config::{Config, ForwardAuthHeaders, Route, Tenant};
use http::{HeaderName, HeaderValue, Method};

use crate::authz::Requirements;
use crate::cors::CorsPolicy;
pub use crate::denial::Denial;
use crate::host::HostTable;
use crate::proxies::TrustedProxies;
use crate::resource::{StepUp, TenantResource};
use crate::routes::{MethodSet, RouteTable};

/// What a route demands of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `white-listed: true`: no authentication at all.
    Public,
    /// An authenticated identity is required (roles/groups/claims come with authorization).
    Authenticated,
    /// No route matched and the tenant has `enable-default-deny: true`.
    DefaultDeny,
    /// `white-listed-anon`: an identity is used when a valid token is presented; no token is
    /// fine; an invalid token is not.
    Optional,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// The route's name (its uri unless named), for logs and metrics.
    pub name: String,
    /// What the route demands.
    pub access: Access,
    /// Roles, groups and claims an authenticated caller needs (empty for public routes).
    pub requirements: Requirements,
    /// Index of the upstream in the tenant's `upstreams`.
    pub upstream: usize,
    /// Largest request body accepted, bytes.
    pub max_body_size: u64,
    /// `introspect`: a valid JWT is also checked at the provider's introspection endpoint.
    pub introspect: bool,
    /// `resource` (RFC 8707): a token's `aud` must contain it, instead of one of the
    /// provider's audiences.
    pub resource: Option<Box<str>>,
    /// `acr` / `max-auth-age` (RFC 9470), when the route has either.
    pub step_up: Option<Box<StepUp>>,
    /// `dpop` (RFC 9449), `None` for `off`.
    pub dpop: Option<crate::resource::DpopRule>,
}

/// Which route a request matched: one of the tenant's routes, or the tenant's fallback for
/// paths no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRef {
    /// Index into the tenant's routes, in file order.
    Route(usize),
    /// No route matched.
    Unmatched,
}

/// Response headers a tenant adds to every response.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders {
    /// Always set (security headers other than HSTS).
    pub always: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, set only when the client used HTTPS (RFC 6797 7.2).
    pub hsts: Option<HeaderValue>,
}

impl ResponseHeaders {
    fn compile(pairs: &[(String, String)]) -> Result<ResponseHeaders, CompileError> {
        let mut headers = ResponseHeaders::default();
        for (name, value) in pairs {
            if value.is_empty() {
                continue;
            }
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                CompileError(format!(
                    "security header name {name:?} is not a valid header name"
                ))
            })?;
            let header_value = HeaderValue::from_str(value).map_err(|_| {
                CompileError(format!(
                    "security header {name}: value is not a valid header value"
                ))
            })?;
            if header_name == http::header::STRICT_TRANSPORT_SECURITY {
                headers.hsts = Some(header_value);
            } else {
                headers.always.push((header_name, header_value));
            }
        }
        Ok(headers)
    }
}

/// One tenant's compiled policy.
#[derive(Debug)]
pub struct TenantPolicy {
    /// The tenant's name (also the `realm` of its `WWW-Authenticate` challenges).
    pub name: String,
    routes: RouteTable<usize>,
    route_list: Vec<RoutePolicy>,
    unmatched: RoutePolicy,
    /// Headers added to every response.
    pub response_headers: ResponseHeaders,
    /// The request ID header (`request-id-header`).
    pub request_id_header: HeaderName,
    /// `enable-https-redirection`: plain-HTTP requests get a redirect to HTTPS.
    pub https_redirect: bool,
    /// The tenant's `identity-provider`, if any.
    pub identity_provider: Option<String>,
    /// `identity-headers`: header name and the dotted claim path it is set from.
    pub identity_headers: Vec<(HeaderName, String)>,
    /// Unique per compiled `identity_headers` list in this process (also across reloads), so
    /// claims can keep the values they rendered for it.
    pub identity_headers_id: u64,
    /// `forward-access-token`: keep the client's `Authorization` header for the upstream.
    pub forward_access_token: bool,
    /// `pass-rewrite-headers`: a trusted proxy's `X-Original-URL`, `X-Rewrite-URL`,
    /// `X-Forwarded-Prefix` and `Forwarded` reach the upstream.
    pub pass_rewrite_headers: bool,
    /// `token-cookie`: a cookie that may carry the bearer token.
    pub token_cookie: Option<String>,
    /// `cors`, if the tenant has it.
    pub cors: Option<CorsPolicy>,
    /// `resource-metadata` (RFC 9728), if the tenant has it.
    pub resource_metadata: Option<TenantResource>,
    /// `identity-assertion.header`, when the tenant signs assertions.
    pub assertion_header: Option<HeaderName>,
    /// `upgrade-idle-timeout`: an upgraded connection with no bytes either way for this long
    /// is closed.
    pub upgrade_idle_timeout: std::time::Duration,
}

impl TenantPolicy {
    /// The resource identifier the metadata request for `suffix` ([`metadata_suffix`](crate::resource::metadata_suffix)) names
    /// on `origin` ([`origin`](crate::resource::origin)): `origin/` for the bare document; else `origin + suffix`,
    /// unless the route that path matches is bound to a different `resource` (then `None`: a
    /// document for that identifier would state a resource tokens are not checked against).
    #[must_use]
    pub fn metadata_resource(&self, origin: &str, suffix: &str) -> Option<String> {
        if suffix.is_empty() {
            return Some(format!("{origin}/"));
        }
        let identifier = format!("{origin}{suffix}");
        let route = self.route(self.lookup(suffix, &http::Method::GET));
        match route.resource.as_deref() {
            Some(bound) if bound != identifier => None,
            _ => Some(identifier),
        }
    }

    /// The DPoP demand of the route the metadata request for `suffix` names (the bare
    /// document: the route of `/`), for the document's `dpop_signing_alg_values_supported`
    /// and `dpop_bound_access_tokens_required` (RFC 9728 2).
    #[must_use]
    pub fn metadata_dpop(&self, suffix: &str) -> Option<crate::resource::DpopRule> {
        let path = if suffix.is_empty() { "/" } else { suffix };
        self.route(self.lookup(path, &http::Method::GET)).dpop
    }

    /// The most specific route for an already-normalized path and a method (see
    /// [`RouteTable::lookup`]), or [`RouteRef::Unmatched`].
    pub fn lookup(&self, path: &str, method: &Method) -> RouteRef {
        match self.routes.lookup(path, method) {
            Some(&i) => RouteRef::Route(i),
            None => RouteRef::Unmatched,
        }
    }

    /// The route behind a [`RouteRef`].
    pub fn route(&self, r: RouteRef) -> &RoutePolicy {
        match r {
            RouteRef::Route(i) => &self.route_list[i],
            RouteRef::Unmatched => &self.unmatched,
        }
    }

    fn compile(tenant: &Tenant) -> Result<TenantPolicy, CompileError> {
        let err = |m: String| CompileError(format!("tenant {}: {m}", tenant.name));
        let upstream_index = |name: &str| {
            tenant
                .upstreams
                .iter()
                .position(|u| u.name == name)
                .ok_or_else(|| err(format!("unknown upstream {name:?}")))
        };
        let mut builder = RouteTable::builder();
        let mut route_list = Vec::with_capacity(tenant.routes.len());
        for (i, route) in tenant.routes.iter().enumerate() {
            let methods =
                route_methods(route).map_err(|m| err(format!("route {}: {m}", route.uri)))?;
            builder
                .insert(&route.uri, methods, i)
                .map_err(|e| err(format!("route {}: {e}", route.uri)))?;
            let requirements = Requirements::new(
                &route.roles,
                &route.groups,
                route.require_all,
                &route.match_claims,
            )
            .map_err(|e| err(format!("route {}: match-claims: {e}", route.uri)))?;
            route_list.push(RoutePolicy {
                requirements,
                name: route.name.clone(),
                access: if route.white_listed {
                    Access::Public
                } else if route.white_listed_anon {
                    Access::Optional
                } else {
                    Access::Authenticated
                },
                introspect: route.introspect,
                resource: route.resource.as_deref().map(Box::from),
                step_up: StepUp::compile(route).map(Box::new),
                dpop: crate::resource::DpopRule::compile(route),
                upstream: upstream_index(&route.upstream)?,
                max_body_size: route.max_body_size,
            });
        }
        let default_upstream = match &tenant.default_upstream {
            Some(name) => upstream_index(name)?,
            None => 0,
        };
        Ok(TenantPolicy {
            name: tenant.name.clone(),
            routes: builder.build(),
            route_list,
            unmatched: RoutePolicy {
                name: "-".to_string(),
                requirements: Requirements::default(),
                access: if tenant.enable_default_deny {
                    Access::DefaultDeny
                } else {
                    Access::Authenticated
                },
                upstream: default_upstream,
                max_body_size: gatehouse_config::DEFAULT_MAX_BODY_SIZE,
                introspect: false,
                resource: None,
                step_up: None,
                dpop: None,
            },
            response_headers: ResponseHeaders::compile(&tenant.security_headers)?,
            request_id_header: HeaderName::from_bytes(tenant.request_id_header.as_bytes())
                .map_err(|_| err("request-id-header is not a valid header name".to_string()))?,
            https_redirect: tenant.enable_https_redirection,
            identity_provider: tenant.identity_provider.clone(),
            identity_headers: tenant
                .identity_headers
                .iter()
                .map(|(name, path)| {
                    HeaderName::from_bytes(name.as_bytes())
                        .map(|h| (h, path.clone()))
                        .map_err(|_| {
                            err(format!(
                                "identity header {name:?} is not a valid header name"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
            identity_headers_id: next_identity_headers_id(),
            forward_access_token: tenant.forward_access_token,
            pass_rewrite_headers: tenant.pass_rewrite_headers,
            token_cookie: tenant.token_cookie.clone(),
            upgrade_idle_timeout: tenant.upgrade_idle_timeout,
            cors: tenant
                .cors
                .as_ref()
                .map(CorsPolicy::compile)
                .transpose()
                .map_err(err)?,
            resource_metadata: tenant
                .resource_metadata
                .as_ref()
                .map(TenantResource::compile),
            assertion_header: tenant
                .identity_assertion
                .as_ref()
                .map(|a| {
                    HeaderName::from_bytes(a.header.as_bytes()).map_err(|_| {
                        err("identity-assertion header is not a valid header name".to_string())
                    })
                })
                .transpose()?,
        })
    }
}

fn route_methods(route: &Route) -> Result<Option<MethodSet>, String> {
    if route.methods.is_empty() {
        return Ok(None);
    }
    let mut set = MethodSet::EMPTY;
    for m in &route.methods {
        let method =
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))?;
        let one = MethodSet::single(&method).ok_or_else(|| {
            format!("method {m} cannot be listed on a route (only standard methods)")
        })?;
        set = set.union(one);
    }
    Ok(Some(set))
}

/// Everything a request consults, compiled once per config.
#[derive(Debug)]
pub struct Snapshot {
    hosts: HostTable<usize>,
    tenants: Vec<TenantPolicy>,
    /// `trusted-proxies`.
    pub trusted_proxies: TrustedProxies,
    /// `forward-auth-headers`: the header family forward-auth checks believe.
    pub forward_auth_headers: ForwardAuthHeaders,
    /// Headers for responses to requests that matched no tenant (the contract's defaults).
    pub default_response_headers: ResponseHeaders,
    /// The request ID header for requests that matched no tenant.
    pub default_request_id_header: HeaderName,
    /// `max-request-header-size`.
    pub max_request_header_bytes: u64,
    /// `max-request-headers`.
    pub max_request_headers: usize,
}

impl Snapshot {
    /// Compiles a validated config.
    pub fn compile(config: &Config) -> Result<Snapshot, CompileError> {
        let mut hosts = Vec::new();
        let mut tenants = Vec::with_capacity(config.tenants.len());
        for (i, tenant) in config.tenants.iter().enumerate() {
            for host in &tenant.hosts {
                hosts.push((host.as_str(), i));
            }
            tenants.push(TenantPolicy::compile(tenant)?);
        }
        Ok(Snapshot {
            hosts: HostTable::new(hosts).map_err(|e| CompileError(e.to_string()))?,
            tenants,
            trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            forward_auth_headers: config.forward_auth_headers,
            default_response_headers: ResponseHeaders::compile(
                &gatehouse_config::default_security_headers(),
            )?,
            default_request_id_header: HeaderName::from_static("x-request-id"),
            max_request_header_bytes: config.max_request_header_size,
            max_request_headers: config.max_request_headers,
        })
    }

    /// The tenant serving `host` (a Host header or authority: case-insensitive, port ignored).
    pub fn tenant_for_host(&self, host: &str) -> Option<usize> {
        self.hosts.lookup(host).copied()
    }

    /// The tenant at `index` (from [`Self::tenant_for_host`]).
    pub fn tenant(&self, index: usize) -> &TenantPolicy {
        &self.tenants[index]
    }
}

/// A config that validated but could not be compiled (should not happen for a config that
/// passed `gatehouse_config` validation; reported like a config error if it does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError(pub String);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

/// A fresh [`TenantPolicy::identity_headers_id`].
fn next_identity_headers_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Forbidden;
    use crate::login::LoginRefusal;
    use crate::path::PathError;
    use crate::resource::Shortfall;

    #[test]
    fn each_denial_maps_to_its_status() {
        let table = [
            (Denial::UnknownHost, 404),
            (Denial::BadPath(PathError::EncodedSlash), 400),
            (Denial::HeadersTooLarge, 431),
            (Denial::AmbiguousFraming, 400),
            (Denial::DuplicateAuthorization, 400),
            (
                Denial::ForwardAuthTarget(crate::forward_auth::TargetError::NotNormal),
                400,
            ),
            (Denial::BodyTooLarge, 413),
            (Denial::Unauthenticated, 401),
            (
                Denial::InvalidToken {
                    reason: "expired",
                    description: "the token has expired",
                },
                401,
            ),
            (Denial::InsufficientAuthentication(Shortfall::Acr), 401),
            (Denial::Forbidden(Forbidden::MissingRole), 403),
            (
                Denial::HttpsRequired {
                    location: "https://a/".into(),
                },
                308,
            ),
            (Denial::NoHealthyUpstream, 503),
            (
                Denial::LoginRequired {
                    location: "/oauth/login?rd=/".into(),
                },
                302,
            ),
            (Denial::CorsRefused, 403),
            (Denial::AuthUnavailable, 503),
            (Denial::SessionUnavailable, 503),
            (Denial::Login(LoginRefusal::MalformedState), 400),
            (Denial::Login(LoginRefusal::LogoutMethod), 405),
            (
                Denial::RateLimited {
                    limit: 0,
                    retry_after: 1,
                },
                429,
            ),
        ];
        for (denial, status) in table {
            assert_eq!(denial.status(), status, "{denial:?}");
            assert!(!denial.reason().is_empty());
        }
        assert!(Denial::AmbiguousFraming.closes_connection());
        assert!(!Denial::Unauthenticated.closes_connection());
    }

    #[test]
    fn each_refusal_has_its_auth_decision_result() {
        let table = [
            (
                Denial::ForwardAuthTarget(crate::forward_auth::TargetError::NotNormal),
                "bad_request",
            ),
            (Denial::DuplicateAuthorization, "bad_request"),
            (Denial::Unauthenticated, "unauthenticated"),
            (
                Denial::InvalidToken {
                    reason: "expired",
                    description: "the token has expired",
                },
                "unauthenticated",
            ),
            (
                Denial::LoginRequired {
                    location: "/oauth/login".into(),
                },
                "unauthenticated",
            ),
            (Denial::AuthUnavailable, "unauthenticated"),
            (Denial::SessionUnavailable, "unauthenticated"),
            (Denial::Forbidden(Forbidden::MissingRole), "forbidden"),
            (Denial::UnknownHost, "forbidden"),
            (Denial::CorsRefused, "forbidden"),
        ];
        for (denial, result) in table {
            assert_eq!(denial.auth_result(), result, "{denial:?}");
        }
    }

    fn config(yaml: &str) -> Config {
        gatehouse_config::parse(yaml, "test.yaml", &|_| None).expect("valid test config")
    }

    const TWO_TENANTS: &str = r#"
identity-providers: [{name: kc, issuer: "https://kc.localhost/realms/demo", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost, "*.demo.localhost"]
    identity-provider: kc
    enable-default-deny: true
    upstreams:
      - name: app
        targets: ["127.0.0.1:18080"]
      - name: admin
        targets: ["127.0.0.1:18081"]
    routes:
      - uri: /health
        white-listed: true
      - uri: /public/*
        white-listed: true
      - uri: /admin/*
        methods: [GET]
        upstream: admin
      - uri: /*
    security-headers:
      X-Frame-Options: SAMEORIGIN
      Referrer-Policy: ""
  - name: other
    hosts: [other.localhost]
    identity-provider: kc
    enable-default-deny: false
    request-id-header: X-Correlation-ID
    upstreams:
      - name: web
        targets: ["127.0.0.1:18082"]
    routes:
      - uri: /open/*
        white-listed: true
"#;

    #[test]
    fn compiles_tenants_routes_and_headers() {
        let snapshot = Snapshot::compile(&config(TWO_TENANTS)).unwrap();
        let demo = snapshot.tenant(snapshot.tenant_for_host("API.Demo.Localhost:8080").unwrap());
        assert_eq!(demo.name, "demo");
        let get = Method::GET;
        let r = demo.route(demo.lookup("/public/x", &get));
        assert_eq!((r.access, r.upstream), (Access::Public, 0));
        let r = demo.route(demo.lookup("/admin/users", &get));
        assert_eq!((r.access, r.upstream), (Access::Authenticated, 1));
        // POST is not in /admin/*'s methods: falls through to /*, on the default upstream.
        let r = demo.route(demo.lookup("/admin/users", &Method::POST));
        assert_eq!(
            (r.access, r.upstream, r.name.as_str()),
            (Access::Authenticated, 0, "/*")
        );
        let names: Vec<_> = demo
            .response_headers
            .always
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert!(names.contains(&("x-frame-options", "SAMEORIGIN")));
        assert!(!names.iter().any(|(n, _)| *n == "referrer-policy"));
        assert!(demo.response_headers.hsts.is_some());

        let other = snapshot.tenant(snapshot.tenant_for_host("other.localhost").unwrap());
        assert_eq!(other.lookup("/closed", &get), RouteRef::Unmatched);
        assert_eq!(
            other.route(RouteRef::Unmatched).access,
            Access::Authenticated
        );
        assert_eq!(other.request_id_header.as_str(), "x-correlation-id");
        assert_eq!(demo.route(RouteRef::Unmatched).access, Access::DefaultDeny);

        assert_eq!(snapshot.tenant_for_host("demo.localhost.evil.com"), None);
        assert_eq!(snapshot.tenant_for_host("unknown"), None);
    }
}

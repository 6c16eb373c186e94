//! The validated runtime configuration: what the rest of gatehouse reads.
//!
//! Every value here has been checked and has its default applied; cross references (route →
//! upstream, tenant → identity provider) are known to resolve.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

mod assertion;
mod limits;
mod secrets;
mod session_store;
mod tracing;
pub use assertion::{AssertionAlgorithm, AssertionKey, IdentityAssertion};
pub use limits::{RateLimit, RateLimitKey};
pub use secrets::{CookieKey, Secret};
pub use session_store::{OnUnavailable, SessionStoreConfig, SessionStoreKind};
pub use tracing::{TracingConfig, DEFAULT_SAMPLING_RATIO, DEFAULT_SERVICE_NAME};

/// A validated gatehouse configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `listen`: plain HTTP listener, a socket address (default `127.0.0.1:8080`).
    pub listen: String,
    /// `tls-listen`: optional HTTPS listener (HTTP/1.1 and HTTP/2 via ALPN); when set,
    /// `tls_cert` and `tls_key` are set too.
    pub tls_listen: Option<String>,
    /// `tls-cert`: PEM certificate chain of the TLS listener (the default certificate for SNI).
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`: PEM private key of the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// `admin-listen`: optional listener for `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: Option<String>,
    /// `admin-explain`: the admin listener answers `POST /debug/explain` (the same decision
    /// as `gatehouse explain`, with the process's live keys and session store). Default false:
    /// the endpoint answers 404.
    pub admin_explain: bool,
    /// `threads`: proxy worker threads (>= 1); `None` = number of CPUs.
    pub threads: Option<usize>,
    /// `trusted-proxies`: peers whose `X-Forwarded-*` / `X-Original-*` headers are believed; a
    /// plain IP in the file is a /32 or /128 (default empty).
    pub trusted_proxies: Vec<IpNet>,
    /// `forward-auth-headers`: the one header family `/oauth/auth` believes from a trusted
    /// proxy (default `x-forwarded`); the other family is ignored.
    pub forward_auth_headers: ForwardAuthHeaders,
    /// `max-request-header-size`: request line + headers in bytes; larger -> 431 (default 32KiB).
    pub max_request_header_size: u64,
    /// `max-request-headers`: header count; more -> 431 (default 100).
    pub max_request_headers: usize,
    /// `request-header-timeout`: the whole request head (request line and headers) must arrive
    /// within this, counted from the connection's accept for its first request and from the
    /// first byte of each later one; else 408 and the connection is closed (default 10s).
    pub request_header_timeout: Duration,
    /// `max-connections`: open downstream connections per listener; more are closed at once
    /// (default 10000; 0 = no limit).
    pub max_connections: usize,
    /// `max-connections-per-ip`: open connections from one client address per listener; more
    /// are closed at once (default 256; 0 = no limit).
    pub max_connections_per_ip: usize,
    /// `grace-period`: on graceful shutdown/upgrade, how long to keep accepting and draining
    /// before stopping (default 30s).
    pub grace_period: Duration,
    /// `graceful-shutdown-timeout`: after the grace period, how long in-flight requests get to
    /// finish (default 10s).
    pub graceful_shutdown_timeout: Duration,
    /// `keepalive-timeout`: downstream idle keep-alive timeout (default 60s).
    pub keepalive_timeout: Duration,
    /// `listen-h2c`: `listen` also accepts HTTP/2 with prior knowledge (h2c), e.g. for gRPC
    /// without TLS (default false; read at start, a reload does not change it).
    pub listen_h2c: bool,
    /// `upgrade-sock`: Unix socket for handing listeners to a new process on graceful upgrade
    /// (default `/tmp/gatehouse_upgrade.sock`).
    pub upgrade_sock: PathBuf,
    /// `pid-file`: where the daemonized process writes its PID (default `/tmp/gatehouse.pid`).
    pub pid_file: PathBuf,
    /// `error-log`: optional file for the server's error log (default: stderr).
    pub error_log: Option<PathBuf>,
    /// `watch-config`: also reload when the config file changes, not only on SIGHUP (default
    /// true).
    pub watch_config: bool,
    /// `session-store`: where browser sessions live (default: embedded memory store).
    pub session_store: SessionStoreConfig,
    /// `access-log`: one line per request on stdout.
    pub access_log: AccessLogConfig,
    /// `tracing`: OpenTelemetry spans exported over OTLP/HTTP; `None` (the key left out): no
    /// span is built or exported. Read at start; a reload does not change it.
    pub tracing: Option<TracingConfig>,
    /// `identity-providers`: OIDC providers, names unique, in file order.
    pub identity_providers: Vec<IdentityProvider>,
    /// `tenants`: at least one; names unique; no host claimed by two tenants.
    pub tenants: Vec<Tenant>,
    /// What loads but probably does not mean what its author thinks (file, line, key and an
    /// explanation each, ordered by line); `gatehouse check` prints them and exits 0, `run`
    /// logs them. Empty when built other than by [`crate::parse`].
    pub warnings: Vec<crate::ConfigError>,
}

impl Config {
    /// The identity provider called `name`.
    pub fn identity_provider(&self, name: &str) -> Option<&IdentityProvider> {
        self.identity_providers.iter().find(|p| p.name == name)
    }

    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// Which header family a forward-auth check (`/oauth/auth`) reads the original request from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardAuthHeaders {
    /// `x-forwarded`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` (nginx
    /// `auth_request` as documented, Traefik).
    #[default]
    XForwarded,
    /// `x-original`: `X-Original-Method`, `X-Original-URL` and the request's `Host`
    /// (ingress-nginx).
    XOriginal,
}

/// `token-endpoint-auth-method`: how the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuthMethod {
    /// `client_secret_basic` (default): HTTP Basic with client id and secret.
    ClientSecretBasic,
    /// `client_secret_post`: id and secret in the form body.
    ClientSecretPost,
}

/// One entry of `identity-providers`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityProvider {
    /// `name` (required, unique): what tenants' `identity-provider` refers to.
    pub name: String,
    /// `issuer` (required): http(s) URL; must equal the tokens' `iss`.
    pub issuer: String,
    /// `discovery-url`: resolved; default `issuer` + `/.well-known/openid-configuration`.
    pub discovery_url: String,
    /// `jwks-file`: optional static JWKS used instead of discovery for bearer validation.
    pub jwks_file: Option<PathBuf>,
    /// `client-id` (required).
    pub client_id: String,
    /// `client-secret`: optional (public/bearer-only clients have none).
    pub client_secret: Option<Secret>,
    /// `audiences`: a token must carry at least one (default `[client-id]`).
    pub audiences: Vec<String>,
    /// `algorithms`: JWS algorithm allowlist, e.g. `RS256` (default `[RS256]`); `none` and the
    /// HMAC algorithms are refused.
    pub algorithms: Vec<String>,
    /// `leeway`: clock skew allowed for exp/nbf/iat (default 30s).
    pub leeway: Duration,
    /// `scopes`: requested in the login flow; includes `openid` (default
    /// `[openid, email, profile]`).
    pub scopes: Vec<String>,
    /// `token-endpoint-auth-method` (default client_secret_basic).
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// `jwks-refresh-interval`: background JWKS refresh (default 10m).
    pub jwks_refresh_interval: Duration,
    /// `jwks-min-refetch-interval`: an unknown `kid` refetches at most this often (default 30s).
    pub jwks_min_refetch_interval: Duration,
    /// `max-token-age`: refuse tokens whose `auth_time` is older than this (default: no limit).
    pub max_token_age: Option<Duration>,
    /// `introspection`: opaque (non-JWT) bearer tokens are checked at the provider's RFC 7662
    /// introspection endpoint with the client's credentials (default false). Requires
    /// `client_secret`.
    pub introspection: bool,
    /// `introspection-url`: the introspection endpoint (default: the discovery document's
    /// `introspection_endpoint`). Always set when `introspection` is on with a `jwks-file`.
    pub introspection_url: Option<String>,
    /// `introspection-cache-ttl`: how long an active introspection result is trusted, never
    /// beyond the token's `exp` (default 30s; 0 = not cached).
    pub introspection_cache_ttl: Duration,
    /// `authorized-parties`: when set (never empty), a bearer token's `azp` must be one of
    /// these client ids (default: not checked).
    pub authorized_parties: Option<Vec<String>>,
    /// `allow-insecure-http`: discovery, JWKS, token and introspection requests may use plain
    /// `http` (default false: `https` only, checked here for the configured URLs and at run
    /// time for the endpoints a discovery document names).
    pub allow_insecure_http: bool,
    /// `token-cache-size`: bytes the verified-token cache (and, with `introspection`, the cache
    /// of active introspection results) may hold, estimated per entry (default 64MiB; 0 = no
    /// caching).
    pub token_cache_size: u64,
}

/// One entry of `tenants`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// `name` (required, unique; letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// `hosts` (required, non-empty): lowercased exact names or `*.suffix` wildcards, no port.
    pub hosts: Vec<String>,
    /// `identity-provider`: name of an entry of `identity-providers`.
    pub identity_provider: Option<String>,
    /// `enable-default-deny`: an unmatched path is refused (true, default) or proxied to the
    /// default upstream with authentication required (false).
    pub enable_default_deny: bool,
    /// `enable-https-redirection`: plain-HTTP requests get a redirect to https (default false).
    pub enable_https_redirection: bool,
    /// `default-upstream`, resolved: the named upstream, else the first one. Always `Some` in a
    /// validated config (a tenant needs at least one upstream).
    pub default_upstream: Option<String>,
    /// `upstreams` (at least one; names unique within the tenant).
    pub upstreams: Vec<Upstream>,
    /// `routes`, in file order (matching is by longest uri, not order).
    pub routes: Vec<Route>,
    /// `identity-headers`: (header name, claim path) in file order.
    pub identity_headers: Vec<(String, String)>,
    /// `forward-access-token`: keep `Authorization: Bearer` for the upstream (default false).
    pub forward_access_token: bool,
    /// `pass-rewrite-headers`: pass a trusted proxy's `X-Original-URL`, `X-Rewrite-URL`,
    /// `X-Forwarded-Prefix` and `Forwarded` to the upstream (default false: removed from every
    /// peer, because upstream frameworks route on them).
    pub pass_rewrite_headers: bool,
    /// `token-cookie`: also accept the bearer token from this cookie (default: none, only the
    /// `Authorization` header).
    pub token_cookie: Option<String>,
    /// `cors`: absent = no CORS handling.
    pub cors: Option<Cors>,
    /// The effective security headers: the defaults (X-Frame-Options, X-Content-Type-Options,
    /// Strict-Transport-Security, Content-Security-Policy, Referrer-Policy, in that order) with
    /// the file's values applied (`""` removes one), then the file's other headers in file order.
    pub security_headers: Vec<(String, String)>,
    /// `request-id-header` (default `X-Request-ID`).
    pub request_id_header: String,
    /// `login`: browser login flow; absent = no login redirects.
    pub login: Option<Login>,
    /// `cookie` (defaults apply when absent).
    pub cookie: Cookie,
    /// `tls-cert`: optional PEM certificate for this tenant's hosts (SNI); set with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`: optional PEM key for this tenant's hosts; set with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `resource-metadata`: RFC 9728 protected resource metadata is served at
    /// `/.well-known/oauth-protected-resource[/<path>]` and every 401 names it; absent = neither.
    pub resource_metadata: Option<ResourceMetadata>,
    /// `identity-assertion`: a JWT signed by the gateway on every proxied request that carries
    /// an identity (none when the key is absent).
    pub identity_assertion: Option<IdentityAssertion>,
    /// `rate-limits`: token buckets every proxied request of the tenant passes (default none).
    pub rate_limits: Vec<RateLimit>,
    /// `upgrade-idle-timeout`: an upgraded connection (WebSocket) with no bytes in either
    /// direction for this long is closed (default 1h, [`DEFAULT_UPGRADE_IDLE_TIMEOUT`]).
    pub upgrade_idle_timeout: Duration,
}

/// `resource-metadata` of a tenant (RFC 9728).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceMetadata {
    /// `scopes-supported`: the document's `scopes_supported`, and the `scope` of the tenant's
    /// 401 challenges (RFC 6750 scope tokens; default empty: neither is sent).
    pub scopes_supported: Vec<String>,
}

/// The default `upgrade-idle-timeout`: one hour.
pub const DEFAULT_UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Tenant {
    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// Load-balancing algorithm of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// `round-robin` (default).
    RoundRobin,
    /// `consistent-hash`: Ketama on the client IP.
    ConsistentHash,
}

/// One entry of a tenant's `upstreams`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// `name` (required, unique within the tenant).
    pub name: String,
    /// `targets` (required, non-empty): `host:port`, host an IP, `[IPv6]` or DNS name.
    pub targets: Vec<String>,
    /// `balance` (default round-robin).
    pub balance: Balance,
    /// `health-check` (default: TCP check every 5s).
    pub health_check: HealthCheck,
    /// `connect-timeout` (default 2s).
    pub connect_timeout: Duration,
    /// `read-timeout` (default 30s).
    pub read_timeout: Duration,
    /// `tls`: TLS to the upstream (default false).
    pub tls: bool,
    /// `sni`: TLS server name (default: the target's host).
    pub sni: Option<String>,
    /// `tls-verify`: verify the upstream's certificate and host name (default true).
    pub tls_verify: bool,
    /// `h2`: HTTP/2 to the upstream (ALPN with TLS, prior knowledge without) (default false).
    pub h2: bool,
}

/// `health-check` of an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// `path`: HTTP GET of this path (starts with `/`); `None` = TCP connect check.
    pub path: Option<String>,
    /// `interval` (default 5s).
    pub interval: Duration,
    /// `timeout` (default 1s).
    pub timeout: Duration,
    /// `healthy-threshold`: consecutive successes to become healthy (default 1).
    pub healthy_threshold: usize,
    /// `unhealthy-threshold`: consecutive failures to become unhealthy (default 1).
    pub unhealthy_threshold: usize,
    /// `expected-status`: the only healthy status; `None` = any 2xx/3xx.
    pub expected_status: Option<u16>,
    /// `host`: Host header of the HTTP check (default: decided by the gateway).
    pub host: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
            expected_status: None,
            host: None,
        }
    }
}

/// One entry of a tenant's `routes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name` (default: the uri).
    pub name: String,
    /// `uri` (required): normalized path starting with `/`; ending in `/*` = prefix match.
    pub uri: String,
    /// `methods`: uppercase HTTP methods; empty = any.
    pub methods: Vec<String>,
    /// `white-listed`: no authentication at all (default false).
    pub white_listed: bool,
    /// `white-listed-anon`: authentication is optional: no token → proxied anonymously; a valid
    /// token → identity headers as usual; an invalid token → 401 (default false).
    pub white_listed_anon: bool,
    /// `roles`: any one of them (or all with `require_all`); `client:role` = client role.
    pub roles: Vec<String>,
    /// `groups`: any one of them, from the `groups` claim.
    pub groups: Vec<String>,
    /// `require-all`: every listed role and group is required (default false).
    pub require_all: bool,
    /// `match-claims`: (claim, regex) pairs in file order; all must match. Each compiles.
    pub match_claims: Vec<(String, String)>,
    /// `max-body-size`: larger request body -> 413 (default 10MiB).
    pub max_body_size: u64,
    /// `upstream`, resolved: the named upstream or the tenant's default upstream.
    pub upstream: String,
    /// `introspect`: even a valid JWT is checked at the introspection endpoint (revocation-
    /// sensitive routes) (default false). The tenant's identity provider has `introspection`.
    pub introspect: bool,
    /// `rate-limits`: added to the tenant's for requests on this route (default none).
    pub rate_limits: Vec<RateLimit>,
    /// `resource`: RFC 8707 resource identifier (an absolute http(s) URI without query or
    /// fragment); a token's `aud` must contain it, instead of one of the provider's
    /// `audiences` (default: none, the provider's audiences apply).
    pub resource: Option<String>,
    /// `acr`: step-up (RFC 9470): the token's `acr` must be one of these (default empty: any).
    pub acr: Vec<String>,
    /// `max-auth-age`: step-up (RFC 9470): the token's `auth_time` must be at most this old
    /// (a token without `auth_time` is refused) (default: no limit).
    pub max_auth_age: Option<Duration>,
    /// `dpop`, `dpop-proof-window`, `dpop-nonce`: proof of possession (RFC 9449) (default:
    /// `off`).
    pub dpop: Dpop,
}

/// Whether a route demands DPoP proofs (RFC 9449): its `dpop` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// `off` (default): tokens are bearer tokens, as without DPoP; an `Authorization: DPoP`
    /// credential is refused like any scheme other than `Bearer`.
    #[default]
    Off,
    /// `optional`: an unbound token may be sent as `Bearer`; a DPoP-bound token (`cnf.jkt`)
    /// must come as `Authorization: DPoP` with a valid proof.
    Optional,
    /// `required`: only a DPoP-bound token with a valid proof is accepted.
    Required,
}

/// A route's DPoP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpop {
    /// `dpop`: `required | optional | off` (default `off`).
    pub mode: DpopMode,
    /// `dpop-proof-window`: how old a proof's `iat` may be (the provider's `leeway` added, also
    /// for an `iat` in the future); a proof's `jti` is remembered this long (default 60s, at
    /// most 10m).
    pub proof_window: Duration,
    /// `dpop-nonce`: proofs must carry a nonce the gateway issued (`DPoP-Nonce`, answered with
    /// 401 `use_dpop_nonce` otherwise) (default false).
    pub nonce: bool,
}

/// The default `dpop-proof-window`.
pub const DEFAULT_DPOP_PROOF_WINDOW: Duration = Duration::from_secs(60);

impl Default for Dpop {
    fn default() -> Self {
        Dpop {
            mode: DpopMode::Off,
            proof_window: DEFAULT_DPOP_PROOF_WINDOW,
            nonce: false,
        }
    }
}

impl Route {
    /// Whether the uri ends in `/*` (matches the prefix and everything under it).
    pub fn is_prefix(&self) -> bool {
        self.uri.ends_with("/*")
    }

    /// The path to compare with: the uri without a trailing `*` (`/api/*` → `/api/`).
    pub fn path(&self) -> &str {
        self.uri.strip_suffix('*').unwrap_or(&self.uri)
    }
}

/// `cors` of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    /// `origins` (required, non-empty): lowercased `scheme://host[:port]`, or `*` alone.
    pub origins: Vec<String>,
    /// `methods`: uppercase (default `[GET, HEAD, POST]`).
    pub methods: Vec<String>,
    /// `headers`: allowed request headers (default empty).
    pub headers: Vec<String>,
    /// `exposed-headers` (default empty).
    pub exposed_headers: Vec<String>,
    /// `credentials`: `Access-Control-Allow-Credentials: true` (default false; never with `*`).
    pub credentials: bool,
    /// `max-age`: preflight cache time; `None` = no `Access-Control-Max-Age`.
    pub max_age: Option<Duration>,
}

/// `login` of a tenant (browser flow).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// `redirect-url` (required): absolute http(s) URL of `/oauth/callback`.
    pub redirect_url: String,
    /// `post-logout-redirect-url`: where the IdP sends the user after logout.
    pub post_logout_redirect_url: Option<String>,
    /// `allowed-redirect-hosts`: host patterns `?rd=` may send the user to (lowercased; default:
    /// the tenant's hosts).
    pub allowed_redirect_hosts: Vec<String>,
    /// `refresh-before-expiry` (default 60s).
    pub refresh_before_expiry: Duration,
}

/// `cookie.same-site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `lax` (default).
    Lax,
    /// `strict`.
    Strict,
    /// `none` (requires `secure: true`).
    None,
}

/// `cookie` of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    /// `name` (default `gatehouse_session`).
    pub name: String,
    /// `domain` (default none: a host-only cookie).
    pub domain: Option<String>,
    /// `secure` (default true).
    pub secure: bool,
    /// `same-site` (default lax).
    pub same_site: SameSite,
    /// `encryption-key`: one key or a list (base64, 32 bytes each); the first encrypts, all
    /// decrypt. Required when the tenant has `login`; empty otherwise when not given.
    pub encryption_keys: Vec<CookieKey>,
    /// `session-ttl` (default 8h).
    pub session_ttl: Duration,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            name: "gatehouse_session".to_string(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
            encryption_keys: Vec::new(),
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// `access-log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line (default).
    Json,
    /// A human-readable line, for local runs.
    Text,
}

/// `access-log`: one line per request on stdout, written by a background service (the request
/// path never blocks on it; lines are dropped and counted if it falls behind).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `format`: `json` (default) or `text`.
    pub format: AccessLogFormat,
    /// `sample-rate`: the fraction of successful (< 400) requests logged, 0.0-1.0 (default 1.0);
    /// requests answered with 4xx/5xx are always logged.
    pub sample_rate: f64,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            format: AccessLogFormat::Json,
            sample_rate: 1.0,
        }
    }
}

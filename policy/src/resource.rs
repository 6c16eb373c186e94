//! The resource server's own rules, decided without I/O: where RFC 9728 protected resource
//! metadata lives and which resource identifier a metadata URL names, the route's RFC 8707
//! resource indicator, and the route's RFC 9470 step-up demand (`acr`, `max-auth-age`).
//!
//! RFC 9728 3.1 builds a metadata URL by inserting `/.well-known/oauth-protected-resource`
//! between the host and the path of the resource identifier, so the path after that prefix *is*
//! the identifier's path; 3.3 makes a client refuse a document whose `resource` differs from
//! the identifier it derived the URL from. [`TenantPolicy::metadata_resource`](crate::snapshot::TenantPolicy::metadata_resource) therefore answers
//! exactly that identifier, or nothing when the route it names is bound to another one.

/// The well-known path of RFC 9728 protected resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The path of the resource identifier a (normalized) metadata request path names: `""` for
/// the bare document, `"/a/b"` for `/.well-known/oauth-protected-resource/a/b`; `None` for
/// any other path.
#[must_use]
pub fn metadata_suffix(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(METADATA_PATH)?;
    match rest {
        "" | "/" => Some(""),
        _ if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// The metadata URL of a resource identifier (an absolute http(s) URI without query or
/// fragment, as config validation guarantees): the well-known path inserted between its
/// authority and its path, a path of `/` counting as none (RFC 9728 3.1).
#[must_use]
pub fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = if path == "/" { "" } else { path };
    format!("{scheme}://{authority}{METADATA_PATH}{path}")
}

/// `scheme://host` as the client reached the gateway, when `host` (a Host header or
/// authority, port included) is a plain host name or address with an optional port: the value
/// goes into a JSON document and a quoted header parameter, so anything else is refused.
#[must_use]
pub fn origin(secure: bool, host: &str) -> Option<String> {
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| {
        let scheme = if secure { "https" } else { "http" };
        format!("{scheme}://{}", host.to_ascii_lowercase())
    })
}

/// A tenant's compiled `resource-metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantResource {
    /// `scopes-supported`, in file order.
    pub scopes_supported: Vec<String>,
    /// The same scopes joined with spaces: the `scope` of the tenant's 401 challenges
    /// (`None` when there are none).
    pub scope: Option<String>,
}

impl TenantResource {
    /// Compiles `resource-metadata`.
    #[must_use]
    pub fn compile(metadata: &gatehouse_config::ResourceMetadata) -> TenantResource {
        let scopes = &metadata.scopes_supported;
        TenantResource {
            scopes_supported: scopes.clone(),
            scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        }
    }
}

/// A route's DPoP demand (RFC 9449): `dpop: required | optional` (`off` compiles to none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopRule {
    /// `required`: only a DPoP-bound token with a valid proof is accepted; `optional`: an
    /// unbound token may also come as `Bearer`.
    pub required: bool,
    /// `dpop-proof-window`, seconds.
    pub window: u64,
    /// `dpop-nonce`: proofs must carry a nonce the gateway issued.
    pub nonce: bool,
}

impl DpopRule {
    /// The demand of `route`, `None` for `dpop: off`.
    #[must_use]
    pub fn compile(route: &gatehouse_config::Route) -> Option<DpopRule> {
        let dpop = route.dpop;
        let required = match dpop.mode {
            gatehouse_config::DpopMode::Off => return None,
            gatehouse_config::DpopMode::Optional => false,
            gatehouse_config::DpopMode::Required => true,
        };
        Some(DpopRule {
            required,
            window: dpop.proof_window.as_secs().max(1),
            nonce: dpop.nonce,
        })
    }
}

/// The authentication scheme an `Authorization` header names: what a DPoP route tells
/// apart. `None` for a header that is no usable credential (no token, another scheme,
/// non-ASCII).
#[must_use]
pub fn credential(authorization: &[u8]) -> Option<(Scheme, &str)> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    let token = token.trim();
    (!token.is_empty() && token.is_ascii()).then_some((scheme, token))
}

/// An `Authorization` scheme gatehouse accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449).
    Dpop,
}

/// What a DPoP route decides about a verified token before any proof is looked at (RFC 9449
/// 7.1, 7.2): `Ok(true)` when a proof must be checked, `Ok(false)` when the token passes as
/// a bearer token (`optional` only), else the refusal's reason and description.
pub fn dpop_binding(
    rule: DpopRule,
    scheme: Scheme,
    bound: bool,
) -> Result<bool, (&'static str, &'static str)> {
    match (scheme, bound) {
        (Scheme::Dpop, true) => Ok(true),
        (Scheme::Dpop, false) => Err((
            "dpop_unbound_token",
            "the DPoP scheme needs a DPoP-bound token",
        )),
        (Scheme::Bearer, true) => Err((
            "dpop_bound_token_as_bearer",
            "a DPoP-bound token must be sent with the DPoP scheme",
        )),
        (Scheme::Bearer, false) if rule.required => {
            Err(("dpop_required", "a DPoP-bound token is required"))
        }
        (Scheme::Bearer, false) => Ok(false),
    }
}

/// Why a token falls short of a route's step-up demand (RFC 9470).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// Its `acr` is missing or not one of the route's.
    Acr,
    /// Its `auth_time` is missing or older than the route's `max-auth-age`.
    AuthTime,
}

impl Shortfall {
    /// A stable reason for logs and metric labels.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Shortfall::Acr => "insufficient_acr",
            Shortfall::AuthTime => "authentication_too_old",
        }
    }

    /// A client-safe `error_description`.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            Shortfall::Acr => "a stronger authentication is required",
            Shortfall::AuthTime => "a more recent authentication is required",
        }
    }
}

/// A route's step-up demand: `acr` and `max-auth-age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// The acceptable `acr` values (empty: any).
    pub acr: Vec<String>,
    /// `acr` joined with spaces: the challenge's and the authorization request's `acr_values`.
    pub acr_values: Option<String>,
    /// `max-auth-age`, seconds.
    pub max_age: Option<u64>,
}

impl StepUp {
    /// The demand of `route`, `None` when it has neither key.
    #[must_use]
    pub fn compile(route: &gatehouse_config::Route) -> Option<StepUp> {
        if route.acr.is_empty() && route.max_auth_age.is_none() {
            return None;
        }
        Some(StepUp {
            acr: route.acr.clone(),
            acr_values: (!route.acr.is_empty()).then(|| route.acr.join(" ")),
            max_age: route.max_auth_age.map(|age| age.as_secs().max(1)),
        })
    }

    /// Whether a token with this `acr` and `auth_time` satisfies the demand at `now` (seconds
    /// since the epoch). A missing `acr` never satisfies an `acr` list; a missing `auth_time`
    /// never satisfies `max-auth-age`; an `auth_time` in the future (clock skew) is recent.
    pub fn check(
        &self,
        acr: Option<&str>,
        auth_time: Option<u64>,
        now: u64,
    ) -> Result<(), Shortfall> {
        if !self.acr.is_empty() && !acr.is_some_and(|a| self.acr.iter().any(|x| x == a)) {
            return Err(Shortfall::Acr);
        }
        if let Some(max_age) = self.max_age {
            match auth_time {
                Some(at) if at.saturating_add(max_age) >= now => {}
                _ => return Err(Shortfall::AuthTime),
            }
        }
        Ok(())
    }
}

impl StepUp {
    /// The query a browser whose session falls short is sent to `/oauth/login` with (after its
    /// `rd`): `&acr_values=...` and/or `&max_age=...`, percent-encoded.
    #[must_use]
    pub fn login_query(&self) -> String {
        let mut out = String::new();
        if let Some(acr) = &self.acr_values {
            out.push_str("&acr_values=");
            out.push_str(
                &acr.replace('%', "%25")
                    .replace(' ', "%20")
                    .replace('&', "%26"),
            );
        }
        if let Some(age) = self.max_age {
            out.push_str(&format!("&max_age={age}"));
        }
        out
    }
}

/// The extra parameters of an authorization request for a step-up login, from
/// `/oauth/login`'s decoded `acr_values` and `max_age`: each kept only when well formed
/// (space-separated scope-token values; up to ten digits), and `prompt=login` with either, so
/// the IdP authenticates again instead of reusing its session. A caller may ask for more than
/// a route needs; the route still checks what comes back.
#[must_use]
pub fn step_up_authorization(
    acr_values: Option<&str>,
    max_age: Option<&str>,
) -> Vec<(&'static str, String)> {
    let token = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
    };
    let mut params = Vec::new();
    if let Some(acr) = acr_values.filter(|a| a.len() <= 512 && a.split(' ').all(token)) {
        params.push(("acr_values", acr.to_string()));
    }
    if let Some(age) =
        max_age.filter(|a| (1..=10).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit()))
    {
        params.push(("max_age", age.to_string()));
    }
    if !params.is_empty() {
        params.push(("prompt", "login".to_string()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_routes_tell_schemes_and_bindings_apart() {
        assert_eq!(credential(b"Bearer abc"), Some((Scheme::Bearer, "abc")));
        assert_eq!(credential(b"dpop  abc "), Some((Scheme::Dpop, "abc")));
        assert_eq!(credential(b"DPoP abc"), Some((Scheme::Dpop, "abc")));
        for bad in [
            &b"Basic abc"[..],
            b"DPoP",
            b"DPoP ",
            b"abc",
            b"DPoP ab\xe9",
            b"",
        ] {
            assert_eq!(credential(bad), None, "{bad:?}");
        }
        let required = DpopRule {
            required: true,
            window: 60,
            nonce: false,
        };
        let optional = DpopRule {
            required: false,
            ..required
        };
        for rule in [required, optional] {
            assert_eq!(dpop_binding(rule, Scheme::Dpop, true), Ok(true));
            assert_eq!(
                dpop_binding(rule, Scheme::Dpop, false).map_err(|e| e.0),
                Err("dpop_unbound_token")
            );
            assert_eq!(
                dpop_binding(rule, Scheme::Bearer, true).map_err(|e| e.0),
                Err("dpop_bound_token_as_bearer")
            );
        }
        assert_eq!(
            dpop_binding(required, Scheme::Bearer, false).map_err(|e| e.0),
            Err("dpop_required")
        );
        assert_eq!(dpop_binding(optional, Scheme::Bearer, false), Ok(false));
    }

    #[test]
    fn metadata_paths_name_the_identifiers_path() {
        assert_eq!(
            metadata_suffix("/.well-known/oauth-protected-resource"),
            Some("")
        );
        assert_eq!(
            metadata_suffix("/.well-known/oauth-protected-resource/"),
            Some("")
        );
        assert_eq!(
            metadata_suffix("/.well-known/oauth-protected-resource/api/mcp"),
            Some("/api/mcp")
        );
        assert_eq!(
            metadata_suffix("/.well-known/oauth-protected-resourcex"),
            None
        );
        assert_eq!(metadata_suffix("/.well-known/openid-configuration"), None);
        assert_eq!(metadata_suffix("/api"), None);
    }

    #[test]
    fn metadata_urls_insert_the_well_known_path_after_the_authority() {
        assert_eq!(
            metadata_url("https://demo.localhost:8443/api/mcp"),
            "https://demo.localhost:8443/.well-known/oauth-protected-resource/api/mcp"
        );
        assert_eq!(
            metadata_url("http://demo.localhost/"),
            "http://demo.localhost/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("http://demo.localhost"),
            "http://demo.localhost/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn origins_take_only_plain_hosts() {
        assert_eq!(
            origin(false, "Demo.localhost:8080").as_deref(),
            Some("http://demo.localhost:8080")
        );
        assert_eq!(
            origin(true, "[::1]:8443").as_deref(),
            Some("https://[::1]:8443")
        );
        assert_eq!(origin(true, "demo.localhost\"x"), None);
        assert_eq!(origin(true, "a/b"), None);
        assert_eq!(origin(true, ""), None);
    }

    fn step_up(acr: &[&str], max_age: Option<u64>) -> StepUp {
        StepUp {
            acr: acr.iter().map(|s| s.to_string()).collect(),
            acr_values: None,
            max_age,
        }
    }

    #[test]
    fn step_up_checks_acr_and_auth_time() {
        let gold = step_up(&["gold", "platinum"], None);
        assert_eq!(gold.check(Some("gold"), None, 100), Ok(()));
        assert_eq!(gold.check(Some("platinum"), None, 100), Ok(()));
        assert_eq!(
            gold.check(Some("silver"), Some(100), 100),
            Err(Shortfall::Acr)
        );
        assert_eq!(gold.check(Some("gol"), None, 100), Err(Shortfall::Acr));
        assert_eq!(gold.check(None, None, 100), Err(Shortfall::Acr));
        let fresh = step_up(&[], Some(60));
        assert_eq!(fresh.check(None, Some(40), 100), Ok(()));
        assert_eq!(fresh.check(None, Some(40), 101), Err(Shortfall::AuthTime));
        assert_eq!(fresh.check(None, Some(200), 100), Ok(()), "clock skew");
        assert_eq!(
            fresh.check(Some("gold"), None, 100),
            Err(Shortfall::AuthTime)
        );
        let both = step_up(&["gold"], Some(60));
        assert_eq!(
            both.check(Some("silver"), Some(100), 100),
            Err(Shortfall::Acr)
        );
        assert_eq!(
            both.check(Some("gold"), Some(1), 100),
            Err(Shortfall::AuthTime)
        );
        assert_eq!(both.check(Some("gold"), Some(99), 100), Ok(()));
    }

    #[test]
    fn step_up_logins_ask_the_idp_for_what_the_route_needs() {
        let both = StepUp {
            acr: vec!["gold".into(), "platinum".into()],
            acr_values: Some("gold platinum".into()),
            max_age: Some(300),
        };
        assert_eq!(
            both.login_query(),
            "&acr_values=gold%20platinum&max_age=300"
        );
        let params = step_up_authorization(Some("gold platinum"), Some("300"));
        let expected = [
            ("acr_values", "gold platinum"),
            ("max_age", "300"),
            ("prompt", "login"),
        ];
        assert_eq!(
            params
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
            expected
        );
        assert!(step_up_authorization(None, None).is_empty());
        let bad = step_up_authorization(Some("gold\"x"), Some("-1"));
        assert!(bad.is_empty(), "{bad:?}");
        assert!(step_up_authorization(Some("gold  platinum"), Some("12345678901")).is_empty());
    }

    const CONFIG: &str = r#"
identity-providers:
  - { name: kc, issuer: "https://kc.localhost/realms/demo", client-id: gatehouse }
tenants:
  - name: mcp
    hosts: [mcp.localhost]
    identity-provider: kc
    resource-metadata: { scopes-supported: [mcp:tools, read] }
    upstreams: [{name: app, targets: ["127.0.0.1:1"]}]
    routes:
      - { uri: /mcp/*, resource: "http://mcp.localhost:8080/mcp", acr: [gold], max-auth-age: 5m, dpop: required, dpop-nonce: true }
      - { uri: /opt/*, dpop: optional, dpop-proof-window: 2m }
      - { uri: /* }
  - name: plain
    hosts: [plain.localhost]
    upstreams: [{name: app, targets: ["127.0.0.1:1"]}]
    routes: [{ uri: /*, white-listed: true }]
"#;

    fn snapshot() -> crate::snapshot::Snapshot {
        let config = gatehouse_config::parse(CONFIG, "resource.yaml", &|_| None).expect("config");
        crate::snapshot::Snapshot::compile(&config).expect("compile")
    }

    #[test]
    fn metadata_names_the_identifier_its_url_was_derived_from() {
        let snapshot = snapshot();
        let tenant = snapshot.tenant(snapshot.tenant_for_host("mcp.localhost").unwrap());
        let metadata = tenant.resource_metadata.as_ref().expect("compiled");
        assert_eq!(metadata.scope.as_deref(), Some("mcp:tools read"));
        let origin = "http://mcp.localhost:8080";
        let resource = |suffix| tenant.metadata_resource(origin, suffix);
        assert_eq!(resource("").as_deref(), Some("http://mcp.localhost:8080/"));
        assert_eq!(
            resource("/mcp").as_deref(),
            Some("http://mcp.localhost:8080/mcp")
        );
        // Under the bound route but another identifier: tokens are checked against /mcp.
        assert_eq!(resource("/mcp/tools"), None);
        // Reached on another host: the route's resource names a different origin.
        let other = tenant.metadata_resource("https://mcp.localhost", "/mcp");
        assert_eq!(other, None);
        assert_eq!(
            resource("/other").as_deref(),
            Some("http://mcp.localhost:8080/other")
        );
        let route = tenant.route(tenant.lookup("/mcp/x", &http::Method::POST));
        assert_eq!(
            route.resource.as_deref(),
            Some("http://mcp.localhost:8080/mcp")
        );
        let step_up = route.step_up.as_deref().expect("step-up");
        assert_eq!(
            (step_up.acr_values.as_deref(), step_up.max_age),
            (Some("gold"), Some(300))
        );
        assert_eq!(
            route.dpop,
            Some(DpopRule {
                required: true,
                window: 60,
                nonce: true
            })
        );
        let opt = tenant.route(tenant.lookup("/opt/x", &http::Method::GET));
        assert_eq!(
            opt.dpop,
            Some(DpopRule {
                required: false,
                window: 120,
                nonce: false
            })
        );
        let plain = tenant.route(tenant.lookup("/x", &http::Method::GET));
        assert!(plain.resource.is_none() && plain.step_up.is_none() && plain.dpop.is_none());
        assert_eq!(tenant.metadata_dpop("/mcp").map(|d| d.required), Some(true));
        assert_eq!(
            tenant.metadata_dpop("/opt/a").map(|d| d.required),
            Some(false)
        );
        assert_eq!(tenant.metadata_dpop("/other"), None);
        assert_eq!(
            tenant.metadata_dpop(""),
            None,
            "the bare document: the route of /"
        );
    }

    #[test]
    fn only_a_tenant_with_resource_metadata_serves_it() {
        use crate::admit::{admit, Admission, Builtin, Connection, RequestHead};
        let snapshot = snapshot();
        let headers = http::HeaderMap::new();
        let decide = |host: &str, path: &str| {
            let head = RequestHead {
                method: &http::Method::GET,
                raw_path: path.as_bytes(),
                query: None,
                headers: &headers,
                host: Some(host),
                header_bytes: 100,
                both_lengths: false,
            };
            let conn = Connection {
                tenant: snapshot.tenant_for_host(host),
                secure: false,
                trusted_peer: false,
                https_port_suffix: "",
            };
            admit(&snapshot, &head, &conn).admission
        };
        let builtin = Admission::Builtin(Builtin::ResourceMetadata);
        assert_eq!(
            decide("mcp.localhost", "/.well-known/oauth-protected-resource"),
            builtin
        );
        assert_eq!(
            decide("mcp.localhost", "/.well-known/oauth-protected-resource/mcp"),
            builtin
        );
        assert_eq!(
            decide(
                "mcp.localhost",
                "/.well-known/./oauth-protected-resource/mcp"
            ),
            builtin,
            "decided on the normalized path"
        );
        assert_eq!(
            decide("mcp.localhost", "/.well-known/other"),
            Admission::Authenticate
        );
        assert_eq!(
            decide("plain.localhost", "/.well-known/oauth-protected-resource"),
            Admission::Proxy
        );
    }
}

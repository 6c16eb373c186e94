//! What the importer tells the user on stderr: every option it could not carry over (with the
//! reason and what to do instead), every behaviour that changes, and every secret it replaced
//! by an `${ENV}` reference. Values are never printed, so no secret reaches a terminal or log.

use std::fmt;

/// The kind of a note, which is also its stderr prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A secret was replaced by an `${ENV}` reference (the literal is not in the output).
    Secret,
    /// The option has no gatehouse equivalent; it is not in the output.
    NotCarried,
    /// Carried over, but gatehouse behaves differently in a way the user should know.
    Changed,
    /// Not a Gatekeeper option at all (Gatekeeper ignores it too).
    Unknown,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::NotCarried => "not carried",
            Kind::Changed => "changed",
            Kind::Unknown => "unknown option",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its kind.
    pub kind: Kind,
    /// The Gatekeeper option it is about.
    pub option: String,
    /// Why, and what to do instead.
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.kind.label(), self.option, self.text)
    }
}

/// The notes of one conversion, without duplicates, in the order they were made.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    /// The notes so far.
    pub items: Vec<Note>,
}

impl Notes {
    fn push(&mut self, kind: Kind, option: &str, text: String) {
        let note = Note {
            kind,
            option: option.to_string(),
            text,
        };
        if !self.items.contains(&note) {
            self.items.push(note);
        }
    }

    /// `option` could not be carried over: `why`, and what to do `instead`.
    pub fn not_carried(&mut self, option: &str, why: &str, instead: Option<&str>) {
        let text = match instead {
            Some(i) => format!("{why}; instead: {i}"),
            None => why.to_string(),
        };
        self.push(Kind::NotCarried, option, text);
    }

    /// `option` was carried over, but behaves differently: `text`.
    pub fn changed(&mut self, option: &str, text: &str) {
        self.push(Kind::Changed, option, text.to_string());
    }

    /// `option`'s secret is read from `${var}` in the output.
    pub fn secret(&mut self, option: &str, text: &str) {
        self.push(Kind::Secret, option, text.to_string());
    }

    /// `option` is not a Gatekeeper option (`what` it looks like).
    pub fn unknown(&mut self, option: &str, what: &str) {
        self.push(Kind::Unknown, option, what.to_string());
    }

    /// The notes of `kind`.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Note> {
        self.items.iter().filter(move |n| n.kind == kind)
    }
}

/// Gatekeeper options the converter maps (see `convert.rs` and `routes.rs`).
pub const MAPPED: &[&str] = &[
    "discovery-url",
    "client-id",
    "client-secret",
    "scopes",
    "skip-access-token-clientid-check",
    "skip-access-token-issuer-check",
    "listen",
    "listen-http",
    "listen-admin",
    "tls-cert",
    "tls-private-key",
    "hostnames",
    "upstream-url",
    "skip-upstream-tls-verify",
    "upstream-timeout",
    "upstream-response-header-timeout",
    "upstream-keepalives",
    "resources",
    "enable-default-deny",
    "enable-default-deny-strict",
    "match-claims",
    "add-claims",
    "exclude-claims",
    "enable-token-header",
    "enable-authorization-header",
    "cors-origins",
    "cors-methods",
    "cors-headers",
    "cors-exposed-headers",
    "cors-exposes-headers",
    "cors-credentials",
    "cors-max-age",
    "secure-cookie",
    "http-only-cookie",
    "same-site-cookie",
    "cookie-domain",
    "encryption-key",
    "enable-refresh-tokens",
    "store-url",
    "enable-store-ha",
    "redirection-url",
    "post-logout-redirect-uri",
    "no-redirects",
    "enable-logging",
    "enable-json-logging",
    "disable-all-logging",
    "enable-request-id",
    "request-id-header",
    "enable-security-filter",
    "enable-https-redirection",
    "filter-browser-xss",
    "filter-content-nosniff",
    "filter-frame-deny",
    "content-security-policy",
    "response-headers",
    "enable-metrics",
    "localhost-metrics",
    "max-body-size",
    "max-header-size",
    "server-idle-timeout",
    "server-grace-timeout",
    "enable-pkce",
    "enable-loa",
    "enable-logout-redirect",
    "verbose",
];

/// Gatekeeper options gatehouse has no equivalent for: (option, why, what to do instead).
pub const NOT_CARRIED: &[(&str, &str, &str)] = &[
    ("headers", "gatehouse adds no fixed headers to upstream requests", "set them in the upstream, or ask for a route-level header option"),
    ("enable-session-cookies", "the gatehouse session cookie always lives for cookie.session-ttl", "set tenants[].cookie.session-ttl"),
    ("cookie-access-name", "gatehouse keeps one session cookie holding a session ID, not the access token", "tenants[].cookie.name names it; API clients send Authorization: Bearer (or set token-cookie)"),
    ("cookie-refresh-name", "refresh tokens stay in the session store, never in a cookie", "nothing to do"),
    ("cookie-path", "the session cookie's path is always /", "nothing to do"),
    ("cookie-oauth-state-name", "gatehouse names its login-state cookies itself", "nothing to do"),
    ("cookie-request-uri-name", "gatehouse keeps the requested URL in the login state", "nothing to do"),
    ("cookie-pkce-name", "gatehouse keeps the PKCE verifier in the login state", "nothing to do"),
    ("cookie-uma-name", "no UMA", "nothing to do"),
    ("enable-id-token-cookie", "the ID token stays in the session store", "nothing to do"),
    ("enable-encrypted-token", "gatehouse cookies hold only a sealed session ID (AES-256-GCM), never a token", "nothing to do"),
    ("force-encrypted-cookie", "gatehouse cookies are always sealed", "nothing to do"),
    ("enable-compress-token", "no token in cookies to compress", "nothing to do"),
    ("compress-token-only-auth-scheme", "no token in cookies to compress", "nothing to do"),
    ("enable-optional-encryption", "no token in cookies", "nothing to do"),
    ("enable-authorization-cookies", "gatehouse never passes its own cookies to the upstream", "the upstream reads identity headers or the forwarded Authorization header"),
    ("skip-authorization-header-identity", "gatehouse always authenticates a bearer Authorization header", "send the upstream's own credentials in another header"),
    ("skip-token-verification", "gatehouse always verifies signatures, iss, aud and exp", "use a real identity provider, also in tests"),
    ("skip-openid-provider-tls-verify", "gatehouse always verifies the identity provider's certificate", "trust the provider's CA in the system store"),
    ("tls-openid-provider-ca-certificate", "no per-provider CA file", "add the CA to the system trust store"),
    ("tls-openid-provider-client-certificate", "no client certificate towards the identity provider", "terminate mTLS in a sidecar"),
    ("tls-openid-provider-client-private-key", "no client certificate towards the identity provider", "terminate mTLS in a sidecar"),
    ("openid-provider-proxy", "no outbound proxy setting", "make the provider reachable directly"),
    ("openid-provider-timeout", "discovery is retried in the background and never blocks start", "nothing to do"),
    ("openid-provider-retry-count", "discovery is retried in the background and never blocks start", "nothing to do"),
    ("openid-provider-headers", "no extra headers towards the identity provider", "nothing to do"),
    ("upstream-proxy", "no outbound proxy setting", "proxy to the upstream directly"),
    ("upstream-no-proxy", "no outbound proxy setting", "nothing to do"),
    ("upstream-ca", "upstream certificates are checked against the system trust store", "add the CA to the system trust store, or tls-verify: false"),
    ("upstream-keepalive-timeout", "pooled upstream connections are managed by Pingora", "nothing to do"),
    ("upstream-tls-handshake-timeout", "covered by the upstream's connect-timeout", "set tenants[].upstreams[].connect-timeout"),
    ("upstream-expect-continue-timeout", "no such timeout", "nothing to do"),
    ("max-idle-connections", "pooled upstream connections are managed by Pingora", "nothing to do"),
    ("max-idle-connections-per-host", "pooled upstream connections are managed by Pingora", "nothing to do"),
    ("preserve-host", "the upstream receives the client's Host header", "nothing to do"),
    ("base-uri", "gatehouse's own endpoints are always under /oauth", "route the prefix in front of gatehouse"),
    ("oauth-uri", "gatehouse's own endpoints are always under /oauth", "nothing to do"),
    ("revocation-url", "logout ends the session at the provider's end_session_endpoint", "nothing to do"),
    ("enable-logout-auth", "/oauth/logout ends the caller's own session", "nothing to do"),
    ("enable-idp-session-check", "sessions end at logout, expiry or back-channel logout (/oauth/backchannel-logout)", "register /oauth/backchannel-logout at the provider"),
    ("post-login-redirect-path", "after login the user returns to the page they asked for", "nothing to do"),
    ("allowed-query-params", "no query parameters are passed to the provider", "nothing to do"),
    ("default-allowed-query-params", "no query parameters are passed to the provider", "nothing to do"),
    ("enable-login-handler", "no password-grant relay endpoint", "clients get tokens from the provider"),
    ("enable-register-handler", "no registration redirect", "link to the provider's registration page"),
    ("sign-in-page", "no custom templates", "nothing to do"),
    ("forbidden-page", "no custom templates: 403 is a small JSON body", "nothing to do"),
    ("error-page", "no custom templates", "nothing to do"),
    ("register-page", "no custom templates", "nothing to do"),
    ("tags", "no custom templates", "nothing to do"),
    ("enable-forwarding", "no forward-signing (outbound) proxy mode", "keep a Gatekeeper for outbound signing, or let the service fetch its own token"),
    ("forwarding-username", "no forward-signing proxy mode", "nothing to do"),
    ("forwarding-password", "no forward-signing proxy mode", "nothing to do"),
    ("forwarding-grant-type", "no forward-signing proxy mode", "nothing to do"),
    ("forwarding-domains", "no forward-signing proxy mode", "nothing to do"),
    ("tls-forwarding-ca-certificate", "no forward-signing proxy mode", "nothing to do"),
    ("tls-forwarding-ca-private-key", "no forward-signing proxy mode", "nothing to do"),
    ("enable-signing", "no re-signing of upstream requests with the gateway's own token", "nothing to do"),
    ("enable-signing-hmac", "no HMAC signing of upstream requests", "nothing to do"),
    ("enable-hmac", "no HMAC request signatures", "nothing to do"),
    ("enable-uma", "no Keycloak UMA authorization", "express the permissions as roles, groups or match-claims on routes"),
    ("enable-uma-method-scope", "no Keycloak UMA authorization", "nothing to do"),
    ("enable-opa", "no Open Policy Agent call", "express the policy as roles, groups or match-claims on routes"),
    ("opa-timeout", "no Open Policy Agent call", "nothing to do"),
    ("opa-authz-uri", "no Open Policy Agent call", "nothing to do"),
    ("pat-retry-count", "no UMA", "nothing to do"),
    ("pat-retry-interval", "no UMA", "nothing to do"),
    ("no-proxy", "gatehouse is a proxy; its forward-auth answer is the /oauth/auth endpoint on every tenant host", "point the ingress's auth_request / ForwardAuth at /oauth/auth (docs/forward-auth.md)"),
    ("enable-x-forwarded-headers", "X-Forwarded-* are believed only from trusted-proxies", "list the proxy in front in trusted-proxies"),
    ("custom-http-methods", "routes match any method unless they list methods", "nothing to do"),
    ("enable-compression", "no response compression", "let the upstream compress"),
    ("enable-request-upstream-compression", "the client's Accept-Encoding is passed to the upstream", "nothing to do"),
    ("enable-accept-encoding-header", "the client's Accept-Encoding is passed to the upstream", "nothing to do"),
    ("enable-profiling", "no pprof endpoints", "use the admin listener's /metrics"),
    ("enable-header-encoding", "identity headers are sent as the claims' UTF-8 text", "nothing to do"),
    ("enable-id-token-claims", "identity headers come from the access token's claims", "nothing to do"),
    ("enable-user-info-claims", "identity headers come from the access token's claims", "nothing to do"),
    ("override-destination-headers", "gatehouse sets identity headers after removing the client's", "nothing to do"),
    ("max-token-size", "the request header limit bounds tokens", "set max-request-header-size"),
    ("server-read-timeout", "no server read timeout setting", "nothing to do"),
    ("server-write-timeout", "no write timeout", "nothing to do"),
    ("use-letsencrypt", "no ACME client", "use cert-manager or another ACME client, then tls-cert/tls-key"),
    ("letsencrypt-cache-dir", "no ACME client", "nothing to do"),
    ("enable-self-signed-tls", "no self-signed certificates", "create one with openssl and set tls-cert/tls-key"),
    ("self-signed-tls-hostnames", "no self-signed certificates", "nothing to do"),
    ("self-signed-tls-expiration", "no self-signed certificates", "nothing to do"),
    ("tls-min-version", "TLS 1.2 and 1.3 with Mozilla's intermediate ciphers", "nothing to do"),
    ("tls-client-certificate", "no client certificate towards the upstream", "nothing to do"),
    ("tls-client-private-key", "no client certificate towards the upstream", "nothing to do"),
    ("tls-client-ca-certificate", "no client-certificate authentication of downstream clients", "terminate mTLS in front of gatehouse"),
    ("tls-store-ca-certificate", "Redis certificates are checked against the system trust store", "use rediss:// and the system trust store"),
    ("tls-store-client-certificate", "no client certificate towards Redis", "nothing to do"),
    ("tls-store-client-private-key", "no client certificate towards Redis", "nothing to do"),
    ("tls-admin-cert", "the admin listener is plain HTTP", "keep admin-listen on loopback or a private network"),
    ("tls-admin-private-key", "the admin listener is plain HTTP", "nothing to do"),
    ("tls-admin-client-certificate", "the admin listener is plain HTTP", "nothing to do"),
    ("tls-admin-client-ca-certificate", "the admin listener is plain HTTP", "nothing to do"),
    ("listen-admin-scheme", "the admin listener is plain HTTP", "nothing to do"),
    ("enabled-proxy-protocol", "no PROXY protocol", "use X-Forwarded-For from trusted-proxies"),
    ("file-root", "paths are relative to the working directory", "nothing to do"),
    ("config", "read only when FILE is an argument list", "pass the config file as FILE and other arguments after --"),
];

/// Options the converter knows (mapped or listed as not carried).
pub fn is_known(option: &str) -> bool {
    MAPPED.contains(&option) || NOT_CARRIED.iter().any(|(o, _, _)| *o == option)
}

/// The known option nearest to `option` (at most two edits away), for "did you mean".
pub fn nearest(option: &str) -> Option<&'static str> {
    MAPPED
        .iter()
        .copied()
        .chain(NOT_CARRIED.iter().map(|(o, _, _)| *o))
        .map(|known| (edit_distance(option, known), known))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

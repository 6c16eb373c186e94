//! [`Denial`]: the one list of reasons the gateway answers a request itself instead of
//! proxying it, each mapped to exactly one status, metric reason and auth-result label.

use crate::authz::Forbidden;
use crate::forward_auth::TargetError;
use crate::login::LoginRefusal;
use crate::path::PathError;
use crate::resource::Shortfall;

/// Why the gateway answers a request itself instead of proxying it. Every reason maps to
/// exactly one status here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The Host matches no tenant: 404, never proxied.
    UnknownHost,
    /// The path cannot be normalized safely: 400.
    BadPath(PathError),
    /// Request line and headers exceed `max-request-header-size` or `max-request-headers`: 431.
    HeadersTooLarge,
    /// Both Content-Length and Transfer-Encoding (a request smuggling shape): 400.
    AmbiguousFraming,
    /// More than one `Authorization` header: which one a later hop reads is not defined: 400.
    DuplicateAuthorization,
    /// A forward-auth check whose original request cannot be decided as sent (not a path, a
    /// refused path, or a path not in normal form): 400.
    ForwardAuthTarget(TargetError),
    /// The body exceeds the route's `max-body-size`: 413.
    BodyTooLarge,
    /// The route needs an identity and the request has none: 401.
    Unauthenticated,
    /// A token was presented and refused (the reason is the verifier's): 401 with
    /// `error="invalid_token"`.
    InvalidToken {
        /// Stable reason for logs and metrics (`expired`, `bad_signature`, ...).
        reason: &'static str,
        /// Short description for `error_description`; leaks nothing.
        description: &'static str,
    },
    /// A DPoP route refuses the token as presented (RFC 9449 7): a DPoP-bound token sent as
    /// `Bearer`, an unbound token on `dpop: required` or with the `DPoP` scheme, a bound token
    /// whose binding gatehouse cannot check, or no token at all on `dpop: required`: 401 with
    /// a `DPoP` challenge and `error="invalid_token"`.
    DpopRefused {
        /// Stable reason for logs and metrics (`dpop_required`, ...).
        reason: &'static str,
        /// Short description for `error_description`.
        description: &'static str,
    },
    /// The DPoP proof was refused (RFC 9449 4.3): 401 with `error="invalid_dpop_proof"`.
    InvalidDpopProof {
        /// Stable reason for logs and metrics (`dpop_replayed`, `dpop_wrong_htu`, ...).
        reason: &'static str,
        /// Short description for `error_description`.
        description: &'static str,
    },
    /// The route wants a server nonce in the proof and it has none, or a stale one (RFC 9449
    /// 9): 401 with `error="use_dpop_nonce"` and this `DPoP-Nonce`.
    UseDpopNonce {
        /// The nonce the next proof must carry.
        nonce: String,
    },
    /// The proof's single use cannot be established (the replay memory is full, or the shared
    /// one in Redis cannot answer): 503, the proof is not accepted.
    DpopReplayUnavailable,
    /// A valid token whose authentication falls short of the route's `acr` or `max-auth-age`
    /// (RFC 9470): 401 with `error="insufficient_user_authentication"`.
    InsufficientAuthentication(Shortfall),
    /// Authenticated, but the route's requirements are not met: 403.
    Forbidden(Forbidden),
    /// `enable-https-redirection` and the request came over plain HTTP: 308 to `location`.
    HttpsRequired {
        /// The HTTPS URL of the same resource.
        location: String,
    },
    /// No target of the route's upstream passes health checks: 503.
    NoHealthyUpstream,
    /// The token could not be checked (the introspection endpoint is unreachable): 503.
    AuthUnavailable,
    /// The request's browser session cannot be used right now: the session store is
    /// unavailable and the tenant fails closed, or the session's access token expired and the
    /// identity provider cannot refresh it (timeout, 5xx, unreachable, or a refresh elsewhere
    /// did not finish in time). Not a logout: 503 (an HTML page for a browser navigation).
    SessionUnavailable,
    /// A browser navigation without a session on a tenant with `login`: 302 to `location`
    /// (`/oauth/login?rd=...`).
    LoginRequired {
        /// Where the browser goes to log in.
        location: String,
    },
    /// A CORS preflight from a disallowed origin, or asking for a method or headers that are
    /// not allowed: 403 without any allow header.
    CorsRefused,
    /// A built-in browser path (login, callback, logout, userinfo, back-channel logout)
    /// refuses the request; the status and reason are the [`LoginRefusal`]'s.
    Login(LoginRefusal),
    /// Over one of the tenant's or the route's `rate-limits`: 429 with `Retry-After` and the
    /// `RateLimit` / `RateLimit-Policy` headers; never proxied.
    RateLimited {
        /// Which limit: its index in the tenant's limits followed by the route's.
        limit: usize,
        /// Seconds until a token is back (`Retry-After`).
        retry_after: u64,
    },
}

impl Denial {
    /// The HTTP status for this reason.
    pub fn status(&self) -> u16 {
        match self {
            Denial::UnknownHost => 404,
            Denial::BadPath(_)
            | Denial::AmbiguousFraming
            | Denial::DuplicateAuthorization
            | Denial::ForwardAuthTarget(_) => 400,
            Denial::HeadersTooLarge => 431,
            Denial::BodyTooLarge => 413,
            Denial::Unauthenticated
            | Denial::InvalidToken { .. }
            | Denial::DpopRefused { .. }
            | Denial::InvalidDpopProof { .. }
            | Denial::UseDpopNonce { .. }
            | Denial::InsufficientAuthentication(_) => 401,
            Denial::Forbidden(_) => 403,
            Denial::HttpsRequired { .. } => 308,
            Denial::LoginRequired { .. } => 302,
            Denial::NoHealthyUpstream => 503,
            Denial::CorsRefused => 403,
            Denial::AuthUnavailable
            | Denial::SessionUnavailable
            | Denial::DpopReplayUnavailable => 503,
            Denial::Login(r) => r.status(),
            Denial::RateLimited { .. } => 429,
        }
    }

    /// The `result` label of `gatehouse_auth_decisions_total` for this refusal: `bad_request`
    /// for a request that cannot be decided as sent, `unauthenticated` when no acceptable
    /// identity was presented or it could not be checked (401, the login redirect, 503),
    /// `forbidden` otherwise (a forward-auth check answers those with 403).
    pub fn auth_result(&self) -> &'static str {
        match self.status() {
            400 => "bad_request",
            401 | 302 | 503 => "unauthenticated",
            _ => "forbidden",
        }
    }

    /// A short, stable reason for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::UnknownHost => "unknown_host",
            Denial::BadPath(e) => e.as_str(),
            Denial::HeadersTooLarge => "headers_too_large",
            Denial::AmbiguousFraming => "ambiguous_framing",
            Denial::DuplicateAuthorization => "duplicate_authorization",
            Denial::ForwardAuthTarget(e) => e.as_str(),
            Denial::BodyTooLarge => "body_too_large",
            Denial::Unauthenticated => "unauthenticated",
            Denial::InvalidToken { reason, .. } => reason,
            Denial::DpopRefused { reason, .. } => reason,
            Denial::InvalidDpopProof { reason, .. } => reason,
            Denial::UseDpopNonce { .. } => "dpop_nonce_required",
            Denial::DpopReplayUnavailable => "dpop_replay_unavailable",
            Denial::InsufficientAuthentication(s) => s.reason(),
            Denial::Forbidden(f) => f.reason(),
            Denial::HttpsRequired { .. } => "https_required",
            Denial::LoginRequired { .. } => "login_required",
            Denial::NoHealthyUpstream => "no_healthy_upstream",
            Denial::CorsRefused => "cors_refused",
            Denial::AuthUnavailable => "introspection_unavailable",
            Denial::SessionUnavailable => "session_unavailable",
            Denial::Login(r) => r.reason(),
            Denial::RateLimited { .. } => "rate_limited",
        }
    }

    /// Whether the connection must be closed after the response: the request's framing or
    /// size is suspect, so bytes may remain that must never be read as a next request.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Denial::AmbiguousFraming | Denial::HeadersTooLarge | Denial::BodyTooLarge
        )
    }
}

//! Explain a request's fate: `gatehouse explain` (`cli.rs`) and the admin listener's
//! `POST /debug/explain` both describe one request (method, URL, headers, client address) as
//! a list of [`Step`]s ending in the gateway's [`Verdict`].
//!
//! The verdict is the gateway's own: the same functions the phases call decide it, in the same
//! order — `ctx::arrival` (trusted peer, scheme, tenant), `policy::admit::admit` (limits,
//! path, built-ins, route), `identify::identify` (bearer token through the provider's verifier
//! or introspection, else the browser session in the store) and `identify::authorize`
//! (default deny, roles/groups/claims, step-up). The detail beside it comes from a
//! diagnostic walk over the same pure pieces (`detail.rs`: the host table per pattern, the
//! route table per route, `TokenVerifier::diagnose`, `Requirements::report`, the session
//! cookie and a store read); it never decides anything. Nothing here runs on a request's path.
//!
//! What a report never holds: a token or cookie value. Tokens and cookies appear as
//! [`gatehouse_session::verifier::fingerprint`]s; claims are shown as claims.
//!
//! Not consulted: rate limits (explaining takes no token from a bucket) and the upstream's
//! health. Consulting the gateway's functions has their side effects: a verified token is
//! cached, a session due for refresh is refreshed, as the same request would.

use std::net::IpAddr;

use gatehouse_policy::admit::{admit, Admission, Connection};
use gatehouse_policy::snapshot::Denial;
use pingora::http::RequestHeader;
use serde::Serialize;

use crate::ctx::{arrival, RequestCtx};
use crate::identify::{authorize, identify, route_demand};
use crate::login::Sessions;
use crate::proxy::request_head;
use crate::runtime::Runtime;

pub mod cli;
mod detail;
mod query;
mod render;
mod session;

pub use query::{Query, QueryError};
pub use render::{json, text};

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step let the request on.
    Pass,
    /// The step refused the request (or would have: see the verdict).
    Fail,
    /// A fact, not a decision.
    Info,
}

/// One check inside a step (a token's `exp`, a route's role).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
    /// What the gateway expects, when that is a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the request carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    /// One line for a person.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One step of the gateway's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `tenant`, `path`, `route`, `admission`, `credential`, `token`, `session`,
    /// `requirements`, `step-up`.
    pub step: &'static str,
    /// How it went.
    pub outcome: Outcome,
    /// One line for a person.
    pub summary: String,
    /// The checks it made, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

impl Step {
    fn new(step: &'static str, outcome: Outcome, summary: impl Into<String>) -> Step {
        Step {
            step,
            outcome,
            summary: summary.into(),
            checks: Vec::new(),
        }
    }
}

/// The gateway's answer to the request.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The request goes on (proxied, or answered by the gateway without a refusal).
    pub allowed: bool,
    /// `proxy`, `forward-auth`, `preflight`, `builtin`, `deny`.
    pub action: &'static str,
    /// The status the gateway answers with; `None` when the upstream answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The reason the access log and `gatehouse_denials_total` give (`Denial::reason`); `ok`
    /// when allowed.
    pub reason: &'static str,
    /// One line for a person.
    pub summary: String,
}

impl Verdict {
    fn deny(denial: &Denial) -> Verdict {
        Verdict {
            allowed: false,
            action: "deny",
            status: Some(denial.status()),
            reason: denial.reason(),
            summary: format!("refused: {} {}", denial.status(), denial.reason()),
        }
    }

    fn allow(action: &'static str, status: Option<u16>, summary: impl Into<String>) -> Verdict {
        Verdict {
            allowed: true,
            action,
            status,
            reason: "ok",
            summary: summary.into(),
        }
    }
}

/// The explanation of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The request as understood: method, URL (without its query), client address.
    pub request: query::Described,
    /// The steps, in the gateway's order.
    pub steps: Vec<Step>,
    /// The gateway's answer.
    pub verdict: Verdict,
}

/// Explains `query` against `runtime`'s config, keys and identity providers and `sessions`'
/// store. See the module documentation.
pub async fn explain(
    runtime: &Runtime,
    sessions: &Sessions,
    query: &Query,
) -> Result<Report, QueryError> {
    let parsed = query.parse()?;
    let req = &parsed.head;
    let mut steps = Vec::new();
    let arrived = arrival(&runtime.policy, req, parsed.peer, parsed.tls);
    steps.push(detail::tenant(
        runtime,
        req,
        &arrived,
        parsed.peer,
        parsed.tls,
    ));
    let head = request_head(req, Some(&parsed.raw));
    let suffix = crate::server::https_port_suffix(&runtime.config);
    let conn = Connection {
        tenant: arrived.tenant,
        secure: arrived.secure,
        trusted_peer: arrived.trusted_peer,
        https_port_suffix: &suffix,
    };
    let decision = admit(&runtime.policy, &head, &conn);
    if let Some(t) = arrived.tenant {
        steps.push(detail::path(head.raw_path));
        if let Some(route) = decision.route {
            steps.push(detail::route(
                runtime,
                t,
                req,
                &head,
                arrived.trusted_peer,
                route,
            ));
        }
    }
    let verdict = match &decision.admission {
        Admission::Deny(denial) => {
            steps.push(detail::admission_refusal(denial));
            Verdict::deny(denial)
        }
        Admission::Proxy if decision.forward_auth => Verdict::allow(
            "forward-auth",
            Some(200),
            "the check is answered 200: the route is white-listed",
        ),
        Admission::Proxy => Verdict::allow(
            "proxy",
            None,
            "proxied without authentication: the route is white-listed",
        ),
        Admission::Preflight(_) => Verdict::allow(
            "preflight",
            Some(204),
            "a CORS preflight the gateway answers itself",
        ),
        Admission::Builtin(builtin) => Verdict::allow(
            "builtin",
            None,
            format!("a built-in path the gateway serves itself ({builtin:?})"),
        ),
        Admission::Authenticate => {
            let (Some(t), Some(route)) = (arrived.tenant, decision.route) else {
                return Err(QueryError("admission chose no route".to_string()));
            };
            let mut ctx = RequestCtx::new();
            ctx.tenant = Some(t);
            ctx.route = Some(route);
            ctx.client_ip = parsed.peer;
            ctx.trusted_peer = arrived.trusted_peer;
            ctx.tls = parsed.tls;
            ctx.secure = arrived.secure;
            ctx.forward_auth = decision.forward_auth;
            authenticate(runtime, sessions, req, &ctx, &mut steps).await
        }
    };
    Ok(Report {
        request: parsed.described,
        steps,
        verdict,
    })
}

/// The identity and authorization steps: the detail first (a session due for refresh is
/// refreshed by the verdict's lookup), then the verdict of `identify` and `authorize`.
async fn authenticate(
    runtime: &Runtime,
    sessions: &Sessions,
    req: &RequestHeader,
    ctx: &RequestCtx,
    steps: &mut Vec<Step>,
) -> Verdict {
    let (t, route_ref) = (
        ctx.tenant.expect("set by explain"),
        ctx.route.expect("set by explain"),
    );
    let route = runtime.policy.tenant(t).route(route_ref);
    detail::credential(runtime, sessions, req, t, route, steps).await;
    let claims =
        match identify(req, ctx, t, runtime, sessions, route_demand(route, None)).await {
            Ok(Some(claims)) => claims,
            Ok(None) => return Verdict::allow(
                if ctx.forward_auth {
                    "forward-auth"
                } else {
                    "proxy"
                },
                ctx.forward_auth.then_some(200),
                "allowed anonymously: the route is white-listed-anon and no credential was sent",
            ),
            Err(denial) => return Verdict::deny(&denial),
        };
    steps.extend(detail::authorization(runtime, t, route, &claims));
    match authorize(req, ctx, t, route_ref, runtime, &claims) {
        Ok(()) if ctx.forward_auth => Verdict::allow(
            "forward-auth",
            Some(200),
            "the check is answered 200 with the identity headers",
        ),
        Ok(()) => Verdict::allow(
            "proxy",
            None,
            "proxied to the route's upstream with the identity headers",
        ),
        Err(denial) => Verdict::deny(&denial),
    }
}

/// The tenant `query` reaches (for the CLI, which fetches that tenant's provider's keys).
pub fn tenant_of(runtime: &Runtime, query: &Query) -> Result<Option<usize>, QueryError> {
    let parsed = query.parse()?;
    Ok(arrival(&runtime.policy, &parsed.head, parsed.peer, parsed.tls).tenant)
}

/// The client address a report names (`--from`).
pub(crate) fn peer_text(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests;

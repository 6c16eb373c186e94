//! The detail of an explanation: why each step went as it did, from a walk over the same pure
//! pieces the gateway decides with (the host table per pattern, the route table per route,
//! the verifier's diagnosis, the requirements' report, the session cookie and the store). No
//! function here decides the verdict (see the module documentation of `explain`).

use std::net::IpAddr;

use gatehouse_policy::forward_auth::{is_forward_auth_path, original_request};
use gatehouse_policy::host::HostTable;
use gatehouse_policy::path::normalize_path;
use gatehouse_policy::routes::RouteTable;
use gatehouse_policy::snapshot::{Access, Denial, RoutePolicy, RouteRef};
use gatehouse_session::claims::Claims;
use gatehouse_session::verifier::{fingerprint, Diagnosis};
use gatehouse_session::{looks_like_jwt, Audience};
use pingora::http::RequestHeader;

use super::{peer_text, Check, Outcome, Step};
use crate::auth::{bearer_token, ClaimsIdentity, Provider};
use crate::clock::unix_now;
use crate::ctx::{decided_host, Arrival};
use crate::identify::client_id;
use crate::login::Sessions;
use crate::runtime::Runtime;

pub(super) fn check(name: impl Into<String>, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        outcome,
        expected: None,
        got: None,
        detail: detail.into(),
    }
}

pub(super) fn pass_if(ok: bool) -> Outcome {
    if ok {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}

/// `in N s` / `N s ago`.
pub(super) fn relative(at: u64, now: u64) -> String {
    if at >= now {
        format!("in {} s", at - now)
    } else {
        format!("{} s ago", now - at)
    }
}

/// The tenant, and the host pattern of its config that chose it.
pub(super) fn tenant(
    runtime: &Runtime,
    req: &RequestHeader,
    arrived: &Arrival,
    peer: Option<IpAddr>,
    tls: bool,
) -> Step {
    let trusted_check = arrived.trusted_peer && is_forward_auth_path(req.uri.path());
    let host = decided_host(req, trusted_check, runtime.policy.forward_auth_headers).unwrap_or("");
    let mut step = match arrived.tenant {
        None => Step::new(
            "tenant",
            Outcome::Fail,
            format!("no tenant serves host {host:?}: no host rule matches"),
        ),
        Some(t) => {
            let rule = host_rule(&runtime.config.tenants[t].hosts, host);
            Step::new(
                "tenant",
                Outcome::Pass,
                format!(
                    "{} (host {host:?} matched the host rule {:?})",
                    runtime.policy.tenant(t).name,
                    rule.unwrap_or("?")
                ),
            )
        }
    };
    let source = if trusted_check {
        "the forward-auth check's original host, believed from a trusted proxy"
    } else {
        "the request's authority or Host header"
    };
    step.checks.push(check(
        "host",
        Outcome::Info,
        format!("{host:?}, from {source}"),
    ));
    step.checks.push(check(
        "client",
        Outcome::Info,
        format!(
            "{} ({}), over {}{}",
            peer_text(peer),
            if arrived.trusted_peer {
                "a trusted proxy"
            } else {
                "not a trusted proxy"
            },
            if tls { "TLS" } else { "plain HTTP" },
            if arrived.secure && !tls {
                " (HTTPS per the trusted proxy's X-Forwarded-Proto)"
            } else {
                ""
            }
        ),
    ));
    step
}

/// Which of a tenant's host patterns matches `host`: an exact one beats every wildcard, the
/// longest wildcard the others (as the host table decides).
fn host_rule<'a>(patterns: &'a [String], host: &str) -> Option<&'a str> {
    let matching = patterns
        .iter()
        .filter(|p| HostTable::new([(p.as_str(), ())]).is_ok_and(|t| t.lookup(host).is_some()));
    matching
        .max_by_key(|p| (!p.starts_with("*."), p.len()))
        .map(String::as_str)
}

/// The normalized path, or why the path cannot be normalized.
pub(super) fn path(raw: &[u8]) -> Step {
    let shown = String::from_utf8_lossy(raw);
    match normalize_path(raw) {
        Ok(p) if p.as_bytes() == raw => Step::new("path", Outcome::Pass, format!("{p}")),
        Ok(p) => Step::new(
            "path",
            Outcome::Pass,
            format!("{p} (normalized from {shown}; the upstream gets the normalized path)"),
        ),
        Err(e) => Step::new(
            "path",
            Outcome::Fail,
            format!("{shown} cannot be normalized: {}", e.as_str()),
        ),
    }
}

/// The route admission chose and every other route whose pattern matches the path: the ones
/// it beat (less specific) and the ones whose methods do not admit the request's.
pub(super) fn route(
    runtime: &Runtime,
    t: usize,
    req: &RequestHeader,
    head: &gatehouse_policy::admit::RequestHead<'_>,
    trusted_peer: bool,
    chosen: RouteRef,
) -> Step {
    let policy = runtime.policy.tenant(t);
    let normalized = normalize_path(head.raw_path).map(|p| p.into_owned());
    let (method, path) = match normalized {
        Ok(p) if is_forward_auth_path(&p) => match original_request(
            &req.headers,
            &req.method,
            head.raw_path,
            trusted_peer,
            runtime.policy.forward_auth_headers,
        ) {
            Ok(o) => (o.method, o.path),
            Err(_) => (req.method.clone(), p),
        },
        Ok(p) => (req.method.clone(), p),
        Err(_) => (req.method.clone(), String::new()),
    };
    let chosen_policy = policy.route(chosen);
    let mut step = match chosen {
        RouteRef::Route(i) => Step::new(
            "route",
            Outcome::Pass,
            format!(
                "{} {path}: route {:?} ({})",
                method,
                runtime.config.tenants[t].routes[i].uri,
                access_text(chosen_policy)
            ),
        ),
        RouteRef::Unmatched => Step::new(
            "route",
            if chosen_policy.access == Access::DefaultDeny {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            format!(
                "{method} {path}: no route matches; the tenant's fallback: {}",
                access_text(chosen_policy)
            ),
        ),
    };
    for (i, r) in runtime.config.tenants[t].routes.iter().enumerate() {
        let table = {
            let mut b = RouteTable::builder();
            if b.insert(&r.uri, None, ()).is_err() {
                continue;
            }
            b.build()
        };
        if table.lookup(&path, &method).is_none() {
            continue;
        }
        let admits = r.methods.is_empty() || r.methods.iter().any(|m| m == method.as_str());
        let (outcome, detail) = if chosen == RouteRef::Route(i) {
            (Outcome::Pass, "chosen".to_string())
        } else if !admits {
            (
                Outcome::Info,
                format!("skipped: {method} is not in [{}]", r.methods.join(", ")),
            )
        } else {
            (
                Outcome::Info,
                "beaten: a more specific route matches".to_string(),
            )
        };
        step.checks
            .push(check(format!("route {:?}", r.uri), outcome, detail));
    }
    step
}

fn access_text(route: &RoutePolicy) -> &'static str {
    match route.access {
        Access::Public => "white-listed: no authentication",
        Access::Authenticated => "an authenticated caller",
        Access::Optional => "white-listed-anon: a credential is checked when sent",
        Access::DefaultDeny => "enable-default-deny: refused",
    }
}

/// Admission refused the request before any credential was looked at.
pub(super) fn admission_refusal(denial: &Denial) -> Step {
    let why = match denial {
        Denial::UnknownHost => "the host matches no tenant",
        Denial::BadPath(_) => "the path cannot be normalized safely",
        Denial::HeadersTooLarge => {
            "the head exceeds max-request-header-size or max-request-headers"
        }
        Denial::AmbiguousFraming => "both Content-Length and Transfer-Encoding",
        Denial::DuplicateAuthorization => "more than one Authorization header",
        Denial::ForwardAuthTarget(_) => {
            "the forward-auth check's original request cannot be decided"
        }
        Denial::BodyTooLarge => "the declared body exceeds the route's max-body-size",
        Denial::HttpsRequired { .. } => "enable-https-redirection and the request is plain HTTP",
        Denial::CorsRefused => "a CORS preflight the tenant's cors does not allow",
        _ => "refused before authentication",
    };
    Step::new(
        "admission",
        Outcome::Fail,
        format!("{}: {why}", denial.reason()),
    )
}

/// The credential the request carries and its checks: a bearer token (each check of the
/// provider's verifier), else the browser session (cookie, then store).
pub(super) async fn credential(
    runtime: &Runtime,
    sessions: &Sessions,
    req: &RequestHeader,
    t: usize,
    route: &RoutePolicy,
    steps: &mut Vec<Step>,
) {
    let tenant = runtime.policy.tenant(t);
    match bearer_token(req, tenant.token_cookie.as_deref()) {
        Err(()) => steps.push(Step::new(
            "credential",
            Outcome::Fail,
            "malformed: the Authorization header is not a Bearer credential",
        )),
        Ok(Some(token)) => {
            let from = if req.headers.contains_key(http::header::AUTHORIZATION) {
                "the Authorization header".to_string()
            } else {
                format!(
                    "the token cookie {:?}",
                    tenant.token_cookie.as_deref().unwrap_or("")
                )
            };
            steps.push(Step::new(
                "credential",
                Outcome::Info,
                format!(
                    "a bearer token from {from}: {} ({} bytes)",
                    fingerprint(token),
                    token.len()
                ),
            ));
            steps.push(match runtime.provider(t) {
                None => Step::new(
                    "token",
                    Outcome::Fail,
                    "the tenant has no identity-provider",
                ),
                Some(provider) => token_checks(provider, token, route),
            });
        }
        Ok(None) => match runtime.logins[t].as_ref() {
            Some(login) => {
                steps.push(super::session::session(runtime, sessions, req, login, route).await)
            }
            None => steps.push(Step::new(
                "credential",
                absent_outcome(route),
                match &tenant.token_cookie {
                    Some(c) => format!("none: no Authorization header, no cookie {c:?}"),
                    None => "none: no Authorization header".to_string(),
                },
            )),
        },
    }
}

/// No credential fails a route that needs an identity, and is fine on `white-listed-anon`.
pub(super) fn absent_outcome(route: &RoutePolicy) -> Outcome {
    if route.access == Access::Optional {
        Outcome::Info
    } else {
        Outcome::Fail
    }
}

/// Each check of a bearer token by the provider's verifier, with the keys in use.
fn token_checks(provider: &Provider, token: &str, route: &RoutePolicy) -> Step {
    let verifier = &provider.verifier;
    if verifier.introspection_enabled() && !looks_like_jwt(token) {
        return Step::new(
            "token",
            Outcome::Info,
            format!(
                "an opaque token: the introspection endpoint of provider {} decides (see the verdict)",
                verifier.name()
            ),
        );
    }
    let audience = match route.resource.as_deref() {
        Some(resource) => Audience::Resource(resource),
        None => Audience::Provider,
    };
    let diagnosis = verifier.diagnose(token, audience, unix_now());
    let mut step = token_step(verifier.name(), &diagnosis);
    if route.introspect {
        step.checks.push(check(
            "introspection",
            Outcome::Info,
            "this route also asks the introspection endpoint whether the token is active (see the verdict)",
        ));
    }
    step
}

fn token_step(provider: &str, d: &Diagnosis) -> Step {
    let header = format!(
        "alg {}, kid {}",
        d.alg.as_deref().unwrap_or("?"),
        d.kid.as_deref().unwrap_or("(none)")
    );
    let mut step = match d.first_failure() {
        Some(c) => Step::new(
            "token",
            Outcome::Fail,
            format!(
                "refused by provider {provider} at {}: {} ({header})",
                c.name,
                c.failed.map_or("", |e| e.reason())
            ),
        ),
        None => Step::new(
            "token",
            Outcome::Pass,
            format!(
                "valid for provider {provider}: sub {} ({header})",
                d.claims
                    .as_ref()
                    .and_then(|c| c.sub.as_deref())
                    .unwrap_or("(none)")
            ),
        ),
    };
    step.checks = d
        .checks
        .iter()
        .map(|c| Check {
            name: c.name.to_string(),
            outcome: pass_if(c.failed.is_none()),
            expected: c.expected.clone(),
            got: c.got.clone(),
            detail: match c.failed {
                Some(e) if c.detail.is_empty() => e.reason().to_string(),
                Some(e) => format!("{}: {}", e.reason(), c.detail),
                None => c.detail.clone(),
            },
        })
        .collect();
    step
}

/// The route's requirements and step-up against the caller's claims.
pub(super) fn authorization(
    runtime: &Runtime,
    t: usize,
    route: &RoutePolicy,
    claims: &Claims,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if route.access == Access::DefaultDeny {
        steps.push(Step::new(
            "requirements",
            Outcome::Fail,
            "no route matches and the tenant denies by default (enable-default-deny)",
        ));
        return steps;
    }
    let identity = ClaimsIdentity {
        claims,
        client_id: client_id(runtime, t),
    };
    let report = route.requirements.report(&identity);
    let verdict = route.requirements.check(&identity);
    let mut step = Step::new(
        "requirements",
        pass_if(verdict.is_ok()),
        match verdict {
            Ok(()) if report.is_empty() => "none: any authenticated caller".to_string(),
            Ok(()) => "met".to_string(),
            Err(f) => format!("not met: {}", f.reason()),
        },
    );
    let all = route.requirements.require_all();
    for item in &report {
        step.checks.push(Check {
            name: format!("{} {}", item.kind, item.name),
            outcome: if item.met {
                Outcome::Pass
            } else if all || item.kind == "claim" {
                Outcome::Fail
            } else {
                Outcome::Info
            },
            expected: item.pattern.map(str::to_string),
            got: None,
            detail: if item.met { "present" } else { "absent" }.to_string(),
        });
    }
    if !report.is_empty() {
        step.checks
            .push(check("present", Outcome::Info, present_text(claims)));
    }
    steps.push(step);
    if let Some(step_up) = route.step_up.as_deref() {
        let now = unix_now();
        let result = step_up.check(claims.acr.as_deref(), claims.auth_time, now);
        let mut step = Step::new(
            "step-up",
            pass_if(result.is_ok()),
            match result {
                Ok(()) => "met".to_string(),
                Err(s) => format!("not met: {}", s.reason()),
            },
        );
        if !step_up.acr.is_empty() {
            let ok = claims
                .acr
                .as_deref()
                .is_some_and(|a| step_up.acr.iter().any(|x| x == a));
            step.checks.push(Check {
                name: "acr".to_string(),
                outcome: pass_if(ok),
                expected: Some(format!("one of [{}]", step_up.acr.join(", "))),
                got: claims.acr.clone(),
                detail: String::new(),
            });
        }
        if let Some(max_age) = step_up.max_age {
            let ok = claims
                .auth_time
                .is_some_and(|at| at.saturating_add(max_age) >= now);
            step.checks.push(Check {
                name: "max-auth-age".to_string(),
                outcome: pass_if(ok),
                expected: Some(format!("authenticated at most {max_age} s ago")),
                got: claims
                    .auth_time
                    .map(|at| format!("authenticated {}", relative(at, now))),
                detail: String::new(),
            });
        }
        steps.push(step);
    }
    steps
}

/// The caller's roles and groups, as claims (never a credential).
fn present_text(claims: &Claims) -> String {
    let mut roles: Vec<String> = claims.realm_roles.clone();
    for (client, rs) in &claims.client_roles {
        roles.extend(rs.iter().map(|r| format!("{client}:{r}")));
    }
    format!(
        "roles [{}], groups [{}]",
        roles.join(", "),
        claims.groups.join(", ")
    )
}

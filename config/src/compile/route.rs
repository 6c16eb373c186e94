//! `tenants[].routes[]`, `cors` and `security-headers`.

use super::*;

/// The regex a `match-claims` pattern compiles to: anchored at both ends, so it matches the
/// whole claim value (`@example\.com` does not match `x@example.com.evil`; a substring match
/// is written `.*x.*`). The group keeps an alternation such as `a|b` whole.
pub fn anchored_pattern(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

pub(super) fn route(
    d: &mut Diag<'_>,
    f: FileRoute,
    path: &str,
    upstreams: &[&str],
    default_upstream: Option<&str>,
    redis: bool,
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
    let rate_limits =
        super::limits::rate_limits(d, f.rate_limits, &join(path, "rate-limits"), redis);
    let (resource, acr, max_auth_age) = step_up(
        d,
        (f.resource, f.acr, f.max_auth_age),
        path,
        shown,
        white_listed,
        introspect,
    );
    let dpop = dpop(
        d,
        (f.dpop, f.dpop_proof_window, f.dpop_nonce),
        path,
        shown,
        (white_listed, white_listed_anon),
    );
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
        rate_limits,
        resource,
        acr,
        max_auth_age,
        dpop,
    })
}

/// The longest `dpop-proof-window`: a proof is a replayable credential while its `iat` is
/// accepted, and every `jti` is remembered this long.
const MAX_DPOP_PROOF_WINDOW: Duration = Duration::from_secs(600);

/// A route's `dpop`, `dpop-proof-window` and `dpop-nonce` (RFC 9449).
fn dpop(
    d: &mut Diag<'_>,
    (mode, window, nonce): (Option<Text>, Option<Dur>, Option<Flag>),
    path: &str,
    shown: &str,
    (white_listed, white_listed_anon): (bool, bool),
) -> Dpop {
    let mode = match mode.as_ref().map(|m| m.0.as_str()) {
        None | Some("off") => DpopMode::Off,
        Some("optional") => DpopMode::Optional,
        Some("required") => DpopMode::Required,
        Some(other) => {
            d.error(
                &join(path, "dpop"),
                format!("invalid dpop {other:?} (required, optional or off)"),
            );
            DpopMode::Off
        }
    };
    let proof_window = window.map_or(DEFAULT_DPOP_PROOF_WINDOW, |w| w.0);
    if window.is_some()
        && (proof_window < Duration::from_secs(1) || proof_window > MAX_DPOP_PROOF_WINDOW)
    {
        d.error(
            &join(path, "dpop-proof-window"),
            "must be between 1s and 10m",
        );
    }
    let nonce = flag(nonce, false);
    if mode == DpopMode::Off && (window.is_some() || nonce) {
        let key = if nonce {
            "dpop-nonce"
        } else {
            "dpop-proof-window"
        };
        d.error(
            &join(path, key),
            format!("route {shown:?} has {key} but no dpop (set dpop: required or optional)"),
        );
    }
    if white_listed && mode != DpopMode::Off {
        d.error(
            &join(path, "white-listed"),
            format!("route {shown:?} is white-listed (no authentication) but also has dpop"),
        );
    }
    if white_listed_anon && mode == DpopMode::Required {
        d.error(
            &join(path, "dpop"),
            format!("route {shown:?} is white-listed-anon (authentication optional): dpop can be optional there, not required"),
        );
    }
    Dpop {
        mode,
        proof_window,
        nonce,
    }
}

/// A route's `resource`, `acr` and `max-auth-age`: what a token must show beyond its
/// signature (RFC 8707 audience, RFC 9470 authentication level and age).
fn step_up(
    d: &mut Diag<'_>,
    (resource, acr_list, max_auth_age): (Option<String>, Option<Vec<Text>>, Option<Dur>),
    path: &str,
    shown: &str,
    white_listed: bool,
    introspect: bool,
) -> (Option<String>, Vec<String>, Option<Duration>) {
    if let Some(r) = &resource {
        if let Err(e) = crate::checks::resource_uri(r) {
            d.error(&join(path, "resource"), e);
        } else if introspect {
            d.error(
                &join(path, "resource"),
                format!("route {shown:?}: resource cannot be combined with introspect (the introspection answer is checked against the provider's audiences)"),
            );
        }
    }
    let mut acr = Vec::new();
    if let Some(list) = &acr_list {
        let key = join(path, "acr");
        if list.is_empty() {
            d.error(
                &key,
                "must list at least one acr value (leave the key out for any)",
            );
        }
        for (i, v) in list.iter().enumerate() {
            if crate::checks::is_scope_token(&v.0) {
                acr.push(v.0.clone());
            } else {
                d.error(
                    &index(&key, i),
                    format!(
                        "invalid acr value {:?} (no spaces, quotes or backslashes)",
                        v.0
                    ),
                );
            }
        }
    }
    let max_auth_age = max_auth_age.map(|a| a.0);
    if max_auth_age.is_some_and(|a| a.is_zero()) {
        d.error(
            &join(path, "max-auth-age"),
            "must be greater than zero (leave the key out for no limit)",
        );
    }
    if white_listed && (resource.is_some() || acr_list.is_some() || max_auth_age.is_some()) {
        d.error(
            &join(path, "white-listed"),
            format!("route {shown:?} is white-listed (no authentication) but also has resource, acr or max-auth-age"),
        );
    }
    (resource, acr, max_auth_age)
}

pub(super) fn cors(d: &mut Diag<'_>, f: FileCors, path: &str) -> Cors {
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

pub(super) fn security_headers(
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

//! The browser session's detail for an explanation: the cookie, whether it opens with the
//! tenant's keys, and the store's record (read once, before the verdict's own lookup, which may
//! refresh the session as the same request would).

use gatehouse_config::SessionStoreKind;
use gatehouse_policy::snapshot::RoutePolicy;
use gatehouse_session::cookie::find_cookie;
use gatehouse_session::verifier::fingerprint;
use pingora::http::RequestHeader;

use super::detail::{absent_outcome, check, relative};
use super::{Check, Outcome, Step};
use crate::clock::unix_now;
use crate::login::{session_id, Sessions, TenantLogin};
use crate::login_settings::cookies::request_cookies;
use crate::runtime::Runtime;

/// The browser session: the cookie, whether it opens for this tenant, the store's record.
pub(super) async fn session(
    runtime: &Runtime,
    sessions: &Sessions,
    req: &RequestHeader,
    login: &TenantLogin,
    route: &RoutePolicy,
) -> Step {
    let name = &login.cookie.name;
    let Some(sealed) = find_cookie(request_cookies(req), name) else {
        return Step::new(
            "session",
            absent_outcome(route),
            format!("no credential: no Authorization header and no session cookie {name:?}"),
        );
    };
    let mut checks = vec![check(
        "cookie",
        Outcome::Info,
        format!("{name:?}: {}", fingerprint(sealed)),
    )];
    let fail = |checks: Vec<Check>, summary: String| Step {
        step: "session",
        outcome: Outcome::Fail,
        summary,
        checks,
    };
    let Some(id) = session_id(req, login) else {
        let why = "does not open with this tenant's cookie keys (another tenant's, a retired key, or altered)";
        checks.push(check("opens", Outcome::Fail, why));
        return fail(checks, format!("the session cookie {why}"));
    };
    checks.push(check(
        "opens",
        Outcome::Pass,
        format!("session {}", fingerprint(&id)),
    ));
    if runtime.config.session_store.kind == SessionStoreKind::Memory {
        checks.push(check(
            "store",
            Outcome::Info,
            "memory:// is this process's own store: a running gatehouse's sessions are only \
             visible to its POST /debug/explain",
        ));
    }
    let store = match sessions.store().await {
        Ok(store) => store,
        Err(e) => return fail(checks, format!("the session store is unavailable: {e}")),
    };
    let record =
        match store.get(&id).await {
            Ok(Some(record)) => record,
            Ok(None) => return fail(
                checks,
                "unknown session: not in the store (expired, logged out, or never created there)"
                    .to_string(),
            ),
            Err(e) => return fail(checks, format!("the session store is unavailable: {e}")),
        };
    if !record.belongs_to(&login.tenant, &login.issuer) {
        return fail(
            checks,
            format!(
                "the session belongs to tenant {:?}, not {:?}",
                record.tenant, login.tenant
            ),
        );
    }
    let now = unix_now();
    checks.push(check(
        "record",
        Outcome::Pass,
        format!(
            "sub {}, ends {}, access token expires {}{}",
            record.sub,
            relative(record.expires_at, now),
            relative(record.access_token_exp, now),
            if record.refresh_token_enc.is_some() {
                " (refreshable)"
            } else {
                ""
            }
        ),
    ));
    Step {
        step: "session",
        outcome: Outcome::Pass,
        summary: format!("session of {} found in the store", record.sub),
        checks,
    }
}

//! Browser login and sessions: the OIDC authorization code flow with PKCE on the built-in paths
//! (`/oauth/login`, `/oauth/callback`, `/oauth/logout`, `/oauth/userinfo`,
//! `/oauth/backchannel-logout`), the encrypted session cookie, session records in the configured
//! store (embedded memory store or Redis Cluster) behind a short local cache, and single-flight
//! token refresh across requests (in process) and replicas (a store lock; see `refresh.rs`).
//!
//! The cookie holds only a random session ID, sealed with AES-256-GCM and bound to the tenant
//! and the cookie name; the record (tenant, issuer, claims, expiry, and the refresh and ID
//! tokens sealed again; the access token is not kept) lives in the store. A new ID is minted at
//! every login (no fixation). The pre-login state (state, nonce, PKCE verifier, return URL)
//! travels in its own short-lived sealed cookie, one per login attempt so several tabs can log
//! in at once; it is single use (a store lock marks it spent) and expires.
//!
//! Files: `store.rs` (the session store handle), `sessions.rs` (the session a request's cookie
//! names), `refresh.rs` (its single-flight refresh), `state.rs` (the login-state cookie),
//! `form.rs` (the query and form decoder), and one file per endpoint; a tenant's compiled login settings and the gateway's cookie names are
//! in `login_settings/`. Every answer is written by `responses.rs`; every refusal is a
//! [`Denial::Login`](gatehouse_policy::snapshot::Denial::Login).

mod backchannel;
mod begin;
mod callback;
mod form;
mod logout;
mod refresh;
mod sessions;
mod state;
mod store;
mod userinfo;

use std::sync::Arc;

use gatehouse_policy::login::LoginRefusal;
use gatehouse_session::claims::Claims;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::responses;

pub use crate::login_settings::tenant::TenantLogin;
/// The built-in browser paths on every tenant host (recognized during admission).
pub use gatehouse_policy::admit::Builtin;
pub(crate) use sessions::session_id;
pub use sessions::{session_claims, SessionOutcome};
pub use store::Sessions;

/// `/oauth/login?rd=<path>` for the current request's path and query, for a 302.
pub fn login_location(path_and_query: &str) -> String {
    let mut rd = String::with_capacity(path_and_query.len() + 16);
    for b in path_and_query.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                rd.push(b as char)
            }
            _ => rd.push_str(&format!("%{b:02X}")),
        }
    }
    format!("/oauth/login?rd={rd}")
}

/// Serves a built-in browser path: `login` is the tenant's login settings (none without
/// `login`), `claims` the caller's identity (userinfo only). Returns after writing the response.
pub async fn serve_builtin(
    which: Builtin,
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    login: Option<&TenantLogin>,
    sessions: &Sessions,
    claims: Option<Arc<Claims>>,
) -> pingora::Result<()> {
    let Some(login) = login else {
        // A tenant without `login`: only userinfo (for bearer callers) makes sense.
        return match (which, claims) {
            (Builtin::Userinfo, Some(c)) => userinfo::serve(downstream, ctx, &c).await,
            _ => responses::refuse_login(downstream, ctx, LoginRefusal::NotConfigured, &[]).await,
        };
    };
    match which {
        Builtin::Login => begin::serve(downstream, ctx, login).await,
        Builtin::Callback => callback::serve(downstream, ctx, login, sessions).await,
        Builtin::Logout => logout::serve(downstream, ctx, login, sessions).await,
        Builtin::Userinfo => match claims {
            Some(c) => userinfo::serve(downstream, ctx, &c).await,
            None => responses::refuse_login(downstream, ctx, LoginRefusal::NoIdentity, &[]).await,
        },
        Builtin::BackchannelLogout => backchannel::serve(downstream, ctx, login, sessions).await,
        // The well-known documents are served by `well_known.rs`, never here.
        Builtin::ResourceMetadata | Builtin::AssertionJwks => {
            responses::refuse_login(downstream, ctx, LoginRefusal::NotConfigured, &[]).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_location_percent_encodes_all_but_unreserved_and_slash() {
        assert_eq!(login_location("/app/page"), "/oauth/login?rd=/app/page");
        assert_eq!(
            login_location("/app/page?x=1&y=a b"),
            "/oauth/login?rd=/app/page%3Fx%3D1%26y%3Da%20b"
        );
    }
}

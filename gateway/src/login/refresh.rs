//! The refresh of a browser session's tokens, when its access token is within
//! `refresh-before-expiry` of expiring.
//!
//! Refresh rules, and why:
//! - single flight: one refresh per session at a time in this process (a per-session mutex in
//!   a map whose entries a guard removes, whatever way the request ends) and across replicas
//!   (a store lock, renewed while the refresh runs; the refresh itself is bounded by
//!   [`REFRESH_DEADLINE`]);
//! - a failed refresh ends the session only when the IdP says the refresh token is dead
//!   (`invalid_grant`) or the answer names another subject; an IdP that times out, answers
//!   5xx or cannot be reached only delays the refresh: the session keeps being served while
//!   its access token is valid, retried after [`REFRESH_RETRY_AFTER`], and once the access
//!   token has expired the answer is 503 (IdP unavailable), never a logout; the same for
//!   requests that waited [`REFRESH_WAIT`] for someone else's refresh in vain;
//! - the refreshed record is written back only if the session still exists
//!   ([`SessionStore::replace`](gatehouse_session::store::SessionStore::replace)), so a logout
//!   or a back-channel logout during the refresh stays a logout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use gatehouse_session::cookie::CookieCodec;
use gatehouse_session::oidc::{OidcError, TokenSet};
use gatehouse_session::store::{CachedStore, LockGuard, SessionRecord, SessionStore};

use super::store::Sessions;
use crate::clock::unix_now;
use crate::login_settings::tenant::{TenantLogin, PURPOSE_ID_TOKEN, PURPOSE_REFRESH};

/// The worst case of one refresh: discovery (one request), the token request, and the JWKS
/// fetch that verifying a new ID or access token may need, each bounded by the IdP client's
/// `FETCH_TIMEOUT` (5 s), plus slack. A refresh still running then is abandoned as failed.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(4 * 5);
/// How long one replica holds a session's refresh lock without renewing it.
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(10);
/// How often a running refresh renews its lock (well within [`REFRESH_LOCK_TTL`], so the lock
/// outlives the refresh, which [`REFRESH_DEADLINE`] bounds).
const REFRESH_LOCK_RENEW: Duration = Duration::from_secs(3);
/// How long a request waits for a refresh that another request (here or on another replica)
/// runs before giving up on it.
/// Shorter than the IdP client's timeout: an IdP slower than this costs the waiters a 503 (when
/// their access token has expired), not a request held for the whole refresh.
const REFRESH_WAIT: Duration = Duration::from_secs(3);
/// After a refresh failed for a passing reason, how long this process serves the session as
/// it is before trying again (one IdP request per session and interval, not one per request).
pub const REFRESH_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A request's turn in a session's in-process refresh single flight. Dropping it (the request
/// finished, returned early, or was cancelled by a client going away) removes the session's
/// entry once nobody else holds it, so the map only ever holds sessions being refreshed.
pub(crate) struct Flight<'a> {
    map: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    id: &'a str,
    mutex: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Flight<'a> {
    /// Joins (or starts) the single flight of session `id`.
    pub(crate) fn join(map: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>, id: &'a str) -> Self {
        let mutex = Arc::clone(&map.entry(id.to_string()).or_default());
        Flight { map, id, mutex }
    }

    /// Waits for this request's turn.
    pub(crate) async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.mutex.lock().await
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        // Two references: the map's and ours. A request still waiting holds a third.
        self.map.remove_if(self.id, |_, m| {
            Arc::ptr_eq(m, &self.mutex) && Arc::strong_count(m) <= 2
        });
    }
}

/// Whether a record's access token is within `before` seconds of expiring at `now`.
pub(crate) fn refresh_due(record: &SessionRecord, now: u64, before: u64) -> bool {
    record.access_token_exp <= now.saturating_add(before)
}

/// What a refresh left of the session.
pub(super) enum Refreshed {
    /// The session to serve (refreshed, or still valid while a refresh cannot happen).
    Record(Arc<SessionRecord>),
    /// The session is gone (ended by the refresh, or deleted meanwhile).
    Ended,
    /// The session exists but cannot be served now: its access token expired and no refresh
    /// was possible.
    Unavailable,
}

/// Serves `record` while its access token is valid; after that, unavailable (not ended).
fn keep_or_unavailable(record: Arc<SessionRecord>) -> Refreshed {
    if record.access_token_exp > unix_now() {
        Refreshed::Record(record)
    } else {
        Refreshed::Unavailable
    }
}

/// What a failed refresh means for its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// The refresh token is dead, or the IdP answered for someone else: the session ends.
    End,
    /// A passing failure (timeout, 5xx, unreachable, unusable answer): keep the session and
    /// retry later.
    Retry,
}

/// Sorts a refresh error: only the IdP's `invalid_grant` (RFC 6749 section 5.2: the refresh
/// token is invalid, expired or revoked) and a subject mismatch end a session.
pub(crate) fn on_refresh_error(error: &OidcError) -> OnFailure {
    match error {
        OidcError::TokenEndpoint(status, detail)
            if (400..500).contains(status) && detail.split(':').next() == Some("invalid_grant") =>
        {
            OnFailure::End
        }
        OidcError::InvalidIdToken("sub_mismatch") => OnFailure::End,
        _ => OnFailure::Retry,
    }
}

/// The refreshed answer named another subject than the session's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SubjectChanged;

/// The session record after a successful refresh: the new expiry, the new refresh and ID
/// tokens sealed (a token the IdP did not send again stays as it was), and the new claims, or
/// the old ones when the answer carried none. An answer for another subject is refused.
pub(crate) fn refreshed_record(
    current: &SessionRecord,
    tokens: TokenSet,
    codec: &CookieCodec,
) -> Result<SessionRecord, SubjectChanged> {
    if !tokens.sub.is_empty() && tokens.sub != current.sub {
        return Err(SubjectChanged);
    }
    let mut next = current.clone();
    next.parsed = Default::default();
    next.access_token_exp = tokens.access_token_exp;
    if let Some(sealed) = tokens
        .refresh_token
        .and_then(|rt| codec.seal(PURPOSE_REFRESH, rt.as_bytes()).ok())
    {
        next.refresh_token_enc = Some(sealed);
    }
    if let Some(sealed) = tokens
        .id_token
        .and_then(|idt| codec.seal(PURPOSE_ID_TOKEN, idt.as_bytes()).ok())
    {
        next.id_token_enc = Some(sealed);
    }
    if tokens.claims.as_object().is_some_and(|c| !c.is_empty()) {
        next.claims = tokens.claims.into();
    }
    Ok(next)
}

/// Refreshes a session's tokens once for every concurrent request of this process, and once
/// across replicas: the store lock's holder refreshes; others wait for the new record.
pub(super) async fn refresh(
    id: &str,
    login: &TenantLogin,
    sessions: &Sessions,
    store: &CachedStore<Arc<dyn SessionStore>>,
    seen: Arc<SessionRecord>,
) -> Refreshed {
    if sessions.retry_pending(id) {
        return keep_or_unavailable(seen);
    }
    let flight = Flight::join(&sessions.refreshing, id);
    // A refresh here that takes longer than a request should wait (an IdP that hangs): serve
    // the session while its access token is valid, else 503; never a logout.
    let Ok(_turn) = tokio::time::timeout(REFRESH_WAIT, flight.turn()).await else {
        return keep_or_unavailable(seen);
    };
    let before = login.login.refresh_before_expiry.as_secs();
    // Someone in this process may have refreshed (or failed to) while we waited for our turn.
    store.invalidate(id);
    let current = match store.get(id).await {
        Ok(Some(r)) if r.belongs_to(&login.tenant, &login.issuer) => r,
        Ok(_) => return Refreshed::Ended,
        Err(_) => return keep_or_unavailable(seen),
    };
    if !refresh_due(&current, unix_now(), before) {
        return Refreshed::Record(current);
    }
    if sessions.retry_pending(id) {
        return keep_or_unavailable(current);
    }
    match store.try_lock(id, REFRESH_LOCK_TTL).await {
        Ok(Some(lock)) => {
            let outcome = refresh_holding(id, &current, login, sessions, store, &lock).await;
            let _ = lock.release().await;
            outcome
        }
        Ok(None) => wait_for_other_replica(id, before, store, current).await,
        Err(_) => keep_or_unavailable(current),
    }
}

/// Another replica holds the lock: waits up to [`REFRESH_WAIT`] for its refreshed record.
async fn wait_for_other_replica(
    id: &str,
    before: u64,
    store: &CachedStore<Arc<dyn SessionStore>>,
    current: Arc<SessionRecord>,
) -> Refreshed {
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    let mut last = current;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.invalidate(id);
        match store.get(id).await {
            Ok(Some(r)) if !refresh_due(&r, unix_now(), before) => return Refreshed::Record(r),
            Ok(Some(r)) => last = r,
            Ok(None) => return Refreshed::Ended,
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            // Its refresh did not finish in time: serve what is still valid, else 503.
            return keep_or_unavailable(last);
        }
    }
}

/// Runs the refresh while renewing the store lock, bounded by [`REFRESH_DEADLINE`].
async fn refresh_holding(
    id: &str,
    current: &Arc<SessionRecord>,
    login: &TenantLogin,
    sessions: &Sessions,
    store: &CachedStore<Arc<dyn SessionStore>>,
    lock: &LockGuard,
) -> Refreshed {
    let work = refresh_once(id, current, login, sessions, store);
    tokio::pin!(work);
    let deadline = tokio::time::sleep(REFRESH_DEADLINE);
    tokio::pin!(deadline);
    let mut renew = tokio::time::interval_at(
        tokio::time::Instant::now() + REFRESH_LOCK_RENEW,
        REFRESH_LOCK_RENEW,
    );
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = &mut deadline => {
                tracing::warn!(tenant = %login.tenant, "token refresh failed: no answer in time; the session is kept and retried later");
                sessions.metrics.record_token_refresh(false);
                retry_later(sessions, id);
                return keep_or_unavailable(Arc::clone(current));
            }
            _ = renew.tick() => {
                let _ = lock.renew(REFRESH_LOCK_TTL).await;
            }
        }
    }
}

fn retry_later(sessions: &Sessions, id: &str) {
    sessions
        .retry_after
        .insert(id.to_string(), Instant::now() + REFRESH_RETRY_AFTER);
}

/// One refresh at the IdP and its write-back (see the module docs).
async fn refresh_once(
    id: &str,
    current: &Arc<SessionRecord>,
    login: &TenantLogin,
    sessions: &Sessions,
    store: &CachedStore<Arc<dyn SessionStore>>,
) -> Refreshed {
    let refresh_token = current
        .refresh_token_enc
        .as_deref()
        .and_then(|sealed| login.codec.open(PURPOSE_REFRESH, sealed))
        .and_then(|t| String::from_utf8(t).ok());
    let Some(refresh_token) = refresh_token else {
        // Sealed under a key no longer configured: it can never be used again.
        tracing::info!(tenant = %login.tenant, "token refresh impossible: the refresh token does not open; the session ends");
        let _ = store.delete(id).await;
        return Refreshed::Ended;
    };
    let tokens = match login.oidc.refresh(&refresh_token).await {
        Ok(tokens) => tokens,
        Err(e) => {
            sessions.metrics.record_token_refresh(false);
            return match on_refresh_error(&e) {
                OnFailure::End => {
                    tracing::info!(tenant = %login.tenant, error = %e, "token refresh failed: the session ends");
                    end_unless_refreshed_meanwhile(id, current, store).await
                }
                OnFailure::Retry => {
                    tracing::warn!(tenant = %login.tenant, error = %e, "token refresh failed: the session is kept and retried later");
                    retry_later(sessions, id);
                    keep_or_unavailable(Arc::clone(current))
                }
            };
        }
    };
    let next = match refreshed_record(current, tokens, &login.codec) {
        Ok(next) => next,
        Err(SubjectChanged) => {
            sessions.metrics.record_token_refresh(false);
            tracing::warn!(tenant = %login.tenant, "token refresh answered for another subject: the session ends");
            let _ = store.delete(id).await;
            return Refreshed::Ended;
        }
    };
    let ttl = Duration::from_secs(next.expires_at.saturating_sub(unix_now()).max(1));
    match store.replace(id, &next, ttl).await {
        Ok(true) => {
            sessions.metrics.record_token_refresh(true);
            sessions.retry_after.remove(id);
            Refreshed::Record(Arc::new(next))
        }
        // Logged out while the refresh ran: it stays logged out.
        Ok(false) => Refreshed::Ended,
        Err(_) => {
            sessions.metrics.record_token_refresh(false);
            retry_later(sessions, id);
            keep_or_unavailable(Arc::clone(current))
        }
    }
}

/// Ends a session whose refresh token the IdP refused, unless the stored record carries
/// another refresh token by now (a refresh elsewhere, e.g. a replica whose lock this one
/// outlived, rotated it: the refusal is about the old token, not the session).
async fn end_unless_refreshed_meanwhile(
    id: &str,
    used: &SessionRecord,
    store: &CachedStore<Arc<dyn SessionStore>>,
) -> Refreshed {
    store.invalidate(id);
    match store.get(id).await {
        Ok(Some(r)) if r.refresh_token_enc != used.refresh_token_enc => Refreshed::Record(r),
        Ok(None) => Refreshed::Ended,
        _ => {
            let _ = store.delete(id).await;
            Refreshed::Ended
        }
    }
}

#[cfg(test)]
mod tests;

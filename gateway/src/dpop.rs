//! DPoP (RFC 9449) at the gateway: after a DPoP route's token is verified (through the
//! verified-token cache, like any token), its proof is read from the request and checked by
//! the pure `gatehouse_session::dpop::check_proof`; then the route's server nonce, then the
//! proof's single use: in the session store's Redis when the store is Redis (one `SET NX`,
//! shared by every replica), else in this process's bounded memory. The proof itself is never
//! cached. Routes without `dpop` never reach this module.

use std::sync::{Arc, LazyLock};

use gatehouse_config::SessionStoreKind;
use gatehouse_policy::resource::{dpop_binding, DpopRule, Scheme};
use gatehouse_policy::snapshot::Denial;
use gatehouse_session::claims::Claims;
use gatehouse_session::dpop::{
    check_proof, normalize_htu, replay_key, NonceIssuer, ProofError, ProofRequest, ProofRules,
    ReplayCache, ReplayError, DEFAULT_REPLAY_CAPACITY,
};
use pingora::http::RequestHeader;

use crate::clock::unix_now;
use crate::ctx::{decided_host, RequestCtx};
use crate::ratelimit::SharedBuckets;

/// The request header carrying the proof.
const DPOP: &str = "dpop";

/// How long a server nonce is issued for: each is accepted in its minute and the next.
pub const NONCE_PERIOD_SECS: u64 = 60;

/// Proofs used in this process (without a Redis session store), kept across reloads.
static MEMORY: LazyLock<ReplayCache> =
    LazyLock::new(|| ReplayCache::new(DEFAULT_REPLAY_CAPACITY, NONCE_PERIOD_SECS));

/// The nonce secret of tenants without a cookie key: random per process, so replicas of such
/// a tenant do not accept each other's nonces (a client then gets `use_dpop_nonce` once more).
static PROCESS_SECRET: LazyLock<[u8; 32]> = LazyLock::new(rand::random);

/// The nonce issuer of `tenant` when one of its routes has `dpop-nonce`: keyed by the
/// tenant's first cookie `encryption-key` when it has one (replicas sharing the key accept
/// each other's nonces), else by a per-process secret.
pub fn nonce_issuer(tenant: &gatehouse_config::Tenant) -> Option<Arc<NonceIssuer>> {
    if !tenant.routes.iter().any(|r| r.dpop.nonce) {
        return None;
    }
    let secret = match tenant.cookie.encryption_keys.first() {
        Some(key) => key.bytes().as_slice(),
        None => PROCESS_SECRET.as_slice(),
    };
    Some(Arc::new(NonceIssuer::new(
        secret,
        &tenant.name,
        NONCE_PERIOD_SECS,
    )))
}

/// What a DPoP route needs beyond the route itself.
#[derive(Clone, Copy)]
pub(crate) struct DpopDemand<'a> {
    /// The route's rule.
    pub rule: DpopRule,
    /// The Redis connection of the session store (shared with `shared` rate limits); `None`:
    /// the proof is checked but not used up (`gatehouse explain`, `/debug/explain`).
    pub shared: Option<&'a SharedBuckets>,
}

impl std::fmt::Debug for DpopDemand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopDemand")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// The verified credential a DPoP route decides on.
#[derive(Clone, Copy)]
pub(crate) struct Presented<'a> {
    /// The `Authorization` scheme it came with (a `token-cookie` is `Bearer`).
    pub scheme: Scheme,
    /// The access token.
    pub token: &'a str,
    /// Its verified claims.
    pub claims: &'a Claims,
    /// The tenant's identity provider, which verified it.
    pub provider: &'a crate::auth::Provider,
}

/// The nonce to hand out with a proxied answer on a `dpop-nonce` route (RFC 9449 section
/// 8.2: a client takes the newest `DPoP-Nonce` it saw, so one that keeps calling never meets
/// `use_dpop_nonce` again); `None` on every other route.
pub fn fresh_nonce(ctx: &RequestCtx) -> Option<String> {
    let (runtime, t, r) = (ctx.runtime.as_deref()?, ctx.tenant?, ctx.route?);
    if !runtime.policy.tenant(t).route(r).dpop?.nonce {
        return None;
    }
    Some(runtime.dpop_nonces[t].as_deref()?.issue(unix_now()))
}

/// A refused proof as the denial that answers it.
fn refused(e: ProofError) -> Denial {
    Denial::InvalidDpopProof {
        reason: e.reason(),
        description: e.description(),
    }
}

/// Decides a verified token presented with `scheme` on a DPoP route: a bound token sent with
/// the `DPoP` scheme must come with one valid, fresh, unused proof; an unbound one passes as a
/// bearer token on `optional` routes only ([`dpop_binding`]).
pub(crate) async fn check(
    req: &RequestHeader,
    ctx: &RequestCtx,
    runtime: &crate::runtime::Runtime,
    tenant_index: usize,
    demand: DpopDemand<'_>,
    presented: Presented<'_>,
) -> Result<(), Denial> {
    let Presented {
        scheme,
        token,
        claims,
        provider,
    } = presented;
    let to_refusal = |(reason, description)| Denial::DpopRefused {
        reason,
        description,
    };
    if !dpop_binding(demand.rule, scheme, claims.cnf).map_err(to_refusal)? {
        return Ok(());
    }
    let Some(jkt) = claims.cnf_jkt.as_deref() else {
        return Err(Denial::DpopRefused {
            reason: "dpop_unsupported_binding",
            description: "the token is bound to a key in a way that is not supported",
        });
    };
    let mut proofs = req.headers.get_all(DPOP).iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) => return Err(refused(ProofError::Missing)),
        (Some(_), Some(_)) => return Err(refused(ProofError::Multiple)),
        (Some(one), None) => one.to_str().map_err(|_| refused(ProofError::Malformed))?,
    };
    let (method, uri) = request_target(req, ctx, runtime).ok_or(Denial::InvalidDpopProof {
        reason: ProofError::WrongUri.reason(),
        description: "the request's URI cannot be compared with a DPoP proof",
    })?;
    let verifier = &provider.verifier;
    let rules = ProofRules {
        algorithms: verifier.algorithms(),
        window: demand.rule.window,
        leeway: verifier.leeway(),
    };
    let request = ProofRequest {
        method: &method,
        uri: &uri,
        access_token: token,
        jkt,
    };
    let now = unix_now();
    let checked = check_proof(proof, &request, &rules, now).map_err(refused)?;
    if demand.rule.nonce {
        let Some(issuer) = runtime.dpop_nonces[tenant_index].as_deref() else {
            return Err(Denial::AuthUnavailable);
        };
        if !checked
            .nonce
            .as_deref()
            .is_some_and(|n| issuer.check(n, now))
        {
            return Err(Denial::UseDpopNonce {
                nonce: issuer.issue(now),
            });
        }
    }
    // Remembered as long as its `iat` is accepted.
    let until = checked
        .iat
        .saturating_add(rules.window)
        .saturating_add(rules.leeway);
    match demand.shared {
        Some(shared) => first_use(shared, &replay_key(jkt, &checked.jti), until, now).await,
        None => Ok(()),
    }
}

/// Records the proof's single use; [`Denial::DpopReplayUnavailable`] (503) when it cannot be
/// established: a Redis session store that cannot answer never falls back to this process's
/// memory, since another replica may have seen the proof.
async fn first_use(shared: &SharedBuckets, key: &str, until: u64, now: u64) -> Result<(), Denial> {
    let replayed = || refused(ProofError::Replayed);
    if shared.kind() == SessionStoreKind::Memory {
        return MEMORY.first_use(key, until, now).map_err(|e| match e {
            ReplayError::Replayed => replayed(),
            ReplayError::Unavailable => Denial::DpopReplayUnavailable,
        });
    }
    let Some(store) = shared.redis() else {
        return Err(Denial::DpopReplayUnavailable);
    };
    let ttl = until.saturating_sub(now).saturating_add(1);
    match store.first_use(store.replay_key(key), ttl).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(replayed()),
        Err(error) => {
            tracing::warn!(%error, "DPoP replay check: Redis cannot answer");
            Err(Denial::DpopReplayUnavailable)
        }
    }
}

/// The method and normalized URI (`htu`) of the request a proof must name: the scheme and
/// host the client reached (for a trusted forward-auth check, the original request's method,
/// host and path), the path without its query.
fn request_target(
    req: &RequestHeader,
    ctx: &RequestCtx,
    runtime: &crate::runtime::Runtime,
) -> Option<(String, String)> {
    let trusted_check = ctx.forward_auth && ctx.trusted_peer;
    let family = runtime.policy.forward_auth_headers;
    let host = decided_host(req, trusted_check, family)?;
    let origin = gatehouse_policy::resource::origin(ctx.secure, host)?;
    let raw = req.raw_path();
    let raw = raw.split(|&b| b == b'?').next().unwrap_or_default();
    let (method, path) = if ctx.forward_auth {
        let original = gatehouse_policy::forward_auth::original_request(
            &req.headers,
            &req.method,
            raw,
            trusted_check,
            family,
        )
        .ok()?;
        (original.method.to_string(), original.path)
    } else {
        let raw = std::str::from_utf8(raw).ok()?;
        if !raw.starts_with('/') {
            // An absolute-form target names scheme and host itself.
            return Some((req.method.as_str().to_string(), normalize_htu(raw)?));
        }
        (req.method.as_str().to_string(), raw.to_string())
    };
    Some((method, normalize_htu(&format!("{origin}{path}"))?))
}

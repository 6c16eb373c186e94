//! Identity assertions for upstreams: each tenant's signer (kept across reloads while its
//! `identity-assertion` is unchanged, so the assertions kept with cached identities stay
//! usable) and the header set on proxied requests. The JWKS endpoint is in `well_known.rs`
//! (it writes responses, which read the request context, which holds the runtime that holds
//! these signers).

use std::sync::Arc;

use gatehouse_config::{Config, IdentityAssertion};
use gatehouse_session::assertion::AssertionSigner;
use gatehouse_session::claims::Claims;

use crate::clock::unix_now;

/// A tenant's signer and the definition it was built from.
pub struct TenantAssertion {
    /// The tenant's name.
    pub tenant: String,
    /// The tenant's `identity-assertion`.
    pub definition: IdentityAssertion,
    /// Its keys, parsed.
    pub signer: AssertionSigner,
}

/// One signer per tenant with `identity-assertion` (indexed like the tenants); a tenant whose
/// definition is unchanged from `previous` keeps its signer.
pub fn build(
    config: &Config,
    previous: &[Option<Arc<TenantAssertion>>],
) -> Result<Vec<Option<Arc<TenantAssertion>>>, String> {
    config
        .tenants
        .iter()
        .map(|tenant| {
            let Some(definition) = &tenant.identity_assertion else {
                return Ok(None);
            };
            if let Some(kept) = previous
                .iter()
                .flatten()
                .find(|p| p.tenant == tenant.name && p.definition == *definition)
            {
                return Ok(Some(Arc::clone(kept)));
            }
            let signer = AssertionSigner::new(definition)
                .map_err(|e| format!("tenant {}: {e}", tenant.name))?;
            Ok(Some(Arc::new(TenantAssertion {
                tenant: tenant.name.clone(),
                definition: definition.clone(),
                signer,
            })))
        })
        .collect()
}

/// Sets the assertion for `claims` on an upstream request going to the tenant's upstream
/// `upstream` (index and name), reached at `host` over HTTPS or not.
pub fn insert(
    headers: &mut http::HeaderMap,
    assertion: &TenantAssertion,
    claims: &Claims,
    upstream: (usize, &str),
    secure: bool,
    host: &str,
) {
    let signer = &assertion.signer;
    let value = signer.assertion(claims, upstream.0, upstream.1, secure, host, unix_now());
    headers.insert(signer.header().clone(), value);
}

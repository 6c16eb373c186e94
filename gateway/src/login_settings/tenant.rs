//! A tenant's compiled browser-login settings, shared by the built-in login paths and the
//! session checks on every request (`login/sessions.rs`).

use std::sync::Arc;

use gatehouse_config::{Cookie, Login};
use gatehouse_policy::host::HostTable;
use gatehouse_policy::redirect::redirect_host_table;
use gatehouse_session::cookie::CookieCodec;
use gatehouse_session::oidc::OidcClient;
use gatehouse_session::verifier::TokenVerifier;

/// Sealing purposes: a value of one purpose never opens as another.
pub(crate) const PURPOSE_SESSION: &str = "session";
pub(crate) const PURPOSE_STATE: &str = "login-state";
pub(crate) const PURPOSE_REFRESH: &str = "refresh-token";
pub(crate) const PURPOSE_ID_TOKEN: &str = "id-token";

/// A tenant's compiled browser-login settings (tenants with `login`).
///
/// Everything it seals (cookies, and the tokens kept in session records) is scoped to the
/// tenant and its cookie name, and the records it writes name the tenant and the provider's
/// issuer: two tenants sharing a key and a store never accept each other's sessions.
pub struct TenantLogin {
    pub(crate) tenant: String,
    /// The identity provider's issuer, recorded in and required of every session record.
    pub(crate) issuer: String,
    pub(crate) codec: CookieCodec,
    pub(crate) cookie: Cookie,
    pub(crate) login: Login,
    pub(crate) redirect_hosts: HostTable<()>,
    pub(crate) oidc: Arc<OidcClient>,
    pub(crate) verifier: Arc<TokenVerifier>,
}

impl TenantLogin {
    /// Compiles a tenant's `login` and `cookie` with its provider's issuer and OIDC client.
    pub fn new(
        tenant: &str,
        issuer: &str,
        cookie: &Cookie,
        login: &Login,
        oidc: Arc<OidcClient>,
        verifier: Arc<TokenVerifier>,
    ) -> Result<TenantLogin, String> {
        Ok(TenantLogin {
            tenant: tenant.to_string(),
            issuer: issuer.to_string(),
            codec: CookieCodec::new(&cookie.encryption_keys)
                .map_err(|e| format!("cookie.encryption-key: {e}"))?
                .scoped(tenant, &cookie.name),
            cookie: cookie.clone(),
            login: login.clone(),
            redirect_hosts: redirect_host_table(&login.allowed_redirect_hosts)
                .map_err(|e| format!("login.allowed-redirect-hosts: {e}"))?,
            oidc,
            verifier,
        })
    }
}

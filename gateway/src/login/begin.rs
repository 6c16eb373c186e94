//! `/oauth/login?rd=<path>`: starts the code flow at the IdP, with the return path checked
//! against the tenant's allowed redirect hosts and the login state in its own cookie. A step-up
//! (`&acr_values=...&max_age=...`, from a route whose demand a session fell short of) asks the
//! IdP for that authentication, with `prompt=login`.

use std::borrow::Cow;

use gatehouse_policy::login::LoginRefusal;
use gatehouse_policy::redirect::safe_redirect;
use gatehouse_policy::resource::step_up_authorization;
use gatehouse_session::cookie::set_cookie_header;
use pingora::proxy::Session;

use super::{form, state};
use crate::ctx::RequestCtx;
use crate::login_settings::tenant::TenantLogin;
use crate::responses;

/// Redirects to the IdP's authorization endpoint, or refuses when it cannot be reached.
pub(super) async fn serve(
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    login: &TenantLogin,
) -> pingora::Result<()> {
    let req = downstream.req_header();
    let host = crate::ctx::client_host(req).unwrap_or("");
    let rd = form::param(req.uri.query(), "rd").unwrap_or(Cow::Borrowed("/"));
    let return_to = safe_redirect(&rd, host, &login.redirect_hosts);
    let query = req.uri.query();
    let step_up = step_up_authorization(
        form::param(query, "acr_values").as_deref(),
        form::param(query, "max_age").as_deref(),
    );
    let (url, login_state) = match login
        .oidc
        .begin_with(&login.login.redirect_url, &return_to, &step_up)
        .await
    {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a login: the identity provider is unavailable");
            return responses::refuse_login(
                downstream,
                ctx,
                LoginRefusal::ProviderUnavailable,
                &[],
            )
            .await;
        }
    };
    let Some(sealed) = state::seal(login, &login_state) else {
        return responses::error_status(downstream, ctx, 500).await;
    };
    let cookie = set_cookie_header(
        &login.cookie,
        &state::cookie_name(login, &login_state.state),
        &sealed,
        Some(state::LOGIN_STATE_TTL),
    );
    responses::answer(downstream, ctx, 302, Some(&url), &[cookie], None).await
}

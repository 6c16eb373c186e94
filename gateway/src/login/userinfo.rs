//! `/oauth/userinfo`: the caller's identity (from a bearer token or the browser session) as
//! JSON.

use std::collections::BTreeMap;

use bytes::Bytes;
use gatehouse_session::claims::Claims;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::responses;

/// Answers 200 with the caller's identity.
pub(super) async fn serve(
    downstream: &mut Session,
    ctx: &mut RequestCtx,
    claims: &Claims,
) -> pingora::Result<()> {
    let body = Bytes::from(body(claims));
    let body = Some(("application/json", body));
    responses::answer(downstream, ctx, 200, None, &[], body).await
}

/// The identity userinfo shows: subject, name, email, roles and groups, one JSON line.
fn body(claims: &Claims) -> Vec<u8> {
    let json = serde_json::json!({
        "sub": claims.sub,
        "preferred_username": claims.preferred_username,
        "email": claims.email,
        "realm_roles": claims.realm_roles,
        "client_roles": claims.client_roles.iter().cloned().collect::<BTreeMap<_, _>>(),
        "groups": claims.groups,
    });
    let mut bytes = serde_json::to_vec(&json).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

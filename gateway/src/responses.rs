//! The gateway's own responses: the one place a [`Denial`] or a proxy failure becomes a status,
//! headers and a body, and the headers every response gets (security headers, request ID).

use bytes::Bytes;
use gatehouse_policy::snapshot::{Denial, ResponseHeaders};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;

/// Adds the tenant's security headers (HSTS only when the client used HTTPS) and the request
/// ID to `resp`, replacing same-named headers.
pub fn apply_common_headers(resp: &mut ResponseHeader, ctx: &RequestCtx) {
    let Some(runtime) = ctx.runtime.as_deref() else {
        return;
    };
    let policy = &runtime.policy;
    let (headers, request_id_header): (&ResponseHeaders, _) = match ctx.tenant {
        Some(t) => {
            let tenant = policy.tenant(t);
            (&tenant.response_headers, &tenant.request_id_header)
        }
        None => (
            &policy.default_response_headers,
            &policy.default_request_id_header,
        ),
    };
    for (name, value) in &headers.always {
        let _ = resp.insert_header(name.clone(), value.clone());
    }
    if ctx.secure {
        if let Some(hsts) = &headers.hsts {
            let _ = resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
    let _ = resp.insert_header(request_id_header.clone(), ctx.request_id.as_str());
}

/// Writes the response for `denial` and records it in the context. Errors writing to the
/// client are returned for Pingora to log; the request is over either way.
pub async fn deny(
    session: &mut Session,
    ctx: &mut RequestCtx,
    denial: Denial,
) -> pingora::Result<()> {
    let status = denial.status();
    let mut resp = ResponseHeader::build(status, Some(6))?;
    match &denial {
        Denial::Unauthenticated => {
            let realm = ctx
                .tenant
                .and_then(|t| {
                    ctx.runtime
                        .as_deref()
                        .map(|r| r.policy.tenant(t).name.as_str())
                })
                .unwrap_or("gatehouse");
            resp.insert_header(WWW_AUTHENTICATE, format!("Bearer realm=\"{realm}\""))?;
        }
        Denial::InvalidToken { description, .. } => {
            let realm = ctx
                .tenant
                .and_then(|t| {
                    ctx.runtime
                        .as_deref()
                        .map(|r| r.policy.tenant(t).name.as_str())
                })
                .unwrap_or("gatehouse");
            resp.insert_header(
                WWW_AUTHENTICATE,
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{description}\""),
            )?;
        }
        Denial::HttpsRequired { location } => {
            resp.insert_header(LOCATION, location.as_str())?;
        }
        _ => {}
    }
    // A request whose framing or headers are suspect must not leave bytes on the connection.
    if denial.closes_connection() {
        session.set_keepalive(None);
    }
    tracing::info!(
        tenant = ctx
            .tenant
            .and_then(|t| ctx
                .runtime
                .as_deref()
                .map(|r| r.policy.tenant(t).name.clone()))
            .as_deref()
            .unwrap_or("-"),
        request_id = ctx.request_id.as_str(),
        reason = denial.reason(),
        status,
        "request denied"
    );
    ctx.denial = Some(denial);
    write(session, ctx, resp, status).await
}

/// Writes a bare error status (proxy failures: 502, 503, 504, ...) with the common headers.
pub async fn error_status(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
) -> pingora::Result<()> {
    let resp = ResponseHeader::build(status, Some(6))?;
    write(session, ctx, resp, status).await
}

async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    status: u16,
) -> pingora::Result<()> {
    let body = error_body(status, ctx.request_id.as_str());
    resp.insert_header(CONTENT_TYPE, "application/json")?;
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    apply_common_headers(&mut resp, ctx);
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// `{"status":404,"error":"Not Found","request_id":"..."}`: names the request ID so a user can
/// quote it, and nothing else about the failure.
fn error_body(status: u16, request_id: &str) -> Bytes {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Bytes::from(format!(
        "{{\"status\":{status},\"error\":\"{reason}\",\"request_id\":\"{request_id}\"}}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_names_status_and_request_id_only() {
        let body = error_body(503, "abc-123");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["error"], "Service Unavailable");
        assert_eq!(v["request_id"], "abc-123");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
}

//! Upgraded connections (HTTP/1.1 `Upgrade: websocket`): the handshake is an ordinary request
//! of its route (authenticated, authorized, identity headers added); once the upstream answers
//! `101 Switching Protocols`, Pingora relays the bytes both ways until either side closes. This
//! module decides what changes then: the route's body limit no longer applies (the bytes are
//! frames, not a request body), the per-read timeouts become the tenant's
//! `upgrade-idle-timeout`, and the connection is counted in `gatehouse_upgraded_connections`
//! until `logging` ends it.
//!
//! Why a read timeout is an idle timeout here: Pingora's proxy loops (downstream and upstream
//! halves) re-arm each read, with its timeout, on every event of the loop, and each loop sees
//! the bytes of both directions. A read therefore times out only when neither side has sent
//! anything for the whole timeout.

use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::metrics::Metrics;

/// Whether `req` asks for a WebSocket upgrade the way Pingora forwards one to an HTTP/1
/// upstream: HTTP/1.1 with `Upgrade: websocket` (Pingora's default upstream policy removes any
/// other upgrade). HTTP/2 requests never are (RFC 8441 is not supported, see README.md).
pub fn is_websocket_upgrade(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The tenant's `upgrade-idle-timeout` when `req` is a WebSocket handshake: the upstream
/// connection's read timeout, which bounds both the wait for the `101` and, after it, the
/// time the connection may stay idle.
pub fn upstream_read_timeout(req: &RequestHeader, ctx: &RequestCtx) -> Option<Duration> {
    if !is_websocket_upgrade(req) {
        return None;
    }
    idle_timeout(ctx)
}

/// Whether a response `status` to this request completes an upgrade: a `101` to an upgrade
/// request (Pingora refuses a `101` the upstream sends to anything else).
pub fn completes_upgrade(status: u16, session: &Session) -> bool {
    status == 101 && session.is_upgrade_req()
}

/// The connection was upgraded: its bytes no longer count against `max-body-size`, the
/// client's reads get the tenant's idle timeout instead of the per-read one, and the
/// connection is counted until [`closed`].
pub fn upgraded(session: &mut Session, ctx: &mut RequestCtx, metrics: &Metrics) {
    ctx.body_limit = u64::MAX;
    if let Some(idle) = idle_timeout(ctx) {
        session.set_read_timeout(Some(idle));
    }
    let gauge = metrics.upgraded_connections(ctx.tenant_name().unwrap_or("-"));
    gauge.inc();
    ctx.upgraded = Some(gauge);
}

/// The request is over: an upgraded connection leaves the gauge.
pub fn closed(ctx: &mut RequestCtx) {
    if let Some(gauge) = ctx.upgraded.take() {
        gauge.dec();
    }
}

fn idle_timeout(ctx: &RequestCtx) -> Option<Duration> {
    let runtime = ctx.runtime.as_deref()?;
    ctx.tenant
        .map(|t| runtime.policy.tenant(t).upgrade_idle_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: http::Version, upgrade: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
        req.set_version(version);
        if let Some(u) = upgrade {
            req.insert_header("upgrade", u).unwrap();
            req.insert_header("connection", "Upgrade").unwrap();
        }
        req
    }

    #[test]
    fn only_an_http11_websocket_upgrade_is_one() {
        assert!(is_websocket_upgrade(&request(
            http::Version::HTTP_11,
            Some("websocket")
        )));
        assert!(is_websocket_upgrade(&request(
            http::Version::HTTP_11,
            Some("WebSocket")
        )));
        assert!(!is_websocket_upgrade(&request(
            http::Version::HTTP_11,
            Some("h2c")
        )));
        assert!(!is_websocket_upgrade(&request(
            http::Version::HTTP_11,
            None
        )));
        assert!(!is_websocket_upgrade(&request(
            http::Version::HTTP_10,
            Some("websocket")
        )));
        assert!(!is_websocket_upgrade(&request(
            http::Version::HTTP_2,
            Some("websocket")
        )));
    }

    #[test]
    fn without_a_tenant_there_is_no_upgrade_timeout() {
        let ctx = RequestCtx::new();
        let req = request(http::Version::HTTP_11, Some("websocket"));
        assert_eq!(upstream_read_timeout(&req, &ctx), None);
    }
}

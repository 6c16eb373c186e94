//! gRPC refusals. A gRPC client reads the call's outcome from `grpc-status`, not from the HTTP
//! status: a 401 with a JSON body is, to it, a transport failure (`UNKNOWN` or `INTERNAL`,
//! "unexpected content-type"). So every answer the gateway gives a gRPC request itself is a
//! trailers-only response: HTTP 200, `content-type: application/grpc`, `grpc-status` and
//! `grpc-message` in the one HEADERS frame that ends the stream.

use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use crate::ctx::RequestCtx;

/// Whether the request is a gRPC call: `content-type: application/grpc` or one of its
/// `application/grpc+proto`, `application/grpc+json`, ... forms (gRPC-Web's
/// `application/grpc-web*` is not gRPC over HTTP/2 and keeps the HTTP answers).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .is_some_and(|ct| {
            let prefix = b"application/grpc";
            ct.len() >= prefix.len()
                && ct[..prefix.len()].eq_ignore_ascii_case(prefix)
                && matches!(ct.get(prefix.len()), None | Some(b'+') | Some(b';'))
        })
}

/// The gRPC status code for the HTTP status the gateway would have answered: the one mapping
/// from refusal to gRPC status (`Denial::status` is the one from refusal to HTTP status).
/// Codes: <https://grpc.github.io/grpc/core/md_doc_statuscodes.html>.
pub fn status_code(http_status: u16) -> u8 {
    match http_status {
        400 | 431 => 3,        // INVALID_ARGUMENT: the request cannot be decided as sent
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 | 405 | 501 => 12, // UNIMPLEMENTED: no such service or method here
        408 | 504 => 4,        // DEADLINE_EXCEEDED
        413 | 429 => 8,        // RESOURCE_EXHAUSTED: a size or rate limit
        502 | 503 => 14,       // UNAVAILABLE: no healthy target, upstream unreachable
        500 => 13,             // INTERNAL
        _ => 2,                // UNKNOWN
    }
}

/// `grpc-message`: the refusal's reason and the request ID, percent-encoded as the gRPC
/// protocol asks (every byte outside printable ASCII, and `%`).
pub fn message(reason: &str, request_id: &str) -> String {
    let text = format!("{reason} (request id {request_id})");
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Answers a gRPC call the gateway refuses (`status`: the HTTP status it would have had) the
/// way gRPC clients read it: trailers-only, HTTP 200 with `grpc-status` and `grpc-message`
/// in the HEADERS frame that ends the stream, the headers the refusal
/// already carries in `resp` (a challenge, `Retry-After` and `RateLimit`) and the common ones.
pub async fn refuse(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    status: u16,
    message: &str,
) -> pingora::Result<()> {
    resp.set_status(200)?;
    resp.insert_header(CONTENT_TYPE, "application/grpc")?;
    resp.insert_header("grpc-status", status_code(status).to_string())?;
    resp.insert_header("grpc-message", message)?;
    if let pingora::protocols::http::ServerSession::H2(h2) = session.as_downstream_mut() {
        crate::responses::apply_common_headers(&mut resp, ctx);
        // The proxy session's writer never ends an HTTP/2 stream with its HEADERS frame (it
        // sends an empty DATA frame after), which a gRPC client reads as a call with no
        // status: the stream's own writer can.
        return h2.write_response_header(Box::new(resp), true);
    }
    resp.insert_header(CONTENT_LENGTH, 0)?;
    crate::responses::apply_common_headers(&mut resp, ctx);
    session.write_response_header(Box::new(resp), true).await
}

/// The upstream read timeout of a gRPC call over HTTP/2 whose `grpc-timeout` is longer than
/// the upstream's `read_timeout`: its deadline, at most `cap` (the tenant's
/// `upgrade-idle-timeout`), so the gateway does not end a call its client still waits for.
/// `None` (keep the upstream's) for anything else; HTTP/1.1 requests cost one comparison.
pub fn call_read_timeout(
    req: &RequestHeader,
    read_timeout: Option<Duration>,
    cap: Duration,
) -> Option<Duration> {
    if req.version != http::Version::HTTP_2 || !is_grpc(&req.headers) {
        return None;
    }
    let deadline = parse_timeout(req.headers.get("grpc-timeout")?.as_bytes())?.min(cap);
    (deadline > read_timeout.unwrap_or_default()).then_some(deadline)
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn grpc_content_types_are_recognised_and_others_are_not() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/GRPC+json",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc(&headers(ct)), "{ct}");
        }
        for ct in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
            "text/html",
        ] {
            assert!(!is_grpc(&headers(ct)), "{ct}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_refuse_malformed_values() {
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout(b"30S"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout(b"500m"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [
            &b""[..],
            b"S",
            b"10",
            b"10s",
            b"123456789S",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_longer_grpc_deadline_extends_the_upstream_read_timeout_up_to_the_cap() {
        let call = |version, content_type: &str, timeout: Option<&str>| {
            let mut req = RequestHeader::build("POST", b"/pkg.Svc/Method", None).unwrap();
            req.set_version(version);
            req.insert_header("content-type", content_type).unwrap();
            if let Some(t) = timeout {
                req.insert_header("grpc-timeout", t).unwrap();
            }
            req
        };
        let read = Some(Duration::from_secs(30));
        let cap = Duration::from_secs(3600);
        let h2 = http::Version::HTTP_2;
        let grpc = "application/grpc";
        assert_eq!(
            call_read_timeout(&call(h2, grpc, Some("90S")), read, cap),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            call_read_timeout(&call(h2, grpc, Some("100H")), read, cap),
            Some(cap),
            "capped"
        );
        assert_eq!(
            call_read_timeout(&call(h2, grpc, Some("10S")), read, cap),
            None
        );
        assert_eq!(call_read_timeout(&call(h2, grpc, None), read, cap), None);
        assert_eq!(
            call_read_timeout(&call(h2, grpc, Some("soon")), read, cap),
            None
        );
        let not_grpc = call(h2, "application/json", Some("90S"));
        assert_eq!(call_read_timeout(&not_grpc, read, cap), None);
        let h1 = call(http::Version::HTTP_11, grpc, Some("90S"));
        assert_eq!(call_read_timeout(&h1, read, cap), None);
    }

    #[test]
    fn refusals_map_to_the_grpc_codes_clients_act_on() {
        assert_eq!(status_code(401), 16);
        assert_eq!(status_code(403), 7);
        assert_eq!(status_code(429), 8);
        assert_eq!(status_code(413), 8);
        assert_eq!(status_code(503), 14);
        assert_eq!(status_code(502), 14);
        assert_eq!(status_code(504), 4);
        assert_eq!(status_code(404), 12);
        assert_eq!(status_code(400), 3);
        assert_eq!(status_code(500), 13);
        assert_eq!(status_code(418), 2);
    }

    #[test]
    fn the_message_names_the_reason_and_request_id_percent_encoded() {
        assert_eq!(
            message("unauthenticated", "abc-1"),
            "unauthenticated (request id abc-1)"
        );
        assert_eq!(message("100%\u{e9}", "x"), "100%25%C3%A9 (request id x)");
    }
}

//! W3C Trace Context for the gateway's spans: reading a client's `traceparent`, deciding
//! whether a request is traced, and the `traceparent` the upstream receives. Pure functions
//! (the random bits are passed in), so every rule is unit-tested here.

use gatehouse_policy::headers::is_valid_traceparent;
use http::HeaderValue;

/// A client's valid `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// Its trace ID.
    pub trace_id: u128,
    /// The client's span: the parent of the gateway's server span.
    pub parent_id: u64,
    /// The sampled flag: the client traces this request.
    pub sampled: bool,
}

/// Reads a `traceparent` value; `None` unless [`is_valid_traceparent`] accepts it.
pub fn parse_traceparent(v: &[u8]) -> Option<Incoming> {
    if !is_valid_traceparent(v) {
        return None;
    }
    fn hex(s: &[u8]) -> Option<&str> {
        std::str::from_utf8(s).ok()
    }
    Some(Incoming {
        trace_id: u128::from_str_radix(hex(&v[3..35])?, 16).ok()?,
        parent_id: u64::from_str_radix(hex(&v[36..52])?, 16).ok()?,
        sampled: u8::from_str_radix(hex(&v[53..55])?, 16).ok()? & 1 == 1,
    })
}

/// A `traceparent` value: version 00, `trace_id`, `span_id`, sampled or not.
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (i, digit) in out[3..35].iter_mut().enumerate() {
        *digit = HEX[((trace_id >> (4 * (31 - i))) & 0xf) as usize];
    }
    for (i, digit) in out[36..52].iter_mut().enumerate() {
        *digit = HEX[((span_id >> (4 * (15 - i))) & 0xf) as usize];
    }
    if sampled {
        out[54] = b'1';
    }
    // Only "0-9a-f-" bytes: always a valid header value.
    HeaderValue::from_bytes(&out).expect("hex and dashes")
}

/// The IDs of a traced request's spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    /// The trace: the client's, else the request ID's (when it is 32 hex digits, as generated
    /// ones are, so logs and traces correlate), else random.
    pub trace_id: u128,
    /// The client's span, when its `traceparent` is continued.
    pub remote_parent: Option<u64>,
    /// The gateway's server span.
    pub server_span: u64,
    /// The gateway's upstream (client) span: the parent the upstream's `traceparent` names.
    pub upstream_span: u64,
}

/// What [`Sampler::decide`] decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Traced: spans with these IDs are exported.
    Traced(TraceIds),
    /// Not traced. The `traceparent` to send upstream: `None` passes the client's on unchanged;
    /// without one, a new unsampled one from the request ID (so the upstream does not record
    /// a trace whose gateway part was never exported).
    Untraced(Option<HeaderValue>),
}

/// `sampling-ratio` as an integer threshold: a request is traced when 64 random bits fall
/// below it (no float work per request).
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    threshold: u64,
    all: bool,
}

impl Sampler {
    /// A sampler tracing `ratio` (0.0-1.0, validated by the config) of the requests that do
    /// not continue a sampled client trace.
    pub fn new(ratio: f64) -> Sampler {
        Sampler {
            // 2^64 as f64 is exact; `as` saturates, and 1.0 is `all`.
            threshold: (ratio.clamp(0.0, 1.0) * 18_446_744_073_709_551_616.0) as u64,
            all: ratio >= 1.0,
        }
    }

    /// Whether a request is traced: a client's sampled `traceparent` is always continued;
    /// otherwise `draw` (fresh random bits) against the ratio. `random` supplies span IDs
    /// (and a trace ID when neither the client nor the request ID gives one).
    pub fn decide(
        &self,
        incoming: Option<Incoming>,
        request_id: &[u8],
        draw: u64,
        mut random: impl FnMut() -> u128,
    ) -> Decision {
        let traced = incoming.is_some_and(|i| i.sampled) || self.all || draw < self.threshold;
        let trace_id = incoming
            .map(|i| i.trace_id)
            .or_else(|| hex_id(request_id))
            .unwrap_or_else(|| nonzero(random()));
        let mut span_id = || nonzero(random()) as u64;
        if !traced {
            return Decision::Untraced(
                incoming
                    .is_none()
                    .then(|| traceparent(trace_id, span_id(), false)),
            );
        }
        Decision::Traced(TraceIds {
            trace_id,
            remote_parent: incoming.map(|i| i.parent_id),
            server_span: span_id(),
            upstream_span: span_id(),
        })
    }
}

/// A request ID of 32 lowercase hex digits, not all zero, as a trace ID.
fn hex_id(id: &[u8]) -> Option<u128> {
    if id.len() != 32 || !id.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let id = u128::from_str_radix(std::str::from_utf8(id).ok()?, 16).ok()?;
    (id != 0).then_some(id)
}

/// `v`, or 1 if it is zero: trace and span IDs must not be all zeros (the low 64 bits make a
/// span ID, so those are checked).
fn nonzero(v: u128) -> u128 {
    if v as u64 == 0 {
        v | 1
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const REQUEST_ID: &[u8] = b"4bf92f3577b34da6a3ce929d0e0e4736";

    fn counter() -> impl FnMut() -> u128 {
        let mut n = 0x10u128;
        move || {
            n += 1;
            n
        }
    }

    #[test]
    fn a_traceparent_is_read_and_written_back_the_same() {
        let i = parse_traceparent(CLIENT).expect("valid");
        assert_eq!(i.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(i.parent_id, 0xb7ad6b7169203331);
        assert!(i.sampled);
        assert_eq!(
            traceparent(i.trace_id, i.parent_id, true).as_bytes(),
            CLIENT
        );
        let unsampled = traceparent(i.trace_id, 1, false);
        assert_eq!(
            unsampled.as_bytes(),
            b"00-0af7651916cd43dd8448eb211c80319c-0000000000000001-00"
        );
        assert!(!parse_traceparent(unsampled.as_bytes()).unwrap().sampled);
        // Other flag bits do not make a trace sampled.
        let other = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02";
        assert!(!parse_traceparent(other).unwrap().sampled);
        for bad in [
            &b"garbage"[..],
            b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(parse_traceparent(bad), None);
        }
    }

    #[test]
    fn a_sampled_client_trace_is_continued_whatever_the_ratio() {
        let incoming = parse_traceparent(CLIENT);
        let d = Sampler::new(0.0).decide(incoming, REQUEST_ID, u64::MAX, counter());
        let Decision::Traced(ids) = d else {
            panic!("{d:?}")
        };
        assert_eq!(ids.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(ids.remote_parent, Some(0xb7ad6b7169203331));
        assert_ne!(ids.server_span, ids.upstream_span);
        assert!(ids.server_span != 0 && ids.upstream_span != 0);
    }

    #[test]
    fn without_a_sampled_parent_the_ratio_decides() {
        let half = Sampler::new(0.5);
        let d = half.decide(None, REQUEST_ID, u64::MAX / 2 - 1, counter());
        let Decision::Traced(ids) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736,
            "the request ID is the trace ID"
        );
        assert_eq!(ids.remote_parent, None);
        let d = half.decide(None, REQUEST_ID, u64::MAX / 2 + 2, counter());
        let Decision::Untraced(Some(tp)) = d else {
            panic!("{d:?}")
        };
        assert!(tp
            .as_bytes()
            .starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(tp.as_bytes().ends_with(b"-00"), "unsampled: {tp:?}");
        assert!(matches!(
            Sampler::new(0.0).decide(None, REQUEST_ID, 0, counter()),
            Decision::Untraced(Some(_))
        ));
        assert!(matches!(
            Sampler::new(1.0).decide(None, REQUEST_ID, u64::MAX, counter()),
            Decision::Traced(_)
        ));
    }

    #[test]
    fn an_unsampled_client_trace_is_passed_on_or_continued_by_the_ratio() {
        let unsampled =
            parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
        assert_eq!(
            Sampler::new(0.0).decide(unsampled, REQUEST_ID, 0, counter()),
            Decision::Untraced(None),
            "the client's traceparent goes on unchanged"
        );
        let Decision::Traced(ids) = Sampler::new(1.0).decide(unsampled, REQUEST_ID, 0, counter())
        else {
            panic!("ratio 1 traces")
        };
        assert_eq!(ids.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(ids.remote_parent, Some(0xb7ad6b7169203331));
    }

    #[test]
    fn a_request_id_that_is_not_32_hex_digits_gets_a_random_trace_id() {
        let d = Sampler::new(1.0).decide(None, b"client-chosen-id", 0, || 0);
        let Decision::Traced(ids) = d else {
            panic!("{d:?}")
        };
        assert_eq!(ids.trace_id, 1, "never zero");
        assert_eq!(hex_id(b"4BF92F3577B34DA6A3CE929D0E0E4736"), None);
        assert_eq!(hex_id(&[b'0'; 32]), None);
    }
}

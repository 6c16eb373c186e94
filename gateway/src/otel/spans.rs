//! A traced request's spans as OpenTelemetry `SpanData`, built once the request has ended:
//! Pingora's phases are not one async scope, so the request records instants while it runs
//! (only when traced) and the spans are made here with explicit IDs and timestamps. No token,
//! cookie or query string is ever an attribute: the path is cut at `?`, and nothing else is
//! taken from the client's request but its method.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::context::TraceIds;
use super::scope::{Child, ChildKind};

/// A traced request, from its start to its end: IDs, the client's `tracestate`, when it began
/// and the children recorded so far.
#[derive(Debug)]
pub struct RequestTrace {
    /// The spans' IDs.
    pub ids: TraceIds,
    /// The client's `tracestate`, kept in the spans' context (it also goes upstream as is).
    pub trace_state: Option<String>,
    /// When the request started (its head read), on both clocks.
    pub started: (Instant, SystemTime),
    /// Verification, IdP and store spans recorded during `request_filter`.
    pub children: Vec<Child>,
}

/// What the server span says about the request, read in the logging phase.
pub struct Finished<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The normalized path, without its query.
    pub path: &'a str,
    /// The tenant's name, `-` without one.
    pub tenant: &'a str,
    /// The route's name, `-` without one.
    pub route: &'a str,
    /// The status answered (0: none).
    pub status: u16,
    /// The authentication outcome (`allowed`, `unauthenticated`, `forbidden`), if decided.
    pub auth: Option<&'static str>,
    /// Why the gateway answered itself, if it did.
    pub denial: Option<&'static str>,
    /// The request ID.
    pub request_id: &'a str,
    /// The upstream's label and when it was chosen, if the request was proxied.
    pub upstream: Option<(&'a str, Instant)>,
    /// When the request ended.
    pub ended: Instant,
}

impl RequestTrace {
    /// The wall-clock time of `at` (an instant of this request).
    fn wall(&self, at: Instant) -> SystemTime {
        let (start, wall) = self.started;
        wall + at.saturating_duration_since(start)
    }

    fn context(&self, span: u64, state: &TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from(self.ids.trace_id),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            state.clone(),
        )
    }

    /// The request's spans: the server span, its upstream span and its children.
    pub fn spans(&self, f: &Finished<'_>, scope: &InstrumentationScope) -> Vec<SpanData> {
        let state = self
            .trace_state
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let failed = f.status >= 500 || f.status == 0;
        let server = self.ids.server_span;
        let span = |name: Cow<'static, str>,
                    span: u64,
                    parent: u64,
                    kind: SpanKind,
                    (start, end): (Instant, Instant),
                    attributes: Vec<KeyValue>,
                    status: Status| SpanData {
            span_context: self.context(span, &state),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: span == server && self.ids.remote_parent.is_some(),
            span_kind: kind,
            name,
            start_time: self.wall(start),
            end_time: self.wall(end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", f.method.to_string()),
            KeyValue::new("url.path", f.path.to_string()),
            KeyValue::new("http.response.status_code", i64::from(f.status)),
            KeyValue::new("gatehouse.tenant", f.tenant.to_string()),
            KeyValue::new("gatehouse.route", f.route.to_string()),
            KeyValue::new("gatehouse.request_id", f.request_id.to_string()),
        ];
        if let Some(auth) = f.auth {
            attributes.push(KeyValue::new("gatehouse.auth", auth));
        }
        if let Some(denial) = f.denial {
            attributes.push(KeyValue::new("gatehouse.denial", denial));
        }
        let name = if f.route == "-" {
            Cow::Owned(f.method.to_string())
        } else {
            Cow::Owned(format!("{} {}", f.method, f.route))
        };
        let mut spans = Vec::with_capacity(2 + self.children.len());
        spans.push(span(
            name,
            server,
            self.ids.remote_parent.unwrap_or(0),
            SpanKind::Server,
            (self.started.0, f.ended),
            attributes,
            status(failed),
        ));
        if let Some((label, chosen)) = f.upstream {
            spans.push(span(
                Cow::Borrowed("upstream"),
                self.ids.upstream_span,
                server,
                SpanKind::Client,
                (chosen, f.ended),
                vec![
                    KeyValue::new("gatehouse.upstream", label.to_string()),
                    KeyValue::new("http.response.status_code", i64::from(f.status)),
                ],
                status(failed),
            ));
        }
        // Child span IDs: derived from the server span's, distinct from it and the upstream's.
        let mut next_id = self.ids.server_span;
        for child in &self.children {
            next_id = next_child_id(next_id, self.ids.upstream_span);
            let (name, kind, attributes, failed) = describe(&child.kind);
            spans.push(span(
                name,
                next_id,
                server,
                kind,
                (child.start, child.end),
                attributes,
                status(failed),
            ));
        }
        spans
    }
}

fn status(failed: bool) -> Status {
    if failed {
        Status::error("")
    } else {
        Status::Unset
    }
}

/// The next child's span ID after `previous`: a step of an odd constant (a permutation of the
/// 64-bit IDs), never 0 or `avoid`.
fn next_child_id(previous: u64, avoid: u64) -> u64 {
    let mut id = previous;
    loop {
        id = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
        if id != 0 && id != avoid {
            return id;
        }
    }
}

/// A child's span name, kind, attributes and whether it failed.
fn describe(kind: &ChildKind) -> (Cow<'static, str>, SpanKind, Vec<KeyValue>, bool) {
    match kind {
        ChildKind::Verify { provider, result } => (
            Cow::Borrowed("verify token"),
            SpanKind::Internal,
            vec![
                KeyValue::new("gatehouse.provider", provider.clone()),
                KeyValue::new("gatehouse.token.result", *result),
            ],
            *result != "ok",
        ),
        ChildKind::Idp {
            provider,
            call,
            outcome,
        } => (
            Cow::Owned(format!("idp {}", call.as_str())),
            SpanKind::Client,
            vec![
                KeyValue::new("gatehouse.provider", provider.to_string()),
                KeyValue::new("gatehouse.idp.call", call.as_str()),
                KeyValue::new("gatehouse.idp.outcome", outcome.as_str()),
            ],
            outcome.as_str() != "ok",
        ),
        ChildKind::Store { op, outcome } => (
            Cow::Owned(format!("session-store {}", op.as_str())),
            SpanKind::Client,
            vec![
                KeyValue::new("gatehouse.store.op", op.as_str()),
                KeyValue::new("gatehouse.store.outcome", outcome.as_str()),
            ],
            outcome.as_str() != "ok",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_session::http::{IdpCall, IdpOutcome};
    use std::time::Duration;

    #[test]
    fn a_request_makes_a_server_span_with_its_upstream_and_children_under_it() {
        let t0 = Instant::now();
        let ids = TraceIds {
            trace_id: 7,
            remote_parent: Some(9),
            server_span: 11,
            upstream_span: 13,
        };
        let trace = RequestTrace {
            ids,
            trace_state: Some("vendor=abc".to_string()),
            started: (t0, SystemTime::UNIX_EPOCH),
            children: vec![Child {
                kind: ChildKind::Idp {
                    provider: "kc".into(),
                    call: IdpCall::Jwks,
                    outcome: IdpOutcome::Ok,
                },
                start: t0 + Duration::from_millis(1),
                end: t0 + Duration::from_millis(2),
            }],
        };
        let finished = Finished {
            method: "GET",
            path: "/api/x",
            tenant: "demo",
            route: "api",
            status: 200,
            auth: Some("allowed"),
            denial: None,
            request_id: "r1",
            upstream: Some(("app", t0 + Duration::from_millis(3))),
            ended: t0 + Duration::from_millis(5),
        };
        let spans = trace.spans(&finished, &InstrumentationScope::builder("t").build());
        assert_eq!(spans.len(), 3);
        let (server, upstream, idp) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(server.name, "GET api");
        assert_eq!(server.span_context.span_id(), SpanId::from(11));
        assert_eq!(server.parent_span_id, SpanId::from(9));
        assert!(server.parent_span_is_remote);
        assert_eq!(server.span_context.trace_state().header(), "vendor=abc");
        assert_eq!(
            server.end_time.duration_since(server.start_time).unwrap(),
            Duration::from_millis(5)
        );
        assert_eq!(upstream.span_context.span_id(), SpanId::from(13));
        assert_eq!(upstream.parent_span_id, SpanId::from(11));
        assert_eq!(idp.parent_span_id, SpanId::from(11));
        assert_eq!(idp.name, "idp jwks");
        assert_eq!(
            idp.start_time,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1)
        );
        for s in &spans {
            assert_eq!(s.span_context.trace_id(), TraceId::from(7u128));
        }
        let ids: std::collections::HashSet<_> =
            spans.iter().map(|s| s.span_context.span_id()).collect();
        assert_eq!(ids.len(), 3, "distinct span IDs");
    }

    #[test]
    fn child_ids_skip_zero_and_the_upstream_span() {
        let step = 0x9e37_79b9_7f4a_7c15u64;
        assert_eq!(next_child_id(0u64.wrapping_sub(step), 5), step, "0 skipped");
        assert_eq!(
            next_child_id(1, 1u64.wrapping_add(step)),
            1u64.wrapping_add(step.wrapping_mul(2)),
            "the upstream span's ID skipped"
        );
    }
}

//! OpenTelemetry traces (`tracing` in the config): one server span per traced request, with
//! child spans for the upstream request, token verification on a verified-token cache miss,
//! identity-provider calls and session-store calls, exported over OTLP/HTTP (protobuf) off the
//! request path.
//!
//! Pingora's phases are not one async scope, so no span object lives through a request: a
//! traced request keeps its IDs and start instant in its context ([`RequestTrace`]),
//! `request_filter` collects its children ([`scope`]), and the logging phase builds every span
//! with explicit IDs and timestamps ([`spans`]) and queues them ([`export`]). Without
//! `tracing` the gateway holds no [`Tracer`] and a request pays one `Option` check per phase
//! that looks; an untraced request with `tracing` pays a random draw and, without a client
//! `traceparent`, the unsampled one it sends upstream.
//!
//! Trace context: a client's sampled `traceparent` is continued (its span is the server span's
//! parent); otherwise `sampling-ratio` decides; `tracestate` passes through unchanged; the
//! upstream's `traceparent` names the gateway's upstream span. The request ID is unchanged and,
//! when generated, is the trace ID of a trace the gateway starts.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use gatehouse_policy::request_id::random_u128;
use opentelemetry::InstrumentationScope;

use crate::metrics::Metrics;

pub mod context;
pub mod export;
pub mod scope;
pub mod spans;

pub use export::SpanExportService;
pub use spans::{Finished, RequestTrace};

use context::{parse_traceparent, Decision, Sampler};

/// The process's tracer: the sampler, the span queue and the instrumentation scope.
pub struct Tracer {
    sampler: Sampler,
    queue: export::SpanQueue,
    scope: InstrumentationScope,
}

impl Tracer {
    /// The tracer for `config` and its export service (to run as a background service);
    /// makes the session crate's observers record spans from now on ([`scope::enable`]).
    pub fn start(
        config: &gatehouse_config::TracingConfig,
        metrics: &Metrics,
    ) -> Result<(Tracer, SpanExportService), String> {
        let (queue, service) = export::start(config, metrics.trace_span_counters())?;
        scope::enable();
        let tracer = Tracer {
            sampler: Sampler::new(config.sampling_ratio),
            queue,
            scope: InstrumentationScope::builder("gatehouse")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        };
        Ok((tracer, service))
    }

    /// Decides whether a request is traced, from its headers and its request ID. Returns its
    /// trace (when traced) and the `traceparent` its upstream gets instead of the client's
    /// (`None`: the client's valid one passes unchanged).
    pub fn begin(
        &self,
        headers: &http::HeaderMap,
        request_id: &[u8],
        started: Instant,
    ) -> (Option<Box<RequestTrace>>, Option<http::HeaderValue>) {
        let incoming = headers
            .get(gatehouse_policy::headers::TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()));
        let draw = random_u128() as u64;
        match self.sampler.decide(incoming, request_id, draw, random_u128) {
            Decision::Untraced(traceparent) => (None, traceparent),
            Decision::Traced(ids) => {
                let upstream = context::traceparent(ids.trace_id, ids.upstream_span, true);
                let trace_state = headers
                    .get("tracestate")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let wall = SystemTime::now()
                    .checked_sub(started.elapsed())
                    .unwrap_or_else(SystemTime::now);
                let trace = RequestTrace {
                    ids,
                    trace_state,
                    started: (started, wall),
                    children: Vec::new(),
                };
                (Some(Box::new(trace)), Some(upstream))
            }
        }
    }

    /// Builds the ended request's spans and queues them for export (never waits).
    pub fn finish(&self, trace: &RequestTrace, finished: &Finished<'_>) {
        self.queue.push(trace.spans(finished, &self.scope));
    }
}

/// The tracer, shared by the proxy phases.
pub type SharedTracer = Option<Arc<Tracer>>;

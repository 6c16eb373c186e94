//! Off the request path: traced requests hand their spans to a bounded queue
//! ([`SpanQueue::push`] never waits: a full queue drops them, counted), and a Pingora
//! background service batches them and exports each batch over OTLP/HTTP (protobuf) with
//! `opentelemetry-otlp`'s exporter, one export at a time. A collector that is down or slow
//! only loses spans (counted as `failed` or `dropped` in `gatehouse_trace_spans_total`); no
//! request waits for it. Exports go through the reqwest 0.12 client the identity-provider
//! calls already use (OpenSSL TLS, no redirects, fixed timeouts) instead of the exporter's own
//! client feature, which would add a second reqwest.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntCounter;
use tokio::sync::mpsc;

/// Traced requests whose spans may wait for the exporter; more are dropped.
const QUEUE_REQUESTS: usize = 1024;
/// Spans in one export at most.
const MAX_BATCH: usize = 512;
/// How long the exporter gathers a batch after its first span.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// One export's deadline (the collector's answer included).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// A collector's answer is an `ExportTraceServiceResponse`: small.
const MAX_RESPONSE_BYTES: usize = 64 << 10;

/// `gatehouse_trace_spans_total{outcome}`'s handles.
#[derive(Clone)]
pub struct SpanCounters {
    /// Spans the collector accepted.
    pub exported: IntCounter,
    /// Spans dropped because the queue was full.
    pub dropped: IntCounter,
    /// Spans in exports that failed (collector unreachable, an error status, a timeout).
    pub failed: IntCounter,
}

/// The request side of the queue.
pub struct SpanQueue {
    sender: mpsc::Sender<Vec<SpanData>>,
    dropped: IntCounter,
}

impl SpanQueue {
    /// Queues one request's spans, or drops and counts them when the queue is full. Never
    /// waits.
    pub fn push(&self, spans: Vec<SpanData>) {
        if let Err(e) = self.sender.try_send(spans) {
            let spans = match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
            };
            self.dropped.inc_by(spans.len() as u64);
        }
    }
}

/// The exporter side: a background service.
pub struct SpanExportService {
    receiver: Mutex<Option<mpsc::Receiver<Vec<SpanData>>>>,
    exporter: opentelemetry_otlp::SpanExporter,
    counters: SpanCounters,
}

/// The queue and its exporter for `config`; an error when the exporter cannot be built.
pub fn start(
    config: &gatehouse_config::TracingConfig,
    counters: SpanCounters,
) -> Result<(SpanQueue, SpanExportService), String> {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("tracing: cannot build the HTTP client: {e}"))?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient(client))
        .with_endpoint(config.otlp_endpoint.as_str())
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        // A failed batch is counted and dropped: retrying would hold the next ones back.
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .map_err(|e| format!("tracing.otlp-endpoint: {e}"))?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build(),
    );
    let (sender, receiver) = mpsc::channel(QUEUE_REQUESTS);
    Ok((
        SpanQueue {
            sender,
            dropped: counters.dropped.clone(),
        },
        SpanExportService {
            receiver: Mutex::new(Some(receiver)),
            exporter,
            counters,
        },
    ))
}

impl SpanExportService {
    /// Exports one batch and counts it.
    async fn export(&self, batch: Vec<SpanData>, failing: &mut bool) {
        let n = batch.len() as u64;
        match self.exporter.export(batch).await {
            Ok(()) => {
                self.counters.exported.inc_by(n);
                *failing = false;
            }
            Err(error) => {
                self.counters.failed.inc_by(n);
                // Once per outage, not once per batch.
                if !std::mem::replace(failing, true) {
                    tracing::warn!(%error, "span export failed (counted in gatehouse_trace_spans_total{{outcome=\"failed\"}})");
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for SpanExportService {
    /// Gathers a batch for [`BATCH_WINDOW`] after its first span (or until [`MAX_BATCH`]) and
    /// exports it, until shutdown; then exports what is queued once more.
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut failing = false;
        loop {
            let first = tokio::select! {
                first = receiver.recv() => first,
                _ = shutdown.changed() => break,
            };
            let Some(mut batch) = first else { return };
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while batch.len() < MAX_BATCH {
                tokio::select! {
                    _ = &mut window => break,
                    next = receiver.recv() => match next {
                        Some(spans) => batch.extend(spans),
                        None => break,
                    },
                }
            }
            self.export(batch, &mut failing).await;
        }
        let mut rest = Vec::new();
        while let Ok(spans) = receiver.try_recv() {
            rest.extend(spans);
        }
        if !rest.is_empty() {
            self.export(rest, &mut failing).await;
        }
    }
}

/// The exporter's HTTP client: reqwest 0.12.
#[derive(Debug)]
struct OtlpClient(reqwest::Client);

#[async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err("the collector's answer is too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(Bytes::from(body));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

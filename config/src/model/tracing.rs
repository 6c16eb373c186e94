//! `tracing`: OpenTelemetry spans, exported over OTLP/HTTP (protobuf).

/// `tracing.sampling-ratio` when left out: one request in a hundred.
pub const DEFAULT_SAMPLING_RATIO: f64 = 0.01;
/// `tracing.service-name` when left out.
pub const DEFAULT_SERVICE_NAME: &str = "gatehouse";

/// `tracing`: where spans go and which requests get them.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// `otlp-endpoint` (required): the collector's full OTLP/HTTP traces URL, spans are POSTed
    /// there as protobuf (e.g. `http://127.0.0.1:4318/v1/traces`).
    pub otlp_endpoint: String,
    /// `sampling-ratio`: the fraction of requests traced, 0.0-1.0, among those whose client
    /// sent no sampled W3C `traceparent` (a sampled one is always continued) (default
    /// [`DEFAULT_SAMPLING_RATIO`]).
    pub sampling_ratio: f64,
    /// `service-name`: the `service.name` resource attribute (default
    /// [`DEFAULT_SERVICE_NAME`]).
    pub service_name: String,
}

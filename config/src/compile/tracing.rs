//! `tracing`: the OTLP endpoint, the sampling ratio and the service name.

use crate::checks::http_url;
use crate::model::{TracingConfig, DEFAULT_SAMPLING_RATIO, DEFAULT_SERVICE_NAME};
use crate::schema::FileTracing;
use crate::source::Diag;

/// Validates `tracing`; `None` after reporting an error (the config is refused then anyway).
pub(super) fn tracing(d: &mut Diag<'_>, f: FileTracing) -> Option<TracingConfig> {
    let endpoint = match f.otlp_endpoint.map(|e| e.trim().to_string()) {
        None => {
            d.error(
                "tracing.otlp-endpoint",
                "missing required key \"otlp-endpoint\" (leave `tracing` out to export no spans)",
            );
            None
        }
        Some(e) => match endpoint_problem(&e) {
            Some(why) => {
                d.error("tracing.otlp-endpoint", why);
                None
            }
            None => Some(e),
        },
    };
    let sampling_ratio = f.sampling_ratio.unwrap_or(DEFAULT_SAMPLING_RATIO);
    // `contains` is false for NaN too.
    let ratio_ok = (0.0..=1.0).contains(&sampling_ratio);
    if !ratio_ok {
        d.error(
            "tracing.sampling-ratio",
            format!("{sampling_ratio} is not between 0.0 and 1.0"),
        );
    }
    let service_name = f.service_name.map_or_else(
        || DEFAULT_SERVICE_NAME.to_string(),
        |t| t.0.trim().to_string(),
    );
    let name_ok = !service_name.is_empty();
    if !name_ok {
        d.error("tracing.service-name", "must not be empty");
    }
    let otlp_endpoint = endpoint.filter(|_| ratio_ok && name_ok)?;
    Some(TracingConfig {
        otlp_endpoint,
        sampling_ratio,
        service_name,
    })
}

/// Why `url` cannot be an OTLP/HTTP endpoint: not an absolute http(s) URL, or one with
/// credentials or a fragment (the URL is logged when an export fails; a collector's
/// credentials do not belong in it).
fn endpoint_problem(url: &str) -> Option<String> {
    if let Err(why) = http_url(url) {
        return Some(why);
    }
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.contains('@') {
        return Some(format!("invalid URL {url:?}: must not carry credentials"));
    }
    if url.contains('#') {
        return Some(format!("invalid URL {url:?}: must not have a fragment"));
    }
    None
}

//! `tracing`: OpenTelemetry export. One const snippet per invalid value class, asserting line,
//! key and message.

use crate::tests::{assert_error, errs, ok, BASE};

#[test]
fn tracing_is_off_unless_configured() {
    assert_eq!(ok(BASE).tracing, None);
}

#[test]
fn tracing_takes_an_endpoint_and_defaults_ratio_and_service_name() {
    let c = ok(&format!(
        "tracing:\n  otlp-endpoint: http://127.0.0.1:4318/v1/traces\n{BASE}"
    ));
    let t = c.tracing.expect("tracing");
    assert_eq!(t.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(t.sampling_ratio, 0.01);
    assert_eq!(t.service_name, "gatehouse");
    let c = ok(&format!(
        "tracing:\n  otlp-endpoint: https://otel.example.com/v1/traces\n  sampling-ratio: 1\n  service-name: edge-gw\n{BASE}"
    ));
    let t = c.tracing.expect("tracing");
    assert_eq!(t.sampling_ratio, 1.0);
    assert_eq!(t.service_name, "edge-gw");
    let c = ok(&format!(
        "tracing:\n  otlp-endpoint: http://[::1]:4318/v1/traces\n  sampling-ratio: 0\n{BASE}"
    ));
    assert_eq!(c.tracing.expect("tracing").sampling_ratio, 0.0);
}

#[test]
fn tracing_needs_an_endpoint() {
    let e = errs(&format!("tracing:\n  sampling-ratio: 0.5\n{BASE}"));
    assert_error(
        &e,
        1,
        "tracing.otlp-endpoint",
        "missing required key \"otlp-endpoint\"",
    );
}

#[test]
fn tracing_refuses_a_bad_endpoint() {
    for (url, text) in [
        (
            "127.0.0.1:4318/v1/traces",
            "expected an absolute http:// or https:// URL",
        ),
        (
            "grpc://127.0.0.1:4317",
            "scheme \"grpc\" is not http or https",
        ),
        ("http://127.0.0.1:99999/v1/traces", "invalid port \"99999\""),
        (
            "http://user:secret@otel.localhost/v1/traces",
            "must not carry credentials",
        ),
        (
            "http://otel.localhost/v1/traces#x",
            "must not have a fragment",
        ),
    ] {
        let e = errs(&format!("tracing:\n  otlp-endpoint: \"{url}\"\n{BASE}"));
        assert_error(&e, 2, "tracing.otlp-endpoint", text);
    }
}

#[test]
fn tracing_refuses_a_ratio_outside_zero_to_one() {
    for ratio in ["1.5", "-0.1", ".nan"] {
        let e = errs(&format!(
            "tracing:\n  otlp-endpoint: http://127.0.0.1:4318/v1/traces\n  sampling-ratio: {ratio}\n{BASE}"
        ));
        assert_error(
            &e,
            3,
            "tracing.sampling-ratio",
            "is not between 0.0 and 1.0",
        );
    }
    let e = errs(&format!(
        "tracing:\n  otlp-endpoint: http://127.0.0.1:4318/v1/traces\n  sampling-ratio: often\n{BASE}"
    ));
    assert_error(&e, 3, "tracing.sampling-ratio", "invalid type");
}

#[test]
fn tracing_refuses_an_empty_service_name_and_unknown_keys() {
    let e = errs(&format!(
        "tracing:\n  otlp-endpoint: http://127.0.0.1:4318/v1/traces\n  service-name: \"\"\n{BASE}"
    ));
    assert_error(&e, 3, "tracing.service-name", "must not be empty");
    let e = errs(&format!(
        "tracing:\n  otlp-endpoint: http://127.0.0.1:4318/v1/traces\n  exporter: jaeger\n{BASE}"
    ));
    assert_error(&e, 3, "tracing.exporter", "unknown");
}

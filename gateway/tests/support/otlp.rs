//! A real OTLP/HTTP trace receiver for the tests: a loopback HTTP/1.1 server that decodes every
//! export with the official protobuf definitions (`opentelemetry-proto`'s prost messages).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::wait_until;

/// One export as the collector received it.
pub struct Export {
    path: String,
    content_type: String,
    request: ExportTraceServiceRequest,
}

/// A real OTLP/HTTP receiver: HTTP/1.1 keep-alive, `POST` bodies by `Content-Length`, each
/// decoded as an `ExportTraceServiceRequest` and answered 200 with an empty
/// `ExportTraceServiceResponse`.
pub struct Collector {
    pub addr: SocketAddr,
    pub exports: Arc<Mutex<Vec<Export>>>,
}

impl Collector {
    pub fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&exports);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let exports = Arc::clone(&shared);
                std::thread::spawn(move || serve(conn, &exports));
            }
        });
        Collector { addr, exports }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far, with its resource's `service.name`.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let exports = self.exports.lock().unwrap();
        let mut out = Vec::new();
        for e in exports.iter() {
            assert_eq!(e.path, "/v1/traces");
            assert_eq!(e.content_type, "application/x-protobuf");
            for rs in &e.request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| text(a.value.as_ref()?.value.as_ref()?))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// The spans of trace `trace_id` (hex) once `enough` holds for them (10 s at most).
    pub fn trace(&self, trace_id: &str, enough: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let mut last = Vec::new();
        let ok = wait_until(Duration::from_secs(10), || {
            last = self
                .spans()
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| hex(&s.trace_id) == trace_id)
                .collect();
            enough(&last)
        });
        assert!(ok, "trace {trace_id} incomplete: {}", describe(&last));
        last
    }
}

fn serve(conn: TcpStream, exports: &Mutex<Vec<Export>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("the export decodes as ExportTraceServiceRequest");
        exports.lock().unwrap().push(Export {
            path,
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            request,
        });
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The spans, one per line, for assertion messages.
pub fn describe(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "\n  {} span={} parent={} kind={} attrs={:?}",
                s.name,
                hex(&s.span_id),
                hex(&s.parent_span_id),
                s.kind,
                s.attributes
                    .iter()
                    .map(|a| format!(
                        "{}={:?}",
                        a.key,
                        a.value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .and_then(text)
                    ))
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

//! The access log: one line per request on stdout (JSON by default, or human-readable text).
//! Each request thread formats its lines straight into its own buffer; the writer (a Pingora
//! background service of its own) swaps the buffers out every [`FLUSH_INTERVAL`] and writes
//! them, so a request costs the formatting and an uncontended lock, never a channel message, an
//! allocation or a wake-up, and a slow stdout never blocks a request. Lines that do not fit
//! ([`MAX_BUFFERED`]) are dropped and counted. On shutdown, once the server's runtimes have
//! stopped, [`AccessLogWriter::collect`] runs a last time, so the last requests before SIGTERM
//! or SIGINT are in the log. Never tokens, cookies or query strings.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_config::{AccessLogConfig, AccessLogFormat};
use gatehouse_policy::proxies::IpText;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics::Metrics;

/// How often the writer collects the request threads' lines. Request threads never wake it:
/// waking a writer per line (a channel) cost a fifth of a core and a context switch on the
/// proxy thread per request (loadtest/README.md, "What moved each figure").
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Bytes one thread may hold between two collections before lines are dropped.
const MAX_BUFFERED: usize = 4 << 20;

/// One finished request, as the access log records it.
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub tenant: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub upstream: Option<&'a str>,
    pub upstream_duration: Option<Duration>,
    pub auth: &'a str,
    pub reason: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client_ip: Option<std::net::IpAddr>,
}

/// A request thread's pending lines.
type Buffer = Arc<Mutex<Vec<u8>>>;

/// The buffers of every thread that has logged, for the writer to collect.
struct Registry {
    id: usize,
    buffers: Mutex<Vec<Buffer>>,
}

thread_local! {
    /// This thread's buffer and the registry (by id) it belongs to.
    static LOCAL: std::cell::RefCell<Option<(usize, Buffer)>> = const { std::cell::RefCell::new(None) };
}

/// The access log handle shared by the proxy phases.
pub struct AccessLog {
    registry: Arc<Registry>,
    config: AccessLogConfig,
    metrics: Arc<Metrics>,
}

/// Where the lines go: the sink and the spare buffer swapped with each thread's.
struct Output {
    sink: Box<dyn std::io::Write + Send>,
    spare: Vec<u8>,
}

/// Collects every request thread's lines and writes them. Runs as a Pingora background service
/// (so with `--daemon` it runs in the forked process, as a thread started before the fork would
/// not) and once more by whoever stops the server.
pub struct AccessLogWriter {
    registry: Arc<Registry>,
    output: Mutex<Output>,
}

impl AccessLogWriter {
    /// Writes every line recorded so far. The server calls it once after its runtimes have
    /// stopped, when no request can log any more.
    pub fn collect(&self) {
        let buffers: Vec<Buffer> = self
            .registry
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let Output { sink, spare } = &mut *output;
        for buffer in &buffers {
            // Swap, not copy: the request thread gets the cleared spare and keeps its capacity.
            std::mem::swap(
                &mut *buffer.lock().unwrap_or_else(|e| e.into_inner()),
                spare,
            );
            if !spare.is_empty() {
                let _ = sink.write_all(spare);
                spare.clear();
            }
        }
        let _ = sink.flush();
    }
}

#[async_trait]
impl BackgroundService for AccessLogWriter {
    /// Collects every [`FLUSH_INTERVAL`] until the runtime stops (through the grace period:
    /// requests still finishing then log too); the last round is the server's.
    async fn start(&self, _shutdown: ShutdownWatch) {
        loop {
            tokio::time::sleep(FLUSH_INTERVAL).await;
            // Blocking writes are fine here: this service's runtime runs nothing else.
            self.collect();
        }
    }
}

impl AccessLog {
    /// The log and its writer (stdout); `None` when the log is disabled. Nothing is written
    /// until the writer runs (as a background service, and once at shutdown).
    pub fn start(
        config: &AccessLogConfig,
        metrics: Arc<Metrics>,
    ) -> Option<(AccessLog, Arc<AccessLogWriter>)> {
        Self::start_with(config, metrics, std::io::stdout())
    }

    /// As [`AccessLog::start`], writing to `sink`.
    fn start_with(
        config: &AccessLogConfig,
        metrics: Arc<Metrics>,
        sink: impl std::io::Write + Send + 'static,
    ) -> Option<(AccessLog, Arc<AccessLogWriter>)> {
        if !config.enabled {
            return None;
        }
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let registry = Arc::new(Registry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buffers: Mutex::new(Vec::new()),
        });
        let writer = Arc::new(AccessLogWriter {
            registry: Arc::clone(&registry),
            output: Mutex::new(Output {
                sink: Box::new(sink),
                spare: Vec::new(),
            }),
        });
        Some((
            AccessLog {
                registry,
                config: config.clone(),
                metrics,
            },
            writer,
        ))
    }

    /// Whether this request is logged: every error, and `sample-rate` of the rest.
    pub fn wants(&self, status: u16) -> bool {
        status >= 400
            || status == 0
            || self.config.sample_rate >= 1.0
            || rand::random::<f64>() < self.config.sample_rate
    }

    /// Formats one line into this thread's buffer.
    pub fn record(&self, entry: &Entry<'_>) {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if local.as_ref().is_none_or(|(id, _)| *id != self.registry.id) {
                let buffer = Buffer::default();
                self.registry
                    .buffers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::clone(&buffer));
                *local = Some((self.registry.id, buffer));
            }
            let (_, buffer) = local.as_ref().expect("set above");
            let mut out = buffer.lock().unwrap_or_else(|e| e.into_inner());
            if out.len() >= MAX_BUFFERED {
                self.metrics.access_log_dropped();
                return;
            }
            match self.config.format {
                AccessLogFormat::Json => json_line(&mut out, entry),
                AccessLogFormat::Text => text_line(&mut out, entry),
            }
        });
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, now). The part up to the second is formatted once
/// per second per thread.
fn push_now(out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, civil_second(secs as i64));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
    out.push(b'.');
    push_padded(out, u64::from(now.subsec_millis()), 3);
    out.push(b'Z');
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width.max(1) {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a duration in milliseconds with three decimals (`12.345`).
fn push_millis(out: &mut Vec<u8>, d: Duration) {
    let micros = ((d.as_nanos() + 500) / 1000).min(u128::from(u64::MAX)) as u64;
    push_padded(out, micros / 1000, 1);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
}

/// `YYYY-MM-DDTHH:MM:SS` for a unix time, UTC (Howard Hinnant's civil-from-days).
fn civil_second(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends `value` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // The usual value (IDs, names, a normalized path) needs no escaping: one copy.
    if !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        return;
    }
    for &b in value.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// One JSON object, written straight into the buffer (no intermediate JSON values or
/// strings: this runs for every request).
fn json_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    // The keys, numbers and time of a line fit in 256 bytes: one capacity check for them.
    out.reserve(256 + e.request_id.len() + e.tenant.len() + e.route.len() + e.path.len());
    out.extend_from_slice(b"{\"time\":\"");
    push_now(out);
    out.push(b'"');
    for (key, value) in [
        ("request_id", Some(e.request_id)),
        ("tenant", Some(e.tenant)),
        ("route", Some(e.route)),
        ("method", Some(e.method)),
        ("path", Some(e.path)),
        ("auth", Some(e.auth)),
        ("upstream", e.upstream),
        ("reason", e.reason),
        ("sub", e.sub),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            push_json_str(out, value);
        }
    }
    out.extend_from_slice(b",\"status\":");
    push_padded(out, u64::from(e.status), 1);
    out.extend_from_slice(b",\"duration_ms\":");
    push_millis(out, e.duration);
    if let Some(d) = e.upstream_duration {
        out.extend_from_slice(b",\"upstream_ms\":");
        push_millis(out, d);
    }
    if let Some(ip) = e.client_ip {
        out.extend_from_slice(b",\"client_ip\":\"");
        out.extend_from_slice(IpText::new(ip).as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

fn text_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    push_now(out);
    let _ = write!(
        out,
        " {} {} {} {} ",
        e.status, e.method, e.path, e.request_id
    );
    push_millis(out, e.duration);
    let _ = write!(
        out,
        "ms tenant={} route={} auth={}",
        e.tenant, e.route, e.auth
    );
    if let Some(u) = e.upstream {
        let _ = write!(out, " upstream={u}");
    }
    if let Some(r) = e.reason {
        let _ = write!(out, " reason={r}");
    }
    if let Some(s) = e.sub {
        let _ = write!(out, " sub={s}");
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        json_line(&mut out, e);
        String::from_utf8(out).unwrap()
    }

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "abc",
            tenant: "demo",
            route: "/api/*",
            method: "GET",
            path: "/api/x",
            status: 200,
            duration: Duration::from_nanos(456_789),
            upstream: Some("demo/app"),
            upstream_duration: Some(Duration::from_micros(250)),
            auth: "allowed",
            reason: None,
            sub: Some("u1"),
            client_ip: Some("127.0.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn json_lines_carry_the_fields_and_nothing_else() {
        let line = json(&entry());
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 0.457);
        assert_eq!(v["sub"], "u1");
        assert_eq!(v["upstream"], "demo/app");
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert!(v.get("reason").is_none());
        // Each character that needs escaping, alone and together.
        for path in ["/a\"b", "/a\\b", "/a\u{1}b", "/a\nb\u{1f}", "/a\"b\\c\u{1}"] {
            let line = json(&Entry { path, ..entry() });
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["path"], path);
        }
        let escaped = json(&Entry {
            path: "/a\"b\\c\u{1}",
            ..entry()
        });
        let v2: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(v2["path"], "/a\"b\\c\u{1}");
        let time = v["time"].as_str().unwrap();
        assert_eq!(time.len(), 24, "{time}");
        assert!(time.starts_with("20") && time.ends_with('Z'));
    }

    #[test]
    fn millis_have_three_rounded_decimals() {
        for (d, text) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_nanos(999_499), "0.999"),
            (Duration::from_nanos(999_500), "1.000"),
            (Duration::from_micros(12_345), "12.345"),
            (Duration::from_secs(3600), "3600000.000"),
        ] {
            let mut out = Vec::new();
            push_millis(&mut out, d);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_every_thread_reach_the_sink_whole() {
        let sink = Sink::default();
        let config = AccessLogConfig {
            enabled: true,
            ..AccessLogConfig::default()
        };
        let (log, writer) =
            AccessLog::start_with(&config, Arc::new(Metrics::new()), sink.clone()).unwrap();
        let log = Arc::new(log);
        // The writer collects while the threads record, as the background service does.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (writer, done) = (Arc::clone(&writer), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    writer.collect();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let id = format!("t{t}-{i}");
                        log.record(&Entry {
                            request_id: &id,
                            ..entry()
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        done.store(true, Ordering::Release);
        collector.join().unwrap();
        writer.collect();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| v["request_id"].as_str().unwrap().to_string())
            .collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), 2000, "every line, none torn");
        assert_eq!(distinct.len(), 2000, "every line once");
    }

    #[test]
    fn the_last_collection_writes_the_lines_recorded_just_before() {
        let sink = Sink::default();
        let config = AccessLogConfig {
            enabled: true,
            ..AccessLogConfig::default()
        };
        let (log, writer) =
            AccessLog::start_with(&config, Arc::new(Metrics::new()), sink.clone()).unwrap();
        let log = Arc::new(log);
        let other = Arc::clone(&log);
        std::thread::spawn(move || {
            other.record(&Entry {
                request_id: "other-thread",
                ..entry()
            })
        })
        .join()
        .unwrap();
        for id in ["last-1", "last-2"] {
            log.record(&Entry {
                request_id: id,
                ..entry()
            });
        }
        assert!(
            sink.0.lock().unwrap().is_empty(),
            "nothing before a collection"
        );
        drop(log);
        writer.collect();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| v["request_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["other-thread", "last-1", "last-2"]);
    }

    #[test]
    fn text_lines_are_readable() {
        let mut out = Vec::new();
        text_line(&mut out, &entry());
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains(" 200 GET /api/x abc 0.457ms tenant=demo route=/api/* auth=allowed upstream=demo/app sub=u1"), "{line}");
    }
}

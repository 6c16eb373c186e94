//! The access log: one line per request on stdout (JSON by default, or human-readable text),
//! formatted on the request's thread and written by a dedicated thread through a bounded
//! channel, so a slow stdout never blocks a request. Lines that do not fit are dropped and
//! counted. Never tokens, cookies or query strings.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use gatehouse_config::{AccessLogConfig, AccessLogFormat};

use crate::metrics::Metrics;

/// Lines buffered between the request threads and the writer.
const QUEUE: usize = 16 * 1024;

/// One finished request, as the access log records it.
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub tenant: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub upstream: Option<&'a str>,
    pub upstream_ms: Option<f64>,
    pub auth: &'a str,
    pub reason: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client_ip: Option<std::net::IpAddr>,
}

/// The access log handle shared by the proxy phases.
pub struct AccessLog {
    tx: SyncSender<String>,
    config: AccessLogConfig,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// Starts the writer thread (stdout). `None` when the log is disabled.
    pub fn start(config: &AccessLogConfig, metrics: Arc<Metrics>) -> Option<AccessLog> {
        if !config.enabled {
            return None;
        }
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || write_lines(rx))
            .expect("spawn the access log writer");
        Some(AccessLog {
            tx,
            config: config.clone(),
            metrics,
        })
    }

    /// Whether this request is logged: every error, and `sample-rate` of the rest.
    pub fn wants(&self, status: u16) -> bool {
        status >= 400
            || status == 0
            || self.config.sample_rate >= 1.0
            || rand::random::<f64>() < self.config.sample_rate
    }

    /// Formats and queues one line.
    pub fn record(&self, entry: &Entry<'_>) {
        let line = match self.config.format {
            AccessLogFormat::Json => json_line(entry),
            AccessLogFormat::Text => text_line(entry),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.metrics.access_log_dropped();
        }
    }
}

fn write_lines(rx: Receiver<String>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        // Flush once the queue is drained, so a quiet server's lines appear promptly.
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). The part up to the second is formatted once per second
/// per thread.
fn now_rfc3339() -> String {
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
        format!("{}.{:03}Z", cached.1, now.subsec_millis())
    })
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
fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One JSON object, written straight into one buffer (no intermediate JSON values: this runs
/// for every request).
fn json_line(e: &Entry<'_>) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("{\"time\":\"");
    out.push_str(&now_rfc3339());
    out.push('"');
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
            let _ = write!(out, ",\"{key}\":");
            push_json_str(&mut out, value);
        }
    }
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{:.3}",
        e.status, e.duration_ms
    );
    if let Some(ms) = e.upstream_ms {
        let _ = write!(out, ",\"upstream_ms\":{ms:.3}");
    }
    if let Some(ip) = e.client_ip {
        let _ = write!(out, ",\"client_ip\":\"{ip}\"");
    }
    out.push_str("}\n");
    out
}

fn text_line(e: &Entry<'_>) -> String {
    let mut line = String::with_capacity(160);
    let _ = write!(
        line,
        "{} {} {} {} {} {:.3}ms tenant={} route={} auth={}",
        now_rfc3339(),
        e.status,
        e.method,
        e.path,
        e.request_id,
        e.duration_ms,
        e.tenant,
        e.route,
        e.auth
    );
    if let Some(u) = e.upstream {
        let _ = write!(line, " upstream={u}");
    }
    if let Some(r) = e.reason {
        let _ = write!(line, " reason={r}");
    }
    if let Some(s) = e.sub {
        let _ = write!(line, " sub={s}");
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "abc",
            tenant: "demo",
            route: "/api/*",
            method: "GET",
            path: "/api/x",
            status: 200,
            duration_ms: 0.4567891,
            upstream: Some("demo/app"),
            upstream_ms: Some(0.25),
            auth: "allowed",
            reason: None,
            sub: Some("u1"),
            client_ip: Some("127.0.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn json_lines_carry_the_fields_and_nothing_else() {
        let line = json_line(&entry());
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 0.457);
        assert_eq!(v["sub"], "u1");
        assert_eq!(v["upstream"], "demo/app");
        assert!(v.get("reason").is_none());
        let escaped = json_line(&Entry {
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
    fn text_lines_are_readable() {
        let line = text_line(&entry());
        assert!(line.contains(" 200 GET /api/x abc 0.457ms tenant=demo route=/api/* auth=allowed upstream=demo/app sub=u1"), "{line}");
    }
}

//! The load client: `--conns` WebSockets, `--messages` echoes each, one in flight per
//! connection.
//!
//! Output (stdout), the lines `loadtest/report.py` reads from a `wrk` run, a message echoed
//! standing for a request:
//!
//! ```text
//! LT_SUMMARY requests=N duration_us=N bytes=N connect=N read=N write=N status=0 timeout=N
//! LT_PCT <percentile> <round trip in us>      (one line per percentile, then LT_PCT 100 max)
//! LT_WS conns=N messages=N size=N reconnects=N handshake_p50_us=N handshake_max_us=N
//! ```
//!
//! `requests` counts the echoes received in the measured window, `duration_us` is that window
//! (all connections open, first send to last echo), `connect` the connections that could not be
//! opened, `read`/`write` the connections that failed mid-run, `timeout` those cut by
//! `--timeout`, `reconnects` the connections closed right after their `101` and reopened (the
//! Pingora race of the `echo` module docs). The exit code is 0 only if every connection
//! carried all its messages.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The client's command line.
#[derive(clap::Args, Clone)]
pub struct Options {
    /// `ws://127.0.0.1:PORT/PATH`
    #[arg(long)]
    url: String,
    /// The `Host` header of the handshake (default: the URL's).
    #[arg(long)]
    host: Option<String>,
    /// Extra handshake headers, `Name: value` (e.g. the bearer token).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Connections held open at once.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Messages sent (and echoes awaited) per connection.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Size of each binary message in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds the whole run (handshakes included) may take.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Times a connection closed right after its `101` is reopened.
    #[arg(long, default_value_t = 3)]
    retries: u32,
}

/// Why a connection stopped before its last message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Read,
    Write,
    Timeout,
}

/// What one connection did in the measured window.
struct Carried {
    latencies_us: Vec<u32>,
    bytes: u64,
    failure: Option<Failure>,
}

/// Runs the whole client, prints its lines, returns the process exit code.
pub async fn run(opts: Options) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(opts.timeout);
    let payload = Bytes::from(vec![b'x'; opts.size.max(1)]);

    // 1. Every connection open (and checked with one echo) before the clock starts.
    let mut opening = JoinSet::new();
    for _ in 0..opts.conns {
        let (opts, payload) = (opts.clone(), payload.clone());
        opening.spawn(async move {
            let started = Instant::now();
            let opened = timeout_at(deadline, open(&opts, &payload)).await;
            (opened, started.elapsed())
        });
    }
    let (mut ready, mut connect_failures, mut reconnects, mut handshakes) =
        (Vec::new(), 0u64, 0u64, Vec::new());
    while let Some(done) = opening.join_next().await {
        match done {
            Ok((Ok(Ok((ws, retried))), took)) => {
                reconnects += u64::from(retried);
                handshakes.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                ready.push(ws);
            }
            Ok((Ok(Err(e)), _)) => {
                connect_failures += 1;
                eprintln!("ws-bench client: connection not opened: {e}");
            }
            Ok((Err(_), _)) | Err(_) => connect_failures += 1,
        }
    }
    handshakes.sort_unstable();

    // 2. The measured window: every connection's messages, one in flight each.
    let started = Instant::now();
    let mut running = JoinSet::new();
    for ws in ready {
        running.spawn(carry(ws, payload.clone(), opts.messages, deadline));
    }
    let (mut latencies, mut bytes, mut failures) = (Vec::new(), 0u64, Vec::new());
    while let Some(done) = running.join_next().await {
        let Ok(c) = done else {
            failures.push(Failure::Read);
            continue;
        };
        latencies.extend_from_slice(&c.latencies_us);
        bytes += c.bytes;
        failures.extend(c.failure);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let count = |f: Failure| failures.iter().filter(|&&x| x == f).count();
    print!(
        "LT_SUMMARY requests={} duration_us={} bytes={bytes} connect={connect_failures} read={} \
         write={} status=0 timeout={}\n{}LT_WS conns={} messages={} size={} reconnects={reconnects} \
         handshake_p50_us={} handshake_max_us={}\n",
        latencies.len(),
        elapsed.as_micros(),
        count(Failure::Read),
        count(Failure::Write),
        count(Failure::Timeout),
        stats::pct_lines(&latencies),
        opts.conns,
        opts.messages,
        payload.len(),
        stats::percentile(&handshakes, 50.0),
        handshakes.last().copied().unwrap_or(0),
    );
    let expected = opts.conns * opts.messages;
    eprintln!(
        "ws-bench client: {} of {expected} echoes in {elapsed:.2?} ({:.0} msgs/s), p50 {} us, \
         p99 {} us, {connect_failures} connections not opened, {} failed, {reconnects} reopened",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        stats::percentile(&latencies, 50.0),
        stats::percentile(&latencies, 99.0),
        failures.len(),
    );
    i32::from(latencies.len() != expected)
}

/// Opens one WebSocket and checks it with one echo; a connection closed before that echo (the
/// Pingora race) is reopened up to `retries` times. Returns it and how often it was reopened.
async fn open(opts: &Options, payload: &Bytes) -> Result<(Ws, u32), String> {
    let mut retried = 0;
    loop {
        let mut req = opts
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad --url: {e}"))?;
        let headers = req.headers_mut();
        if let Some(host) = &opts.host {
            let v = HeaderValue::from_str(host).map_err(|e| format!("bad --host: {e}"))?;
            headers.insert("host", v);
        }
        for h in &opts.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("--header {h:?}: {e}"))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|e| format!("--header {h:?}: {e}"))?;
            headers.insert(name, value);
        }
        let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(ok) => ok,
            // A refused handshake (401, ...) is an answer, not a race: no retry.
            Err(WsError::Http(resp)) => {
                return Err(format!("handshake answered {}", resp.status()));
            }
            Err(e) => return Err(format!("handshake failed: {e}")),
        };
        if let Some(stream) = tcp(&ws) {
            let _ = stream.set_nodelay(true);
        }
        match exchange(&mut ws, payload).await {
            Ok(_) => return Ok((ws, retried)),
            Err(_) if retried < opts.retries => retried += 1,
            Err(f) => return Err(format!("closed after the 101 ({f:?}), {retried} reopens")),
        }
    }
}

fn tcp(ws: &Ws) -> Option<&TcpStream> {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => Some(s),
        _ => None,
    }
}

/// `messages` echoes on `ws`, each timed; stops at the first failure or at `deadline`.
async fn carry(
    mut ws: Ws,
    payload: Bytes,
    messages: usize,
    deadline: tokio::time::Instant,
) -> Carried {
    let mut c = Carried {
        latencies_us: Vec::with_capacity(messages),
        bytes: 0,
        failure: None,
    };
    for _ in 0..messages {
        let t0 = Instant::now();
        match timeout_at(deadline, exchange(&mut ws, &payload)).await {
            Ok(Ok(n)) => {
                c.latencies_us
                    .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                c.bytes += n as u64;
            }
            Ok(Err(f)) => {
                c.failure = Some(f);
                break;
            }
            Err(_) => {
                c.failure = Some(Failure::Timeout);
                break;
            }
        }
    }
    // A clean close, not counted; bounded so a peer that never answers cannot hold the run.
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    c
}

/// Sends `payload` and waits for its echo (control frames in between are skipped).
async fn exchange(ws: &mut Ws, payload: &Bytes) -> Result<usize, Failure> {
    ws.send(Message::Binary(payload.clone()))
        .await
        .map_err(|_| Failure::Write)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == payload.len() => return Ok(b.len()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            // Closed, an error, or not our echo.
            _ => return Err(Failure::Read),
        }
    }
}

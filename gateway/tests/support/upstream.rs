//! A real HTTP/1.1 upstream server on a loopback port, recording what it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP/1.1 upstream on a loopback port: keep-alive, Content-Length and chunked request
/// bodies; answers 200 with `upstream: NAME` in a header and the body; `/health` answers 200
/// (or 503 after `set_healthy(false)`). Records every request it sees.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Request lines (`METHOD target`) as soon as a request head arrives, complete or not.
    pub heads: Arc<Mutex<Vec<String>>>,
    pub hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    listener: Option<thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts an upstream named `name` on a free port.
    pub fn start(name: &str) -> Upstream {
        Upstream::start_on(name, TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Starts an upstream on a given listener.
    pub fn start_on(name: &str, listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(ConnState {
            name: name.to_string(),
            seen: seen.clone(),
            heads: heads.clone(),
            hits: hits.clone(),
            healthy: healthy.clone(),
            stop: stop.clone(),
        });
        let handle = thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve_connection(conn, &shared));
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            seen,
            heads,
            hits,
            healthy,
            stop,
            listener: Some(handle),
        }
    }

    /// `host:port` for configs.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// Makes `/health` answer 503 (false) or 200 (true).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests seen so far (excluding health checks).
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request seen (excluding health checks).
    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// Stops accepting and closes the listener (established connections close on their next request).
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every connection of one upstream shares.
struct ConnState {
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    heads: Arc<Mutex<Vec<String>>>,
    hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn serve_connection(conn: TcpStream, state: &ConnState) {
    let ConnState {
        name,
        seen,
        heads,
        hits,
        healthy,
        stop,
    } = state;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let Some(req) = read_request(&mut reader, heads) else {
            return;
        };
        if stop.load(Ordering::SeqCst) {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        let (status, body) = if req.target == "/health" {
            if healthy.load(Ordering::SeqCst) {
                (200, b"ok".to_vec())
            } else {
                (503, b"unhealthy".to_vec())
            }
        } else {
            hits.fetch_add(1, Ordering::SeqCst);
            let body = format!("{name} {} {}", req.method, req.target).into_bytes();
            seen.lock().unwrap().push(req.clone());
            (200, body)
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Upstream: {name}\r\nContent-Type: text/plain\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>, heads: &Mutex<Vec<String>>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    if target != "/health" {
        heads.lock().unwrap().push(format!("{method} {target}"));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; n];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

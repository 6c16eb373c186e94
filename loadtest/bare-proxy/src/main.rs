//! `bare-proxy`: the framework ceiling of gatehouse's load harness.
//!
//! A Pingora `ProxyHttp` that implements only `upstream_peer` (one fixed plain-HTTP upstream),
//! with the same Pingora version and features as gatehouse (the workspace `pingora`
//! dependency), jemalloc as the global allocator and the workspace release profile (fat LTO,
//! one codegen unit). Every gatehouse figure in `loadtest/` is divided by this one.
//!
//! ```text
//! bare-proxy [LISTEN [UPSTREAM [THREADS]]]
//! ```
//!
//! Arguments win over the environment, which wins over the defaults:
//!
//! | argument | variable | default |
//! |---|---|---|
//! | LISTEN | `BARE_PROXY_LISTEN` | `127.0.0.1:6188` |
//! | UPSTREAM | `BARE_PROXY_UPSTREAM` | `127.0.0.1:18081` |
//! | THREADS | `BARE_PROXY_THREADS` | `1` |
//! | | `BARE_PROXY_READ_BUFFER` | unset: Pingora's default downstream L4 read buffer (64 KiB); a size in bytes (`0` = unbuffered) for the idle-connection memory experiments |
//! | | `BARE_PROXY_WORK_STEALING` | `1`; `0` turns Pingora's work stealing off |
//! | | `BARE_PROXY_TIMEOUTS` | `0`; `1` arms the timeouts gatehouse arms by default (keep-alive 300 s, upstream connect 2 s, read and write 30 s, pooled idle 60 s, all on Tokio's timer wheel): the cost of the framework's timers alone |

use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The proxy: every request goes to `upstream`, nothing else is customised.
struct Bare {
    upstream: String,
    /// Arm gatehouse's default timeouts (`BARE_PROXY_TIMEOUTS=1`).
    timeouts: bool,
}

/// gatehouse's defaults: `keepalive-timeout`, and an upstream's `connect-timeout`,
/// `read-timeout` (also the write timeout) and pooled idle timeout.
const KEEPALIVE_SECS: u64 = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        if self.timeouts {
            session.set_keepalive(Some(KEEPALIVE_SECS));
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        if self.timeouts {
            peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
            peer.options.read_timeout = Some(READ_TIMEOUT);
            peer.options.write_timeout = Some(READ_TIMEOUT);
            peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        }
        Ok(Box::new(peer))
    }
}

fn setting(args: &[String], index: usize, var: &str, default: &str) -> String {
    args.get(index)
        .cloned()
        .or_else(|| std::env::var(var).ok())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "-h" || a == "--help") {
        println!(
            "usage: bare-proxy [LISTEN [UPSTREAM [THREADS]]]  (see the crate docs for the env)"
        );
        return;
    }
    let listen = setting(&args, 0, "BARE_PROXY_LISTEN", "127.0.0.1:6188");
    let upstream = setting(&args, 1, "BARE_PROXY_UPSTREAM", "127.0.0.1:18081");
    let threads: usize = setting(&args, 2, "BARE_PROXY_THREADS", "1")
        .parse()
        .expect("THREADS must be a positive integer");
    let work_stealing = std::env::var("BARE_PROXY_WORK_STEALING").map_or(true, |v| v != "0");
    let timeouts = std::env::var("BARE_PROXY_TIMEOUTS").is_ok_and(|v| v == "1");
    let read_buffer: Option<usize> = std::env::var("BARE_PROXY_READ_BUFFER").ok().map(|v| {
        v.parse()
            .expect("BARE_PROXY_READ_BUFFER must be a size in bytes")
    });

    let mut conf = ServerConf {
        threads: threads.max(1),
        work_stealing,
        // Own files so several instances (or a gatehouse) can run side by side.
        pid_file: format!("/tmp/bare-proxy-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/bare-proxy-{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    if timeouts {
        // As gatehouse: timeouts of a second or more on Tokio's timer wheel.
        conf.fast_timeout_to_tokio_threshold_seconds = Some(0);
    }
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();

    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream, timeouts });
    match read_buffer {
        None => proxy.add_tcp(&listen),
        Some(size) => proxy.add_listener(
            ListenerConfig::tcp(listen.clone()).l4_buffer(L4BufferSettings::default().read(size)),
        ),
    }
    server.add_service(proxy);
    eprintln!(
        "bare-proxy: listening on {listen}, {threads} thread(s), read buffer {read_buffer:?}, timeouts {timeouts}"
    );
    server.run_forever();
}

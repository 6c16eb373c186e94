//! `ws-bench`: the WebSocket side of gatehouse's load harness (`loadtest/run.sh`, scenario
//! `ws-echo`).
//!
//! ```text
//! ws-bench echo   --listen 127.0.0.1:PORT [--handshake-delay-ms 50]
//! ws-bench client --url ws://127.0.0.1:PORT/PATH [--host H] [--header 'K: V']...
//!                 [--conns 64] [--messages 2000] [--size 64] [--timeout 60] [--retries 3]
//! ```
//!
//! `echo` is the upstream: it answers every text or binary message with the same message.
//! `client` opens `--conns` WebSockets (all open before the clock starts), then each sends
//! `--messages` binary messages of `--size` bytes one at a time, waiting for each echo (one
//! message in flight per connection, as `wrk` keeps one request in flight per connection), and
//! prints the `LT_*` lines `loadtest/report.py` reads (see `client`). Both run on one thread,
//! as the harness's `wrk -t1` and its servers do. Every run is bounded: by count (connections
//! x messages) and by `--timeout`.

#![forbid(unsafe_code)]

mod client;
mod echo;
mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "WebSocket echo upstream and load client of gatehouse's load harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The echo upstream.
    Echo {
        /// Address to listen on (loopback).
        #[arg(long)]
        listen: SocketAddr,
        /// Wait this long after a connection's first bytes before answering its handshake
        /// (the Pingora 0.9.1 race: `echo` module docs).
        #[arg(long, default_value_t = 50)]
        handshake_delay_ms: u64,
    },
    /// The load client.
    Client(client::Options),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Echo {
            listen,
            handshake_delay_ms,
        } => {
            let delay = Duration::from_millis(handshake_delay_ms);
            if let Err(e) = runtime().block_on(echo::serve(listen, delay)) {
                eprintln!("ws-bench echo: {e}");
                std::process::exit(1);
            }
        }
        Command::Client(opts) => {
            let code = runtime().block_on(client::run(opts));
            std::process::exit(code);
        }
    }
}

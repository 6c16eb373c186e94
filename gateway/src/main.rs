//! `gatehouse`: a Pingora-based, multi-tenant auth gateway.
//!
//! `gatehouse run --config FILE` serves; `gatehouse check --config FILE` validates a config and
//! prints a summary (exit 0) or every error (exit 1); `gatehouse import-gatekeeper FILE` converts
//! a Gatekeeper config; `gatehouse explain` says what the gateway does with one request and
//! why; `gatehouse version` prints the version.

#![forbid(unsafe_code)]

mod accesslog;
mod admin;
mod assertion;
mod auth;
mod clock;
mod connections;
mod ctx;
mod demo;
mod dpop;
mod explain;
mod grpc;
mod identify;
mod import;
mod login;
mod login_settings;
mod maintenance;
mod metrics;
mod observers;
mod otel;
mod pools;
mod proxy;
mod ratelimit;
mod readiness;
mod reload;
mod resource_metadata;
mod responses;
mod runtime;
mod server;
mod tls;
mod upgrade;
mod well_known;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "A fast multi-tenant auth gateway on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve with the given configuration (SIGHUP reloads it, SIGTERM drains and stops,
    /// SIGQUIT hands the listening sockets to a process started with --upgrade).
    Run {
        /// The YAML configuration file; omitted: the embedded demo (in-memory sessions, demo
        /// tenant on demo.localhost and 127.0.0.1, demo upstream, the test IdP on
        /// 127.0.0.1:18090 as its identity provider).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Take over the listening sockets of a running gatehouse (zero-downtime upgrade):
        /// start the new process with --upgrade, then send SIGQUIT to the old one.
        #[arg(short, long)]
        upgrade: bool,
        /// Run in the background (daemonize).
        #[arg(short, long)]
        daemon: bool,
    },
    /// Validate a configuration: exit 0 with a summary, or 1 with every error (file:line: key).
    Check {
        /// The YAML configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Convert a Keycloak Gatekeeper / gogatekeeper config into a gatehouse config; what cannot
    /// be carried over is listed on stderr.
    ImportGatekeeper {
        /// The Gatekeeper config file (YAML), or a YAML list of its --flag=value arguments (a
        /// Kubernetes container's `args:`).
        file: PathBuf,
        /// Write the gatehouse config here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Gatekeeper command-line arguments applied over FILE (after `--`), e.g.
        /// `-- --listen=0.0.0.0:3000 --resources='uri=/admin/*|roles=admin'`.
        #[arg(last = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Explain what the gateway does with one request, step by step: the tenant, the path,
    /// the route, each credential check, the requirements and the verdict with its reason.
    /// Exit 0 when allowed, 1 when refused, 2 for a bad config or request.
    Explain(explain::cli::Args),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => print_out(&format!("gatehouse {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Check { config } => check(&config),
        Command::ImportGatekeeper { file, out, args } => import::run(&file, out.as_ref(), &args),
        Command::Explain(args) => explain::cli::run(args),
        Command::Run {
            config,
            upgrade,
            daemon,
        } => server::run(config, upgrade, daemon),
    }
}

/// `gatehouse check`: parse, validate and compile the config exactly as `run` would.
fn check(path: &std::path::Path) -> ExitCode {
    let config = match gatehouse_config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.errors.len());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = runtime::Runtime::validate(&config) {
        eprintln!("{}: {e}", path.display());
        return ExitCode::from(1);
    }
    for w in &config.warnings {
        eprintln!("{}", warning_line(w));
    }
    let upstreams: usize = config.tenants.iter().map(|t| t.upstreams.len()).sum();
    let routes: usize = config.tenants.iter().map(|t| t.routes.len()).sum();
    let mut summary = format!(
        "{}: OK: {} tenant(s), {} route(s), {} upstream(s), {} identity provider(s)\n",
        path.display(),
        config.tenants.len(),
        routes,
        upstreams,
        config.identity_providers.len()
    );
    for t in &config.tenants {
        summary += &format!(
            "  tenant {}: hosts [{}], {} route(s), upstreams [{}]\n",
            t.name,
            t.hosts.join(", "),
            t.routes.len(),
            t.upstreams
                .iter()
                .map(|u| format!("{} ({} target(s))", u.name, u.targets.len()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    print_out(&summary)
}

/// Writes a command's output to stdout. A reader that went away (`gatehouse check | head -1`)
/// ends the command quietly instead of the panic `println!` gives on a broken pipe.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// `file:line: warning: key: message`, the shape compilers use, so editors jump to the line.
fn warning_line(w: &gatehouse_config::ConfigError) -> String {
    let at = match w.line {
        Some(line) => format!("{}:{line}", w.file),
        None => w.file.clone(),
    };
    format!("{at}: warning: {}: {}", w.key, w.message)
}

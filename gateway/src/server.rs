//! Builds and runs the Pingora server: the proxy service (HTTP and TLS listeners), the admin
//! listener, the health-check and reload background services, and the embedded demo upstream.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::Config;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::GenBackgroundService;
use pingora::services::listening::Service;

use crate::accesslog::AccessLog;
use crate::admin::Admin;
use crate::connections::{Guarded, ListenerLimits};
use crate::demo::{EchoUpstream, DEMO_CONFIG, DEMO_UPSTREAM_ADDR};
use crate::login::Sessions;
use crate::maintenance::MaintenanceService;
use crate::metrics::Metrics;
use crate::otel::Tracer;
use crate::proxy::Gateway;
use crate::reload::ReloadService;
use crate::runtime::Runtime;
use crate::tls::SniCertificates;

/// Loads the config (the file, or the embedded demo), prints every error and fails, or runs
/// the server until it is told to stop.
pub fn run(path: Option<PathBuf>, upgrade: bool, daemon: bool) -> ExitCode {
    init_tracing();
    let config = match &path {
        Some(p) => gatehouse_config::load(p),
        None => gatehouse_config::parse(DEMO_CONFIG, "<embedded demo config>", &|name| {
            std::env::var(name).ok()
        }),
    };
    let config = match config {
        Ok(c) => Arc::new(c),
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    for w in &config.warnings {
        tracing::warn!(warning = %w, "config warning (see gatehouse check)");
    }
    let metrics = Arc::new(Metrics::new());
    // Before the runtime: the identity providers' and the store's observers record spans
    // only when built after this.
    let (tracer, span_exporter) = match config.tracing.as_ref().map(|t| Tracer::start(t, &metrics))
    {
        None => (None, None),
        Some(Ok((tracer, exporter))) => (Some(Arc::new(tracer)), Some(Arc::new(exporter))),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match Runtime::compile(Arc::clone(&config), None, &metrics) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("config: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = Arc::new(ArcSwap::from_pointee(runtime));
    metrics.record_reload(true);
    if !upgrade {
        if let Err(e) = check_listen_addresses(&config, path.is_none()) {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    }

    let opt = Opt {
        upgrade,
        daemon,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config));
    server.bootstrap();

    let sessions = Arc::new(Sessions::new(&config.session_store, Arc::clone(&metrics)));
    let shared_limits = Arc::new(crate::ratelimit::SharedBuckets::new(&config.session_store));
    let (access_log, access_log_writer) =
        match AccessLog::start(&config.access_log, Arc::clone(&metrics)) {
            Some((log, writer)) => (Some(log), Some(writer)),
            None => (None, None),
        };
    let gateway = Gateway {
        runtime: Arc::clone(&runtime),
        metrics: Arc::clone(&metrics),
        https_port_suffix: https_port_suffix(&config),
        keepalive_secs: config.keepalive_timeout.as_secs().max(1),
        access_log,
        sessions: Arc::clone(&sessions),
        shared_limits: Arc::clone(&shared_limits),
        tracer,
    };
    // The proxy behind the connection limits and the request-head deadline (connections.rs).
    let mut listeners = Vec::new();
    for (name, addr) in [
        ("listen", Some(&config.listen)),
        ("tls-listen", config.tls_listen.as_ref()),
    ] {
        if let Some(addr) = addr.and_then(|a| a.parse().ok()) {
            listeners.push(Arc::new(ListenerLimits::new(
                addr,
                config.max_connections,
                config.max_connections_per_ip,
                &metrics,
                name,
            )));
        }
    }
    let mut http_proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    if config.listen_h2c {
        // Each new plain-text connection is peeked for the HTTP/2 preface; HTTP/1.1 goes on.
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        http_proxy.server_options = Some(options);
    }
    let mut proxy = Service::new(
        "gatehouse proxy".to_string(),
        Guarded::new(
            http_proxy,
            listeners,
            config.request_header_timeout,
            Arc::clone(&runtime),
        ),
    );
    proxy.add_tcp(&config.listen);
    if let Some(tls_listen) = &config.tls_listen {
        let callbacks = Box::new(SniCertificates(Arc::clone(&runtime)));
        let mut settings = match TlsSettings::with_callbacks(callbacks) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tls-listen: {e}");
                return ExitCode::from(1);
            }
        };
        settings.enable_h2();
        proxy.add_tls_with_settings(tls_listen, None, settings);
    }
    server.add_service(proxy);

    if let Some(admin_listen) = &config.admin_listen {
        let admin = Admin {
            runtime: Arc::clone(&runtime),
            metrics: Arc::clone(&metrics),
            readiness: Default::default(),
            sessions: Arc::clone(&sessions),
        };
        let mut admin = Service::new("gatehouse admin".to_string(), HttpServer::new_app(admin));
        admin.add_tcp(admin_listen);
        server.add_service(admin);
    }
    if let Some(writer) = &access_log_writer {
        server.add_service(GenBackgroundService::new(
            "gatehouse access log".to_string(),
            Arc::clone(writer),
        ));
    }
    if let Some(exporter) = span_exporter {
        server.add_service(GenBackgroundService::new(
            "gatehouse span export".to_string(),
            exporter,
        ));
    }
    server.add_service(GenBackgroundService::new(
        "gatehouse maintenance".to_string(),
        Arc::new(MaintenanceService {
            runtime: Arc::clone(&runtime),
            metrics: Arc::clone(&metrics),
            sessions: Arc::clone(&sessions),
            shared_limits: Arc::clone(&shared_limits),
        }),
    ));
    server.add_service(GenBackgroundService::new(
        "gatehouse reload".to_string(),
        Arc::new(ReloadService {
            watch: config.watch_config,
            path: path.clone(),
            runtime: Arc::clone(&runtime),
            metrics: Arc::clone(&metrics),
        }),
    ));
    if path.is_none() {
        let mut demo = Service::new(
            "gatehouse demo upstream".to_string(),
            HttpServer::new_app(EchoUpstream),
        );
        demo.add_tcp(DEMO_UPSTREAM_ADDR);
        server.add_service(demo);
        let listen = &config.listen;
        eprintln!("gatehouse: serving the embedded demo on http://{listen} (demo upstream on {DEMO_UPSTREAM_ADDR})");
        eprintln!("  try: curl -i -H 'Host: demo.localhost' http://{listen}/public/hello");
        if let Some(idp) = config.identity_providers.first() {
            eprintln!(
                "  log in at http://demo.localhost:{}/app/ once the demo identity provider {} is up (./scripts/setup.sh starts it)",
                listen.rsplit(':').next().unwrap_or("8080"),
                idp.issuer
            );
        }
    }
    tracing::info!(listen = %config.listen, tenants = config.tenants.len(), "gatehouse starting");
    // `run` returns once the runtimes have stopped (after the grace period on SIGTERM, at once
    // on SIGINT): no request can log any more, so the writer's last round loses nothing.
    server.run(RunArgs::default());
    if let Some(writer) = access_log_writer {
        writer.collect();
    }
    ExitCode::SUCCESS
}

/// Timeouts longer than this many whole seconds (so: of one second or more) run on Tokio's
/// timer wheel instead of Pingora's fast timer. Every request arms three timeouts that almost
/// never fire (the downstream keep-alive read, the upstream response read, the pooled upstream
/// connection's idle watch). A fast timer costs a lookup in a tree of deadlines, a boxed future
/// and a `Notify` waiter to add and remove; a Tokio one costs a slot in the wheel (the
/// measurement is in loadtest/README.md).
const FAST_TIMERS_UP_TO_SECONDS: u64 = 0;

fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.graceful_shutdown_timeout.as_secs()),
        upgrade_sock: config.upgrade_sock.to_string_lossy().into_owned(),
        pid_file: config.pid_file.to_string_lossy().into_owned(),
        error_log: config
            .error_log
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        fast_timeout_to_tokio_threshold_seconds: Some(FAST_TIMERS_UP_TO_SECONDS),
        ..ServerConf::default()
    }
}

/// Refuses to start when a listen address is taken. Pingora retries such a bind for a while,
/// then its service thread panics and the process stays up without serving (liveness and
/// readiness would still pass). With `--upgrade` the sockets come from the running process:
/// nothing to check.
fn check_listen_addresses(config: &gatehouse_config::Config, demo: bool) -> Result<(), String> {
    let mut addresses = vec![("listen", config.listen.as_str())];
    if let Some(tls) = &config.tls_listen {
        addresses.push(("tls-listen", tls));
    }
    if let Some(admin) = &config.admin_listen {
        addresses.push(("admin-listen", admin));
    }
    if demo {
        addresses.push(("the demo upstream", DEMO_UPSTREAM_ADDR));
    }
    for (key, address) in addresses {
        if let Err(e) = std::net::TcpListener::bind(address) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Err(format!(
                    "{key} {address}: address already in use (another process listens there; \
                     to replace a running gatehouse without downtime, start the new one with \
                     --upgrade)"
                ));
            }
        }
    }
    Ok(())
}

/// `:8443` when the TLS listener is not on 443, so HTTPS redirects land on it.
pub(crate) fn https_port_suffix(config: &Config) -> String {
    config
        .tls_listen
        .as_deref()
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .filter(|&port| port != 443)
        .map(|port| format!(":{port}"))
        .unwrap_or_default()
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

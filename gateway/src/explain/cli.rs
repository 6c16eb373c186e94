//! `gatehouse explain --config FILE [-H 'Name: value']... [--from IP] [--jwks FILE] [--json]
//! METHOD URL`: builds the runtime `run` would (the same config checks, providers, logins and
//! session store), fetches the request's identity provider's keys as configured (discovery
//! and JWKS, or the `jwks-file`), or reads `--jwks FILE` instead, and prints the explanation.
//! Exit 0 when the request is allowed, 1 when it is refused, 2 for a bad config or request.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::{explain, Query};
use crate::login::Sessions;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The YAML configuration file the gateway runs with.
    #[arg(short, long)]
    pub config: PathBuf,
    /// A request header, `Name: value` (repeatable), as with curl.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The client's address (default: unknown, so never a trusted proxy).
    #[arg(long, value_name = "IP")]
    pub from: Option<String>,
    /// Verify tokens with this JWKS file instead of the identity providers' configured keys.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The request method.
    pub method: String,
    /// The absolute request URL (`http://host/path?query` or `https://...`).
    pub url: String,
}

const USAGE_ERROR: u8 = 2;

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    let config = match load(&args.config, args.jwks.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let query = Query {
        method: args.method,
        url: args.url,
        headers: args.headers,
        from: args.from,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let runtime = match Runtime::compile(Arc::new(config), None, &metrics) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", args.config.display());
                return ExitCode::from(USAGE_ERROR);
            }
        };
        match super::tenant_of(&runtime, &query) {
            Ok(Some(t)) => fetch_keys(&runtime, t).await,
            Ok(None) => {}
            Err(e) => {
                eprintln!("gatehouse explain: {e}");
                return ExitCode::from(USAGE_ERROR);
            }
        }
        let sessions = Sessions::new(&runtime.config.session_store, Arc::clone(&metrics));
        let report = match explain(&runtime, &sessions, &query).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("gatehouse explain: {e}");
                return ExitCode::from(USAGE_ERROR);
            }
        };
        let output = if args.json {
            format!("{}\n", super::json(&report))
        } else {
            super::text(&report)
        };
        if crate::print_out(&output) != ExitCode::SUCCESS {
            return ExitCode::from(USAGE_ERROR);
        }
        if report.verdict.allowed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}

/// The config as `gatehouse check` validates it; with `--jwks`, every provider reads its keys
/// from that file instead of discovery or its own `jwks-file`.
fn load(path: &Path, jwks: Option<&Path>) -> Result<gatehouse_config::Config, String> {
    let mut config = gatehouse_config::load(path).map_err(|errors| {
        format!(
            "{errors}\n{}: {} error(s)",
            path.display(),
            errors.errors.len()
        )
    })?;
    if let Some(file) = jwks {
        if !file.is_file() {
            return Err(format!("--jwks: {} is not a readable file", file.display()));
        }
        for provider in &mut config.identity_providers {
            provider.jwks_file = Some(file.to_path_buf());
        }
    }
    crate::runtime::Runtime::validate(&config).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

/// Fetches the keys of the tenant's identity provider once, as the gateway's refresh schedule
/// does at start; a failure is said on stderr (the report then shows the tokens the gateway
/// would refuse without keys).
async fn fetch_keys(runtime: &Runtime, tenant: usize) {
    let Some(provider) = runtime.provider(tenant) else {
        return;
    };
    if let Err(e) = provider.verifier.refresh_keys().await {
        eprintln!(
            "gatehouse explain: the keys of identity provider {} could not be fetched: {e}",
            provider.definition.name
        );
    }
}

//! gatehouse configuration: the YAML file schema, `${VAR}` expansion, duration and size
//! parsing, and validation into a [`Config`] the rest of gatehouse can trust.
//!
//! Two layers: a serde file schema (`schema.rs`, kebab-case keys, unknown keys
//! rejected) and the runtime types (`model.rs`) that the gateway, policy and session crates use.
//! Every problem is collected, not just the first, and each error names the file, line and key
//! path, e.g. `gatehouse.yaml:42: tenants[0].routes[3].max-body-size: invalid size "10XB"
//! (expected e.g. 512, 16KiB, 10MiB)`.
//!
//! Paths in the config (`tls-cert`, `jwks-file`, ...) are taken as written: relative paths are
//! relative to the process's working directory.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checks;
mod compile;
mod error;
mod fallthrough;
mod model;
mod schema;
mod source;
mod units;
mod warnings;

use std::path::Path;

pub use compile::{
    anchored_pattern, default_security_headers, DEFAULT_LISTEN, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_REQUEST_ID_HEADER, DEFAULT_SECURITY_HEADERS, DEFAULT_TOKEN_CACHE_SIZE,
};
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AccessLogConfig, AccessLogFormat, AssertionAlgorithm, AssertionKey, Balance, Config, Cookie,
    CookieKey, Cors, Dpop, DpopMode, ForwardAuthHeaders, HealthCheck, IdentityAssertion,
    IdentityProvider, Login, OnUnavailable, RateLimit, RateLimitKey, ResourceMetadata, Route,
    SameSite, Secret, SessionStoreConfig, SessionStoreKind, Tenant, TokenEndpointAuthMethod,
    TracingConfig, Upstream, DEFAULT_DPOP_PROOF_WINDOW, DEFAULT_SAMPLING_RATIO,
    DEFAULT_SERVICE_NAME,
};
pub use units::{parse_duration, parse_size};

/// Reads and parses the config file at `path`, expanding `${NAME}` from the process
/// environment. An unreadable file is reported as a [`ConfigErrors`] naming the file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse(&source, &file_name, &|name| std::env::var(name).ok()),
        Err(e) => Err(ConfigErrors {
            errors: vec![ConfigError {
                file: file_name,
                line: None,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            }],
        }),
    }
}

/// Parses and validates config text. `file_name` is used in error messages only; `env` looks up
/// `${NAME}` references (return `None` for unset).
///
/// `${NAME}` may appear anywhere inside a string value; `${NAME:-default}` gives a default and
/// `$${` is a literal `${`. Returns every error found (ordered by line), or the validated config.
pub fn parse(
    source: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let positions = source::Positions::scan(source);
    let mut diag = source::Diag::new(file_name, &positions);
    let config = parse_into(source, env, &mut diag);
    if let Some(c) = config.as_ref().filter(|_| diag.errors.is_empty()) {
        fallthrough::warn(c, &mut diag);
    }
    let mut errors = diag.errors;
    match config {
        Some(mut c) if errors.is_empty() => {
            c.warnings = diag.warnings;
            c.warnings.sort_by_key(|w| w.line.unwrap_or(usize::MAX));
            Ok(c)
        }
        _ => {
            errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors { errors })
        }
    }
}

fn parse_into(
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diag: &mut source::Diag<'_>,
) -> Option<Config> {
    let mut root: serde_yaml::Value = match serde_yaml::from_str(source) {
        Ok(v) => v,
        Err(e) => {
            let duplicates = &diag.positions().duplicates;
            if e.to_string().starts_with("duplicate entry") && !duplicates.is_empty() {
                for (key, line, first) in duplicates.clone() {
                    diag.error_at(
                        Some(line),
                        &key,
                        format!("duplicate key (first given at line {first})"),
                    );
                }
            } else {
                let line = e.location().map(|l| l.line());
                diag.error_at(line, "", format!("invalid YAML: {e}"));
            }
            return None;
        }
    };
    if let Err(e) = root.apply_merge() {
        diag.error_at(None, "", format!("invalid YAML merge: {e}"));
        return None;
    }
    match root {
        serde_yaml::Value::Null => root = serde_yaml::Value::Mapping(Default::default()),
        serde_yaml::Value::Mapping(_) => {}
        _ => {
            diag.error_at(Some(1), "", "expected a mapping of keys at the top level");
            return None;
        }
    }
    source::expand_env(&mut root, "", env, diag);
    let file: schema::FileConfig = source::deserialize_all(root, diag)?;
    Some(compile::compile(file, diag))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dpop;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_providers;
#[cfg(test)]
mod tests_resource;
#[cfg(test)]
mod tests_tracing;
#[cfg(test)]
mod tests_upgrades;

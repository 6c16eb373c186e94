//! What `GET /readyz` on the admin listener answers.
//!
//! Ready means "this process can serve": the config is loaded, the listeners are up, and every
//! pool has finished its first health-check round, whatever the result (so a new pod takes
//! traffic only once it knows which targets answer; the round is bounded by the checks'
//! timeouts). After that the status stays 200: a tenant whose pools are all down or whose
//! identity provider is unreachable shows in `/metrics` and in `GET /readyz?verbose`, never in
//! the status, because a multi-tenant edge must not leave every tenant's load balancer because
//! one backend is down.
//!
//! `?verbose` adds one line per pool and per identity provider:
//!
//! ```text
//! ready
//! pool shop/app: up, 2/2 targets healthy
//! pool shop/reports: down, 0/1 targets healthy
//! identity-provider keycloak: down, no signing keys (last error: ...)
//! ```
//!
//! The state word after the colon is `up`, `down` or `pending` (first check not run yet).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::Runtime;

/// An error text longer than this is cut (a verbose line stays one readable line).
const MAX_ERROR_CHARS: usize = 300;

/// The state of one pool or provider, as the verbose lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Serving: a healthy target, or signing keys loaded.
    Up,
    /// Not serving: no healthy target, or no signing keys after a failed fetch.
    Down,
    /// Not known yet: the first health check or key fetch has not finished.
    Pending,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Pending => "pending",
        }
    }
}

/// One pool as `/readyz?verbose` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus<'a> {
    /// `tenant/upstream`.
    pub label: &'a str,
    /// Whether the first health-check round has finished.
    pub checked: bool,
    /// Targets that passed their last check.
    pub healthy: usize,
    /// Targets known (resolved).
    pub targets: usize,
}

impl PoolStatus<'_> {
    /// `up` with a healthy target, `down` without one, `pending` before the first round.
    pub fn state(&self) -> State {
        match (self.checked, self.healthy) {
            (false, _) => State::Pending,
            (true, 0) => State::Down,
            (true, _) => State::Up,
        }
    }

    /// `pool shop/app: up, 2/3 targets healthy`.
    pub fn line(&self) -> String {
        let detail = if self.checked {
            format!("{}/{} targets healthy", self.healthy, self.targets)
        } else {
            format!("first health check not finished, {} targets", self.targets)
        };
        format!("pool {}: {}, {detail}\n", self.label, self.state().as_str())
    }
}

/// One identity provider as `/readyz?verbose` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderStatus<'a> {
    /// The provider's name in the config.
    pub name: &'a str,
    /// Whether a key set is loaded (tokens can be verified).
    pub keys_loaded: bool,
    /// The last key fetch's error, `None` when it succeeded or none finished yet.
    pub last_error: Option<&'a str>,
}

impl ProviderStatus<'_> {
    /// `up` with keys (even when the latest refresh failed: the cached keys stay in use),
    /// `down` without keys after a failed fetch, `pending` before the first fetch finished.
    pub fn state(&self) -> State {
        match (self.keys_loaded, self.last_error) {
            (true, _) => State::Up,
            (false, Some(_)) => State::Down,
            (false, None) => State::Pending,
        }
    }

    /// `identity-provider keycloak: up, signing keys loaded`, with the last error when any.
    pub fn line(&self) -> String {
        let keys = if self.keys_loaded {
            "signing keys loaded"
        } else {
            "no signing keys"
        };
        let error = match self.last_error {
            Some(e) if self.keys_loaded => format!(" (last refresh failed: {})", one_line(e)),
            Some(e) => format!(" (last error: {})", one_line(e)),
            None => String::new(),
        };
        format!(
            "identity-provider {}: {}, {keys}{error}\n",
            self.name,
            self.state().as_str()
        )
    }
}

/// `text` on one line (control characters as spaces), cut to [`MAX_ERROR_CHARS`].
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        out.push_str("...");
    }
    out
}

/// The readiness latch: once every pool has finished a first health-check round, the process
/// stays ready (a reload's new pools do not make it unready while they are checked).
#[derive(Default)]
pub struct Readiness {
    started: AtomicBool,
}

impl Readiness {
    /// The status and body of `/readyz` (`verbose`: with one line per pool and provider).
    pub fn answer(&self, runtime: &Runtime, verbose: bool) -> (u16, String) {
        let pools: Vec<PoolStatus<'_>> = runtime
            .all_pools()
            .map(|p| PoolStatus {
                label: &p.label,
                checked: p.checked(),
                healthy: p.healthy_targets(),
                targets: p.target_count(),
            })
            .collect();
        if !self.started.load(Ordering::Acquire) && pools.iter().all(|p| p.checked) {
            self.started.store(true, Ordering::Release);
        }
        let started = self.started.load(Ordering::Acquire);
        let mut body = String::from(if started {
            "ready\n"
        } else {
            "starting: first health checks not finished\n"
        });
        if verbose || !started {
            for pool in &pools {
                if verbose || !pool.checked {
                    body.push_str(&pool.line());
                }
            }
        }
        if verbose {
            let mut providers: Vec<_> = runtime.providers.values().collect();
            providers.sort_by(|a, b| a.definition.name.cmp(&b.definition.name));
            for provider in providers {
                let last_error = provider.last_refresh_error();
                let status = ProviderStatus {
                    name: &provider.definition.name,
                    keys_loaded: provider.verifier.keys_loaded(),
                    last_error: last_error.as_deref().map(String::as_str),
                };
                body.push_str(&status.line());
            }
        }
        (if started { 200 } else { 503 }, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_lines_name_the_pool_its_state_and_counts() {
        let pool = |checked, healthy, targets| PoolStatus {
            label: "shop/app",
            checked,
            healthy,
            targets,
        };
        assert_eq!(
            pool(true, 2, 3).line(),
            "pool shop/app: up, 2/3 targets healthy\n"
        );
        assert_eq!(
            pool(true, 0, 1).line(),
            "pool shop/app: down, 0/1 targets healthy\n"
        );
        assert_eq!(pool(true, 0, 0).state(), State::Down);
        // Pingora counts unchecked targets as healthy: the count does not make it `up`.
        assert_eq!(
            pool(false, 2, 2).line(),
            "pool shop/app: pending, first health check not finished, 2 targets\n"
        );
    }

    #[test]
    fn provider_lines_say_whether_keys_are_loaded_and_the_last_error() {
        let p = |keys_loaded, last_error| ProviderStatus {
            name: "kc",
            keys_loaded,
            last_error,
        };
        assert_eq!(
            p(true, None).line(),
            "identity-provider kc: up, signing keys loaded\n"
        );
        assert_eq!(
            p(true, Some("timeout")).line(),
            "identity-provider kc: up, signing keys loaded (last refresh failed: timeout)\n"
        );
        assert_eq!(
            p(false, Some("connection refused\nsecond line")).line(),
            "identity-provider kc: down, no signing keys (last error: connection refused second line)\n"
        );
        assert_eq!(
            p(false, None).line(),
            "identity-provider kc: pending, no signing keys\n"
        );
        let long = "x".repeat(MAX_ERROR_CHARS + 10);
        let line = p(false, Some(&long)).line();
        assert!(line.ends_with("...)\n"), "{line}");
        assert_eq!(line.matches('x').count(), MAX_ERROR_CHARS);
    }
}

//! The child spans of a traced request that its own code cannot hand over: token
//! verification, identity-provider calls and session-store calls happen deep inside the
//! session crate, which knows nothing of the gateway. While a traced request's
//! `request_filter` runs, a task-local list collects them; the session crate's observers
//! ([`TracedIdp`], [`TracedStore`], installed only when tracing is configured) add to it when
//! they are called inside that scope, and do nothing (one task-local lookup) outside it.
//! Untraced requests never enter a scope.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_session::http::{IdpCall, IdpObserver, IdpOutcome};
use gatehouse_session::store::{CacheLookup, StoreEvent, StoreObserver, StoreOp, StoreOutcome};

/// What a child span was.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildKind {
    /// A bearer token verified without the verified-token cache (or refused): `result` is
    /// `ok` or the refusal's reason.
    Verify {
        /// The identity provider's name.
        provider: String,
        /// `ok` or the `TokenError` reason.
        result: &'static str,
    },
    /// A call to an identity provider.
    Idp {
        /// The identity provider's name.
        provider: Arc<str>,
        /// Discovery, JWKS, token, refresh or introspection.
        call: IdpCall,
        /// How it ended.
        outcome: IdpOutcome,
    },
    /// A session-store operation.
    Store {
        /// The operation.
        op: StoreOp,
        /// How it ended.
        outcome: StoreOutcome,
    },
}

/// One child span: what and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// What it was.
    pub kind: ChildKind,
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
}

impl Child {
    /// A child that ended now after `elapsed`.
    fn ended(kind: ChildKind, elapsed: Duration) -> Child {
        let end = Instant::now();
        Child {
            kind,
            start: end.checked_sub(elapsed).unwrap_or(end),
            end,
        }
    }
}

tokio::task_local! {
    /// The traced request's children so far, while its `request_filter` runs.
    static CHILDREN: RefCell<Vec<Child>>;
}

/// Runs `future` collecting the child spans reported while it runs; returns its output and
/// them.
pub async fn collect<F: Future>(future: F) -> (F::Output, Vec<Child>) {
    let mut scoped = std::pin::pin!(CHILDREN.scope(RefCell::new(Vec::new()), future));
    let output = scoped.as_mut().await;
    let children = scoped
        .as_mut()
        .take_value()
        .map(RefCell::into_inner)
        .unwrap_or_default();
    (output, children)
}

/// Adds a child to the current traced request, if any (`kind` is only built then).
fn record(kind: impl FnOnce() -> ChildKind, elapsed: Duration) {
    let _ = CHILDREN.try_with(|children| {
        if let Ok(mut children) = children.try_borrow_mut() {
            children.push(Child::ended(kind(), elapsed));
        }
    });
}

/// Records a token verification that started at `started` (a cache miss, or a refusal).
pub fn verification(provider: &str, result: &'static str, started: Instant) {
    record(
        || ChildKind::Verify {
            provider: provider.to_string(),
            result,
        },
        started.elapsed(),
    );
}

/// Set once at start when `tracing` is configured: the observers built after it record spans.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes [`idp_observer`] and [`store_observer`] add span recording (called once, at start,
/// when `tracing` is configured, before the runtime is built).
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// `inner`, wrapped to also record spans when tracing is enabled.
pub fn idp_observer(inner: Arc<dyn IdpObserver>, provider: &str) -> Arc<dyn IdpObserver> {
    if !ENABLED.load(Ordering::Acquire) {
        return inner;
    }
    Arc::new(TracedIdp {
        inner,
        provider: Arc::from(provider),
    })
}

/// `inner`, wrapped to also record spans when tracing is enabled.
pub fn store_observer(inner: Arc<dyn StoreObserver>) -> Arc<dyn StoreObserver> {
    if !ENABLED.load(Ordering::Acquire) {
        return inner;
    }
    Arc::new(TracedStore { inner })
}

/// An identity provider's observer that also records each call as a child span.
pub struct TracedIdp {
    inner: Arc<dyn IdpObserver>,
    provider: Arc<str>,
}

impl IdpObserver for TracedIdp {
    fn call(&self, call: IdpCall, outcome: IdpOutcome, elapsed: Duration) {
        self.inner.call(call, outcome, elapsed);
        record(
            || ChildKind::Idp {
                provider: Arc::clone(&self.provider),
                call,
                outcome,
            },
            elapsed,
        );
    }
}

/// The session store's observer that also records each operation as a child span.
pub struct TracedStore {
    inner: Arc<dyn StoreObserver>,
}

impl StoreObserver for TracedStore {
    fn command(&self, op: StoreOp, outcome: StoreOutcome, elapsed: Duration) {
        self.inner.command(op, outcome, elapsed);
        record(|| ChildKind::Store { op, outcome }, elapsed);
    }

    fn cache_lookup(&self, lookup: CacheLookup) {
        self.inner.cache_lookup(lookup);
    }

    fn event(&self, event: StoreEvent) {
        self.inner.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl IdpObserver for Nothing {
        fn call(&self, _: IdpCall, _: IdpOutcome, _: Duration) {}
    }

    #[tokio::test]
    async fn children_are_collected_inside_a_scope_only() {
        let observer = TracedIdp {
            inner: Arc::new(Nothing),
            provider: Arc::from("kc"),
        };
        observer.call(IdpCall::Jwks, IdpOutcome::Ok, Duration::from_millis(1));
        let ((), children) = collect(async {
            observer.call(
                IdpCall::Token,
                IdpOutcome::Status5xx,
                Duration::from_millis(3),
            );
            tokio::task::yield_now().await;
            verification("kc", "expired", Instant::now());
        })
        .await;
        assert_eq!(children.len(), 2, "{children:?}");
        assert_eq!(
            children[0].kind,
            ChildKind::Idp {
                provider: Arc::from("kc"),
                call: IdpCall::Token,
                outcome: IdpOutcome::Status5xx
            }
        );
        assert!(children[0].end - children[0].start >= Duration::from_millis(3));
        assert_eq!(
            children[1].kind,
            ChildKind::Verify {
                provider: "kc".to_string(),
                result: "expired"
            }
        );
        // Outside the scope nothing is kept (and nothing fails).
        verification("kc", "ok", Instant::now());
    }
}

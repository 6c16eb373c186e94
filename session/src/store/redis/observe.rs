//! What the Redis store reports: fred's errors mapped to [`StoreOutcome`]s, fred's connection
//! events forwarded as [`StoreEvent`]s, and the paced `SCAN` that counts sessions.

use std::time::{Duration, Instant};

use fred::prelude::{Error as FredError, ErrorKind, EventInterface, Pool};
use fred::types::scan::Scanner;
use futures_util::StreamExt;

use super::super::{Probe, StoreError, StoreEvent, StoreOp, StoreOutcome};

/// Why a Redis store operation failed, before it becomes a [`StoreError`]: the client's error
/// keeps its kind for the metrics.
#[derive(Debug)]
pub(super) enum Failure {
    /// fred returned an error.
    Redis(FredError),
    /// A record could not be encoded or decoded.
    Corrupt,
}

impl Failure {
    /// The metric outcome of this failure.
    pub(super) fn outcome(&self) -> StoreOutcome {
        match self {
            Failure::Redis(e) => classify(e.kind(), e.details()),
            Failure::Corrupt => StoreOutcome::Corrupt,
        }
    }
}

impl From<FredError> for Failure {
    fn from(e: FredError) -> Failure {
        tracing::debug!(error.kind = ?e.kind(), error = %e.details(), "session store command failed");
        Failure::Redis(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> StoreError {
        match f {
            Failure::Redis(e) if *e.kind() == ErrorKind::Parse => StoreError::Corrupt,
            Failure::Redis(_) => StoreError::Unavailable,
            Failure::Corrupt => StoreError::Corrupt,
        }
    }
}

/// Runs one operation, reports its latency and outcome to `probe`, and maps its failure.
pub(super) async fn timed<T>(
    probe: &Probe,
    op: StoreOp,
    run: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = run.await;
    let outcome = result
        .as_ref()
        .map_or_else(Failure::outcome, |_| StoreOutcome::Ok);
    probe.command(op, outcome, started);
    result.map_err(StoreError::from)
}

/// Maps a fred error to an outcome. fred follows `MOVED`/`ASK` itself (and reports neither),
/// so `Cluster` errors that reach the caller are `CLUSTERDOWN` or a redirection it gave up on.
pub(super) fn classify(kind: &ErrorKind, details: &str) -> StoreOutcome {
    match kind {
        ErrorKind::Timeout => StoreOutcome::Timeout,
        ErrorKind::IO | ErrorKind::Canceled => StoreOutcome::ConnectionLost,
        ErrorKind::Cluster if details.contains("CLUSTERDOWN") => StoreOutcome::ClusterDown,
        ErrorKind::Cluster => StoreOutcome::Redirect,
        ErrorKind::Routing => StoreOutcome::Routing,
        ErrorKind::Parse => StoreOutcome::Corrupt,
        // A server error reply travels as Unknown with the reply's text.
        _ if details.starts_with("CLUSTERDOWN") => StoreOutcome::ClusterDown,
        _ => StoreOutcome::Other,
    }
}

/// Forwards every pooled client's connection events to `probe`; the tasks end when the
/// returned handles are aborted (with the store).
pub(super) fn spawn_event_listeners(
    pool: &Pool,
    probe: &Probe,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for client in pool.clients() {
        let (p1, p2, p3, p4) = (probe.clone(), probe.clone(), probe.clone(), probe.clone());
        let mut reconnects = client.reconnect_rx();
        handles.push(tokio::spawn(async move {
            while reconnects.recv().await.is_ok() {
                p1.event(StoreEvent::Reconnect);
            }
        }));
        let mut changes = client.cluster_change_rx();
        handles.push(tokio::spawn(async move {
            while changes.recv().await.is_ok() {
                p2.event(StoreEvent::ClusterChange);
            }
        }));
        let mut errors = client.error_rx();
        handles.push(tokio::spawn(async move {
            while errors.recv().await.is_ok() {
                p3.event(StoreEvent::ConnectionError);
            }
        }));
        let mut unresponsive = client.unresponsive_rx();
        handles.push(tokio::spawn(async move {
            while unresponsive.recv().await.is_ok() {
                p4.event(StoreEvent::Unresponsive);
            }
        }));
    }
    handles
}

/// Keys asked for per `SCAN` page.
const SCAN_PAGE: u32 = 1000;
/// Pause between two `SCAN` pages: at most 100 pages (about 100k keys) a second per count.
const SCAN_PAUSE: Duration = Duration::from_millis(10);
/// Pages one count reads at most (about 10M keys); past it the count is a lower bound.
const SCAN_MAX_PAGES: usize = 10_000;

/// `*`, `?`, `[`, `]` and `\` escaped, so a key prefix is matched literally by `SCAN MATCH`.
pub(super) fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Counts the keys matching `pattern` on every master (`SCAN` per node in a cluster), paced
/// by [`SCAN_PAUSE`] and bounded by [`SCAN_MAX_PAGES`].
pub(super) async fn count_keys(
    pool: &Pool,
    pattern: String,
    clustered: bool,
) -> Result<usize, FredError> {
    let client = pool.next();
    let mut pages = if clustered {
        client.scan_cluster(pattern, Some(SCAN_PAGE), None).boxed()
    } else {
        client.scan(pattern, Some(SCAN_PAGE), None).boxed()
    };
    let (mut count, mut read) = (0usize, 0usize);
    while let Some(page) = pages.next().await {
        let mut page = page?;
        count += page.take_results().map_or(0, |keys| keys.len());
        read += 1;
        if read >= SCAN_MAX_PAGES {
            tracing::warn!(
                pages = read,
                count,
                "session count stopped at its page limit; the gauge is a lower bound"
            );
            page.cancel();
            break;
        }
        page.next();
        tokio::time::sleep(SCAN_PAUSE).await;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fred_errors_map_to_outcomes() {
        assert_eq!(
            classify(&ErrorKind::Timeout, "Request timed out."),
            StoreOutcome::Timeout
        );
        assert_eq!(
            classify(&ErrorKind::IO, "Connection reset"),
            StoreOutcome::ConnectionLost
        );
        assert_eq!(
            classify(&ErrorKind::Canceled, "Canceled."),
            StoreOutcome::ConnectionLost
        );
        assert_eq!(
            classify(&ErrorKind::Cluster, "CLUSTERDOWN The cluster is down"),
            StoreOutcome::ClusterDown
        );
        assert_eq!(
            classify(&ErrorKind::Unknown, "CLUSTERDOWN Hash slot not served"),
            StoreOutcome::ClusterDown
        );
        assert_eq!(
            classify(&ErrorKind::Cluster, "MOVED 3999 127.0.0.1:7002"),
            StoreOutcome::Redirect
        );
        assert_eq!(
            classify(&ErrorKind::Routing, "Too many redirections."),
            StoreOutcome::Routing
        );
        assert_eq!(
            classify(&ErrorKind::Parse, "bad frame"),
            StoreOutcome::Corrupt
        );
        assert_eq!(classify(&ErrorKind::Auth, "WRONGPASS"), StoreOutcome::Other);
    }

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(glob_escape("gatehouse:"), "gatehouse:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn failures_become_store_errors() {
        let parse = FredError::new(ErrorKind::Parse, "x");
        assert_eq!(StoreError::from(Failure::Redis(parse)), StoreError::Corrupt);
        let timeout = FredError::new(ErrorKind::Timeout, "x");
        assert_eq!(
            StoreError::from(Failure::Redis(timeout)),
            StoreError::Unavailable
        );
        assert_eq!(StoreError::from(Failure::Corrupt), StoreError::Corrupt);
    }
}

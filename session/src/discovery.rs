//! One OIDC discovery document per identity provider, fetched single-flight and shared by the
//! token verifier (`jwks_uri`), introspection (`introspection_endpoint`) and the login client
//! (authorization, token, end-session and userinfo endpoints).
//!
//! The document is fetched over [`crate::http`]'s client (no redirects, bounded body, https
//! unless `allow-insecure-http`), its `issuer` must equal the configured one, and each reader
//! takes the part it needs: a document without an `authorization_endpoint` still gives the
//! verifier its keys, and one whose `jwks_uri` is unusable still serves the login flow.
//!
//! Fetch rules: the verifier's scheduled key refresh fetches the document every time
//! ([`ProviderDiscovery::refresh`]); everyone else uses the last fetched document and fetches
//! only when it lacks what they need or was marked stale ([`ProviderDiscovery::get_with`]).
//! Concurrent fetches share one request, and after a fetch the next on-demand one waits
//! [`DISCOVERY_RETRY_INTERVAL`], so an IdP outage costs one request per interval rather than
//! one per login or introspection. A failed fetch keeps the last good document in use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use gatehouse_config::IdentityProvider;
use reqwest::Url;
use serde_json::Value;

use crate::error::BuildError;
use crate::http::{fetchable_url, get_limited, CallTimer, IdpCall, IdpObserver, IdpOutcome};

/// After a discovery fetch, on-demand callers within this interval get its outcome without a
/// new request, so an IdP outage costs one request per interval rather than one per login.
pub const DISCOVERY_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Why discovery gave nothing usable. `Display` is the message logs and `/readyz` show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched: a refused URL, a network error, a non-2xx status
    /// or a body over the limit.
    #[error("{0}")]
    Fetch(String),
    /// The document is not JSON or names another issuer (or none).
    #[error("{0}")]
    Document(String),
    /// The document lacks an entry the caller needs, or names an unusable URL there.
    #[error("{0}")]
    Entry(String),
}

/// The provider endpoints the login flow uses, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `issuer` (equal to the configured issuer; checked).
    pub issuer: String,
    /// `authorization_endpoint` (required).
    pub authorization_endpoint: String,
    /// `token_endpoint` (required).
    pub token_endpoint: String,
    /// `end_session_endpoint` (RP-initiated logout), if the provider has one.
    pub end_session_endpoint: Option<String>,
    /// `userinfo_endpoint`, if the provider has one.
    pub userinfo_endpoint: Option<String>,
    /// `jwks_uri`, if given.
    pub jwks_uri: Option<String>,
}

/// What gatehouse keeps of one fetched discovery document, each reader's part checked once.
#[derive(Debug)]
pub struct Document {
    jwks_uri: Result<Arc<String>, DiscoveryError>,
    introspection_endpoint: Option<Arc<String>>,
    login: Result<Arc<Endpoints>, DiscoveryError>,
}

impl Document {
    /// The `jwks_uri`: required, http(s), and https unless `allow-insecure-http`.
    pub fn jwks_uri(&self) -> Result<Arc<String>, DiscoveryError> {
        self.jwks_uri.clone()
    }

    /// The `introspection_endpoint` (RFC 8414 / 7662) when the document names a fetchable
    /// http(s) URL; a document without one keeps the previous document's.
    pub fn introspection_endpoint(&self) -> Result<Arc<String>, DiscoveryError> {
        self.introspection_endpoint.clone().ok_or_else(|| {
            DiscoveryError::Entry("the discovery document has no introspection_endpoint".into())
        })
    }

    /// The login flow's endpoints: `authorization_endpoint` and `token_endpoint` required;
    /// every endpoint named must be http(s), and https unless `allow-insecure-http`.
    pub fn login_endpoints(&self) -> Result<Arc<Endpoints>, DiscoveryError> {
        self.login.clone()
    }

    /// Reads a discovery document fetched from `url` for `issuer`.
    fn parse(
        bytes: &[u8],
        url: &str,
        issuer: &str,
        allow_http: bool,
    ) -> Result<Document, DiscoveryError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            DiscoveryError::Document(format!("discovery document {url} is not JSON: {e}"))
        })?;
        match doc.get("issuer").and_then(Value::as_str) {
            Some(found) if found == issuer => {}
            Some(found) => {
                return Err(DiscoveryError::Document(format!(
                    "discovery document {url} names issuer {found:?}, expected {issuer:?}"
                )))
            }
            None => {
                return Err(DiscoveryError::Document(format!(
                    "discovery document {url} has no issuer"
                )))
            }
        }
        Ok(Document {
            jwks_uri: jwks_uri(&doc, url, allow_http)
                .map(Arc::new)
                .map_err(DiscoveryError::Entry),
            introspection_endpoint: introspection_endpoint(&doc, url, allow_http).map(Arc::new),
            login: login_endpoints(&doc, url, issuer, allow_http)
                .map(Arc::new)
                .map_err(DiscoveryError::Entry),
        })
    }
}

fn jwks_uri(doc: &Value, url: &str, allow_http: bool) -> Result<String, String> {
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("discovery document {url} has no jwks_uri"))?;
    if !is_http_url(jwks_uri) {
        return Err(format!("jwks_uri {jwks_uri:?} is not an http(s) URL"));
    }
    fetchable_url(jwks_uri, allow_http)?;
    Ok(jwks_uri.to_string())
}

/// An unusable `introspection_endpoint` is ignored (with a warning), never fatal: the document
/// still serves keys and login.
fn introspection_endpoint(doc: &Value, url: &str, allow_http: bool) -> Option<String> {
    match doc.get("introspection_endpoint") {
        Some(Value::String(endpoint)) if is_http_url(endpoint) => {
            match fetchable_url(endpoint, allow_http) {
                Ok(()) => Some(endpoint.clone()),
                Err(error) => {
                    tracing::warn!(discovery_url = %url, %error, "ignoring the introspection_endpoint");
                    None
                }
            }
        }
        None | Some(Value::Null) => None,
        Some(other) => {
            tracing::warn!(discovery_url = %url, endpoint = %other, "ignoring an introspection_endpoint that is not an http(s) URL");
            None
        }
    }
}

fn login_endpoints(
    doc: &Value,
    url: &str,
    issuer: &str,
    allow_http: bool,
) -> Result<Endpoints, String> {
    // Every endpoint named here is either fetched by the gateway (token: it returns the
    // tokens a session is built on) or sent to the browser; none may be plain http unless
    // the provider allows it.
    let endpoint = |name: &str| -> Result<Option<String>, String> {
        let found = http_url(doc, name)?;
        if let Some(u) = &found {
            fetchable_url(u, allow_http).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(found)
    };
    let required = |name: &str| -> Result<String, String> {
        endpoint(name)?.ok_or_else(|| format!("discovery document {url} has no {name}"))
    };
    Ok(Endpoints {
        issuer: issuer.to_owned(),
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        end_session_endpoint: endpoint("end_session_endpoint")?,
        userinfo_endpoint: endpoint("userinfo_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
    })
}

fn http_url(doc: &Value, name: &str) -> Result<Option<String>, String> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match Url::parse(s) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(s.clone())),
            _ => Err(format!("{name} {s:?} is not an http(s) URL")),
        },
        Some(_) => Err(format!("{name} is not a string")),
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// The last fetch: when, and its error if it failed.
type LastFetch = Option<(Instant, Option<DiscoveryError>)>;

/// The discovery document of one identity provider and the HTTP client every request to that
/// provider goes through. Shared (`Arc`) by its verifier, introspection and login client.
pub struct ProviderDiscovery {
    url: String,
    issuer: String,
    allow_insecure_http: bool,
    http: reqwest::Client,
    document: ArcSwapOption<Document>,
    /// Set when a reader saw the provider fail in a way that suggests it moved: the next
    /// [`get_with`](Self::get_with) fetches again.
    stale: AtomicBool,
    /// Held while fetching (single flight); the last fetch's time and error.
    last: tokio::sync::Mutex<LastFetch>,
    /// Told of every call to this provider (discovery, keys, token, introspection).
    observer: Option<Arc<dyn IdpObserver>>,
}

impl std::fmt::Debug for ProviderDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderDiscovery")
            .field("url", &self.url)
            .field("fetched", &self.document.load().is_some())
            .finish_non_exhaustive()
    }
}

impl ProviderDiscovery {
    /// The discovery of `provider` (its `discovery-url`, `issuer`, `allow-insecure-http`) with
    /// its own HTTP client. Nothing is fetched here.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (TLS backend initialisation).
    pub fn new(provider: &IdentityProvider) -> Result<ProviderDiscovery, BuildError> {
        let http = crate::http::client().map_err(|e| BuildError::HttpClient {
            provider: provider.name.clone(),
            reason: e.to_string(),
        })?;
        Ok(ProviderDiscovery {
            url: provider.discovery_url.clone(),
            issuer: provider.issuer.clone(),
            allow_insecure_http: provider.allow_insecure_http,
            http,
            document: ArcSwapOption::empty(),
            stale: AtomicBool::new(false),
            last: tokio::sync::Mutex::new(None),
            observer: None,
        })
    }

    /// This discovery with `observer` told of every call made to the provider through it
    /// (discovery, JWKS, token, refresh, introspection): kind, outcome, latency.
    pub fn with_observer(mut self, observer: Arc<dyn IdpObserver>) -> ProviderDiscovery {
        self.observer = Some(observer);
        self
    }

    /// Starts timing one call to this provider.
    pub(crate) fn timer(&self, kind: IdpCall) -> CallTimer<'_> {
        CallTimer::start(self.observer.as_ref(), kind)
    }

    /// The HTTP client of this provider ([`crate::http::client`]).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The last successfully fetched document, without fetching.
    pub fn document(&self) -> Option<Arc<Document>> {
        self.document.load_full()
    }

    /// Fetches the document now (waiting for a fetch already under way first) and keeps it;
    /// on failure the last good document stays in use.
    pub async fn refresh(&self) -> Result<Arc<Document>, DiscoveryError> {
        let mut last = self.last.lock().await;
        self.fetch(&mut last).await
    }

    /// What `pick` takes from the document: from the last one when it has it (and is not
    /// stale), else from a fresh fetch (single flight; within [`DISCOVERY_RETRY_INTERVAL`] of
    /// the last fetch, that fetch's outcome stands).
    pub async fn get_with<T>(
        &self,
        pick: impl Fn(&Document) -> Result<T, DiscoveryError>,
    ) -> Result<T, DiscoveryError> {
        if let Some(found) = self.pick_current(&pick) {
            return Ok(found);
        }
        let mut last = self.last.lock().await;
        if let Some(found) = self.pick_current(&pick) {
            return Ok(found); // someone else fetched while we waited
        }
        let stale = self.stale.load(Ordering::Acquire);
        if let Some((at, error)) = last.as_ref() {
            if at.elapsed() < DISCOVERY_RETRY_INTERVAL {
                match (error, self.document.load_full()) {
                    (Some(error), _) => return Err(error.clone()),
                    // A successful fetch before the stale mark does not count.
                    (None, Some(doc)) if !stale => return pick(&doc),
                    _ => {}
                }
            }
        }
        let doc = self.fetch(&mut last).await?;
        pick(&doc)
    }

    /// Marks the document stale: the next [`get_with`](Self::get_with) fetches it again
    /// (readers that use [`document`](Self::document) keep it meanwhile).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    fn pick_current<T>(&self, pick: &impl Fn(&Document) -> Result<T, DiscoveryError>) -> Option<T> {
        if self.stale.load(Ordering::Acquire) {
            return None;
        }
        self.document
            .load()
            .as_deref()
            .and_then(|doc| pick(doc).ok())
    }

    /// One fetch, with the single-flight lock held.
    async fn fetch(&self, last: &mut LastFetch) -> Result<Arc<Document>, DiscoveryError> {
        let result = self.fetch_document().await;
        match result {
            Ok(mut doc) => {
                if doc.introspection_endpoint.is_none() {
                    // A document that stops naming the endpoint keeps the known one.
                    doc.introspection_endpoint = self
                        .document
                        .load()
                        .as_ref()
                        .and_then(|old| old.introspection_endpoint.clone());
                }
                let doc = Arc::new(doc);
                self.document.store(Some(Arc::clone(&doc)));
                self.stale.store(false, Ordering::Release);
                *last = Some((Instant::now(), None));
                Ok(doc)
            }
            Err(error) => {
                tracing::debug!(discovery_url = %self.url, %error, "discovery failed");
                *last = Some((Instant::now(), Some(error.clone())));
                Err(error)
            }
        }
    }

    async fn fetch_document(&self) -> Result<Document, DiscoveryError> {
        let allow_http = self.allow_insecure_http;
        fetchable_url(&self.url, allow_http).map_err(DiscoveryError::Fetch)?;
        let timer = self.timer(IdpCall::Discovery);
        let bytes = match get_limited(&self.http, &self.url).await {
            Ok(bytes) => bytes,
            Err(e) => {
                timer.finish(e.outcome);
                return Err(DiscoveryError::Fetch(e.into()));
            }
        };
        let doc = Document::parse(&bytes, &self.url, &self.issuer, allow_http);
        timer.finish(match doc {
            Ok(_) => IdpOutcome::Ok,
            Err(_) => IdpOutcome::Invalid,
        });
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://idp/.well-known/openid-configuration";
    const ISSUER: &str = "https://idp";

    fn parse(json: &str, allow_http: bool) -> Result<Document, DiscoveryError> {
        Document::parse(json.as_bytes(), URL, ISSUER, allow_http)
    }

    #[test]
    fn the_issuer_must_match() {
        let err = parse(r#"{"issuer":"https://other"}"#, false).expect_err("other issuer");
        assert!(matches!(&err, DiscoveryError::Document(m) if m.contains("names issuer")));
        assert!(matches!(
            parse("{}", false),
            Err(DiscoveryError::Document(_))
        ));
        assert!(matches!(
            parse("nope", false),
            Err(DiscoveryError::Document(_))
        ));
    }

    #[test]
    fn each_reader_takes_its_part() {
        let doc = parse(
            r#"{"issuer":"https://idp","jwks_uri":"https://idp/keys",
                "authorization_endpoint":"https://idp/auth"}"#,
            false,
        )
        .expect("document");
        assert_eq!(doc.jwks_uri().expect("jwks").as_str(), "https://idp/keys");
        let login = doc.login_endpoints().expect_err("no token_endpoint");
        assert!(
            login.to_string().contains("has no token_endpoint"),
            "{login}"
        );
        assert!(doc.introspection_endpoint().is_err());

        let doc = parse(
            r#"{"issuer":"https://idp","authorization_endpoint":"https://idp/auth",
                "token_endpoint":"https://idp/token","end_session_endpoint":"http://idp/out",
                "introspection_endpoint":"https://idp/introspect"}"#,
            false,
        )
        .expect("document");
        assert!(doc
            .jwks_uri()
            .expect_err("none")
            .to_string()
            .contains("no jwks_uri"));
        let login = doc.login_endpoints().expect_err("plain http");
        assert!(
            login
                .to_string()
                .starts_with("end_session_endpoint: refusing"),
            "{login}"
        );
        assert_eq!(
            doc.introspection_endpoint().expect("endpoint").as_str(),
            "https://idp/introspect"
        );
    }

    #[test]
    fn unusable_urls() {
        let doc = parse(
            r#"{"issuer":"https://idp","jwks_uri":"ftp://idp/keys","token_endpoint":7,
                "authorization_endpoint":"https://idp/auth",
                "introspection_endpoint":"http://idp/introspect"}"#,
            false,
        )
        .expect("document");
        assert!(doc
            .jwks_uri()
            .expect_err("ftp")
            .to_string()
            .contains("not an http(s) URL"));
        let login = doc.login_endpoints().expect_err("not a string");
        assert_eq!(login.to_string(), "token_endpoint is not a string");
        assert!(doc.introspection_endpoint().is_err(), "plain http ignored");

        let allowed = parse(
            r#"{"issuer":"https://idp","jwks_uri":"http://idp/keys",
                "introspection_endpoint":"http://idp/introspect"}"#,
            true,
        )
        .expect("document");
        assert!(allowed.jwks_uri().is_ok() && allowed.introspection_endpoint().is_ok());
    }
}

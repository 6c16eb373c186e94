//! The one HTTP client shape gatehouse talks to identity providers with: fixed timeouts, no
//! redirects, https unless a provider allows plain http, bounded bodies; and what every call
//! reports ([`IdpObserver`]: its kind, outcome and latency).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A kind of call to an identity provider. There is no end-session kind: RP-initiated logout
/// redirects the browser to the provider; gatehouse itself never calls that endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdpCall {
    /// The discovery document (`.well-known/openid-configuration`).
    Discovery,
    /// The signing keys (`jwks_uri`).
    Jwks,
    /// The token endpoint with a login's authorization code.
    Token,
    /// The token endpoint with a session's refresh token.
    Refresh,
    /// The RFC 7662 introspection endpoint.
    Introspection,
}

impl IdpCall {
    /// Every kind, in label order.
    pub const ALL: [IdpCall; 5] = [
        IdpCall::Discovery,
        IdpCall::Jwks,
        IdpCall::Token,
        IdpCall::Refresh,
        IdpCall::Introspection,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpCall::Discovery => "discovery",
            IdpCall::Jwks => "jwks",
            IdpCall::Token => "token",
            IdpCall::Refresh => "refresh",
            IdpCall::Introspection => "introspection",
        }
    }

    /// The position in [`IdpCall::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a call to an identity provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdpOutcome {
    /// A 2xx answer gatehouse could use.
    Ok,
    /// No answer within [`FETCH_TIMEOUT`].
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The connection failed while sending or reading.
    Network,
    /// A 4xx answer (a refused grant, bad client credentials, ...).
    Status4xx,
    /// A 5xx answer: the provider is failing.
    Status5xx,
    /// Any other non-2xx status (a redirect, which is never followed).
    StatusOther,
    /// A 2xx answer gatehouse could not use: not JSON, another issuer, no usable key, a body
    /// over [`MAX_DOCUMENT_BYTES`].
    Invalid,
}

impl IdpOutcome {
    /// Every outcome, in label order.
    pub const ALL: [IdpOutcome; 8] = [
        IdpOutcome::Ok,
        IdpOutcome::Timeout,
        IdpOutcome::Connect,
        IdpOutcome::Network,
        IdpOutcome::Status4xx,
        IdpOutcome::Status5xx,
        IdpOutcome::StatusOther,
        IdpOutcome::Invalid,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpOutcome::Ok => "ok",
            IdpOutcome::Timeout => "timeout",
            IdpOutcome::Connect => "connect_error",
            IdpOutcome::Network => "network_error",
            IdpOutcome::Status4xx => "status_4xx",
            IdpOutcome::Status5xx => "status_5xx",
            IdpOutcome::StatusOther => "status_other",
            IdpOutcome::Invalid => "invalid_response",
        }
    }

    /// The position in [`IdpOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The outcome of a request that got no response.
    pub fn of_send_error(e: &reqwest::Error) -> IdpOutcome {
        if e.is_timeout() {
            IdpOutcome::Timeout
        } else if e.is_connect() {
            IdpOutcome::Connect
        } else {
            IdpOutcome::Network
        }
    }

    /// The outcome of a response's status (2xx is [`IdpOutcome::Ok`] until its body says
    /// otherwise).
    pub fn of_status(status: reqwest::StatusCode) -> IdpOutcome {
        match status.as_u16() {
            200..=299 => IdpOutcome::Ok,
            400..=499 => IdpOutcome::Status4xx,
            500..=599 => IdpOutcome::Status5xx,
            _ => IdpOutcome::StatusOther,
        }
    }
}

/// Receives one provider's call reports. Implementations must not block.
pub trait IdpObserver: Send + Sync {
    /// One call of `kind` ended with `outcome` after `elapsed`.
    fn call(&self, kind: IdpCall, outcome: IdpOutcome, elapsed: Duration);
}

/// One call being timed; [`CallTimer::finish`] reports it (a timer dropped unfinished, its
/// caller gone, reports nothing).
pub(crate) struct CallTimer<'a> {
    observer: Option<&'a Arc<dyn IdpObserver>>,
    kind: IdpCall,
    started: Instant,
}

impl<'a> CallTimer<'a> {
    pub(crate) fn start(observer: Option<&'a Arc<dyn IdpObserver>>, kind: IdpCall) -> Self {
        CallTimer {
            observer,
            kind,
            started: Instant::now(),
        }
    }

    pub(crate) fn finish(self, outcome: IdpOutcome) {
        if let Some(o) = self.observer {
            o.call(self.kind, outcome, self.started.elapsed());
        }
    }
}

/// A failed fetch: the message for logs and `/readyz`, and the outcome for metrics.
#[derive(Debug, Clone)]
pub struct FetchError {
    /// How the call ended.
    pub outcome: IdpOutcome,
    message: String,
}

impl FetchError {
    fn new(outcome: IdpOutcome, message: String) -> FetchError {
        FetchError { outcome, message }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<FetchError> for String {
    fn from(e: FetchError) -> String {
        e.message
    }
}

/// Largest discovery document, JWKS or introspection response accepted over HTTP (1 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Timeout of every discovery / JWKS / introspection request (connect + response).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP client for identity-provider calls: [`FETCH_TIMEOUT`] for connect and response, and
/// no redirects: a 3xx is an error, so a discovery, JWKS or introspection URL cannot be sent
/// somewhere else (a plain-http or internal address) by whoever answers it.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Whether gatehouse may fetch `url`: `https`, or plain `http` only with
/// `allow-insecure-http` (an error naming the URL otherwise). Keys, tokens and introspection
/// answers decide who gets in; over plain http anyone on the path could replace them.
pub fn fetchable_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if scheme.eq_ignore_ascii_case("https")
        || (allow_insecure_http && scheme.eq_ignore_ascii_case("http"))
    {
        Ok(())
    } else {
        Err(format!(
            "refusing to fetch {url:?}: only https is allowed (allow-insecure-http is off)"
        ))
    }
}

/// GETs `url` and returns its body, refusing non-2xx statuses and bodies over
/// [`MAX_DOCUMENT_BYTES`].
pub async fn get_limited(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| FetchError::new(IdpOutcome::of_send_error(&e), format!("GET {url}: {e}")))?;
    read_limited(response, "GET", url).await
}

/// The body of a response, refusing non-2xx statuses and bodies over [`MAX_DOCUMENT_BYTES`];
/// errors name `method` and `url`.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    method: &str,
    url: &str,
) -> Result<Vec<u8>, FetchError> {
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::new(
            IdpOutcome::of_status(status),
            format!("{method} {url}: status {status}"),
        ));
    }
    read_body(response).await.map_err(|e| match e {
        BodyError::TooLarge => FetchError::new(
            IdpOutcome::Invalid,
            format!("{method} {url}: body over {MAX_DOCUMENT_BYTES} bytes"),
        ),
        BodyError::Read(e) => FetchError::new(
            IdpOutcome::of_send_error(&e),
            format!("{method} {url}: {e}"),
        ),
    })
}

/// Why a response body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over [`MAX_DOCUMENT_BYTES`] (announced or received).
    TooLarge,
    /// The connection failed while reading.
    Read(reqwest::Error),
}

/// Reads a response body up to [`MAX_DOCUMENT_BYTES`], whatever its status.
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Adds the client's authentication to a request to the token or introspection endpoint, per
/// `token-endpoint-auth-method`: `client_secret_basic` sends HTTP Basic of the
/// form-urlencoded `client_id` and secret (RFC 6749 section 2.3.1), `client_secret_post` puts
/// both in the form body. A public client (no secret) only names itself in the form.
pub(crate) fn authenticate_client<'a>(
    request: reqwest::RequestBuilder,
    form: &mut Vec<(&'a str, &'a str)>,
    client_id: &'a str,
    secret: Option<&'a gatehouse_config::Secret>,
    method: gatehouse_config::TokenEndpointAuthMethod,
) -> reqwest::RequestBuilder {
    use gatehouse_config::TokenEndpointAuthMethod as Method;
    match (secret, method) {
        // `basic_auth` marks the header sensitive, so it is never logged.
        (Some(secret), Method::ClientSecretBasic) => {
            request.basic_auth(form_encode(client_id), Some(form_encode(secret.expose())))
        }
        (Some(secret), Method::ClientSecretPost) => {
            form.push(("client_id", client_id));
            form.push(("client_secret", secret.expose()));
            request
        }
        (None, _) => {
            form.push(("client_id", client_id));
            request
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 appendix B): ASCII
/// letters, digits and `-._*` stay, a space becomes `+`, every other byte is `%XX`.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        use reqwest::StatusCode;
        assert_eq!(IdpOutcome::of_status(StatusCode::OK), IdpOutcome::Ok);
        assert_eq!(
            IdpOutcome::of_status(StatusCode::BAD_REQUEST),
            IdpOutcome::Status4xx
        );
        assert_eq!(
            IdpOutcome::of_status(StatusCode::SERVICE_UNAVAILABLE),
            IdpOutcome::Status5xx
        );
        assert_eq!(
            IdpOutcome::of_status(StatusCode::FOUND),
            IdpOutcome::StatusOther
        );
        for (i, kind) in IdpCall::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        for (i, outcome) in IdpOutcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("gatehouse"), "gatehouse");
        assert_eq!(form_encode("a b+c:d/é"), "a+b%2Bc%3Ad%2F%C3%A9");
        assert_eq!(form_encode("-._*~"), "-._*%7E");
        // RFC 6749 appendix B's example.
        assert_eq!(form_encode(" %&+£€"), "+%25%26%2B%C2%A3%E2%82%AC");
    }

    #[test]
    fn only_https_unless_insecure_http_is_allowed() {
        assert!(fetchable_url("https://idp/x", false).is_ok());
        assert!(fetchable_url("HTTPS://idp/x", false).is_ok());
        assert!(fetchable_url("http://idp/x", false).is_err());
        assert!(fetchable_url("http://idp/x", true).is_ok());
        assert!(fetchable_url("ftp://idp/x", true).is_err());
        assert!(fetchable_url("idp/x", true).is_err());
    }
}

//! The one HTTP client shape gatehouse talks to identity providers with: fixed timeouts, no
//! redirects, https unless a provider allows plain http, bounded bodies.

use std::time::Duration;

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
pub async fn get_limited(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    read_limited(response, "GET", url).await
}

/// The body of a response, refusing non-2xx statuses and bodies over [`MAX_DOCUMENT_BYTES`];
/// errors name `method` and `url`.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    method: &str,
    url: &str,
) -> Result<Vec<u8>, String> {
    if !response.status().is_success() {
        return Err(format!("{method} {url}: status {}", response.status()));
    }
    read_body(response).await.map_err(|e| match e {
        BodyError::TooLarge => format!("{method} {url}: body over {MAX_DOCUMENT_BYTES} bytes"),
        BodyError::Read(e) => format!("{method} {url}: {e}"),
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

//! The request to explain, as the CLI's arguments or `POST /debug/explain`'s JSON body give
//! it, turned into the request head the gateway would have parsed.
//!
//! Body of `POST /debug/explain` (the CLI's `METHOD URL -H ... --from IP` as JSON):
//!
//! ```json
//! {"method": "GET", "url": "http://demo.localhost/api/x",
//!  "headers": ["Authorization: Bearer eyJ..."], "from": "10.0.0.7"}
//! ```
//!
//! `url` is absolute: its scheme says whether the client used TLS, its authority is the
//! `Host` unless a `Host` header is given. `headers` (default none) are `Name: value` lines as
//! with `curl -H`; `from` (default: unknown, so never a trusted proxy) is the client's address.

use std::net::IpAddr;

use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};

/// The largest number of headers a query may carry (a report is not a load test).
const MAX_HEADERS: usize = 200;

/// A request to explain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// The method (`GET`, `POST`, ...).
    pub method: String,
    /// The absolute URL (`http://host[:port]/path?query`, or `https://...`).
    pub url: String,
    /// `Name: value` header lines.
    #[serde(default)]
    pub headers: Vec<String>,
    /// The client's address.
    #[serde(default)]
    pub from: Option<String>,
}

/// A query that does not describe a request (the CLI exits 2, the endpoint answers 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The request as a report names it: never a header value.
#[derive(Debug, Clone, Serialize)]
pub struct Described {
    /// The method.
    pub method: String,
    /// Scheme, authority and path; the query is left out (it may carry secrets).
    pub url: String,
    /// The client's address, `unknown` without `from`.
    pub from: String,
    /// The header names sent, in order.
    pub headers: Vec<String>,
}

/// A query turned into what the gateway's phases see.
pub(super) struct Parsed {
    /// The request head, as Pingora would have parsed it from an HTTP/1.1 origin-form request.
    pub head: RequestHeader,
    /// That request's head bytes (for the header-size limit and the framing check).
    pub raw: Vec<u8>,
    /// Whether the client used TLS (`https://`).
    pub tls: bool,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// What the report shows of the request.
    pub described: Described,
}

impl Query {
    /// Checks the query and builds the request head.
    pub(super) fn parse(&self) -> Result<Parsed, QueryError> {
        let bad = |m: String| Err(QueryError(m));
        let method = http::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| QueryError(format!("invalid method {:?}", self.method)))?;
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| QueryError(format!("invalid URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return bad("the URL must be absolute, http:// or https://".to_string()),
        };
        let Some(authority) = uri.authority().map(|a| a.as_str().to_string()) else {
            return bad("the URL has no host".to_string());
        };
        let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let peer = match &self.from {
            Some(ip) => Some(
                ip.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| QueryError(format!("--from: not an IP address: {ip:?}")))?,
            ),
            None => None,
        };
        if self.headers.len() > MAX_HEADERS {
            return bad(format!("more than {MAX_HEADERS} headers"));
        }
        let mut head = RequestHeader::build(method.clone(), target.as_bytes(), None)
            .map_err(|e| QueryError(format!("invalid request target: {e}")))?;
        let mut raw = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
        let mut names = Vec::new();
        for (i, line) in self.headers.iter().enumerate() {
            // The line itself is never repeated: it may be a credential.
            let Some((name, value)) = line.split_once(':') else {
                return bad(format!("header {} is not `Name: value`", i + 1));
            };
            let (name, value) = (name.trim(), value.trim());
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| QueryError(format!("invalid header name {name:?}")))?;
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| QueryError(format!("invalid value of header {name}")))?;
            raw.extend_from_slice(format!("{name}: ").as_bytes());
            raw.extend_from_slice(value.as_bytes());
            raw.extend_from_slice(b"\r\n");
            names.push(name.to_string());
            head.append_header(name, value)
                .map_err(|e| QueryError(format!("header refused: {e}")))?;
        }
        if !head.headers.contains_key(http::header::HOST) {
            raw.extend_from_slice(format!("host: {authority}\r\n").as_bytes());
            head.insert_header(http::header::HOST, authority.as_str())
                .map_err(|e| QueryError(format!("invalid host: {e}")))?;
        }
        raw.extend_from_slice(b"\r\n");
        let path = uri.path();
        let described = Described {
            method: method.to_string(),
            url: format!("{}://{authority}{path}", if tls { "https" } else { "http" }),
            from: super::peer_text(peer),
            headers: names,
        };
        Ok(Parsed {
            head,
            raw,
            tls,
            peer,
            described,
        })
    }
}

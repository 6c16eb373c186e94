//! CORS per tenant (the Fetch standard's CORS protocol), compiled once: the gateway answers
//! preflights itself (no authentication, never proxied) and decorates actual responses.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//!   origin, asking for an allowed method and allowed headers, gets `204` with the allow headers;
//!   anything else gets `403` without any allow header.
//! - An actual request from an allowed origin gets `Access-Control-Allow-Origin` (the origin
//!   itself, or `*` when any origin is allowed without credentials), `-Allow-Credentials` and
//!   `-Expose-Headers` as configured; a disallowed origin gets none of them.
//! - Every response of a tenant with CORS carries `Vary: Origin`, so caches never serve one
//!   origin's answer to another.
//! - `*` with `credentials: true` is refused by config validation (the Fetch standard forbids it).

use gatehouse_config::Cors;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
};
use http::{HeaderName, HeaderValue, Method};

/// A tenant's compiled CORS policy.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

/// The response headers a CORS decision adds.
pub type CorsHeaders = Vec<(HeaderName, HeaderValue)>;

impl CorsPolicy {
    /// Compiles the tenant's `cors` section.
    pub fn compile(cors: &Cors) -> Result<CorsPolicy, String> {
        let any_origin = cors.origins.iter().any(|o| o == "*");
        let methods = cors
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("cors.methods: invalid method {m:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = cors
            .headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("cors.headers: invalid header {h:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let join = |items: &[String]| {
            HeaderValue::from_str(&items.join(", ")).map_err(|_| "cors: invalid value".to_string())
        };
        Ok(CorsPolicy {
            any_origin,
            origins: cors
                .origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            allow_methods: join(&cors.methods)?,
            allow_headers: if cors.headers.is_empty() {
                None
            } else {
                Some(join(&cors.headers)?)
            },
            expose_headers: if cors.exposed_headers.is_empty() {
                None
            } else {
                Some(join(&cors.exposed_headers)?)
            },
            methods,
            headers,
            credentials: cors.credentials,
            max_age: cors.max_age.map(|d| HeaderValue::from(d.as_secs())),
        })
    }

    /// Whether `origin` (the request's `Origin` header) may read responses.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.any_origin
            || self
                .origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// The allow headers for a preflight, or `None` when it must be refused: the origin,
    /// the requested method (`Access-Control-Request-Method`) or one of the requested headers
    /// (`Access-Control-Request-Headers`) is not allowed.
    pub fn preflight(
        &self,
        origin: &HeaderValue,
        request_method: &[u8],
        request_headers: Option<&[u8]>,
    ) -> Option<CorsHeaders> {
        if !self.origin_allowed(origin.as_bytes()) {
            return None;
        }
        let method = Method::from_bytes(request_method).ok()?;
        // GET, HEAD and POST are CORS-safelisted methods, always allowed.
        let safelisted = matches!(method, Method::GET | Method::HEAD | Method::POST);
        if !safelisted && !self.methods.contains(&method) {
            return None;
        }
        if let Some(requested) = request_headers {
            let requested = std::str::from_utf8(requested).ok()?;
            for name in requested
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                if !self
                    .headers
                    .iter()
                    .any(|h| h.as_str().eq_ignore_ascii_case(name))
                {
                    return None;
                }
            }
        }
        let mut out = vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin)),
            (ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone()),
        ];
        if let Some(h) = &self.allow_headers {
            out.push((ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if let Some(age) = &self.max_age {
            out.push((ACCESS_CONTROL_MAX_AGE, age.clone()));
        }
        Some(out)
    }

    /// The headers for an actual (non-preflight) response to a request from `origin`; empty
    /// for a disallowed origin.
    pub fn actual(&self, origin: &HeaderValue) -> CorsHeaders {
        if !self.origin_allowed(origin.as_bytes()) {
            return Vec::new();
        }
        let mut out = vec![(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin))];
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if let Some(h) = &self.expose_headers {
            out.push((ACCESS_CONTROL_EXPOSE_HEADERS, h.clone()));
        }
        out
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &http::HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::compile(&Cors {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: vec!["GET".into(), "PUT".into(), "DELETE".into()],
            headers: vec!["Authorization".into(), "Content-Type".into()],
            exposed_headers: vec!["X-Request-ID".into()],
            credentials,
            max_age: Some(Duration::from_secs(600)),
        })
        .unwrap()
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn names(h: &CorsHeaders) -> Vec<(&str, &str)> {
        h.iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn preflight_for_allowed_origin_method_and_headers() {
        let p = policy(&["https://app.demo.localhost"], true);
        let o = hv("https://app.demo.localhost");
        let h = p
            .preflight(&o, b"PUT", Some(b"authorization, content-type"))
            .unwrap();
        assert_eq!(
            names(&h),
            vec![
                ("access-control-allow-origin", "https://app.demo.localhost"),
                ("access-control-allow-methods", "GET, PUT, DELETE"),
                (
                    "access-control-allow-headers",
                    "Authorization, Content-Type"
                ),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "600"),
            ]
        );
        assert!(
            p.preflight(&o, b"POST", None).is_some(),
            "safelisted method"
        );
        assert!(
            p.preflight(&o, b"PATCH", None).is_none(),
            "method not allowed"
        );
        assert!(
            p.preflight(&o, b"GET", Some(b"X-Secret")).is_none(),
            "header not allowed"
        );
        assert!(p
            .preflight(&hv("https://evil.example"), b"GET", None)
            .is_none());
        assert!(p
            .preflight(&hv("https://app.demo.localhost.evil.example"), b"GET", None)
            .is_none());
        assert!(
            p.preflight(&hv("HTTPS://APP.demo.localhost"), b"GET", None)
                .is_some(),
            "origins compare case-insensitively"
        );
    }

    #[test]
    fn actual_responses_echo_allowed_origins_only() {
        let p = policy(&["https://app.demo.localhost"], true);
        let h = p.actual(&hv("https://app.demo.localhost"));
        assert_eq!(
            names(&h),
            vec![
                ("access-control-allow-origin", "https://app.demo.localhost"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "X-Request-ID"),
            ]
        );
        assert!(p.actual(&hv("null")).is_empty());
        assert!(p.actual(&hv("https://evil.example")).is_empty());
    }

    #[test]
    fn wildcard_without_credentials_answers_star() {
        let p = policy(&["*"], false);
        let h = p.actual(&hv("https://anyone.example"));
        assert_eq!(names(&h)[0], ("access-control-allow-origin", "*"));
        assert!(!names(&h)
            .iter()
            .any(|(k, _)| *k == "access-control-allow-credentials"));
    }

    #[test]
    fn detects_preflights() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ORIGIN, hv("https://a"));
        assert!(!is_preflight(&Method::OPTIONS, &headers));
        headers.insert(http::header::ACCESS_CONTROL_REQUEST_METHOD, hv("PUT"));
        assert!(is_preflight(&Method::OPTIONS, &headers));
        assert!(!is_preflight(&Method::GET, &headers));
    }
}

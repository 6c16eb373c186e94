//! The gateway's own cookies, which no upstream ever sees: every login tenant's session cookie
//! and its login-state cookies (`{name}_login_{tag}`). All tenants' names are removed on every
//! proxied request, not only the current tenant's: a browser sends a cookie to every host its
//! domain covers, so one tenant's upstream may receive another tenant's session cookie.

use gatehouse_config::Config;
use http::header::COOKIE;
use http::HeaderMap;
use pingora::http::RequestHeader;

/// The request's `Cookie` header values (those that are text), in order.
pub(crate) fn request_cookies(req: &RequestHeader) -> impl Iterator<Item = &str> {
    req.headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// Every tenant's gateway cookie names, compiled once per runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayCookies {
    /// Session cookie names, sorted and without duplicates.
    names: Vec<String>,
}

impl GatewayCookies {
    /// The session cookie names of every tenant with `login` (the only tenants that set
    /// cookies).
    pub fn from_config(config: &Config) -> GatewayCookies {
        GatewayCookies::new(
            config
                .tenants
                .iter()
                .filter(|t| t.login.is_some())
                .map(|t| t.cookie.name.as_str()),
        )
    }

    /// The gateway cookies of these session cookie names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> GatewayCookies {
        let mut names: Vec<String> = names.into_iter().map(str::to_string).collect();
        names.sort();
        names.dedup();
        GatewayCookies { names }
    }

    /// Whether cookie `name` is a session cookie or a login-state cookie of some tenant.
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        self.names.iter().any(|own| {
            name == own
                || name
                    .strip_prefix(own.as_str())
                    .is_some_and(|rest| rest.starts_with("_login_"))
        })
    }

    /// Removes every gateway cookie from a request's `Cookie` headers (other cookies stay, in
    /// order; a header left empty is dropped). Requests without a gateway cookie, the common
    /// case, allocate nothing.
    pub fn remove_from(&self, headers: &mut HeaderMap) {
        if self.names.is_empty() {
            return;
        }
        let own = |pair: &str| self.is_gateway_cookie(pair.trim().split('=').next().unwrap_or(""));
        let carries_own = headers
            .get_all(COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(';').any(own)));
        if !carries_own {
            return;
        }
        let kept: Vec<String> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|pair| !pair.is_empty() && !own(pair))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|v| !v.is_empty())
            .collect();
        headers.remove(COOKIE);
        for value in kept {
            if let Ok(v) = http::HeaderValue::try_from(value) {
                headers.append(COOKIE, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_tenants_session_and_login_state_cookies_are_removed() {
        let own = GatewayCookies::new(["gatehouse_session", "other_session", "gatehouse_session"]);
        assert!(own.is_gateway_cookie("gatehouse_session"));
        assert!(own.is_gateway_cookie("other_session"));
        assert!(own.is_gateway_cookie("other_session_login_AbCdEfGhIjKl"));
        assert!(!own.is_gateway_cookie("other_session2"));
        assert!(!own.is_gateway_cookie("other"));
        assert!(!own.is_gateway_cookie("Gatehouse_session"));
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            "a=1; gatehouse_session=x; other_session_login_q=s"
                .parse()
                .unwrap(),
        );
        headers.append(COOKIE, "other_session=y".parse().unwrap());
        headers.append(COOKIE, "b=2;other_session=z ; c=3".parse().unwrap());
        own.remove_from(&mut headers);
        assert_eq!(cookies(&headers), ["a=1", "b=2; c=3"]);
    }

    #[test]
    fn without_gateway_cookies_nothing_changes() {
        let own = GatewayCookies::new(["gatehouse_session"]);
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1;b=2".parse().unwrap());
        own.remove_from(&mut headers);
        assert_eq!(
            cookies(&headers),
            ["a=1;b=2"],
            "untouched, not even re-joined"
        );
        let none = GatewayCookies::default();
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "gatehouse_session=x".parse().unwrap());
        none.remove_from(&mut headers);
        assert_eq!(
            cookies(&headers),
            ["gatehouse_session=x"],
            "no login tenant"
        );
    }
}

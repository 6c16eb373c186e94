//! The `WWW-Authenticate` challenge of a 401: one builder for every refusal that asks for a
//! credential (RFC 6750 3, with RFC 9728 5.1 `resource_metadata` and RFC 9470 `acr_values` /
//! `max_age`), and its `DPoP` form (RFC 9449 7.1: the same parameters and `algs`, the proof
//! algorithms accepted).

use std::fmt::Write as _;

/// The parameters of one challenge; `None` leaves a parameter out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Challenge<'a> {
    /// `DPoP` instead of `Bearer` (default false).
    pub dpop: bool,
    /// `algs` (DPoP only): space-separated JWS algorithms accepted for proofs.
    pub algs: Option<&'a str>,
    /// `realm` (the tenant's name).
    pub realm: &'a str,
    /// `error`: `invalid_token`, `insufficient_user_authentication`, ...
    pub error: Option<&'a str>,
    /// `error_description`.
    pub description: Option<&'a str>,
    /// `scope`: space-separated scopes the resource accepts.
    pub scope: Option<&'a str>,
    /// `resource_metadata`: the absolute URL of the resource's metadata (RFC 9728).
    pub resource_metadata: Option<&'a str>,
    /// `acr_values`: space-separated acceptable authentication context classes (RFC 9470).
    pub acr_values: Option<&'a str>,
    /// `max_age`: the largest acceptable age of the authentication, seconds (RFC 9470).
    pub max_age: Option<u64>,
}

impl Challenge<'_> {
    /// The header value: `Bearer realm="...", error="...", ...` (or `DPoP ...`), each value a
    /// quoted string (`"` and `\` escaped, RFC 9110 5.6.4), `max_age` a bare number.
    #[must_use]
    pub fn header_value(&self) -> String {
        let mut out = String::from(if self.dpop { "DPoP" } else { "Bearer" });
        let mut first = true;
        let mut param = |out: &mut String, name: &str, value: &str| {
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        };
        param(&mut out, "realm", self.realm);
        let optional = [
            ("error", self.error),
            ("error_description", self.description),
            ("scope", self.scope),
            ("resource_metadata", self.resource_metadata),
            ("acr_values", self.acr_values),
            ("algs", self.algs.filter(|_| self.dpop)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                param(&mut out, name, value);
            }
        }
        if let Some(max_age) = self.max_age {
            let _ = write!(out, ", max_age={max_age}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_challenge_names_the_realm() {
        let c = Challenge {
            realm: "demo",
            ..Challenge::default()
        };
        assert_eq!(c.header_value(), "Bearer realm=\"demo\"");
    }

    #[test]
    fn every_parameter_in_order_and_quoted() {
        let c = Challenge {
            realm: "demo",
            error: Some("insufficient_user_authentication"),
            description: Some("a stronger authentication is required"),
            scope: Some("mcp:tools read"),
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp"),
            acr_values: Some("gold platinum"),
            max_age: Some(300),
            dpop: false,
            algs: Some("ES256"),
        };
        assert_eq!(
            c.header_value(),
            "Bearer realm=\"demo\", error=\"insufficient_user_authentication\", \
             error_description=\"a stronger authentication is required\", scope=\"mcp:tools read\", \
             resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", \
             acr_values=\"gold platinum\", max_age=300"
        );
    }

    #[test]
    fn a_dpop_challenge_names_its_algorithms() {
        let c = Challenge {
            realm: "demo",
            dpop: true,
            error: Some("invalid_dpop_proof"),
            description: Some("the DPoP proof was used before"),
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource"),
            algs: Some("ES256 RS256"),
            ..Challenge::default()
        };
        assert_eq!(
            c.header_value(),
            "DPoP realm=\"demo\", error=\"invalid_dpop_proof\", \
             error_description=\"the DPoP proof was used before\", \
             resource_metadata=\"https://h/.well-known/oauth-protected-resource\", \
             algs=\"ES256 RS256\""
        );
        let bearer = Challenge { dpop: false, ..c };
        assert!(
            !bearer.header_value().contains("algs"),
            "algs is DPoP's alone"
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let c = Challenge {
            realm: "a\"b\\c",
            ..Challenge::default()
        };
        assert_eq!(c.header_value(), "Bearer realm=\"a\\\"b\\\\c\"");
    }
}

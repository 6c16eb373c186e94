//! The claims of a verified token, parsed once and shared through an `Arc`.
//!
//! Keycloak puts realm roles in `realm_access.roles`, client roles in
//! `resource_access.<client>.roles` and group memberships in `groups`; these are lifted into
//! typed fields so authorization does not walk JSON on every request. The whole payload stays
//! available in [`Claims::raw`] for `match-claims` and identity headers.

use serde_json::Value;

/// The claims of a token whose signature and registered claims have been checked (or of an
/// active introspection response).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `sub`, when it is a string.
    pub sub: Option<String>,
    /// `preferred_username`, when it is a string.
    pub preferred_username: Option<String>,
    /// `email`, when it is a string.
    pub email: Option<String>,
    /// `realm_access.roles` (string elements only; empty when absent).
    pub realm_roles: Vec<String>,
    /// `resource_access.<client>.roles` for every client, in the payload's order (string
    /// elements only).
    pub client_roles: Vec<(String, Vec<String>)>,
    /// `groups` as sent: full paths like `/developers` or bare names (string elements only).
    pub groups: Vec<String>,
    /// `exp` in seconds since the Unix epoch (always present on a verified JWT; 0 when an
    /// introspection response has none).
    pub exp: u64,
    /// `iat` in seconds since the Unix epoch.
    pub iat: Option<u64>,
    /// `auth_time` in seconds since the Unix epoch.
    pub auth_time: Option<u64>,
    /// The whole payload, for dotted-path lookups.
    pub raw: Value,
}

impl Claims {
    /// Builds claims from a payload that has already been verified. `exp` is taken from the
    /// payload when it is a non-negative number, else 0.
    pub fn from_payload(raw: Value) -> Claims {
        let string = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let realm_roles = raw
            .get("realm_access")
            .and_then(|r| r.get("roles"))
            .map(string_list)
            .unwrap_or_default();
        let client_roles = raw
            .get("resource_access")
            .and_then(Value::as_object)
            .map(|clients| {
                clients
                    .iter()
                    .map(|(client, access)| {
                        let roles = access.get("roles").map(string_list).unwrap_or_default();
                        (client.clone(), roles)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Claims {
            sub: string("sub"),
            preferred_username: string("preferred_username"),
            email: string("email"),
            realm_roles,
            client_roles,
            groups: raw.get("groups").map(string_list).unwrap_or_default(),
            exp: raw.get("exp").and_then(numeric_date).unwrap_or(0),
            iat: raw.get("iat").and_then(numeric_date),
            auth_time: raw.get("auth_time").and_then(numeric_date),
            raw,
        }
    }

    /// The value at a dotted path of object keys, e.g. `realm_access.roles` or `a.b.c`.
    ///
    /// Each segment names a key of a JSON object; arrays are not indexed. Keys that themselves
    /// contain a `.` cannot be reached (there is no escaping). An empty path returns `None`.
    pub fn lookup(&self, dotted_path: &str) -> Option<&Value> {
        if dotted_path.is_empty() {
            return None;
        }
        dotted_path
            .split('.')
            .try_fold(&self.raw, |value, key| value.as_object()?.get(key))
    }

    /// Whether `role` is one of the realm roles.
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles.iter().any(|r| r == role)
    }

    /// Whether `role` is one of the roles of `client` in `resource_access`.
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.client_roles
            .iter()
            .any(|(c, roles)| c == client && roles.iter().any(|r| r == role))
    }

    /// The role test used by route `roles`: `"client:role"` is a client role of `client`
    /// (split at the first `:`); a bare `"role"` is a realm role OR a client role of
    /// `default_client` (normally the provider's `client-id`).
    pub fn has_role(&self, role: &str, default_client: &str) -> bool {
        match role.split_once(':') {
            Some((client, role)) => self.has_client_role(client, role),
            None => self.has_realm_role(role) || self.has_client_role(default_client, role),
        }
    }

    /// Whether the token names `group` in `groups`. `/developers` and `developers` are the
    /// same group (one leading `/` is ignored on both sides); matching is exact otherwise, so a
    /// parent path does NOT match its subgroups (`/dev` does not match `/dev/backend`).
    pub fn in_group(&self, group: &str) -> bool {
        let wanted = group.strip_prefix('/').unwrap_or(group);
        self.groups
            .iter()
            .any(|g| g.strip_prefix('/').unwrap_or(g) == wanted)
    }

    /// The claim at `dotted_path` as a header value: a string is itself, a number or bool its
    /// JSON text, an array its elements rendered the same way and joined with `,` (nested
    /// arrays, objects and nulls inside it are skipped); an object, a null or a missing claim
    /// is `None`.
    pub fn header_value(&self, dotted_path: &str) -> Option<String> {
        match self.lookup(dotted_path)? {
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
                Some(parts.join(","))
            }
            other => scalar_text(other),
        }
    }
}

/// A JSON scalar (string, number, bool) as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The string elements of an array (anything else is skipped; a non-array is empty).
fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A JWT NumericDate: a non-negative integer or a finite non-negative float (truncated).
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    if f.is_finite() && f >= 0.0 {
        // Truncation is what RFC 7519 implies for fractional seconds; saturates above u64::MAX.
        Some(f as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keycloak() -> Claims {
        Claims::from_payload(json!({
            "sub": "f3c1",
            "preferred_username": "alice",
            "email": "alice@example.com",
            "exp": 1_900_000_000u64,
            "iat": 1_899_999_000.5,
            "auth_time": 1_899_998_000u64,
            "realm_access": {"roles": ["offline_access", "admin", 7]},
            "resource_access": {
                "web": {"roles": ["viewer", "editor"]},
                "billing": {"roles": ["payer"]},
                "broken": {"roles": "not-a-list"}
            },
            "groups": ["/developers", "ops", "/dev/backend"],
            "tenant": {"id": 42, "region": {"name": "eu"}, "flags": [true, "x", 1.5, {"no": 1}]},
            "a.b": "dotted key"
        }))
    }

    #[test]
    fn typed_fields() {
        let c = keycloak();
        assert_eq!(c.sub.as_deref(), Some("f3c1"));
        assert_eq!(c.preferred_username.as_deref(), Some("alice"));
        assert_eq!(c.email.as_deref(), Some("alice@example.com"));
        assert_eq!(c.realm_roles, vec!["offline_access", "admin"]);
        assert_eq!(c.client_roles.len(), 3);
        assert_eq!(c.exp, 1_900_000_000);
        assert_eq!(c.iat, Some(1_899_999_000));
        assert_eq!(c.auth_time, Some(1_899_998_000));
    }

    #[test]
    fn roles() {
        let c = keycloak();
        assert!(c.has_realm_role("admin"));
        assert!(!c.has_realm_role("viewer"));
        assert!(c.has_client_role("web", "viewer"));
        assert!(!c.has_client_role("billing", "viewer"));
        assert!(!c.has_client_role("broken", "not-a-list"));
        // "client:role"
        assert!(c.has_role("billing:payer", "web"));
        assert!(!c.has_role("web:payer", "web"));
        assert!(!c.has_role("nosuch:admin", "web"));
        // bare: realm role or default client's role
        assert!(c.has_role("admin", "web"));
        assert!(c.has_role("editor", "web"));
        assert!(!c.has_role("editor", "billing"));
        assert!(!c.has_role("payer", "web"));
    }

    #[test]
    fn groups() {
        let c = keycloak();
        assert!(c.in_group("/developers"));
        assert!(c.in_group("developers"));
        assert!(c.in_group("/ops"));
        assert!(c.in_group("ops"));
        assert!(c.in_group("dev/backend"));
        assert!(
            !c.in_group("/dev"),
            "a parent path does not match its subgroups"
        );
        assert!(!c.in_group("/developer"));
    }

    #[test]
    fn lookup_and_header_values() {
        let c = keycloak();
        assert_eq!(
            c.lookup("realm_access.roles").map(|v| v.is_array()),
            Some(true)
        );
        assert_eq!(c.lookup("tenant.region.name"), Some(&json!("eu")));
        assert_eq!(c.lookup("tenant.id.x"), None);
        assert_eq!(c.lookup(""), None);
        assert_eq!(
            c.lookup("a.b"),
            None,
            "keys containing dots are not reachable"
        );
        assert_eq!(c.header_value("sub").as_deref(), Some("f3c1"));
        assert_eq!(c.header_value("tenant.id").as_deref(), Some("42"));
        assert_eq!(c.header_value("tenant.region.name").as_deref(), Some("eu"));
        assert_eq!(
            c.header_value("realm_access.roles").as_deref(),
            Some("offline_access,admin,7")
        );
        assert_eq!(
            c.header_value("groups").as_deref(),
            Some("/developers,ops,/dev/backend")
        );
        assert_eq!(
            c.header_value("tenant.flags").as_deref(),
            Some("true,x,1.5")
        );
        assert_eq!(
            c.header_value("tenant"),
            None,
            "objects have no header value"
        );
        assert_eq!(c.header_value("missing"), None);
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&json!(5)), Some(5));
        assert_eq!(numeric_date(&json!(5.9)), Some(5));
        assert_eq!(numeric_date(&json!(-1)), None);
        assert_eq!(numeric_date(&json!("5")), None);
    }
}

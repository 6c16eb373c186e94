//! The claims of a verified token, parsed once and shared through an `Arc`.
//!
//! Keycloak puts realm roles in `realm_access.roles`, client roles in
//! `resource_access.<client>.roles` and group memberships in `groups`; these are lifted into
//! typed fields so authorization does not walk JSON on every request. The whole payload stays
//! available in [`Claims::raw`] for `match-claims` and identity headers: a verified token keeps
//! it as text and builds the JSON tree only on the first lookup that needs it, so the
//! verified-token cache holds about the token's size per entry instead of a tree several times
//! larger, and a cache miss parses the payload once without allocating for members nobody reads.

use std::borrow::Cow;
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::memo::Memo;
use crate::shapes::{Audiences, ClientRoles, Confirmation, KeyIn, Lenient, Roles, StringList};

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
    /// `acr` (the authentication context class), when it is a string.
    pub acr: Option<String>,
    /// `aud`: the string, or the string elements of the array.
    pub aud: Vec<String>,
    /// Whether the token is bound to a key (a `cnf` claim, RFC 7800): such a token is not a
    /// bearer token where the route checks DPoP.
    pub cnf: bool,
    /// `cnf.jkt` (RFC 9449): the thumbprint of the DPoP key the token is bound to.
    pub cnf_jkt: Option<String>,
    /// Whether `aud` names one of the verifying provider's `audiences`: set by the verifier, so
    /// a token cached for a `resource` route (where that check does not apply) is still
    /// refused by a route that needs it. `true` until the verifier says otherwise: claims it
    /// did not check (introspection, sessions) had their audience checked where they came from.
    pub(crate) provider_audience: bool,
    /// The whole payload, for dotted-path lookups ([`Claims::raw`]).
    payload: Payload,
    /// Identity header values rendered from these claims (see [`Claims::identity_header_values`]).
    pub rendered: RenderedHeaders,
    /// Identity assertions signed for these claims ([`crate::assertion`]).
    pub assertions: crate::assertion_cache::AssertionCache,
}

/// Bytes a `serde_json` tree takes per byte of the JSON text it was parsed from, for
/// token-shaped payloads: each value is a 32-byte enum, and every object, however small, is at
/// least one B-tree node of eleven slots (a typical 800-byte Keycloak access token parses into
/// about 6.5 KB).
pub const TREE_BYTES_PER_TEXT_BYTE: usize = 8;

/// Identity header values rendered once for one identity-header set (its id and the values),
/// kept with the claims so a token served from the verified-token cache (or a cached session)
/// costs no JSON walk, string join or header-value check per request.
pub type RenderedHeaders = Memo<(u64, Box<[Option<HeaderValue>]>)>;

/// A payload kept as JSON text (a verified token's) and parsed into a tree on first use, or
/// built from a tree. Clones and compares as the tree it stands for.
#[derive(Clone, Default)]
struct Payload {
    text: Box<str>,
    tree: OnceLock<Value>,
}

impl Payload {
    fn tree(&self) -> &Value {
        // The text was parsed once already (Claims::from_json), so this cannot fail.
        self.tree
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.tree() == other.tree()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.tree().fmt(f)
    }
}

/// The members of a JWT payload that gatehouse reads, in one pass: the lifted ones read
/// leniently into their shapes ([`crate::shapes`]), the dates kept as unparsed JSON for their
/// own checks; every other member is skipped without allocating. A duplicated member is an
/// error (RFC 7519 4: a parser must reject duplicates or keep the last; rejecting cannot be
/// fooled).
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(default)]
    sub: Option<Lenient<Option<String>>>,
    #[serde(default)]
    preferred_username: Option<Lenient<Option<String>>>,
    #[serde(default)]
    email: Option<Lenient<Option<String>>>,
    #[serde(default)]
    realm_access: Option<Lenient<Roles>>,
    #[serde(default)]
    resource_access: Option<Lenient<ClientRoles>>,
    #[serde(default)]
    groups: Option<Lenient<StringList>>,
    #[serde(borrow, default)]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    iat: Option<&'a RawValue>,
    #[serde(borrow, default)]
    auth_time: Option<&'a RawValue>,
    #[serde(default)]
    acr: Option<Lenient<Option<String>>>,
    #[serde(default)]
    iss: Option<Lenient<Option<String>>>,
    #[serde(default)]
    aud: Option<Lenient<Audiences>>,
    #[serde(default)]
    azp: Option<Lenient<Option<String>>>,
    #[serde(default)]
    typ: Option<Lenient<Option<String>>>,
    #[serde(default)]
    cnf: Option<Lenient<Confirmation>>,
    #[serde(default)]
    nonce: Option<IgnoredAny>,
    #[serde(default)]
    events: Option<IgnoredAny>,
}

/// The value of a leniently read member, or its shape's default when absent.
fn read<T: Default>(member: Option<Lenient<T>>) -> T {
    member.map(|Lenient(value)| value).unwrap_or_default()
}

/// The registered claims of a JSON payload, for the verifier's checks. A date that is present
/// but not a NumericDate makes the payload malformed (`auth_time` only says so, since only a
/// `max-token-age` check needs it).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// `exp`.
    pub exp: Option<u64>,
    /// `nbf`.
    pub nbf: Option<u64>,
    /// `iat`.
    pub iat: Option<u64>,
    /// `auth_time` is present but not a NumericDate.
    pub auth_time_malformed: bool,
    /// `iss`, when it is a string.
    pub iss: Option<String>,
    /// `aud`: the string, or the string elements of the array.
    pub aud: Vec<String>,
    /// `azp` (the client the token was issued to), when it is a string.
    pub azp: Option<String>,
    /// The payload's `typ` (Keycloak: `Bearer`, `ID`, `Refresh`, `Logout`), when a string.
    pub typ: Option<String>,
    /// A non-null `nonce` is present (ID tokens carry one).
    pub nonce: bool,
    /// A non-null `events` is present (logout and other security event tokens carry one).
    pub events: bool,
}

/// A payload that is not a JSON object, repeats a member, or has a malformed date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPayload;

impl Claims {
    /// Builds claims from a payload that has already been verified. `exp` is taken from the
    /// payload when it is a non-negative number, else 0.
    pub fn from_payload(raw: Value) -> Claims {
        Claims {
            sub: string(raw.get("sub")),
            preferred_username: string(raw.get("preferred_username")),
            email: string(raw.get("email")),
            realm_roles: realm_roles(raw.get("realm_access")),
            client_roles: client_roles(raw.get("resource_access")),
            groups: raw.get("groups").map(string_list).unwrap_or_default(),
            exp: raw.get("exp").and_then(numeric_date).unwrap_or(0),
            iat: raw.get("iat").and_then(numeric_date),
            auth_time: raw.get("auth_time").and_then(numeric_date),
            acr: string(raw.get("acr")),
            aud: match raw.get("aud") {
                Some(Value::String(aud)) => vec![aud.clone()],
                Some(auds) => string_list(auds),
                None => Vec::new(),
            },
            cnf: raw
                .get("cnf")
                .is_some_and(|c| !(c.is_null() || c.is_boolean() || c.is_number())),
            cnf_jkt: string(raw.get("cnf").and_then(|c| c.get("jkt"))),
            provider_audience: true,
            payload: Payload {
                text: Box::default(),
                tree: OnceLock::from(raw),
            },
            rendered: RenderedHeaders::default(),
            assertions: Default::default(),
        }
    }

    /// Parses a JWT payload (JSON text, signature already verified) in one pass: the typed
    /// fields and the [`Registered`] claims; the text is kept for [`Claims::raw`]. Same field
    /// semantics as [`Claims::from_payload`].
    pub fn from_json(text: String) -> Result<(Claims, Registered), MalformedPayload> {
        // A struct also deserializes from a JSON array; a payload must be an object.
        if !text.trim_start().starts_with('{') {
            return Err(MalformedPayload);
        }
        let (mut claims, registered) = {
            let m: Members<'_> = serde_json::from_str(&text).map_err(|_| MalformedPayload)?;
            let date = |raw: Option<&RawValue>| -> Result<Option<u64>, MalformedPayload> {
                // A number or `null` (what a date should be) parses without allocating.
                match raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => numeric_date(&v).map(Some).ok_or(MalformedPayload),
                }
            };
            let auth_time = date(m.auth_time);
            let cnf = read(m.cnf);
            let registered = Registered {
                exp: date(m.exp)?,
                nbf: date(m.nbf)?,
                iat: date(m.iat)?,
                auth_time_malformed: auth_time.is_err(),
                iss: read(m.iss),
                aud: read(m.aud).0,
                azp: read(m.azp),
                typ: read(m.typ),
                nonce: m.nonce.is_some(),
                events: m.events.is_some(),
            };
            let claims = Claims {
                sub: read(m.sub),
                preferred_username: read(m.preferred_username),
                email: read(m.email),
                realm_roles: read(m.realm_access).0,
                client_roles: read(m.resource_access).0,
                groups: read(m.groups).0,
                exp: registered.exp.unwrap_or(0),
                iat: registered.iat,
                auth_time: auth_time.unwrap_or(None),
                acr: read(m.acr),
                aud: registered.aud.clone(),
                cnf: cnf.present,
                cnf_jkt: cnf.jkt,
                provider_audience: true,
                payload: Payload::default(),
                rendered: RenderedHeaders::default(),
                assertions: Default::default(),
            };
            (claims, registered)
        };
        // Only now: the members above borrowed from the text.
        claims.payload.text = text.into_boxed_str();
        Ok((claims, registered))
    }

    /// Roughly how many bytes these claims keep alive, for the verified-token cache's byte
    /// bound: the struct, the lifted strings, the payload text, and room for the JSON tree a
    /// `match-claims` lookup may build later ([`TREE_BYTES_PER_TEXT_BYTE`] per byte of
    /// payload). Claims built from a tree (introspection) count the tree the same way.
    pub fn retained_bytes(&self) -> usize {
        let string = |s: &String| size_of::<String>() + s.len();
        let strings = |v: &[String]| v.iter().map(string).sum::<usize>();
        let optional = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len());
        let text = if self.payload.text.is_empty() {
            serde_json::to_string(self.payload.tree()).map_or(0, |t| t.len())
        } else {
            self.payload.text.len()
        };
        size_of::<Claims>()
            + optional(&self.sub)
            + optional(&self.preferred_username)
            + optional(&self.email)
            + optional(&self.acr)
            + optional(&self.cnf_jkt)
            + strings(&self.aud)
            + strings(&self.realm_roles)
            + strings(&self.groups)
            + self
                .client_roles
                .iter()
                .map(|(client, roles)| string(client) + size_of::<Vec<String>>() + strings(roles))
                .sum::<usize>()
            + self.payload.text.len()
            + text * TREE_BYTES_PER_TEXT_BYTE
    }

    /// Whether `aud` names one of the verifying provider's `audiences` (see the field).
    pub fn provider_audience(&self) -> bool {
        self.provider_audience
    }

    /// Whether `aud` contains `resource` (RFC 8707), compared byte for byte.
    pub fn has_audience(&self, resource: &str) -> bool {
        self.aud.iter().any(|aud| aud == resource)
    }

    /// The whole payload as a JSON tree (built on the first call for a verified token).
    pub fn raw(&self) -> &Value {
        self.payload.tree()
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
            .try_fold(self.raw(), |value, key| value.as_object()?.get(key))
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
        self.header_values(&[dotted_path]).pop().flatten()
    }

    /// [`Claims::header_value`] of each path. Without a tree, the payload text is walked once
    /// for the top-level members of all the paths (then each within its member), rather than
    /// building the whole tree (which would also be kept, several times the text's size, with
    /// every cached token) or walking the text once per path.
    fn header_values(&self, dotted_paths: &[&str]) -> Vec<Option<String>> {
        let render = |value: &Value| match value {
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
                Some(parts.join(","))
            }
            other => scalar_text(other),
        };
        if self.payload.tree.get().is_some() || self.payload.text.is_empty() {
            return dotted_paths
                .iter()
                .map(|path| render(self.lookup(path)?))
                .collect();
        }
        let firsts: Vec<&str> = dotted_paths
            .iter()
            .map(|path| path.split('.').next().unwrap_or_default())
            .collect();
        let tops = members(&self.payload.text, &firsts);
        dotted_paths
            .iter()
            .zip(tops)
            .map(|(path, top)| {
                if path.is_empty() {
                    return None;
                }
                let mut json = top?.get();
                for key in path.split('.').skip(1) {
                    json = members(json, &[key]).pop().flatten()?.get();
                }
                render(&serde_json::from_str(json).ok()?)
            })
            .collect()
    }

    /// The values of identity `headers` (name, dotted claim path) in the same order: `None` where
    /// [`Claims::header_value`] has none or it cannot be a header value (control characters).
    /// `set` identifies the header list (the same id must always mean the same list): the
    /// first set asked is rendered once and kept with the claims; any other is rendered per call.
    pub fn identity_header_values(
        &self,
        set: u64,
        headers: &[(HeaderName, String)],
    ) -> Cow<'_, [Option<HeaderValue>]> {
        let render = || -> Box<[Option<HeaderValue>]> {
            let paths: Vec<&str> = headers.iter().map(|(_, path)| path.as_str()).collect();
            self.header_values(&paths)
                .into_iter()
                .map(|v| v.and_then(|v| HeaderValue::try_from(v).ok()))
                .collect()
        };
        let (kept_set, values) = self.rendered.get_or_init(|| (set, render()));
        if *kept_set == set {
            Cow::Borrowed(values)
        } else {
            Cow::Owned(render().into_vec())
        }
    }
}

/// The members named `keys` of the JSON object `json` as unparsed JSON, in the order of `keys`
/// and in one pass (the last one if repeated, as a parsed tree would keep); all `None` when
/// `json` is not an object.
fn members<'a>(json: &'a str, keys: &[&str]) -> Vec<Option<&'a RawValue>> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    struct Named<'k>(&'k [&'k str]);

    impl<'de> DeserializeSeed<'de> for Named<'_> {
        type Value = Vec<Option<&'de RawValue>>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Named<'_> {
        type Value = Vec<Option<&'de RawValue>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = vec![None; self.0.len()];
            while let Some(position) = map.next_key_seed(KeyIn(self.0))? {
                match position {
                    Some(i) => found[i] = Some(map.next_value::<&'de RawValue>()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            // A name asked twice: its later positions get what its first one got.
            for j in 0..found.len() {
                if let Some(i) = self.0[..j].iter().position(|name| *name == self.0[j]) {
                    found[j] = found[i];
                }
            }
            Ok(found)
        }
    }

    Named(keys)
        .deserialize(&mut serde_json::Deserializer::from_str(json))
        .unwrap_or_else(|_| vec![None; keys.len()])
}

/// A string member as a `String` (anything else is `None`).
fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// `realm_access.roles` from the `realm_access` member.
fn realm_roles(realm_access: Option<&Value>) -> Vec<String> {
    realm_access
        .and_then(|r| r.get("roles"))
        .map(string_list)
        .unwrap_or_default()
}

/// Every client's `roles` from the `resource_access` member.
fn client_roles(resource_access: Option<&Value>) -> Vec<(String, Vec<String>)> {
    resource_access
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
        .unwrap_or_default()
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
mod tests;

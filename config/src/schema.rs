//! The file schema: what the YAML may say, key by key (kebab-case, unknown keys rejected).
//!
//! Everything is optional here so that a missing required key is reported together with every
//! other problem by the validation step (`compile.rs`), which also applies defaults and turns
//! this layer into the runtime types of `model.rs`. The file format never leaks past that step.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_yaml::Value;

use crate::units::{parse_duration, parse_size, DURATION_HINT, SIZE_HINT};

/// A short description of a YAML value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

/// A duration: `"250ms"`, `"30s"`, `"15m"`, `"1h30m"` or a bare integer (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let parsed = match &v {
            Value::Number(n) => n.as_u64().map(Duration::from_secs),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        parsed.map(Dur).ok_or_else(|| {
            let shown = match &v {
                Value::Number(n) => format!("\"{n}\""),
                other => describe(other),
            };
            de::Error::custom(format!("invalid duration {shown} ({DURATION_HINT})"))
        })
    }
}

/// A size in bytes: `512`, `"16KiB"`, `"10MiB"`, `"1GiB"`, `"2MB"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let parsed = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_size(s),
            _ => None,
        };
        parsed.map(Size).ok_or_else(|| {
            let shown = match &v {
                Value::Number(n) => format!("\"{n}\""),
                other => describe(other),
            };
            de::Error::custom(format!("invalid size {shown} ({SIZE_HINT})"))
        })
    }
}

/// A boolean; the strings `"true"`/`"false"` (e.g. from `${VAR}`) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::Bool(b) => Ok(Flag(*b)),
            Value::String(s) if s == "true" => Ok(Flag(true)),
            Value::String(s) if s == "false" => Ok(Flag(false)),
            other => Err(de::Error::custom(format!(
                "invalid boolean {} (expected true or false)",
                describe(other)
            ))),
        }
    }
}

/// A non-negative integer; a string of digits (e.g. from `${VAR}`) is accepted too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Int<T>(pub T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n.map(T::try_from) {
            Some(Ok(t)) => Ok(Int(t)),
            Some(Err(_)) => Err(de::Error::custom(format!(
                "integer {} is too large",
                describe(&v)
            ))),
            None => Err(de::Error::custom(format!(
                "invalid integer {} (expected a non-negative whole number)",
                describe(&v)
            ))),
        }
    }
}

/// A string; numbers and booleans are taken as their text (`email_verified: true` means
/// `"true"`), and an empty value (null) as `""`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::Null => Ok(Text(String::new())),
            Value::Bool(b) => Ok(Text(b.to_string())),
            Value::Number(n) => Ok(Text(n.to_string())),
            Value::String(s) => Ok(Text(s)),
            other => Err(de::Error::custom(format!(
                "invalid value {} (expected a string)",
                describe(&other)
            ))),
        }
    }
}

/// A mapping kept in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderedMap<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_any(V2(PhantomData))
    }
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OneOrMany {
    pub items: Vec<String>,
    /// Written as a list (so errors name `key[i]`).
    pub list: bool,
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = |v: &Value| {
            de::Error::custom(format!(
                "invalid value {} (expected a string or a list of strings)",
                describe(v)
            ))
        };
        match &v {
            Value::String(s) => Ok(OneOrMany {
                items: vec![s.clone()],
                list: false,
            }),
            Value::Sequence(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(|| bad(i)))
                .collect::<Result<_, _>>()
                .map(|items| OneOrMany { items, list: true }),
            other => Err(bad(other)),
        }
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub listen_h2c: Option<Flag>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub admin_listen: Option<String>,
    pub admin_explain: Option<Flag>,
    pub threads: Option<Int<usize>>,
    pub trusted_proxies: Option<Vec<String>>,
    pub forward_auth_headers: Option<String>,
    pub max_request_header_size: Option<Size>,
    pub max_request_headers: Option<Int<usize>>,
    pub request_header_timeout: Option<Dur>,
    pub max_connections: Option<Int<usize>>,
    pub max_connections_per_ip: Option<Int<usize>>,
    pub grace_period: Option<Dur>,
    pub graceful_shutdown_timeout: Option<Dur>,
    pub keepalive_timeout: Option<Dur>,
    pub upgrade_sock: Option<String>,
    pub pid_file: Option<String>,
    pub error_log: Option<String>,
    pub watch_config: Option<Flag>,
    pub session_store: Option<FileSessionStore>,
    pub access_log: Option<FileAccessLog>,
    pub tracing: Option<FileTracing>,
    pub identity_providers: Option<Vec<FileIdentityProvider>>,
    pub tenants: Option<Vec<FileTenant>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileSessionStore {
    pub url: Option<String>,
    pub pool_size: Option<Int<usize>>,
    pub key_prefix: Option<String>,
    pub timeout: Option<Dur>,
    pub local_cache_ttl: Option<Dur>,
    pub on_unavailable: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileAccessLog {
    pub enabled: Option<Flag>,
    pub format: Option<String>,
    pub sample_rate: Option<f64>,
}

/// `tracing`: OpenTelemetry spans over OTLP/HTTP.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileTracing {
    pub otlp_endpoint: Option<String>,
    pub sampling_ratio: Option<f64>,
    pub service_name: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileIdentityProvider {
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub discovery_url: Option<String>,
    pub jwks_file: Option<String>,
    pub client_id: Option<Text>,
    pub client_secret: Option<Text>,
    pub audiences: Option<Vec<Text>>,
    pub algorithms: Option<Vec<String>>,
    pub leeway: Option<Dur>,
    pub scopes: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub jwks_refresh_interval: Option<Dur>,
    pub jwks_min_refetch_interval: Option<Dur>,
    pub max_token_age: Option<Dur>,
    pub introspection: Option<Flag>,
    pub introspection_url: Option<String>,
    pub introspection_cache_ttl: Option<Dur>,
    pub authorized_parties: Option<Vec<Text>>,
    pub allow_insecure_http: Option<Flag>,
    pub token_cache_size: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileTenant {
    pub name: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub identity_provider: Option<String>,
    pub enable_default_deny: Option<Flag>,
    pub enable_https_redirection: Option<Flag>,
    pub default_upstream: Option<String>,
    pub upstreams: Option<Vec<FileUpstream>>,
    pub routes: Option<Vec<FileRoute>>,
    pub identity_headers: Option<OrderedMap<Text>>,
    pub forward_access_token: Option<Flag>,
    pub pass_rewrite_headers: Option<Flag>,
    pub token_cookie: Option<String>,
    pub cors: Option<FileCors>,
    pub security_headers: Option<OrderedMap<Text>>,
    pub request_id_header: Option<String>,
    pub login: Option<FileLogin>,
    pub cookie: Option<FileCookie>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub resource_metadata: Option<FileResourceMetadata>,
    pub identity_assertion: Option<FileIdentityAssertion>,
    pub rate_limits: Option<Vec<FileRateLimit>>,
    pub upgrade_idle_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileIdentityAssertion {
    pub header: Option<String>,
    pub signing_key: Option<OneOrMany>,
    pub ttl: Option<Dur>,
    pub audience: Option<Text>,
}

/// One entry of `rate-limits` (a tenant's or a route's).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileRateLimit {
    pub key: Option<String>,
    pub rate: Option<Text>,
    pub burst: Option<Int<u64>>,
    pub shared: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileResourceMetadata {
    pub scopes_supported: Option<Vec<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub name: Option<String>,
    pub targets: Option<Vec<String>>,
    pub balance: Option<String>,
    pub health_check: Option<FileHealthCheck>,
    pub connect_timeout: Option<Dur>,
    pub read_timeout: Option<Dur>,
    pub tls: Option<Flag>,
    pub sni: Option<String>,
    pub tls_verify: Option<Flag>,
    pub h2: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileHealthCheck {
    pub path: Option<String>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub healthy_threshold: Option<Int<usize>>,
    pub unhealthy_threshold: Option<Int<usize>>,
    pub expected_status: Option<Int<u16>>,
    pub host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileRoute {
    pub name: Option<String>,
    pub uri: Option<String>,
    pub methods: Option<Vec<String>>,
    pub white_listed: Option<Flag>,
    pub white_listed_anon: Option<Flag>,
    pub roles: Option<Vec<Text>>,
    pub groups: Option<Vec<Text>>,
    pub require_all: Option<Flag>,
    pub match_claims: Option<OrderedMap<Text>>,
    pub max_body_size: Option<Size>,
    pub upstream: Option<String>,
    pub introspect: Option<Flag>,
    pub rate_limits: Option<Vec<FileRateLimit>>,
    pub resource: Option<String>,
    pub acr: Option<Vec<Text>>,
    pub max_auth_age: Option<Dur>,
    pub dpop: Option<Text>,
    pub dpop_proof_window: Option<Dur>,
    pub dpop_nonce: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileCors {
    pub origins: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
    pub exposed_headers: Option<Vec<String>>,
    pub credentials: Option<Flag>,
    pub max_age: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileLogin {
    pub redirect_url: Option<String>,
    pub post_logout_redirect_url: Option<String>,
    pub allowed_redirect_hosts: Option<Vec<String>>,
    pub refresh_before_expiry: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileCookie {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub secure: Option<Flag>,
    pub same_site: Option<String>,
    pub encryption_key: Option<OneOrMany>,
    pub session_ttl: Option<Dur>,
}

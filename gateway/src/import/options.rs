//! Reading a Gatekeeper configuration into one option map, as Gatekeeper itself merges its
//! sources: a YAML config file, and `--flag=value` command-line arguments that override its
//! scalars and add to its lists (`--resources`, `--headers`, `--match-claims`, ...).
//!
//! The FILE given to `import-gatekeeper` may be a YAML mapping (a Gatekeeper config file) or a
//! YAML list of strings (a Kubernetes container's `args:`); arguments after `--` on the
//! `gatehouse` command line are applied last, exactly like arguments after `--config`.

use serde_yaml::{Mapping, Value};

use super::notes::Notes;

/// Options whose command-line form is `key=value`, collected into a mapping.
const MAP_FLAGS: &[&str] = &[
    "headers",
    "match-claims",
    "response-headers",
    "tags",
    "openid-provider-headers",
    "allowed-query-params",
    "default-allowed-query-params",
];

/// Options that hold a list; a command-line value is split on `,` and appended.
const LIST_FLAGS: &[&str] = &[
    "add-claims",
    "exclude-claims",
    "cors-origins",
    "cors-methods",
    "cors-headers",
    "cors-exposed-headers",
    "cors-exposes-headers",
    "scopes",
    "hostnames",
    "custom-http-methods",
    "forwarding-domains",
    "self-signed-tls-hostnames",
    "upstream-no-proxy",
];

/// The merged Gatekeeper options, in the order they were first seen.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Option name (kebab-case, as in the file) -> value.
    pub map: Mapping,
}

impl Options {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// `key` as text (numbers and booleans rendered), if set and scalar.
    pub fn text(&self, key: &str) -> Option<String> {
        scalar_text(self.get(key)?)
    }

    /// `key` as a boolean (`true`, `1`, `t`, `yes` and their false forms), or `default`.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        self.text(key)
            .and_then(|t| parse_bool(&t))
            .unwrap_or(default)
    }

    /// `key` as a list of strings (a scalar is one item).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Sequence(items)) => items.iter().filter_map(scalar_text).collect(),
            Some(v) => scalar_text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// `key` as ordered `(name, value)` pairs: a mapping, or a list of `name=value` /
    /// single-entry mappings.
    pub fn pairs(&self, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self.get(key) {
            Some(Value::Mapping(m)) => push_mapping(m, &mut out),
            Some(Value::Sequence(items)) => {
                for item in items {
                    match item {
                        Value::Mapping(m) => push_mapping(m, &mut out),
                        other => {
                            if let Some((k, v)) = scalar_text(other)
                                .as_deref()
                                .and_then(|t| t.split_once('='))
                            {
                                out.push((k.trim().to_string(), v.trim().to_string()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Applies `other` over these options as Gatekeeper applies its command line over its
    /// config file: scalars are replaced, lists are extended, mappings get `other`'s entries.
    pub fn overlay(&mut self, other: Options) {
        for (k, v) in other.map {
            match (self.map.get_mut(&k), v) {
                (Some(Value::Sequence(mine)), Value::Sequence(theirs)) => mine.extend(theirs),
                (Some(Value::Mapping(mine)), Value::Mapping(theirs)) => {
                    for (mk, mv) in theirs {
                        mine.insert(mk, mv);
                    }
                }
                (_, v) => {
                    self.map.insert(k, v);
                }
            }
        }
    }

    /// Applies command-line arguments (`--key=value`, `--key value`, `--key` `value`, or a
    /// bare `--flag` meaning true) over the file's options. `--config` is returned, not set.
    pub fn apply_args(&mut self, args: &[String], notes: &mut Notes) -> Option<String> {
        let mut config = None;
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].trim();
            i += 1;
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                notes.unknown(arg, "a command-line argument that is not a --flag");
                continue;
            };
            // The key ends at the first `=` or space: `--match-claims aud=x` is key match-claims.
            let (key, value) = if let Some(at) = flag.find(|c: char| c == '=' || c.is_whitespace())
            {
                let value = flag[at + 1..].trim();
                let value = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(value);
                (flag[..at].to_string(), value.to_string())
            } else if i < args.len() && !args[i].trim_start().starts_with('-') {
                i += 1;
                (flag.to_string(), args[i - 1].trim().to_string())
            } else {
                (flag.to_string(), "true".to_string())
            };
            if key == "config" {
                config = Some(value);
                continue;
            }
            self.set_from_arg(&key, &value, notes);
        }
        config
    }

    fn set_from_arg(&mut self, key: &str, value: &str, notes: &mut Notes) {
        let k = Value::String(key.to_string());
        if key == "resources" {
            match parse_resource_flag(value) {
                Ok(resource) => push_item(&mut self.map, k, resource),
                Err(e) => notes.not_carried("resources", &format!("{value:?}: {e}"), None),
            }
        } else if MAP_FLAGS.contains(&key) {
            let Some((name, v)) = value.split_once('=') else {
                notes.not_carried(key, &format!("{value:?} is not name=value"), None);
                return;
            };
            let entry = self
                .map
                .entry(k)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(m) = entry {
                m.insert(name.trim().into(), v.trim().into());
            }
        } else if LIST_FLAGS.contains(&key) {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                push_item(&mut self.map, k.clone(), item.into());
            }
        } else {
            self.map.insert(k, Value::String(value.to_string()));
        }
    }
}

/// Reads FILE's text: a YAML mapping (config file) or a YAML list of arguments. Returns the
/// options and the `--config` path named by an argument list, if any.
pub fn read(text: &str, notes: &mut Notes) -> Result<(Options, Option<String>), String> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    match value {
        Value::Mapping(map) if map.contains_key("apiVersion") && map.contains_key("kind") => Err(
            "a Kubernetes manifest, not a Gatekeeper config: import the ConfigMap's config entry, \
             or the container's args: as a YAML list"
                .into(),
        ),
        Value::Mapping(map) => Ok((Options { map }, None)),
        Value::Sequence(items) => {
            let args: Vec<String> = items.iter().filter_map(scalar_text).collect();
            let mut options = Options::default();
            let config = options.apply_args(&args, notes);
            Ok((options, config))
        }
        Value::Null => Ok((Options::default(), None)),
        _ => Err(
            "expected a Gatekeeper config (a YAML mapping) or a list of --flag=value arguments"
                .into(),
        ),
    }
}

/// Parses Gatekeeper's command-line resource form, `uri=/admin*|methods=GET,PUT|roles=a,b`.
pub fn parse_resource_flag(value: &str) -> Result<Value, String> {
    let mut m = Mapping::new();
    for part in value.split('|').filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("{part:?} is not key=value"));
        };
        let list = |v: &str| {
            Value::Sequence(
                v.split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            )
        };
        let v = match k {
            "uri" => Value::String(v.to_string()),
            "methods" | "roles" | "groups" | "headers" | "acr" => list(v),
            "white-listed" | "white-listed-anon" | "no-redirect" | "require-any-role" => {
                Value::Bool(parse_bool(v).ok_or_else(|| format!("{k}={v}: not a boolean"))?)
            }
            other => return Err(format!("unknown resource field {other:?}")),
        };
        m.insert(k.into(), v);
    }
    Ok(Value::Mapping(m))
}

/// Go's `strconv.ParseBool` plus `yes`/`no`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A scalar as text; `None` for mappings, sequences and null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

fn push_mapping(m: &Mapping, out: &mut Vec<(String, String)>) {
    for (k, v) in m {
        if let (Some(k), Some(v)) = (scalar_text(k), scalar_text(v)) {
            out.push((k, v));
        }
    }
}

fn push_item(map: &mut Mapping, key: Value, item: Value) {
    let entry = map
        .entry(key)
        .or_insert_with(|| Value::Sequence(Vec::new()));
    match entry {
        Value::Sequence(items) => items.push(item),
        other => {
            let first = std::mem::replace(other, Value::Null);
            *other = Value::Sequence(vec![first, item]);
        }
    }
}

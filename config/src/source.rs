//! The YAML source: key-path → line map, `${VAR}` expansion, and error collection.
//!
//! `serde_yaml` values carry no positions, so the source is scanned a second time with an event
//! parser (`yaml-rust2`) that records the line of every key path (`tenants[0].routes[3].uri`).
//! Errors found anywhere later are attached to a key path and look their line up here.

use std::collections::{HashMap, HashSet};

use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::ConfigError;

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The path one level up: `a.b[2]` → `a.b` → `a` → ``.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return Some(&path[..i]);
        }
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

/// Line of every key path in the source, as far as the event parser understood it.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    lines: HashMap<String, usize>,
    /// Keys written twice in one mapping: (key path, line of the repeat, line of the first).
    pub(crate) duplicates: Vec<(String, usize, usize)>,
}

impl Positions {
    /// Scans `source`. A syntax error stops the scan quietly: `serde_yaml` reports it.
    pub(crate) fn scan(source: &str) -> Positions {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(source);
        let _ = parser.load(&mut rec, false);
        Positions {
            lines: rec.lines,
            duplicates: rec.duplicates,
        }
    }

    /// Line of `path`, or of its nearest ancestor that has one.
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(l) = self.lines.get(cur) {
                return Some(*l);
            }
            p = parent_path(cur);
        }
        None
    }
}

enum Frame {
    Map {
        path: String,
        expecting_key: bool,
        key: String,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
    duplicates: Vec<(String, usize, usize)>,
    /// Nesting depth inside a complex (non-scalar) mapping key, whose contents are not recorded.
    in_complex_key: usize,
}

impl Recorder {
    /// Path of the node that starts now, or `None` when it is a mapping key (then `key_text`
    /// becomes the current key).
    fn node_path(&mut self, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map {
                path,
                expecting_key,
                key,
            }) => {
                if *expecting_key {
                    *expecting_key = false;
                    *key = key_text.unwrap_or("?").to_string();
                    None
                } else {
                    *expecting_key = true;
                    Some(join(path, key))
                }
            }
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.lines.entry(path.to_string()).or_insert(mark.line());
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.in_complex_key > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.in_complex_key += 1,
                Event::MappingEnd | Event::SequenceEnd => self.in_complex_key -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(text, ..) => match self.node_path(Some(&text)) {
                Some(p) => self.record(&p, mark),
                None => {
                    // A key: its line is where errors about the key's value point.
                    if let Some(Frame::Map { path, key, .. }) = self.stack.last() {
                        let p = join(path, key);
                        if let Some(first) = self.lines.get(&p) {
                            self.duplicates.push((p.clone(), mark.line(), *first));
                        }
                        self.record(&p, mark);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(p) = self.node_path(None) {
                    self.record(&p, mark);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                match self.node_path(None) {
                    Some(p) => {
                        self.record(&p, mark);
                        self.stack.push(if is_map {
                            Frame::Map {
                                path: p,
                                expecting_key: true,
                                key: String::new(),
                            }
                        } else {
                            Frame::Seq { path: p, next: 0 }
                        });
                    }
                    None => self.in_complex_key = 1,
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Collects errors with their lines; drops follow-up errors under a key already reported.
pub(crate) struct Diag<'a> {
    file: &'a str,
    positions: &'a Positions,
    pub(crate) errors: Vec<ConfigError>,
    /// Things that load but probably do not mean what the author thinks.
    pub(crate) warnings: Vec<ConfigError>,
    suppressed: HashSet<String>,
}

impl<'a> Diag<'a> {
    pub(crate) fn new(file: &'a str, positions: &'a Positions) -> Diag<'a> {
        Diag {
            file,
            positions,
            errors: Vec::new(),
            warnings: Vec::new(),
            suppressed: HashSet::new(),
        }
    }

    /// The source's key positions.
    pub(crate) fn positions(&self) -> &'a Positions {
        self.positions
    }

    /// Records an error about `key` (a key path), unless `key` or an ancestor already failed.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        if self.is_suppressed(key) {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: self.positions.line(key),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records a warning about `key`: the config loads, `gatehouse check` prints it.
    pub(crate) fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            file: self.file.to_string(),
            line: self.positions.line(key),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records an error with an explicit line (syntax errors).
    pub(crate) fn error_at(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Later errors about `key` or anything under it are follow-ups and are dropped.
    pub(crate) fn suppress(&mut self, key: &str) {
        self.suppressed.insert(key.to_string());
    }

    fn is_suppressed(&self, key: &str) -> bool {
        let mut p = Some(key);
        while let Some(cur) = p {
            if self.suppressed.contains(cur) {
                return true;
            }
            p = parent_path(cur);
        }
        false
    }
}

/// Expands `${NAME}` (and `${NAME:-default}`) in every string value; `$${` is a literal `${`.
/// An unset NAME without a default is an error naming NAME and the key.
pub(crate) fn expand_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diag: &mut Diag<'_>,
) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                match expand_str(s, env) {
                    Ok(expanded) => *s = expanded,
                    Err(problems) => {
                        for p in problems {
                            diag.error(path, p);
                        }
                        diag.suppress(path);
                    }
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &index(path, i), env, diag);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = key_text(k);
                expand_env(v, &join(path, &key), env, diag);
            }
        }
        Value::Tagged(t) => expand_env(&mut t.value, path, env, diag),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A mapping key as it appears in key paths.
pub(crate) fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => "?".to_string(),
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands one string; the error lists every problem in it.
pub(crate) fn expand_str(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut problems = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body_start) = after.strip_prefix("${") {
            let Some(end) = body_start.find('}') else {
                problems.push(format!("unterminated \"${{\" in {s:?}"));
                break;
            };
            let body = &body_start[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if !valid_env_name(name) {
                problems.push(format!(
                    "invalid environment variable name {name:?} in \"${{{body}}}\""
                ));
            } else {
                match (env(name), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        problems.push(format!("environment variable {name} is not set"))
                    }
                }
            }
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Deserializes `root` into `T`, collecting every error instead of stopping at the first: after
/// each error the offending key is removed (a bad list item is blanked first) and deserializing
/// starts over, so one bad key never hides another.
pub(crate) fn deserialize_all<T: serde::de::DeserializeOwned>(
    mut root: Value,
    diag: &mut Diag<'_>,
) -> Option<T> {
    let mut attempts: HashMap<Vec<Seg>, usize> = HashMap::new();
    // Every iteration removes or blanks part of the tree, so this bounds the work.
    for _ in 0..1000 {
        let err = match serde_path_to_error::deserialize::<_, T>(root.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let mut segs: Vec<Seg> = Vec::new();
        for s in err.path().iter() {
            match s {
                serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { .. } => {}
                serde_path_to_error::Segment::Unknown => break,
            }
        }
        let raw = err.into_inner().to_string();
        let message = match unknown_field(&raw) {
            Some((field, msg)) => {
                if segs.last() != Some(&Seg::Key(field.clone())) {
                    segs.push(Seg::Key(field));
                }
                msg
            }
            None => tidy_message(&raw),
        };
        let path = seg_path(&segs);
        let attempt = attempts.entry(segs.clone()).or_insert(0);
        if *attempt == 0 {
            diag.error(&path, message);
            diag.suppress(&path);
        }
        let n = *attempt;
        *attempt += 1;
        if !prune(&mut root, &segs, n, diag) {
            return None;
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

fn seg_path(segs: &[Seg]) -> String {
    let mut p = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => p = join(&p, k),
            Seg::Index(i) => p = index(&p, *i),
        }
    }
    p
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into the field and a message
/// that lists the allowed keys.
fn unknown_field(raw: &str) -> Option<(String, String)> {
    let rest = raw.strip_prefix("unknown field `")?;
    let (field, tail) = rest.split_once('`')?;
    let allowed: Vec<&str> = tail
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let msg = if allowed.is_empty() {
        format!("unknown key {field:?}; no keys are allowed here")
    } else {
        format!(
            "unknown key {field:?}; allowed keys: {}",
            allowed.join(", ")
        )
    };
    Some((field.to_string(), msg))
}

/// Serde's wording, minus the schema's internal type names.
fn tidy_message(raw: &str) -> String {
    match raw.find("expected struct ") {
        Some(i) => format!("{}expected a mapping of keys", &raw[..i]),
        None => raw.to_string(),
    }
}

/// Makes the error at `segs` go away so deserializing can go on. When the deepest existing node
/// on `segs` is a list item, it is first replaced by an empty mapping, then by an empty string
/// (one of which suits the item's type, and the item's own errors are suppressed); otherwise, or
/// when that did not help, the deepest existing mapping key on `segs` is removed.
fn prune(root: &mut Value, segs: &[Seg], attempt: usize, diag: &mut Diag<'_>) -> bool {
    // How deep the path exists, and where the last mapping key on it is.
    let mut depth = 0;
    let mut last_key = None;
    {
        let mut cur = &*root;
        for (i, s) in segs.iter().enumerate() {
            let next = match (s, cur) {
                (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str()),
                (Seg::Index(n), Value::Sequence(v)) => v.get(*n),
                _ => None,
            };
            match next {
                Some(v) => {
                    if matches!(s, Seg::Key(_)) {
                        last_key = Some(i);
                    }
                    depth = i + 1;
                    cur = v;
                }
                None => break,
            }
        }
    }
    if depth > 0 && matches!(segs[depth - 1], Seg::Index(_)) {
        let replacement = match attempt {
            0 => Some(Value::Mapping(Mapping::new())),
            1 => Some(Value::String(String::new())),
            _ => None,
        };
        if let (Some(r), Some(node)) = (replacement, walk_mut(root, &segs[..depth])) {
            diag.suppress(&seg_path(&segs[..depth]));
            *node = r;
            return true;
        }
    }
    let Some(k) = last_key else { return false };
    let removed = seg_path(&segs[..=k]);
    diag.suppress(&removed);
    match (walk_mut(root, &segs[..k]), &segs[k]) {
        (Some(Value::Mapping(m)), Seg::Key(key)) => m.remove(key.as_str()).is_some(),
        _ => false,
    }
}

fn walk_mut<'v>(root: &'v mut Value, segs: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = root;
    for s in segs {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str())?,
            (Seg::Index(n), Value::Sequence(v)) => v.get_mut(*n)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_keys() {
        let src = "a: 1\nlist:\n  - name: x\n    sub: { k: v }\n  - name: y\n    items: [1, 2]\n";
        let p = Positions::scan(src);
        assert_eq!(p.line("a"), Some(1));
        assert_eq!(p.line("list"), Some(2));
        assert_eq!(p.line("list[0]"), Some(3));
        assert_eq!(p.line("list[0].name"), Some(3));
        assert_eq!(p.line("list[0].sub.k"), Some(4));
        assert_eq!(p.line("list[1].name"), Some(5));
        assert_eq!(p.line("list[1].items[1]"), Some(6));
        assert_eq!(p.line("list[1].missing"), Some(5));
        assert_eq!(p.line("nothing"), Some(1), "falls back to the document");
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| match n {
            "A" => Some("alpha".to_string()),
            _ => None,
        };
        assert_eq!(expand_str("x${A}y", &env).unwrap(), "xalphay");
        assert_eq!(expand_str("$${A} $A $", &env).unwrap(), "${A} $A $");
        assert_eq!(expand_str("${B:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(
            expand_str("${B}${C}", &env).unwrap_err(),
            vec![
                "environment variable B is not set".to_string(),
                "environment variable C is not set".to_string()
            ]
        );
        assert!(expand_str("${A", &env).unwrap_err()[0].contains("unterminated"));
        assert!(expand_str("${1x}", &env).unwrap_err()[0].contains("invalid environment"));
    }

    #[test]
    fn unknown_field_message() {
        let (f, m) = unknown_field("unknown field `foo`, expected one of `a`, `b-c`").unwrap();
        assert_eq!(f, "foo");
        assert_eq!(m, "unknown key \"foo\"; allowed keys: a, b-c");
        let (_, m) = unknown_field("unknown field `foo`, expected `a`").unwrap();
        assert_eq!(m, "unknown key \"foo\"; allowed keys: a");
    }
}

//! Gatekeeper `resources` (plus its default deny) as gatehouse `routes` with the same answers.
//!
//! Gatekeeper registers each resource per method on a chi router: for one `(uri, method)` the
//! last resource wins, a request takes the most specific pattern that has a handler for its
//! method (an exact path before the longest `prefix*`), and default deny appends a
//! `/*` resource for every method that overrides a user's `/*`. This module evaluates exactly
//! that table for each gatehouse route (`probe` paths), so the output needs no fall-through:
//! every route lists the methods whose rule it carries.
//!
//! Differences it bridges: chi's `/x/*` does not match `/x` (gatehouse's does), so `/x` gets its
//! own exact route when Gatekeeper answers it differently; `/x*` also matches `/xyz` in
//! Gatekeeper, which gatehouse's segment prefixes cannot say (a note names it). Roles are ALL
//! required unless `require-any-role` (gatehouse `require-all`); groups are ANY.

use serde_yaml::{Mapping, Value};

use super::notes::Notes;
use super::options::{parse_bool, parse_resource_flag, scalar_text, Options};

/// Gatekeeper's `utils.AllHTTPMethods`, the methods a resource without `methods` covers.
pub const METHODS: [&str; 8] = [
    "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// What Gatekeeper does with a request that reached a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `white-listed`: proxied without authentication.
    Public,
    /// `white-listed-anon`: anonymous allowed; a token is checked.
    Anon,
    /// `enable-default-deny-strict`: refused even with a valid token.
    Deny,
    /// Authentication, then these requirements.
    Auth(Need),
}

/// An authenticated resource's requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Need {
    /// `roles` (`client:role` or a realm role).
    pub roles: Vec<String>,
    /// `groups` (any one).
    pub groups: Vec<String>,
    /// `require-any-role`.
    pub any_role: bool,
    /// `headers` (`name:value`, all required).
    pub headers: Vec<String>,
    /// `acr` (step-up levels).
    pub acr: Vec<String>,
}

/// A Gatekeeper uri pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A path without `*`.
    Exact(String),
    /// `P*`: every path that starts with `P`.
    Prefix(String),
}

impl Pattern {
    fn parse(uri: &str) -> Result<Pattern, &'static str> {
        if !uri.starts_with('/') {
            return Err("does not start with /");
        }
        if uri.contains('{') {
            return Err("has chi {parameters}; gatehouse routes are exact paths or /prefix/*");
        }
        match uri.find('*') {
            None => Ok(Pattern::Exact(uri.to_string())),
            Some(i) if i == uri.len() - 1 => Ok(Pattern::Prefix(uri[..i].to_string())),
            Some(_) => Err("has a * before its end; gatehouse routes are exact paths or /prefix/*"),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == path,
            Pattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// One resource as registered: its pattern and its rule per method (index into [`METHODS`]).
#[derive(Debug, Clone)]
struct Entry {
    pattern: Pattern,
    rules: [Option<Rule>; 8],
}

/// The registered resources, as Gatekeeper's router holds them.
#[derive(Debug, Default)]
pub struct Table {
    entries: Vec<Entry>,
}

impl Table {
    /// Registers `rule` for `methods` of `uri` (last registration wins, as in chi).
    fn register(&mut self, pattern: Pattern, methods: &[usize], rule: &Rule) -> bool {
        let at = match self.entries.iter().position(|e| e.pattern == pattern) {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    pattern,
                    rules: Default::default(),
                });
                self.entries.len() - 1
            }
        };
        let mut overrode = false;
        for &m in methods {
            let slot = &mut self.entries[at].rules[m];
            overrode |= slot.as_ref().is_some_and(|r| r != rule);
            *slot = Some(rule.clone());
        }
        overrode
    }

    /// What Gatekeeper does for `method` on `path`: the exact pattern, else the longest prefix
    /// pattern, that has a rule for the method; `None` when nothing matches.
    pub fn effective(&self, path: &str, method: usize) -> Option<&Rule> {
        let candidates = self
            .entries
            .iter()
            .filter(|e| e.rules[method].is_some() && e.pattern.matches(path));
        let best = candidates.max_by_key(|e| match &e.pattern {
            Pattern::Exact(_) => usize::MAX,
            Pattern::Prefix(p) => p.len(),
        })?;
        best.rules[method].as_ref()
    }
}

/// The gatekeeper resources, read and registered in Gatekeeper's order, with default deny.
pub fn table(options: &Options, notes: &mut Notes) -> Table {
    let strict = options.flag("enable-default-deny-strict", false);
    let deny = options.flag("enable-default-deny", true);
    if options.get("enable-default-deny").is_none() && !strict {
        notes.changed(
            "enable-default-deny",
            "not set: taken as true (gogatekeeper's default: every path no resource names needs a valid token); \
             Keycloak Gatekeeper's default was false (such paths were public): pass --enable-default-deny=false after -- to import that",
        );
    }
    let mut t = Table::default();
    let all: Vec<usize> = (0..METHODS.len()).collect();
    if !deny && !strict {
        // chi's NotFound / MethodNotAllowed handlers proxy without authentication.
        t.register(Pattern::Prefix("/".into()), &all, &Rule::Public);
        notes.changed(
            "enable-default-deny",
            "false: every path and method no resource names stays public (a white-listed /* route), as in Gatekeeper; \
             consider enable-default-deny",
        );
    }
    let resources = match options.get("resources") {
        Some(Value::Sequence(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    for (i, r) in resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        // A resource may also be written in its command-line form, `uri=/x|roles=a`.
        let parsed = match r {
            Value::String(flag) => match parse_resource_flag(flag) {
                Ok(v) => v,
                Err(e) => {
                    notes.not_carried(&at, &e, Some("write it as a mapping with uri, roles, ..."));
                    continue;
                }
            },
            other => other.clone(),
        };
        let Some(m) = parsed.as_mapping() else {
            notes.not_carried(&at, "not a mapping", None);
            continue;
        };
        let Some(uri) = m.get("uri").and_then(scalar_text) else {
            notes.not_carried(&at, "has no uri (Gatekeeper refuses it too)", None);
            continue;
        };
        let at = format!("resources[{i}] {uri}");
        let pattern = match Pattern::parse(&uri) {
            Ok(p) => p,
            Err(why) => {
                notes.not_carried(
                    &at,
                    &format!("uri {why}; its paths fall to the other routes"),
                    Some("write it as exact paths or a /prefix/* route by hand"),
                );
                continue;
            }
        };
        let (rule, methods) = resource_rule(m, &at, notes);
        if t.register(pattern, &methods, &rule) {
            notes.changed(
                &at,
                "overrides an earlier resource with the same uri and method (the last one wins in Gatekeeper too)",
            );
        }
    }
    if deny || strict {
        let rule = if strict {
            Rule::Deny
        } else {
            Rule::Auth(Need::default())
        };
        if t.register(Pattern::Prefix("/".into()), &all, &rule) {
            notes.changed(
                "resources /*",
                "replaced by Gatekeeper's default deny, which is registered after the resources (as Gatekeeper does)",
            );
        }
    }
    t
}

fn resource_rule(m: &Mapping, at: &str, notes: &mut Notes) -> (Rule, Vec<usize>) {
    let flag = |k: &str| {
        m.get(k)
            .and_then(scalar_text)
            .and_then(|v| parse_bool(&v))
            .unwrap_or(false)
    };
    let list = |k: &str| -> Vec<String> {
        match m.get(k) {
            Some(Value::Sequence(s)) => s.iter().filter_map(scalar_text).collect(),
            Some(Value::Mapping(map)) => map
                .iter()
                .filter_map(|(k, v)| Some(format!("{}:{}", scalar_text(k)?, scalar_text(v)?)))
                .collect(),
            Some(v) => scalar_text(v)
                .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let mut methods = Vec::new();
    for name in list("methods") {
        let upper = name.to_ascii_uppercase();
        if upper == "ANY" {
            methods.extend(0..METHODS.len());
        } else if let Some(i) = METHODS.iter().position(|x| *x == upper) {
            methods.push(i);
        } else {
            notes.not_carried(
                at,
                &format!("method {name} is not one gatehouse routes by name"),
                Some("list it on a route by hand"),
            );
        }
    }
    if methods.is_empty() {
        methods.extend(0..METHODS.len());
    }
    for k in m.keys().filter_map(scalar_text) {
        let known = [
            "uri",
            "methods",
            "roles",
            "groups",
            "headers",
            "acr",
            "white-listed",
            "white-listed-anon",
            "no-redirect",
            "require-any-role",
        ];
        if !known.contains(&k.as_str()) {
            notes.unknown(&format!("{at}: {k}"), "not a Gatekeeper resource field");
        }
    }
    let need = Need {
        roles: list("roles"),
        groups: list("groups"),
        any_role: flag("require-any-role"),
        headers: list("headers"),
        acr: list("acr"),
    };
    let rule = if flag("white-listed") {
        Rule::Public
    } else if flag("white-listed-anon") {
        if need != Need::default() {
            notes.not_carried(
                at,
                "white-listed-anon with roles, groups, headers or acr: gatehouse's anonymous routes take no requirements",
                Some("split the route: a white-listed-anon one and a protected one"),
            );
        }
        Rule::Anon
    } else {
        Rule::Auth(need)
    };
    if flag("no-redirect") {
        notes.changed(
            at,
            "no-redirect: gatehouse redirects only navigations (Accept: text/html); API calls get 401",
        );
    }
    (rule, methods)
}

/// The gatehouse routes: for each pattern's gatehouse uri, the effective rule per method,
/// grouped by rule. Authenticated routes also get the global `claims` (`match-claims`); every
/// route gets `max_body` when set.
pub fn routes(
    t: &Table,
    claims: &[(String, String)],
    max_body: Option<&Value>,
    notes: &mut Notes,
) -> Vec<Value> {
    // (gatehouse uri, the path Gatekeeper is asked about)
    let mut probes: Vec<(String, String)> = Vec::new();
    let add = |uri: String, probe: String, probes: &mut Vec<(String, String)>| {
        if !probes.iter().any(|(u, _)| *u == uri) {
            probes.push((uri, probe));
        }
    };
    for e in &t.entries {
        match &e.pattern {
            Pattern::Exact(p) => add(p.clone(), p.clone(), &mut probes),
            Pattern::Prefix(p) => {
                let base = p.trim_end_matches('/').to_string();
                if !p.ends_with('/') {
                    notes.changed(
                        &format!("resources {p}*"),
                        &format!(
                            "Gatekeeper's {p}* also matches {p}-anything; gatehouse routes {base} and {base}/* only, \
                             other paths starting with {p} fall to the next route"
                        ),
                    );
                }
                // A path below `base` that no exact pattern names (NUL is in no uri).
                let below = format!("{base}/\0");
                add(format!("{base}/*"), below.clone(), &mut probes);
                if !base.is_empty() {
                    // chi's `/x/*` does not match `/x`; gatehouse's does.
                    let exact_differs =
                        (0..METHODS.len()).any(|m| t.effective(&base, m) != t.effective(&below, m));
                    if exact_differs {
                        add(base.clone(), base.clone(), &mut probes);
                    }
                }
            }
        }
    }
    probes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (uri, probe) in probes {
        let mut groups: Vec<(Option<&Rule>, Vec<usize>)> = Vec::new();
        for m in 0..METHODS.len() {
            let rule = t.effective(&probe, m);
            match groups.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, ms)) => ms.push(m),
                None => groups.push((rule, vec![m])),
            }
        }
        for (rule, methods) in groups {
            let mut r = Mapping::new();
            r.insert("uri".into(), uri.clone().into());
            if methods.len() < METHODS.len() {
                r.insert(
                    "methods".into(),
                    Value::Sequence(methods.iter().map(|&m| METHODS[m].into()).collect()),
                );
            }
            match rule {
                // Unmatched and strictly denied: no route, so gatehouse's default deny refuses.
                None | Some(Rule::Deny) => continue,
                Some(Rule::Public) => {
                    r.insert("white-listed".into(), true.into());
                }
                Some(Rule::Anon) => {
                    r.insert("white-listed-anon".into(), true.into());
                    if !claims.is_empty() {
                        notes.not_carried(
                            &format!("resources {uri}"),
                            "white-listed-anon: Gatekeeper checked match-claims when a token came; gatehouse's anonymous routes take no claims",
                            Some("make the route protected, or check the claims in the upstream"),
                        );
                    }
                }
                Some(Rule::Auth(need)) => {
                    auth_keys(need, claims, &mut r, notes, &format!("resources {uri}"))
                }
            }
            if let Some(limit) = max_body {
                r.insert("max-body-size".into(), limit.clone());
            }
            out.push(Value::Mapping(r));
        }
    }
    out
}

/// Route keys for an authenticated rule: roles (all unless `require-any-role`), groups (any),
/// the global `match-claims`, and notes for what gatehouse cannot check.
pub fn auth_keys(
    need: &Need,
    claims: &[(String, String)],
    r: &mut Mapping,
    notes: &mut Notes,
    at: &str,
) {
    let require_all = !need.any_role && need.roles.len() > 1;
    let mut match_claims: Vec<(String, String)> = claims.to_vec();
    if !need.roles.is_empty() {
        r.insert("roles".into(), strings(&need.roles));
    }
    if need.roles.iter().any(|role| !role.contains(':')) {
        notes.changed(
            "roles",
            "a bare role is a realm role in Gatekeeper; gatehouse also accepts the same-named client role of the provider's client-id",
        );
    }
    if !need.groups.is_empty() {
        if require_all && need.groups.len() > 1 {
            // gatehouse's require-all would need every group; Gatekeeper needs any one.
            let alternatives: Vec<String> = need.groups.iter().map(|g| regex::escape(g)).collect();
            match_claims.push(("groups".into(), format!("^(?:{})$", alternatives.join("|"))));
        } else {
            r.insert("groups".into(), strings(&need.groups));
        }
    }
    if require_all {
        r.insert("require-all".into(), true.into());
    }
    if !match_claims.is_empty() {
        let mut m = Mapping::new();
        for (k, v) in match_claims {
            m.insert(k.into(), v.into());
        }
        r.insert("match-claims".into(), Value::Mapping(m));
    }
    if !need.headers.is_empty() {
        notes.not_carried(
            at,
            &format!(
                "request-header matching ({}) has no gatehouse equivalent: this route admits requests without those headers",
                need.headers.join(", ")
            ),
            Some("check the header in the upstream (for a body limit use the route's max-body-size)"),
        );
    }
    if !need.acr.is_empty() {
        // Gatekeeper's level of authentication (enable-loa): the route's `acr`, which sends a
        // browser to the provider with acr_values and refuses a weaker token (RFC 9470).
        r.insert("acr".into(), strings(&need.acr));
    }
}

fn strings(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
}

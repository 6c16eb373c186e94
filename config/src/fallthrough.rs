//! Method fall-through with weaker requirements, for a `gatehouse check` warning.
//!
//! A route that lists `methods` does not match the other methods: such a request falls through
//! to the next route that matches its path (Gatekeeper semantics, kept on purpose). When that
//! route asks for less (white-listed, or fewer roles, groups or claims, another `resource`, a
//! weaker `acr` or `max-auth-age`), a method the author did
//! not list reaches the upstream with weaker requirements: `methods: [GET, POST, PUT, DELETE]`
//! on `/admin/*` in front of `/*` lets any signed-in user `PATCH /admin/users`.
//!
//! The matching here mirrors `policy::routes::RouteTable` (exact beats prefix, a longer prefix
//! beats a shorter one, at one pattern a listed method beats a route without `methods`) as a
//! linear scan: it runs once per config, not per request.

use crate::model::{Config, Route};
use crate::source::{index, join, Diag};

/// The standard methods, as a route's `methods` spells them.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Stands for every extension method (`PURGE`, `PROPFIND`, ...): no `methods` list admits one.
const OTHER: &str = "any other method";

/// Where a request that no route of the method list admits ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallsTo {
    /// The route at this index of the tenant's routes.
    Route(usize),
    /// No route matches: the tenant's `enable-default-deny: false` lets any authenticated caller
    /// through to the default upstream.
    UnmatchedAuthenticated,
}

/// One route whose unlisted methods land on a weaker route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WeakerFallThrough {
    /// Index of the route that lists `methods`.
    pub route: usize,
    /// The methods that fall through to `to` (standard names, then [`OTHER`]).
    pub methods: Vec<&'static str>,
    /// Where they land.
    pub to: FallsTo,
    /// What `to` asks less of, e.g. `white-listed` or `roles [] instead of [admin]`.
    pub weaker: Vec<String>,
}

/// Every route of a tenant's `routes` whose unlisted methods fall through to a route with
/// weaker requirements, grouped by the route they land on. `default_deny` is the tenant's
/// `enable-default-deny`.
pub(crate) fn weaker_fall_throughs(routes: &[Route], default_deny: bool) -> Vec<WeakerFallThrough> {
    let mut found = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        if route.methods.is_empty() || route.white_listed {
            continue;
        }
        // A path under the route that no more specific route claims.
        let path = match route.uri.strip_suffix("/*") {
            Some(key) => format!("{key}/\u{0}"),
            None => route.uri.clone(),
        };
        let unlisted = METHODS
            .iter()
            .copied()
            .filter(|m| !route.methods.iter().any(|l| l == m))
            .map(Some)
            .chain([None]);
        let mut groups: Vec<WeakerFallThrough> = Vec::new();
        for method in unlisted {
            let to = match lookup(routes, &path, method) {
                Some(j) => FallsTo::Route(j),
                None if !default_deny => FallsTo::UnmatchedAuthenticated,
                None => continue,
            };
            let weaker = match to {
                FallsTo::Route(j) => weaker_than(route, &routes[j]),
                FallsTo::UnmatchedAuthenticated => weaker_than(route, &AUTHENTICATED),
            };
            if weaker.is_empty() {
                continue;
            }
            let name = method.unwrap_or(OTHER);
            match groups.iter_mut().find(|g| g.to == to) {
                Some(g) => g.methods.push(name),
                None => groups.push(WeakerFallThrough {
                    route: i,
                    methods: vec![name],
                    to,
                    weaker,
                }),
            }
        }
        found.extend(groups);
    }
    found
}

/// Warns once per [`WeakerFallThrough`] of every tenant, on the line of the route's `methods`,
/// naming the route it falls to and that route's line.
pub(crate) fn warn(config: &Config, d: &mut Diag<'_>) {
    let positions = d.positions();
    for (t, tenant) in config.tenants.iter().enumerate() {
        let routes_key = join(&index("tenants", t), "routes");
        for found in weaker_fall_throughs(&tenant.routes, tenant.enable_default_deny) {
            let route = &tenant.routes[found.route];
            let key = join(&index(&routes_key, found.route), "methods");
            let lands = match found.to {
                FallsTo::Route(j) => {
                    let line = positions
                        .line(&join(&index(&routes_key, j), "uri"))
                        .map_or(String::new(), |l| format!(" (line {l})"));
                    format!("fall through to {}{line}, which", shown(&tenant.routes[j]))
                }
                FallsTo::UnmatchedAuthenticated => {
                    "match no other route and, with enable-default-deny: false, go to the \
                     default upstream, which"
                        .to_string()
                }
            };
            d.warn(
                &key,
                format!(
                    "{} lists methods [{}]: {} {lands} asks less: {}; drop `methods` (every \
                     method then needs this route's requirements) or add a route for the other \
                     methods",
                    shown(route),
                    route.methods.join(", "),
                    list_methods(&found.methods),
                    found.weaker.join(", "),
                ),
            );
        }
    }
}

/// `route "/x/*"`, or `route "name" (/x/*)` when it has its own name.
fn shown(route: &Route) -> String {
    if route.name == route.uri {
        format!("route {:?}", route.uri)
    } else {
        format!("route {:?} ({})", route.name, route.uri)
    }
}

/// What an unmatched path asks for under `enable-default-deny: false`: a valid token.
const AUTHENTICATED: Route = Route {
    name: String::new(),
    uri: String::new(),
    methods: Vec::new(),
    white_listed: false,
    white_listed_anon: false,
    roles: Vec::new(),
    groups: Vec::new(),
    require_all: false,
    match_claims: Vec::new(),
    max_body_size: 0,
    upstream: String::new(),
    introspect: false,
    rate_limits: Vec::new(),
    resource: None,
    acr: Vec::new(),
    max_auth_age: None,
    dpop: crate::model::Dpop {
        mode: crate::model::DpopMode::Off,
        proof_window: crate::model::DEFAULT_DPOP_PROOF_WINDOW,
        nonce: false,
    },
};

/// The index of the route a request for `path` (normalized) and `method` (`None`: an
/// extension method) matches, as `policy::routes::RouteTable::lookup` picks it.
fn lookup(routes: &[Route], path: &str, method: Option<&str>) -> Option<usize> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.methods.is_empty() || method.is_some_and(|m| r.methods.iter().any(|l| l == m))
        })
        .filter_map(|(i, r)| {
            let rank = match r.uri.strip_suffix("/*") {
                None => (r.uri == path).then_some((1, 0))?,
                Some(key) => {
                    let under = path
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                    under.then_some((0, key.len()))?
                }
            };
            Some(((rank.0, rank.1, !r.methods.is_empty()), i))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, i)| i)
}

/// How strictly a route checks who the caller is: white-listed < optional < required.
fn authentication_level(r: &Route) -> u8 {
    if r.white_listed {
        0
    } else if r.white_listed_anon {
        1
    } else {
        2
    }
}

/// What `to` asks less of than `from` (empty: every caller `to` admits, `from` admits too).
fn weaker_than(from: &Route, to: &Route) -> Vec<String> {
    let (have, need) = (authentication_level(to), authentication_level(from));
    if have < need {
        return vec![if to.white_listed {
            "white-listed (no authentication)".to_string()
        } else {
            "white-listed-anon (authentication optional)".to_string()
        }];
    }
    let mut weaker = Vec::new();
    let lists = [
        ("roles", &from.roles, &to.roles),
        ("groups", &from.groups, &to.groups),
    ];
    for (key, need, have) in lists {
        if !implies(have, to.require_all, need, from.require_all) {
            weaker.push(format!(
                "{key} {} instead of {}",
                describe(have, to.require_all),
                describe(need, from.require_all)
            ));
        }
    }
    let missing: Vec<&str> = from
        .match_claims
        .iter()
        .filter(|c| !to.match_claims.contains(c))
        .map(|(claim, _)| claim.as_str())
        .collect();
    if !missing.is_empty() {
        weaker.push(format!("no match-claims on [{}]", missing.join(", ")));
    }
    if from.introspect && !to.introspect {
        weaker.push("no introspect".to_string());
    }
    if from.resource.is_some() && from.resource != to.resource {
        // Another resource, or the provider's audiences: tokens of another audience pass.
        weaker.push(match &to.resource {
            Some(r) => format!(
                "resource {r} instead of {}",
                from.resource.as_deref().unwrap_or("")
            ),
            None => "no resource (the provider's audiences)".to_string(),
        });
    }
    let acr_kept = !to.acr.is_empty() && to.acr.iter().all(|a| from.acr.contains(a));
    if !from.acr.is_empty() && !acr_kept {
        weaker.push(format!(
            "acr [{}] instead of [{}]",
            to.acr.join(", "),
            from.acr.join(", ")
        ));
    }
    if let Some(need) = from.max_auth_age {
        if to.max_auth_age.is_none_or(|have| have > need) {
            weaker.push("an older authentication (max-auth-age)".to_string());
        }
    }
    use crate::model::DpopMode;
    let dpop_rank = |m: DpopMode| match m {
        DpopMode::Off => 0,
        DpopMode::Optional => 1,
        DpopMode::Required => 2,
    };
    if dpop_rank(to.dpop.mode) < dpop_rank(from.dpop.mode) {
        weaker.push(match to.dpop.mode {
            DpopMode::Off => "no dpop (bearer tokens)".to_string(),
            _ => "dpop optional instead of required".to_string(),
        });
    }
    weaker
}

/// `[a, b]`, with ` (all)` under `require-all`.
fn describe(list: &[String], all: bool) -> String {
    let all = if all && list.len() > 1 { " (all)" } else { "" };
    format!("[{}]{all}", list.join(", "))
}

/// Whether every caller satisfying `have` (any one of it, or all with `have_all`; empty: no
/// condition) also satisfies `need` likewise. Both conditions only ever ask for more names, so
/// it is enough that each smallest set of names satisfying `have` satisfies `need`.
fn implies(have: &[String], have_all: bool, need: &[String], need_all: bool) -> bool {
    let satisfies = |names: &[&String]| {
        need.is_empty()
            || if need_all {
                need.iter().all(|n| names.contains(&n))
            } else {
                need.iter().any(|n| names.contains(&n))
            }
    };
    if have.is_empty() {
        satisfies(&[])
    } else if have_all {
        satisfies(&have.iter().collect::<Vec<_>>())
    } else {
        have.iter().all(|h| satisfies(&[h]))
    }
}

/// The methods as a warning lists them: `PATCH, OPTIONS and any other method`.
pub(crate) fn list_methods(methods: &[&str]) -> String {
    match methods {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(uri: &str, methods: &[&str]) -> Route {
        Route {
            name: uri.to_string(),
            uri: uri.to_string(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            ..AUTHENTICATED
        }
    }

    fn with_roles(mut r: Route, roles: &[&str], all: bool) -> Route {
        r.roles = roles.iter().map(|s| s.to_string()).collect();
        r.require_all = all;
        r
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn lookup_mirrors_the_route_table() {
        let routes = vec![
            route("/*", &[]),
            route("/api/*", &["GET", "HEAD"]),
            route("/api/*", &["POST"]),
            route("/api/admin/*", &["DELETE"]),
            route("/api/admin/users", &["PUT"]),
            route("/api/admin/users", &[]),
        ];
        for (path, method, want) in [
            ("/api/x", Some("GET"), Some(1)),
            ("/api/x", Some("POST"), Some(2)),
            ("/api/x", Some("PUT"), Some(0)),
            ("/api/x", None, Some(0)),
            ("/api", Some("GET"), Some(1)),
            ("/apix", Some("GET"), Some(0)),
            ("/api/admin/x", Some("DELETE"), Some(3)),
            ("/api/admin/x", Some("GET"), Some(1)),
            ("/api/admin/x", Some("PATCH"), Some(0)),
            ("/api/admin/users", Some("PUT"), Some(4)),
            ("/api/admin/users", Some("DELETE"), Some(5)),
            ("/api/admin/users", None, Some(5)),
        ] {
            assert_eq!(lookup(&routes, path, method), want, "{method:?} {path}");
        }
        let routes = vec![route("/login", &["POST"]), route("/*", &["GET"])];
        assert_eq!(lookup(&routes, "/login", Some("GET")), Some(1));
        assert_eq!(lookup(&routes, "/login", Some("PUT")), None);
    }

    #[test]
    fn implication_between_role_lists() {
        // (have, have_all, need, need_all, implies)
        for (have, have_all, need, need_all, want) in [
            (&[][..], false, &[][..], false, true),
            (&[], false, &["a"][..], false, false),
            (&["a"], false, &[], false, true),
            (&["a"], false, &["a", "b"], false, true),
            (&["a", "b"], false, &["a"], false, false),
            (&["a", "c"], false, &["a", "b"], false, false),
            (&["a", "b"], true, &["a"], false, true),
            (&["a", "b"], true, &["a", "b"], true, true),
            (&["a"], false, &["a", "b"], true, false),
            (&["a", "b", "c"], true, &["a", "b"], true, true),
            (&["a"], true, &["a"], true, true),
        ] {
            assert_eq!(
                implies(&s(have), have_all, &s(need), need_all),
                want,
                "{have:?} all={have_all} => {need:?} all={need_all}"
            );
        }
    }

    #[test]
    fn unlisted_methods_falling_to_a_weaker_route_are_found() {
        let admin = with_roles(
            route("/api/v1/admin/*", &["GET", "POST", "PUT", "DELETE"]),
            &["admin", "super-admin"],
            false,
        );
        let found = weaker_fall_throughs(&[admin.clone(), route("/*", &[])], true);
        assert_eq!(
            found,
            vec![WeakerFallThrough {
                route: 0,
                methods: vec!["HEAD", "CONNECT", "OPTIONS", "TRACE", "PATCH", OTHER],
                to: FallsTo::Route(1),
                weaker: vec!["roles [] instead of [admin, super-admin]".to_string()],
            }]
        );
        assert_eq!(
            list_methods(&found[0].methods),
            "HEAD, CONNECT, OPTIONS, TRACE, PATCH and any other method"
        );

        // A white-listed catch-all is weaker than any authenticated route.
        let mut public = route("/*", &[]);
        public.white_listed = true;
        let plain = route("/x", &["GET"]);
        let found = weaker_fall_throughs(&[plain, public], true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].weaker, vec!["white-listed (no authentication)"]);

        // Nothing below it, default deny: the other methods are refused, no warning.
        assert!(weaker_fall_throughs(std::slice::from_ref(&admin), true).is_empty());
        // Nothing below it, no default deny: any authenticated caller gets through.
        let found = weaker_fall_throughs(std::slice::from_ref(&admin), false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].to, FallsTo::UnmatchedAuthenticated);

        // Claims and introspection count too.
        let mut claims = route("/x/*", &["GET"]);
        claims.match_claims = vec![("email".to_string(), "^a$".to_string())];
        claims.introspect = true;
        let found = weaker_fall_throughs(&[claims, route("/*", &[])], true);
        assert_eq!(
            found[0].weaker,
            vec!["no match-claims on [email]", "no introspect"]
        );

        // So do the resource and step-up demands.
        let mut mcp = route("/mcp/*", &["POST"]);
        mcp.resource = Some("https://h/mcp".to_string());
        mcp.acr = vec!["gold".to_string()];
        mcp.max_auth_age = Some(std::time::Duration::from_secs(60));
        let found = weaker_fall_throughs(&[mcp.clone(), route("/*", &[])], true);
        assert_eq!(
            found[0].weaker,
            vec![
                "no resource (the provider's audiences)",
                "acr [] instead of [gold]",
                "an older authentication (max-auth-age)"
            ]
        );
        let mut same = route("/*", &[]);
        same.resource = mcp.resource.clone();
        same.acr = vec!["gold".to_string()];
        same.max_auth_age = Some(std::time::Duration::from_secs(30));
        assert!(weaker_fall_throughs(&[mcp, same], true).is_empty());
    }

    #[test]
    fn equal_or_stronger_fall_through_targets_are_fine() {
        let admin = |methods: &[&str]| with_roles(route("/admin/*", methods), &["admin"], false);
        // Same requirements on the catch-all.
        let strict_root = with_roles(route("/*", &[]), &["admin"], false);
        assert!(weaker_fall_throughs(&[admin(&["GET"]), strict_root], true).is_empty());
        // Every other method listed at the same pattern by a second entry asking the same;
        // extension methods are refused (default deny).
        let rest = with_roles(
            route(
                "/admin/*",
                &[
                    "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                ],
            ),
            &["admin"],
            false,
        );
        assert!(weaker_fall_throughs(&[admin(&["GET"]), rest.clone()], true).is_empty());
        // The second entry asking more: its GET falls to the first, which asks less.
        let stricter = with_roles(rest, &["admin", "root"], true);
        let found = weaker_fall_throughs(&[admin(&["GET"]), stricter], true);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].route, &found[0].methods[..]), (1, &["GET"][..]));
        assert_eq!(
            found[0].weaker,
            vec!["roles [admin] instead of [admin, root] (all)"]
        );
        // No `methods`: nothing falls through.
        assert!(weaker_fall_throughs(&[admin(&[]), route("/*", &[])], true).is_empty());
        // A white-listed route has nothing to lose.
        let mut public = route("/public/*", &["GET"]);
        public.white_listed = true;
        assert!(weaker_fall_throughs(&[public, route("/*", &[])], true).is_empty());
    }

    const SNIPPET: &str = "\
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /api/v1/admin/*
        name: admin-api
        methods: [GET, POST, PUT, DELETE]
        roles: [admin]
      - uri: /*
        roles: []
  - name: open
    hosts: [open.localhost]
    identity-provider: kc
    enable-default-deny: false
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /reports/*
        methods: [GET]
        groups: [finance]
      - uri: /public/*
        methods: [GET]
        white-listed: true
";

    #[test]
    fn check_warnings_name_file_line_route_and_fall_through_target() {
        let c = crate::parse(SNIPPET, "gatehouse.yaml", &|_| None).unwrap();
        let shown: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(c.warnings.len(), 2, "{shown:#?}");
        let admin = &c.warnings[0];
        assert_eq!(admin.file, "gatehouse.yaml");
        assert_eq!(admin.line, Some(14));
        assert_eq!(admin.key, "tenants[0].routes[1].methods");
        assert_eq!(
            admin.message,
            "route \"admin-api\" (/api/v1/admin/*) lists methods [GET, POST, PUT, DELETE]: HEAD, \
             CONNECT, OPTIONS, TRACE, PATCH and any other method fall through to route \"/*\" \
             (line 16), which asks less: roles [] instead of [admin]; drop `methods` (every \
             method then needs this route's requirements) or add a route for the other methods"
        );
        let reports = &c.warnings[1];
        assert_eq!(reports.line, Some(27));
        assert_eq!(reports.key, "tenants[1].routes[0].methods");
        assert!(
            reports.message.contains(
                "route \"/reports/*\" lists methods [GET]: HEAD, POST, PUT, DELETE, CONNECT, \
                 OPTIONS, TRACE, PATCH and any other method match no other route and, with \
                 enable-default-deny: false, go to the default upstream, which asks less: \
                 groups [] instead of [finance]"
            ),
            "{}",
            reports.message
        );
    }

    /// Every config the project ships (examples, the Kubernetes deployment's) is free of the
    /// shape: `gatehouse check` prints no such warning for them.
    #[test]
    fn shipped_configs_have_no_weaker_fall_through() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("config/examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.push(root.join("deploy/k8s/base/gatehouse.yaml"));
        let env = |name: &str| match name {
            "COOKIE_KEY" => Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string()),
            "DEMO_COOKIE_KEY" => Some("//////////////////////////////////////////8=".to_string()),
            "GATEHOUSE_SESSION_STORE_URL" => Some("memory://".to_string()),
            _ => Some("s3cret".to_string()),
        };
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let c = crate::parse(&text, &file.display().to_string(), &env)
                .unwrap_or_else(|e| panic!("{e}"));
            for t in &c.tenants {
                let found = weaker_fall_throughs(&t.routes, t.enable_default_deny);
                assert!(
                    found.is_empty(),
                    "{}: {}: {found:#?}",
                    file.display(),
                    t.name
                );
            }
        }
        assert!(files.len() >= 3, "{files:?}");
    }
}

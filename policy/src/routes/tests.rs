use super::*;

fn table(routes: &[(&str, Option<MethodSet>, &'static str)]) -> RouteTable<&'static str> {
    let mut b = RouteTable::builder();
    for (p, m, v) in routes {
        b.insert(p, *m, *v).expect("valid route");
    }
    b.build()
}

fn purge() -> Method {
    Method::from_bytes(b"PURGE").expect("valid method")
}

#[test]
fn precedence() {
    let t = table(&[
        ("/*", None, "root"),
        ("/api/*", None, "api"),
        ("/api/v1/*", None, "v1"),
        ("/api/v1/public/*", None, "public"),
        ("/api/v1/public", None, "public-exact"),
        ("/health", None, "health"),
    ]);
    let get = Method::GET;
    assert_eq!(t.lookup("/health", &get), Some(&"health"));
    assert_eq!(t.lookup("/health/", &get), Some(&"root"));
    assert_eq!(t.lookup("/api", &get), Some(&"api"));
    assert_eq!(t.lookup("/api/x", &get), Some(&"api"));
    assert_eq!(t.lookup("/api/v1", &get), Some(&"v1"));
    assert_eq!(t.lookup("/api/v1/public", &get), Some(&"public-exact"));
    assert_eq!(t.lookup("/api/v1/public/", &get), Some(&"public"));
    assert_eq!(t.lookup("/api/v1/public/x/y", &get), Some(&"public"));
    assert_eq!(t.lookup("/api/v1/publicx", &get), Some(&"v1"));
    assert_eq!(t.lookup("/apix", &get), Some(&"root"));
    assert_eq!(t.lookup("/", &get), Some(&"root"));
    assert_eq!(t.len(), 6);
}

#[test]
fn prefix_boundary_without_root() {
    let t = table(&[("/api/v1/public/*", None, "public")]);
    let get = Method::GET;
    for hit in ["/api/v1/public", "/api/v1/public/", "/api/v1/public/x/y"] {
        assert_eq!(t.lookup(hit, &get), Some(&"public"), "{hit}");
    }
    for miss in [
        "/api/v1/publicx",
        "/api/v1",
        "/api/v1/",
        "/",
        "/x/api/v1/public",
    ] {
        assert_eq!(t.lookup(miss, &get), None, "{miss}");
    }
}

#[test]
fn root_matches_everything() {
    let t = table(&[("/*", None, "root")]);
    for p in ["/", "/a", "/a/", "/a/b/c", "/%C3%A9"] {
        assert_eq!(t.lookup(p, &Method::DELETE), Some(&"root"), "{p}");
    }
    assert_eq!(t.lookup("/x", &purge()), Some(&"root"));
}

#[test]
fn trailing_slash_is_distinct_for_exact() {
    let t = table(&[("/a", None, "a"), ("/a/", None, "a-slash")]);
    assert_eq!(t.lookup("/a", &Method::GET), Some(&"a"));
    assert_eq!(t.lookup("/a/", &Method::GET), Some(&"a-slash"));
    assert_eq!(t.lookup("/a/b", &Method::GET), None);
}

#[test]
fn method_fallthrough() {
    let t = table(&[
        ("/*", None, "root"),
        ("/api/*", Some(MethodSet::GET | MethodSet::HEAD), "api-read"),
        ("/api/*", Some(MethodSet::POST), "api-post"),
        ("/api/admin/*", Some(MethodSet::DELETE), "admin-delete"),
        ("/api/admin/users", Some(MethodSet::PUT), "users-put"),
        ("/api/admin/users", None, "users-any"),
    ]);
    assert_eq!(t.lookup("/api/x", &Method::GET), Some(&"api-read"));
    assert_eq!(t.lookup("/api/x", &Method::HEAD), Some(&"api-read"));
    assert_eq!(t.lookup("/api/x", &Method::POST), Some(&"api-post"));
    assert_eq!(t.lookup("/api/x", &Method::PUT), Some(&"root"));
    assert_eq!(t.lookup("/api/x", &purge()), Some(&"root"));
    assert_eq!(
        t.lookup("/api/admin/x", &Method::DELETE),
        Some(&"admin-delete")
    );
    assert_eq!(t.lookup("/api/admin/x", &Method::GET), Some(&"api-read"));
    assert_eq!(t.lookup("/api/admin/x", &Method::PATCH), Some(&"root"));
    assert_eq!(
        t.lookup("/api/admin/users", &Method::PUT),
        Some(&"users-put")
    );
    assert_eq!(
        t.lookup("/api/admin/users", &Method::DELETE),
        Some(&"users-any")
    );
    assert_eq!(t.lookup("/api/admin/users", &purge()), Some(&"users-any"));
}

#[test]
fn exact_with_methods_falls_through_to_prefix() {
    let t = table(&[
        ("/login", Some(MethodSet::POST), "login-post"),
        ("/*", Some(MethodSet::GET), "static"),
    ]);
    assert_eq!(t.lookup("/login", &Method::POST), Some(&"login-post"));
    assert_eq!(t.lookup("/login", &Method::GET), Some(&"static"));
    assert_eq!(t.lookup("/login", &Method::PUT), None);
    assert_eq!(t.lookup("/login", &purge()), None);
}

#[test]
fn duplicates() {
    let mut b = RouteTable::builder();
    b.insert("/a/*", None, 1).expect("first");
    assert_eq!(
        b.insert("/a/*", None, 2),
        Err(RouteError::Duplicate("/a/*".into()))
    );
    b.insert("/a/*", Some(MethodSet::GET | MethodSet::POST), 3)
        .expect("methods beside none");
    assert!(matches!(
        b.insert("/a/*", Some(MethodSet::POST | MethodSet::PUT), 4),
        Err(RouteError::Duplicate(_))
    ));
    b.insert("/a/*", Some(MethodSet::PUT), 5)
        .expect("disjoint methods");
    // Exact and prefix patterns on the same path are different patterns.
    b.insert("/a", None, 6).expect("exact beside prefix");
    assert_eq!(
        b.insert("/b", Some(MethodSet::EMPTY), 7),
        Err(RouteError::EmptyMethodSet("/b".into()))
    );
    let t = b.build();
    assert_eq!(t.len(), 4);
    assert_eq!(t.lookup("/a/x", &Method::PUT), Some(&5));
    assert_eq!(t.lookup("/a/x", &Method::POST), Some(&3));
    assert_eq!(t.lookup("/a/x", &Method::DELETE), Some(&1));
    assert_eq!(t.lookup("/a", &Method::POST), Some(&6));
    assert_eq!(t.lookup("/b", &Method::GET), None);
}

#[test]
fn invalid_patterns() {
    let mut b = RouteTable::<u8>::builder();
    for bad in [
        "", "*", "api", "/a/*/b", "/a*", "/a/**", "//a", "/a//*", "/a/./b", "/a/../*", "/a/%2e",
        "/%61", "/a%2fb", "/a;b", "/a?b", "/a#b", "/a b\t",
    ] {
        assert!(
            matches!(
                b.insert(bad, None, 0),
                Err(RouteError::InvalidPattern { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(b.build().is_empty());
}

#[test]
fn method_set() {
    let s = MethodSet::GET | MethodSet::PATCH;
    assert!(s.contains(&Method::GET));
    assert!(s.contains(&Method::PATCH));
    assert!(!s.contains(&Method::POST));
    assert!(!MethodSet::ALL.contains(&purge()));
    assert_eq!(MethodSet::parse("DELETE"), Some(MethodSet::DELETE));
    assert_eq!(MethodSet::parse("delete"), None);
    assert_eq!(MethodSet::single(&Method::TRACE), Some(MethodSet::TRACE));
    assert_eq!(MethodSet::single(&purge()), None);
    assert_eq!(format!("{s:?}"), r#"{"GET", "PATCH"}"#);
    assert_eq!(MethodSet::ALL.iter().count(), 9);
    let collected: MethodSet = [MethodSet::GET, MethodSet::PUT].into_iter().collect();
    assert!(collected.intersects(MethodSet::PUT));
    assert!(!collected.intersects(MethodSet::POST));
}

#[test]
fn many_routes() {
    let mut b = RouteTable::builder();
    for i in 0..10_000 {
        b.insert(&format!("/svc{}/r{i}/*", i % 100), None, i)
            .expect("valid");
    }
    let t = b.build();
    assert_eq!(t.lookup("/svc42/r4242/items/7", &Method::GET), Some(&4242));
    assert_eq!(t.lookup("/svc42/r4243/items/7", &Method::GET), None);
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Route {
        key: String,
        prefix: bool,
        methods: Option<MethodSet>,
    }

    impl Route {
        fn pattern(&self) -> String {
            if self.prefix {
                format!("{}/*", self.key)
            } else if self.key.is_empty() {
                "/".to_owned()
            } else {
                self.key.clone()
            }
        }
    }

    /// The obvious linear scan: rank every admitting match, keep the best.
    fn naive(routes: &[(Route, usize)], path: &str, method: &Method) -> Option<usize> {
        routes
            .iter()
            .filter(|(r, _)| r.methods.is_none_or(|m| m.contains(method)))
            .filter_map(|(r, v)| {
                let rank = if !r.prefix {
                    (r.pattern() == path).then_some((1, 0, r.methods.is_some()))?
                } else {
                    let matches = path == r.key
                        || path
                            .strip_prefix(r.key.as_str())
                            .is_some_and(|rest| rest.starts_with('/'));
                    matches.then_some((0, r.key.len(), r.methods.is_some()))?
                };
                Some((rank, *v))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, v)| v)
    }

    fn segments() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c.d"]), 0..4)
            .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect())
    }

    fn method() -> impl Strategy<Value = Method> {
        prop::sample::select(vec![
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::from_bytes(b"PURGE").expect("valid"),
        ])
    }

    fn route() -> impl Strategy<Value = Route> {
        let methods = prop::option::of(
            prop::collection::vec(method(), 1..3)
                .prop_map(|ms| ms.iter().filter_map(MethodSet::single).collect()),
        );
        (segments(), any::<bool>(), methods).prop_map(|(key, prefix, methods)| Route {
            key,
            prefix,
            methods,
        })
    }

    fn path() -> impl Strategy<Value = String> {
        (segments(), any::<bool>()).prop_map(|(p, slash)| {
            if p.is_empty() || slash {
                format!("{p}/")
            } else {
                p
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_linear_scan(
            routes in prop::collection::vec(route(), 0..24),
            probes in prop::collection::vec((path(), method()), 1..16),
        ) {
            let mut b = RouteTable::builder();
            let mut accepted = Vec::new();
            for (i, r) in routes.into_iter().enumerate() {
                match b.insert(&r.pattern(), r.methods, i) {
                    Ok(()) => accepted.push((r, i)),
                    Err(RouteError::Duplicate(_) | RouteError::EmptyMethodSet(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
            let t = b.build();
            prop_assert_eq!(t.len(), accepted.len());
            for (p, m) in probes {
                prop_assert_eq!(t.lookup(&p, &m).copied(), naive(&accepted, &p, &m), "{} {}", m, p);
            }
        }
    }
}

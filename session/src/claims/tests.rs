//! Unit tests of the claims parsing, lookups and identity header rendering.

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

#[test]
fn identity_header_values_are_rendered_once_per_header_set() {
    let c = keycloak();
    let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
    let set_a = vec![
        (name("x-auth-subject"), "sub".to_string()),
        (name("x-auth-roles"), "realm_access.roles".to_string()),
        (name("x-auth-missing"), "nope".to_string()),
    ];
    let first = c.identity_header_values(1, &set_a);
    assert!(
        matches!(first, Cow::Borrowed(_)),
        "the first set asked is kept"
    );
    let texts: Vec<Option<&str>> = first
        .iter()
        .map(|v| v.as_ref().map(|v| v.to_str().unwrap()))
        .collect();
    assert_eq!(texts, [Some("f3c1"), Some("offline_access,admin,7"), None]);
    let again = c.identity_header_values(1, &set_a);
    assert!(
        std::ptr::eq(first.as_ptr(), again.as_ptr()),
        "served from the claims"
    );

    // Another tenant's list is rendered for it, not mixed up with the kept one.
    let set_b = vec![(name("x-auth-email"), "email".to_string())];
    let other = c.identity_header_values(2, &set_b);
    assert!(matches!(other, Cow::Owned(_)));
    assert_eq!(other[0].as_ref().unwrap(), "alice@example.com");

    // A clone renders its own values (a refreshed copy may have other claims); the kept
    // values take no part in `==`.
    let clone = c.clone();
    assert_eq!(clone, c);
    let cloned = clone.identity_header_values(1, &set_a);
    assert_eq!(cloned[0].as_ref().unwrap(), "f3c1");
    assert!(!std::ptr::eq(cloned.as_ptr(), first.as_ptr()));
}

#[test]
fn identity_header_values_leave_out_what_cannot_be_a_header() {
    let c = Claims::from_payload(json!({"sub": "a\nb"}));
    let set = vec![(HeaderName::from_static("x-auth-subject"), "sub".to_string())];
    assert_eq!(c.identity_header_values(7, &set)[0], None);
}

#[test]
fn from_json_reads_what_from_payload_reads() {
    let payloads = [
        keycloak().raw().clone(),
        json!({"sub": 5, "preferred_username": null, "email": ["x"], "exp": 10.7}),
        json!({"realm_access": "none", "resource_access": [], "groups": {"a": 1}, "iat": 3}),
        json!({"realm_access": {"roles": "admin"}, "resource_access": {"c": 1}, "exp": null}),
        json!({"sub": "esc\"aped\u{e9}\n", "groups": ["/a", 1, null, "b"], "auth_time": 9}),
        json!({}),
    ];
    for payload in payloads {
        let (from_text, _) = Claims::from_json(payload.to_string()).expect("an object");
        assert_eq!(
            from_text,
            Claims::from_payload(payload.clone()),
            "{payload}"
        );
        assert_eq!(from_text.raw(), &payload);
    }
}

#[test]
fn from_json_reads_odd_shapes_and_repeats_inside_members_as_a_tree_does() {
    // Texts, not `json!`: a tree cannot hold a repeated key, text can (inside a member it
    // is allowed; the tree keeps the last, and so must the one-pass read).
    let texts = [
        r#"{"realm_access": {"roles": ["a"], "roles": ["b", 2, null]}}"#,
        r#"{"resource_access": {"web": {"roles": ["x"]}, "api": {"roles": "y"}, "web": {"roles": ["z"], "roles": ["w"]}, "x": null, "y": [1]}}"#,
        r#"{"groups": "g", "sub": {"x": 1}, "email": [1], "preferred_username": 7}"#,
        r#"{"groups": [["a"], "b", {"c": "d"}, "e\u00e9"], "realm_access": ["roles"]}"#,
        r#"{"realm_access": {"other": {"roles": ["no"]}, "roles": []}, "resource_access": "web"}"#,
    ];
    for text in texts {
        let (from_text, _) = Claims::from_json(text.to_string()).expect("an object");
        let tree: Value = serde_json::from_str(text).unwrap();
        assert_eq!(from_text, Claims::from_payload(tree), "{text}");
    }
    let (c, _) = Claims::from_json(texts[1].to_string()).unwrap();
    assert_eq!(
        c.client_roles,
        vec![
            ("api".to_string(), vec![]),
            ("web".to_string(), vec!["w".to_string()]),
            ("x".to_string(), vec![]),
            ("y".to_string(), vec![]),
        ]
    );
    for (text, aud) in [
        (r#"{"aud": 5}"#, vec![]),
        (r#"{"aud": "a"}"#, vec!["a"]),
        (r#"{"aud": ["a", {"b": 1}, ["c"], "d"]}"#, vec!["a", "d"]),
    ] {
        let (_, r) = Claims::from_json(text.to_string()).unwrap();
        assert_eq!(r.aud, aud, "{text}");
    }
}

#[test]
fn identity_headers_from_text_in_one_pass_match_the_tree() {
    let text = r#"{"sub": "s1", "realm_access": {"roles": ["a", 1, true, null, ["x"]], "n": 2},
        "tenant": {"id": 42, "region": {"name": "eu"}}, "sub": "s2", "email": null,
        "groups": ["/g"], "obj": {"k": "v"}}"#;
    let paths = [
        "sub",
        "realm_access.roles",
        "realm_access.n",
        "tenant.region.name",
        "sub",
        "email",
        "missing",
        "obj",
        "realm_access.roles.nope",
        "",
        "groups",
    ];
    let headers: Vec<(HeaderName, String)> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                p.to_string(),
            )
        })
        .collect();
    // Repeated members are refused at the top level of a token; this text is only walked.
    let from_text = Claims {
        payload: Payload {
            text: text.into(),
            tree: OnceLock::new(),
        },
        ..Claims::from_payload(json!({}))
    };
    let from_tree = Claims::from_payload(serde_json::from_str(text).unwrap());
    let walked = from_text.identity_header_values(1, &headers).into_owned();
    assert!(from_text.payload.tree.get().is_none(), "no tree built");
    assert_eq!(
        walked,
        from_tree.identity_header_values(1, &headers).into_owned()
    );
    let text_of = |v: &Option<HeaderValue>| v.as_ref().map(|v| v.to_str().unwrap().to_string());
    let got: Vec<Option<String>> = walked.iter().map(text_of).collect();
    let want = [
        Some("s2"),
        Some("a,1,true"),
        Some("2"),
        Some("eu"),
        Some("s2"),
        None,
        None,
        None,
        None,
        None,
        Some("/g"),
    ];
    assert_eq!(got, want.map(|w| w.map(str::to_string)));
}

#[test]
fn from_json_registered_claims_and_refusals() {
    let text = r#"{"exp": 20, "nbf": 1.5, "iat": 10, "iss": "https://idp", "aud": ["a", 3, "b"]}"#;
    let (_, r) = Claims::from_json(text.to_string()).unwrap();
    assert_eq!(
        r,
        Registered {
            exp: Some(20),
            nbf: Some(1),
            iat: Some(10),
            auth_time_malformed: false,
            iss: Some("https://idp".into()),
            aud: vec!["a".into(), "b".into()],
            azp: None,
            typ: None,
            nonce: false,
            events: false,
        }
    );
    let (_, r) = Claims::from_json(
        r#"{"azp": "web", "typ": "ID", "nonce": "n", "events": {"e": {}}}"#.into(),
    )
    .unwrap();
    assert_eq!(
        (r.azp.as_deref(), r.typ.as_deref(), r.nonce, r.events),
        (Some("web"), Some("ID"), true, true)
    );
    let (_, r) = Claims::from_json(r#"{"azp": 1, "typ": [], "nonce": null}"#.into()).unwrap();
    assert_eq!(
        (r.azp, r.typ, r.nonce, r.events),
        (None, None, false, false)
    );
    let (_, r) = Claims::from_json(r#"{"aud": "a", "iss": 7, "auth_time": "x"}"#.into()).unwrap();
    assert_eq!(
        (r.aud, r.iss, r.auth_time_malformed),
        (vec!["a".to_string()], None, true)
    );
    for bad in [
        r#"["sub", "exp"]"#,
        r#"{"exp": 1, "exp": 2}"#,
        r#"{"exp": "tomorrow"}"#,
        r#"{"nbf": -1}"#,
        r#"{"iat": true}"#,
        r#"{"sub": "a""#,
        "",
    ] {
        assert_eq!(
            Claims::from_json(bad.to_string()).err(),
            Some(MalformedPayload),
            "{bad}"
        );
    }
}

#[test]
fn retained_bytes_counts_the_text_and_room_for_its_tree() {
    let text = r#"{"sub":"u1","exp":5,"realm_access":{"roles":["admin","user"]},"groups":["/g"],"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let (claims, _) = Claims::from_json(text.to_string()).unwrap();
    let bytes = claims.retained_bytes();
    assert!(
        bytes >= text.len() * (1 + TREE_BYTES_PER_TEXT_BYTE) + std::mem::size_of::<Claims>(),
        "{bytes}"
    );
    // Building the tree later does not change the estimate (it was counted up front).
    let _ = claims.lookup("realm_access.roles");
    assert_eq!(claims.retained_bytes(), bytes);
    // A longer payload weighs more; claims built from a tree are counted by its JSON size.
    let (longer, _) = Claims::from_json(text.replace("xxxx", "xxxxxxxx")).unwrap();
    assert!(longer.retained_bytes() > bytes);
    let from_tree = Claims::from_payload(serde_json::from_str(text).unwrap());
    let tree_bytes = from_tree.retained_bytes();
    assert!(
        tree_bytes >= text.len() * TREE_BYTES_PER_TEXT_BYTE && tree_bytes < bytes,
        "{tree_bytes} vs {bytes}"
    );
}

#[test]
fn cnf_binds_a_token_and_names_its_dpop_key() {
    let cases = [
        (json!({"cnf": {"jkt": "abc"}}), true, Some("abc")),
        (json!({"cnf": {"x5t#S256": "t"}}), true, None),
        (json!({"cnf": {"jkt": 5}}), true, None),
        (json!({"cnf": "abc"}), true, None),
        (json!({"cnf": ["abc"]}), true, None),
        (json!({"cnf": null}), false, None),
        (json!({"cnf": 1}), false, None),
        (json!({}), false, None),
    ];
    for (payload, bound, jkt) in cases {
        let (from_text, _) = Claims::from_json(payload.to_string()).expect("an object");
        let from_tree = Claims::from_payload(payload.clone());
        for c in [&from_text, &from_tree] {
            assert_eq!((c.cnf, c.cnf_jkt.as_deref()), (bound, jkt), "{payload}");
        }
        assert_eq!(from_text, from_tree, "{payload}");
    }
}

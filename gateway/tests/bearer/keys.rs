//! The IdP's keys: rotation, an IdP down at start, expired tokens and static JWKS files.

use super::*;

#[test]
fn key_rotation_is_picked_up_and_bogus_kids_do_not_hammer_the_idp() {
    let keys_dir = TempDir::new("rotation");
    let k1 = make_keys(keys_dir.path(), "k1", &["RS256"]);
    let port = free_port();
    let mut idp = Idp::start_on(port, Some(&k1), &[], TempDir::new("idp1"));
    let app = Upstream::start("app");
    let gw = Gateway::start("rotation", |p, _| config(p, &app, &idp.issuer, ""));
    gw.wait_ready();
    let old = idp.token("svc-admin");
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/r",
            &[("Authorization", &bearer(&old))]
        )
        .status,
        200
    );

    // Restart the IdP signing with a new ES256 key, still publishing the old one.
    idp.stop();
    let k2 = make_keys(keys_dir.path(), "k2", &["ES256"]);
    let both = keys_dir.path().join("both.json");
    let mut merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&k2).unwrap()).unwrap();
    let old_keys: serde_json::Value = serde_json::from_slice(&std::fs::read(&k1).unwrap()).unwrap();
    merged["keys"]
        .as_array_mut()
        .unwrap()
        .extend(old_keys["keys"].as_array().unwrap().iter().cloned());
    std::fs::write(&both, merged.to_string()).unwrap();
    let idp = Idp::start_on(port, Some(&both), &[], TempDir::new("idp2"));
    let new = idp.token("svc-admin");
    assert_ne!(decode(&new).0["kid"], decode(&old).0["kid"]);
    let fetches_before = idp.jwks_fetches();
    // 20 concurrent requests with the new kid: one refetch serves them all.
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (addr, token) = (gw.listen, new.clone());
            std::thread::spawn(move || {
                get(
                    addr,
                    "demo.localhost",
                    "/api/admin/r",
                    &[("Authorization", &format!("Bearer {token}"))],
                )
                .unwrap()
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(
        idp.jwks_fetches() - fetches_before,
        1,
        "exactly one JWKS refetch for the new kid"
    );
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/r",
            &[("Authorization", &bearer(&old))]
        )
        .status,
        200,
        "old-key tokens still verify"
    );

    // A flood of tokens with bogus kids: at most one refetch per min-refetch-interval (2s).
    let (h, p) = decode(&new);
    let before = idp.jwks_fetches();
    let started = std::time::Instant::now();
    for i in 0..100 {
        let mut bogus_header = h.clone();
        bogus_header["kid"] = serde_json::json!(format!("bogus-{i}"));
        let token = forge(&bogus_header, &p, b"x");
        assert_eq!(
            gw.get_with(
                "demo.localhost",
                "/api/admin/r",
                &[("Authorization", &bearer(&token))]
            )
            .status,
            401
        );
    }
    let elapsed = started.elapsed().as_secs();
    let extra = idp.jwks_fetches() - before;
    assert!(
        extra <= 1 + elapsed / 2,
        "{extra} JWKS fetches for 100 bogus kids in {elapsed}s"
    );
}

#[test]
fn the_gateway_starts_while_the_idp_is_down_and_becomes_ready_once_it_is_up() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}/realms/demo");
    let app = Upstream::start("app");
    let gw = Gateway::start("idp-down", |p, _| config(p, &app, &issuer, ""));
    // The process is ready (it serves); the unreachable IdP shows only in `?verbose`.
    gw.wait_readiness("ready, the identity provider down", |status, text| {
        status == 200 && text.contains("identity-provider keycloak: down, no signing keys")
    });
    // No keys yet: a token is refused with 401, never a 5xx, and public routes work.
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/x",
        &[("Authorization", "Bearer a.b.c")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(gw.get("demo.localhost", "/public/x").status, 200);
    let idp = Idp::start_on(port, None, &[], TempDir::new("late-idp"));
    gw.wait_ready();
    let token = idp.token("svc-admin");
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/x",
            &[("Authorization", &bearer(&token))]
        )
        .status,
        200
    );
    // The IdP going away again: cached keys keep serving.
    drop(idp);
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/x",
            &[("Authorization", &bearer(&token))]
        )
        .status,
        200
    );
}

#[test]
fn expired_tokens_are_refused_and_static_jwks_files_work_without_discovery() {
    let keys_dir = TempDir::new("static");
    let k = make_keys(keys_dir.path(), "k", &["RS256"]);
    let public = keys_dir.path().join("k.public.json");
    assert!(public.exists());
    let idp = Idp::start(Some(&k), &[("IDP_ACCESS_TOKEN_TTL", "2")]);
    let app = Upstream::start("app");
    let static_provider = format!(
        "  - name: static\n    issuer: {}\n    jwks-file: {}\n    client-id: gatehouse\n    leeway: 0s\n",
        idp.issuer,
        public.display()
    );
    let gw = Gateway::start("expiry", |p, _| {
        config(p, &app, &idp.issuer, &static_provider).replace(
            "identity-provider: keycloak\n    token-cookie",
            "identity-provider: static\n    token-cookie",
        )
    });
    gw.wait_ready();
    let token = idp.token("svc-admin");
    assert_eq!(
        gw.get_with(
            "demo.localhost",
            "/api/admin/e",
            &[("Authorization", &bearer(&token))]
        )
        .status,
        200
    );
    std::thread::sleep(Duration::from_millis(3200));
    let r = gw.get_with(
        "demo.localhost",
        "/api/admin/e",
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(
        r.status, 401,
        "an expired token is refused even though it was cached"
    );
    assert!(
        r.header("www-authenticate").unwrap().contains("expired"),
        "{:?}",
        r.header("www-authenticate")
    );
    assert!(Path::new(&public).exists());
}

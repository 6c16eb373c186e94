//! Key rotation: both keys published, old assertions verifiable while their key is.

use super::*;

#[test]
fn key_rotation_publishes_both_keys_and_old_assertions_verify_while_published() {
    let Some(s) = stack(
        "key_rotation",
        &[("old.pem", Kind::P256), ("new.pem", Kind::Ed25519)],
    ) else {
        return;
    };
    // The stack starts with both keys written; sign with the old one only at first.
    s.reload_with(&["old.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids().len() == 1,
        "only the old key published"
    );
    let old_kid = s.jwks_kids()[0].clone();
    let token = s.idp.token("svc-admin");
    // The upstream caches the JWKS for a second (300 s in real life, like the gateway's
    // Cache-Control), and refetches for an unknown kid only after a cooldown (PyJWKClient).
    s.py.expect_caching(&s.gw, "app", "http://demo.localhost", 1);
    let first = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(first["verified"], true, "{first}");
    assert_eq!(first["kid"], old_kid.as_str());
    let old_assertion = first["raw"].as_str().unwrap().to_string();

    // Step 1: publish the new key beside the old one; the old one still signs.
    s.reload_with(&["old.pem", "new.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids().len() == 2,
        "both keys published"
    );
    let kids = s.jwks_kids();
    assert_eq!(kids[0], old_kid);
    let new_kid = kids[1].clone();
    // The upstream's cached JWKS expires and it fetches both keys: the rotation's waiting step
    // (in real life the JWKS's max-age).
    std::thread::sleep(Duration::from_millis(1200));
    let during = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(during["verified"], true, "{during}");
    assert_eq!(during["kid"], old_kid.as_str(), "the first key signs");

    // Step 2: the new key signs; the old one stays published.
    s.reload_with(&["new.pem", "old.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids() == [new_kid.clone(), old_kid.clone()],
        "the new key first"
    );
    let second = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(
        second["verified"], true,
        "the new key was published first: {second}"
    );
    assert_eq!(second["kid"], new_kid.as_str());
    let new_assertion = second["raw"].as_str().unwrap().to_string();
    let old = verify_once(
        &s.py_bin,
        &s.gw,
        &old_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(
        old["verified"], true,
        "old assertions verify while published: {old}"
    );

    // Step 3: the old key is dropped; its assertions no longer verify, the new ones do.
    s.reload_with(&["new.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids() == [new_kid.clone()],
        "only the new key"
    );
    let old = verify_once(
        &s.py_bin,
        &s.gw,
        &old_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(old["verified"], false, "{old}");
    let new = verify_once(
        &s.py_bin,
        &s.gw,
        &new_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(new["verified"], true, "{new}");
}

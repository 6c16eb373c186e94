//! Unit tests of the session refresh rules and the single-flight guard.

use super::*;
use gatehouse_config::CookieKey;
use serde_json::json;

fn record() -> SessionRecord {
    SessionRecord {
        tenant: "demo".into(),
        issuer: "https://idp/realms/demo".into(),
        sub: "alice".into(),
        sid: Some("s1".into()),
        claims: json!({"sub": "alice", "realm_access": {"roles": ["user"]}}).into(),
        access_token_exp: 100,
        refresh_token_enc: Some("old-refresh".into()),
        id_token_enc: Some("old-id".into()),
        created_at: 1,
        expires_at: 1_000,
        parsed: Default::default(),
    }
}

fn tokens(sub: &str, claims: serde_json::Value) -> TokenSet {
    TokenSet {
        access_token: "new-access-token".into(),
        access_token_exp: 400,
        refresh_token: Some("new-refresh-token".into()),
        id_token: Some("new.id.token".into()),
        claims,
        sub: sub.into(),
        sid: None,
    }
}

fn codec() -> CookieCodec {
    CookieCodec::new(&[CookieKey::new([3; 32])])
        .unwrap()
        .scoped("demo", "gatehouse_session")
}

#[test]
fn only_invalid_grant_and_another_subject_end_a_session() {
    let end = [
        OidcError::TokenEndpoint(400, "invalid_grant".into()),
        OidcError::TokenEndpoint(400, "invalid_grant: token revoked".into()),
        OidcError::TokenEndpoint(401, "invalid_grant".into()),
        OidcError::InvalidIdToken("sub_mismatch"),
    ];
    for e in &end {
        assert_eq!(on_refresh_error(e), OnFailure::End, "{e}");
    }
    let retry = [
        OidcError::TokenEndpoint(503, "temporarily_unavailable".into()),
        OidcError::TokenEndpoint(500, "no OAuth error in the response".into()),
        // A 5xx is a server failure whatever its body says.
        OidcError::TokenEndpoint(502, "invalid_grant".into()),
        OidcError::TokenEndpoint(200, "the response is not a token response".into()),
        OidcError::TokenEndpoint(400, "invalid_grantx".into()),
        OidcError::TokenEndpoint(401, "invalid_client".into()),
        OidcError::Network("timed out".into()),
        OidcError::Discovery("connection refused".into()),
        OidcError::InvalidIdToken("unknown_kid"),
    ];
    for e in &retry {
        assert_eq!(on_refresh_error(e), OnFailure::Retry, "{e}");
    }
}

#[test]
fn a_refresh_keeps_old_claims_when_it_brings_none_and_seals_its_tokens() {
    let codec = codec();
    let next = refreshed_record(&record(), tokens("", json!({})), &codec).unwrap();
    assert_eq!(next.claims, record().claims, "no claims: the old ones stay");
    assert_eq!(next.identity().realm_roles, vec!["user".to_string()]);
    assert_eq!(next.access_token_exp, 400);
    assert_eq!(next.sub, "alice");
    let refresh = next.refresh_token_enc.as_deref().unwrap();
    assert_eq!(
        codec.open(PURPOSE_REFRESH, refresh).as_deref(),
        Some(&b"new-refresh-token"[..])
    );
    let id = next.id_token_enc.as_deref().unwrap();
    assert_eq!(
        codec.open(PURPOSE_ID_TOKEN, id).as_deref(),
        Some(&b"new.id.token"[..])
    );
    let stored = serde_json::to_string(&next).unwrap();
    for clear in ["new-refresh-token", "new.id.token", "new-access-token"] {
        assert!(!stored.contains(clear), "{clear} stored in clear: {stored}");
    }

    let mut sparse = tokens(
        "alice",
        json!({"sub": "alice", "realm_access": {"roles": ["admin"]}}),
    );
    sparse.refresh_token = None;
    sparse.id_token = None;
    let next = refreshed_record(&record(), sparse, &codec).unwrap();
    assert_eq!(next.identity().realm_roles, vec!["admin".to_string()]);
    assert_eq!(next.refresh_token_enc.as_deref(), Some("old-refresh"));
    assert_eq!(next.id_token_enc.as_deref(), Some("old-id"));
    let null = refreshed_record(&record(), tokens("", serde_json::Value::Null), &codec);
    assert_eq!(null.unwrap().claims, record().claims);
}

#[test]
fn a_refresh_answer_for_another_subject_is_refused() {
    assert_eq!(
        refreshed_record(
            &record(),
            tokens("mallory", json!({"sub": "mallory"})),
            &codec()
        )
        .err(),
        Some(SubjectChanged)
    );
}

#[test]
fn refresh_is_due_within_the_margin() {
    let r = record();
    assert!(!refresh_due(&r, 39, 60));
    assert!(refresh_due(&r, 40, 60));
    assert!(refresh_due(&r, 200, 0));
    assert!(refresh_due(&r, u64::MAX, 60), "no overflow");
}

#[tokio::test]
async fn the_flight_map_keeps_no_entry_after_any_exit() {
    let map = DashMap::new();
    {
        let flight = Flight::join(&map, "s1");
        let _turn = flight.turn().await;
        assert_eq!(map.len(), 1);
    }
    assert!(map.is_empty(), "normal return");

    // A waiter keeps the entry until it is done too.
    let first = Flight::join(&map, "s2");
    let turn = first.turn().await;
    let second = Flight::join(&map, "s2");
    drop(turn);
    drop(first);
    assert_eq!(map.len(), 1, "the waiter still needs it");
    drop(second);
    assert!(map.is_empty(), "the last one out removes it");

    // A request cancelled while waiting for its turn (its client went away).
    let map = Arc::new(DashMap::new());
    let holder = Arc::new(tokio::sync::Mutex::new(()));
    let held = Arc::clone(&holder).lock_owned().await;
    let task = {
        let (map, holder) = (Arc::clone(&map), Arc::clone(&holder));
        tokio::spawn(async move {
            let flight = Flight::join(&map, "s3");
            let _turn = flight.turn().await;
            let _wait = holder.lock().await;
        })
    };
    while map.is_empty() {
        tokio::task::yield_now().await;
    }
    task.abort();
    let _ = task.await;
    drop(held);
    assert!(map.is_empty(), "a cancelled request leaves nothing behind");
}

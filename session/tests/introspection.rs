//! RFC 7662 introspection by `TokenVerifier` against the counting fake IdP.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{Secret, TokenEndpointAuthMethod};
use gatehouse_session::http::{IdpCall, IdpObserver, IdpOutcome};
use gatehouse_session::{looks_like_jwt, ProviderDiscovery, TokenError, TokenVerifier};
use gatehouse_test_support::config::{claims, introspecting_provider, provider, CLIENT_ID};
use gatehouse_test_support::fake_idp::FakeIdp;
use gatehouse_test_support::keys::{jwks, keys, now};
use gatehouse_test_support::process::temp_file;
use serde_json::{json, Value};

const BASIC: TokenEndpointAuthMethod = TokenEndpointAuthMethod::ClientSecretBasic;
const POST: TokenEndpointAuthMethod = TokenEndpointAuthMethod::ClientSecretPost;

/// A Keycloak-style active introspection response for `issuer`.
fn active(issuer: &str) -> Value {
    let mut c = claims(issuer);
    c["active"] = json!(true);
    c["client_id"] = json!("svc");
    c["username"] = json!("alice");
    c["token_type"] = json!("Bearer");
    c
}

async fn setup(method: TokenEndpointAuthMethod) -> (FakeIdp, TokenVerifier) {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let v =
        TokenVerifier::new(&introspecting_provider(&idp.issuer, method), 1000).expect("verifier");
    (idp, v)
}

fn auth_log(idp: &FakeIdp) -> Vec<(String, Option<String>)> {
    idp.introspection_log.lock().expect("lock").clone()
}

#[tokio::test]
async fn active_token_gives_claims_and_is_cached() {
    let (idp, v) = setup(BASIC).await;
    assert!(v.introspection_enabled());
    idp.set_introspection("opaque-1", active(&idp.issuer));
    assert!(v.introspect_cached("opaque-1").is_none());
    let c = v.introspect("opaque-1").await.expect("active");
    assert_eq!(c.sub.as_deref(), Some("user-1"));
    assert!(c.has_realm_role("admin"));
    assert!(c.has_client_role("billing", "payer"));
    assert!(c.in_group("/developers"));
    assert_eq!(c.email.as_deref(), Some("alice@example.com"));
    assert_eq!(c.exp, now() + 300);
    assert_eq!(c.header_value("username").as_deref(), Some("alice"));
    assert_eq!(idp.introspection_hits(), 1);
    assert_eq!(
        idp.discovery_hits(),
        1,
        "the endpoint was discovered on first use"
    );
    assert_eq!(
        auth_log(&idp),
        [("basic".to_string(), Some("access_token".to_string()))]
    );

    // Cache hits: no second request, same Arc.
    let again = v.introspect("opaque-1").await.expect("cached");
    assert!(Arc::ptr_eq(&c, &again));
    let fast = v.introspect_cached("opaque-1").expect("sync fast path");
    assert!(Arc::ptr_eq(&c, &fast));
    assert_eq!(idp.introspection_hits(), 1);
    assert_eq!(v.introspection_cache_len(), 1);
    assert_eq!(idp.discovery_hits(), 1);
    // The JWT cache is separate.
    assert!(v.verify_cached("opaque-1").is_none());
    assert_eq!(v.cache_len(), 0);
}

#[tokio::test]
async fn client_secret_post() {
    let (idp, v) = setup(POST).await;
    idp.set_introspection("opaque-post", active(&idp.issuer));
    v.introspect("opaque-post").await.expect("active");
    assert_eq!(
        auth_log(&idp),
        [("post".to_string(), Some("access_token".to_string()))]
    );
}

#[tokio::test]
async fn inactive_token_is_refused_and_briefly_remembered() {
    let (idp, v) = setup(BASIC).await;
    assert_eq!(v.introspect("garbage").await, Err(TokenError::Inactive));
    assert_eq!(
        v.introspect("garbage").await,
        Err(TokenError::Inactive),
        "negative cache"
    );
    assert_eq!(idp.introspection_hits(), 1);
    assert!(v.introspect_cached("garbage").is_none());
    assert_eq!(v.introspection_cache_len(), 0);
}

#[tokio::test]
async fn wrong_client_secret_is_unavailable_and_not_cached() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = introspecting_provider(&idp.issuer, BASIC);
    p.client_secret = Some(Secret::new("wrong"));
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    idp.set_introspection("opaque-1", active(&idp.issuer));
    for _ in 0..2 {
        assert_eq!(
            v.introspect("opaque-1").await,
            Err(TokenError::IntrospectionUnavailable)
        );
    }
    assert_eq!(idp.introspection_hits(), 2, "failures are not cached");
}

#[tokio::test]
async fn cache_expires_after_the_ttl_and_a_revocation_then_shows() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = introspecting_provider(&idp.issuer, BASIC);
    p.introspection_cache_ttl = Duration::from_secs(1);
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    idp.set_introspection("opaque-ttl", active(&idp.issuer));
    // The cache works in whole seconds: start just after a second boundary.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1050 - into_second))).await;
    v.introspect("opaque-ttl").await.expect("active");
    // Revoked at the IdP: still served from the cache within the TTL...
    idp.set_introspection("opaque-ttl", json!({"active": false}));
    let c = v.introspect("opaque-ttl").await.expect("cached");
    assert_eq!(c.sub.as_deref(), Some("user-1"));
    // ...and refused once the TTL has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.introspect_cached("opaque-ttl").is_none());
    assert_eq!(v.introspect("opaque-ttl").await, Err(TokenError::Inactive));
    assert_eq!(idp.introspection_hits(), 2);
}

#[tokio::test]
async fn zero_ttl_asks_every_time() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = introspecting_provider(&idp.issuer, BASIC);
    p.introspection_cache_ttl = Duration::ZERO;
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    idp.set_introspection("opaque", active(&idp.issuer));
    v.introspect("opaque").await.expect("active");
    v.introspect("opaque").await.expect("active");
    v.introspect("nope").await.expect_err("inactive");
    v.introspect("nope").await.expect_err("inactive");
    assert_eq!(idp.introspection_hits(), 4);
}

#[tokio::test]
async fn cache_never_outlives_exp() {
    let (idp, v) = setup(BASIC).await;
    let mut answer = active(&idp.issuer);
    answer["exp"] = json!(now() + 1);
    idp.set_introspection("short", answer);
    v.introspect("short").await.expect("active");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.introspect_cached("short").is_none(), "past exp");
}

#[tokio::test]
async fn registered_claims_are_checked() {
    let (idp, v) = setup(BASIC).await;
    let cases = [
        ("expired", json!({"exp": now() - 3600}), TokenError::Expired),
        (
            "other-issuer",
            json!({"iss": "http://evil.example/realms/x"}),
            TokenError::WrongIssuer,
        ),
        (
            "other-aud",
            json!({"aud": "someone-else"}),
            TokenError::WrongAudience,
        ),
        (
            "other-auds",
            json!({"aud": ["a", "b"]}),
            TokenError::WrongAudience,
        ),
        (
            "future",
            json!({"nbf": now() + 3600}),
            TokenError::NotYetValid,
        ),
    ];
    for (token, changes, _) in &cases {
        let mut answer = active(&idp.issuer);
        for (k, val) in changes.as_object().expect("object") {
            answer[k] = val.clone();
        }
        idp.set_introspection(token, answer);
    }
    for (token, _, expected) in cases {
        assert_eq!(v.introspect(token).await, Err(expected), "{token}");
    }
    // Without iss, aud and exp (RFC 7662 makes them optional) an active answer is enough.
    idp.set_introspection("minimal", json!({"active": true, "sub": "s"}));
    let c = v.introspect("minimal").await.expect("active");
    assert_eq!(c.sub.as_deref(), Some("s"));
    assert_eq!(c.exp, 0);
    // An aud list with one of ours is fine.
    let mut answer = active(&idp.issuer);
    answer["aud"] = json!(["account", CLIENT_ID]);
    idp.set_introspection("list-aud", answer);
    v.introspect("list-aud").await.expect("active");
}

#[tokio::test]
async fn unusable_responses_are_unavailable() {
    let (idp, v) = setup(BASIC).await;
    idp.set_introspection("no-active", json!({"sub": "s"}));
    idp.set_introspection("string-active", json!({"active": "true"}));
    idp.set_introspection("not-object", json!([1, 2]));
    idp.set_introspection("bad-exp", json!({"active": true, "exp": "soon"}));
    for token in ["no-active", "string-active", "not-object", "bad-exp"] {
        assert_eq!(
            v.introspect(token).await,
            Err(TokenError::IntrospectionUnavailable),
            "{token}"
        );
    }
}

#[tokio::test]
async fn concurrent_introspections_share_one_request() {
    let (idp, v) = setup(BASIC).await;
    let v = Arc::new(v);
    idp.set_introspection("hot", active(&idp.issuer));
    *idp.introspection_delay.lock().expect("lock") = Duration::from_millis(300);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move { v.introspect("hot").await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("active"));
    }
    assert_eq!(idp.introspection_hits(), 1, "single flight");
    assert!(results.iter().all(|c| Arc::ptr_eq(c, &results[0])));

    // Inactive answers are shared too.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move { v.introspect("cold").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), Err(TokenError::Inactive));
    }
    assert_eq!(idp.introspection_hits(), 2);
}

#[tokio::test]
async fn a_cancelled_leader_hands_over() {
    let (idp, v) = setup(BASIC).await;
    let v = Arc::new(v);
    idp.set_introspection("t", active(&idp.issuer));
    *idp.introspection_delay.lock().expect("lock") = Duration::from_millis(300);
    let leader = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.introspect("t").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let follower = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.introspect("t").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let c = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("follower finishes")
        .expect("task")
        .expect("active");
    assert_eq!(c.sub.as_deref(), Some("user-1"));
    assert_eq!(idp.introspection_hits(), 2, "the follower asked again");
}

#[tokio::test]
async fn jwts_can_be_introspected_too() {
    let (idp, v) = setup(BASIC).await;
    v.refresh_keys().await.expect("keys");
    let token = keys().rsa.mint("RS256", &claims(&idp.issuer));
    assert!(looks_like_jwt(&token));
    assert!(!looks_like_jwt("opaque-token"));
    v.verify(&token).await.expect("valid JWT");
    // Revoked: the signature still verifies, introspection says no.
    assert_eq!(v.introspect(&token).await, Err(TokenError::Inactive));
    assert!(v.verify_cached(&token).is_some());
}

#[tokio::test]
async fn configured_url_skips_discovery_and_is_required_with_jwks_file() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let file = temp_file("jwks.json", &jwks(&[keys().rsa.jwk()]));
    let mut p = introspecting_provider(&idp.issuer, BASIC);
    p.jwks_file = Some(file);
    let err = TokenVerifier::new(&p, 10).expect_err("no url with jwks-file");
    assert!(err.to_string().contains("introspection-url"), "{err}");
    p.introspection_url = Some(idp.introspection_url());
    let v = TokenVerifier::new(&p, 10).expect("verifier");
    idp.set_introspection("opaque", active(&idp.issuer));
    v.introspect("opaque").await.expect("active");
    assert_eq!(idp.discovery_hits(), 0);

    let mut p = introspecting_provider(&idp.issuer, BASIC);
    p.client_secret = None;
    let err = TokenVerifier::new(&p, 10).expect_err("no secret");
    assert!(err.to_string().contains("client-secret"), "{err}");
}

#[tokio::test]
async fn refresh_keys_discovers_the_endpoint() {
    let (idp, v) = setup(BASIC).await;
    v.refresh_keys().await.expect("keys");
    assert_eq!(idp.discovery_hits(), 1);
    idp.set_introspection("opaque", active(&idp.issuer));
    v.introspect("opaque").await.expect("active");
    assert_eq!(idp.discovery_hits(), 1, "no second discovery");
}

#[tokio::test]
async fn no_endpoint_or_disabled_is_unavailable() {
    let (idp, v) = setup(BASIC).await;
    *idp.advertise_introspection.lock().expect("lock") = false;
    assert_eq!(
        v.introspect("opaque").await,
        Err(TokenError::IntrospectionUnavailable)
    );
    assert_eq!(idp.introspection_hits(), 0);

    let off = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 10).expect("verifier");
    assert!(!off.introspection_enabled());
    assert_eq!(
        off.introspect("opaque").await,
        Err(TokenError::IntrospectionUnavailable)
    );
    assert!(off.introspect_cached("opaque").is_none());
    assert_eq!(
        off.introspect("").await,
        Err(TokenError::Malformed),
        "empty token"
    );
}

#[tokio::test]
async fn idp_down_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let issuer = format!("http://{addr}/realms/test");
    let mut p = introspecting_provider(&issuer, BASIC);
    p.introspection_url = Some(format!("{issuer}/protocol/openid-connect/token/introspect"));
    let v = TokenVerifier::new(&p, 10).expect("verifier");
    assert_eq!(
        v.introspect("opaque").await,
        Err(TokenError::IntrospectionUnavailable)
    );
    // Without a configured URL, a failed discovery is also unavailable.
    let v = TokenVerifier::new(&introspecting_provider(&issuer, BASIC), 10).expect("verifier");
    assert_eq!(
        v.introspect("opaque").await,
        Err(TokenError::IntrospectionUnavailable)
    );
}

/// Every call to the provider, as reported.
#[derive(Default)]
struct Calls(std::sync::Mutex<Vec<(IdpCall, IdpOutcome)>>);

impl IdpObserver for Calls {
    fn call(&self, kind: IdpCall, outcome: IdpOutcome, _: Duration) {
        self.0.lock().expect("lock").push((kind, outcome));
    }
}

#[tokio::test]
async fn introspection_calls_are_reported_with_their_outcome() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let calls = Arc::new(Calls::default());
    let p = introspecting_provider(&idp.issuer, BASIC);
    let discovery = ProviderDiscovery::new(&p)
        .expect("discovery")
        .with_observer(Arc::clone(&calls) as Arc<dyn IdpObserver>);
    let v = TokenVerifier::with_discovery(&p, 1000, Arc::new(discovery)).expect("verifier");
    idp.set_introspection("opaque-1", active(&idp.issuer));
    v.introspect("opaque-1").await.expect("active");
    v.introspect("opaque-1").await.expect("cached: no call");
    assert_eq!(
        *calls.0.lock().expect("lock"),
        vec![
            (IdpCall::Discovery, IdpOutcome::Ok),
            (IdpCall::Introspection, IdpOutcome::Ok)
        ]
    );
}

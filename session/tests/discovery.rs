//! One discovery document per provider: the verifier, introspection and the login client read
//! the same fetch; concurrent readers share one request; a failed fetch stands for the retry
//! interval; a stale mark makes the next reader fetch again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_session::http::{IdpCall, IdpObserver, IdpOutcome};
use gatehouse_session::oidc::{OidcClient, OidcError, DISCOVERY_RETRY_INTERVAL};
use gatehouse_session::{ProviderDiscovery, TokenVerifier};
use gatehouse_test_support::config::{claims, provider};
use gatehouse_test_support::keys::{jwks, keys};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback IdP serving a full discovery document (login endpoints included) and a JWKS.
struct Idp {
    issuer: String,
    discovery_hits: Arc<AtomicUsize>,
    /// The issuer the document names (the configured one unless changed).
    named_issuer: Arc<Mutex<String>>,
    /// Delay before each discovery answer, to let readers pile up.
    delay: Arc<Mutex<Duration>>,
    /// A status every request is answered with instead (an outage).
    fail_with: Arc<Mutex<Option<u16>>>,
}

impl Idp {
    async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!(
            "http://{}/realms/test",
            listener.local_addr().expect("addr")
        );
        let idp = Idp {
            issuer: issuer.clone(),
            discovery_hits: Arc::new(AtomicUsize::new(0)),
            named_issuer: Arc::new(Mutex::new(issuer.clone())),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            fail_with: Arc::new(Mutex::new(None)),
        };
        let (hits, named, delay, fail_with) = (
            Arc::clone(&idp.discovery_hits),
            Arc::clone(&idp.named_issuer),
            Arc::clone(&idp.delay),
            Arc::clone(&idp.fail_with),
        );
        let keys = jwks(&[keys().rsa.jwk()]);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body = if path.ends_with("/.well-known/openid-configuration") {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let wait = *delay.lock().expect("lock");
                    tokio::time::sleep(wait).await;
                    let named = named.lock().expect("lock").clone();
                    json!({
                        "issuer": named,
                        "jwks_uri": format!("{issuer}/certs"),
                        "authorization_endpoint": format!("{issuer}/auth"),
                        "token_endpoint": format!("{issuer}/token"),
                        "introspection_endpoint": format!("{issuer}/introspect"),
                    })
                    .to_string()
                } else {
                    keys.clone()
                };
                let status = match *fail_with.lock().expect("lock") {
                    Some(code) => format!("{code} Failing"),
                    None => "200 OK".to_string(),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        idp
    }

    fn hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }
}

fn clients(idp: &Idp) -> (Arc<TokenVerifier>, OidcClient) {
    let p = provider(&idp.issuer, None, &["RS256"]);
    let verifier = Arc::new(TokenVerifier::new(&p, 100).expect("verifier"));
    let oidc = OidcClient::new(&p, Arc::clone(&verifier)).expect("login client");
    (verifier, oidc)
}

#[tokio::test]
async fn the_key_refresh_fetch_serves_the_login_client() {
    let idp = Idp::start().await;
    let (verifier, oidc) = clients(&idp);
    assert_eq!(verifier.refresh_keys().await, Ok(1));
    assert_eq!(idp.hits(), 1);
    let endpoints = oidc.endpoints().await.expect("endpoints");
    assert_eq!(endpoints.token_endpoint, format!("{}/token", idp.issuer));
    assert_eq!(
        idp.hits(),
        1,
        "the login client read the verifier's document"
    );
    // The scheduled refresh always fetches again.
    assert_eq!(verifier.refresh_keys().await, Ok(1));
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn concurrent_readers_share_one_fetch() {
    let idp = Idp::start().await;
    *idp.delay.lock().expect("lock") = Duration::from_millis(300);
    let (verifier, oidc) = clients(&idp);
    let oidc = Arc::new(oidc);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let oidc = Arc::clone(&oidc);
        tasks.push(tokio::spawn(
            async move { oidc.endpoints().await.map(|_| ()) },
        ));
    }
    // A token with no keys loaded yet: the verifier needs the document's jwks_uri too.
    let token = keys().rsa.mint("RS256", &claims(&idp.issuer));
    let verified = verifier.verify(&token).await;
    for task in tasks {
        task.await.expect("task").expect("endpoints");
    }
    assert!(verified.is_ok(), "{verified:?}");
    assert_eq!(idp.hits(), 1, "one fetch for every reader");
}

#[tokio::test]
async fn a_failed_fetch_stands_for_the_retry_interval_and_stale_refetches() {
    let idp = Idp::start().await;
    *idp.named_issuer.lock().expect("lock") = "http://other.example".into();
    let (verifier, oidc) = clients(&idp);
    for _ in 0..3 {
        match oidc.endpoints().await {
            Err(OidcError::Discovery(msg)) => assert!(msg.contains("names issuer"), "{msg}"),
            other => panic!("issuer mismatch must fail: {other:?}"),
        }
    }
    assert_eq!(
        idp.hits(),
        1,
        "failures within the interval reuse the first"
    );
    tokio::time::sleep(DISCOVERY_RETRY_INTERVAL + Duration::from_millis(100)).await;
    *idp.named_issuer.lock().expect("lock") = idp.issuer.clone();
    oidc.endpoints()
        .await
        .expect("fetched again after the interval");
    assert_eq!(idp.hits(), 2);
    oidc.endpoints().await.expect("cached");
    assert_eq!(idp.hits(), 2);
    // Marked stale (the login client does so when the token endpoint is unreachable): the
    // next reader fetches at once, even within the interval.
    verifier.discovery().mark_stale();
    oidc.endpoints().await.expect("refetched");
    assert_eq!(idp.hits(), 3);
}

/// Every call to the provider, as reported.
#[derive(Default)]
struct Calls(Mutex<Vec<(IdpCall, IdpOutcome)>>);

impl IdpObserver for Calls {
    fn call(&self, kind: IdpCall, outcome: IdpOutcome, _: Duration) {
        self.0.lock().expect("lock").push((kind, outcome));
    }
}

impl Calls {
    fn take(&self) -> Vec<(IdpCall, IdpOutcome)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

fn observed(issuer: &str, calls: &Arc<Calls>) -> (Arc<TokenVerifier>, OidcClient) {
    let p = provider(issuer, None, &["RS256"]);
    let discovery = ProviderDiscovery::new(&p)
        .expect("discovery")
        .with_observer(Arc::clone(calls) as Arc<dyn IdpObserver>);
    let verifier =
        Arc::new(TokenVerifier::with_discovery(&p, 100, Arc::new(discovery)).expect("verifier"));
    let oidc = OidcClient::new(&p, Arc::clone(&verifier)).expect("login client");
    (verifier, oidc)
}

#[tokio::test]
async fn every_call_is_reported_with_its_kind_and_outcome() {
    use IdpCall::{Discovery, Jwks, Refresh};
    use IdpOutcome::{Connect, Invalid, Status4xx, Status5xx};
    let idp = Idp::start().await;
    let calls = Arc::new(Calls::default());
    let (verifier, oidc) = observed(&idp.issuer, &calls);
    assert_eq!(verifier.keys_age(), None, "no keys yet");
    assert_eq!(verifier.refresh_keys().await, Ok(1));
    assert_eq!(
        calls.take(),
        vec![(Discovery, IdpOutcome::Ok), (Jwks, IdpOutcome::Ok)]
    );
    assert!(verifier.keys_age().expect("loaded") < Duration::from_secs(5));

    // The token endpoint answers with something that is not a token response.
    assert!(oidc.refresh("a-refresh-token").await.is_err());
    assert_eq!(calls.take(), vec![(Refresh, Invalid)]);

    *idp.fail_with.lock().expect("lock") = Some(503);
    assert!(verifier.refresh_keys().await.is_err());
    assert_eq!(calls.take(), vec![(Discovery, Status5xx)]);
    assert!(oidc.refresh("a-refresh-token").await.is_err());
    assert_eq!(calls.take(), vec![(Refresh, Status5xx)]);
    *idp.fail_with.lock().expect("lock") = Some(401);
    assert!(oidc.refresh("a-refresh-token").await.is_err());
    assert_eq!(calls.take(), vec![(Refresh, Status4xx)]);

    *idp.fail_with.lock().expect("lock") = None;
    *idp.named_issuer.lock().expect("lock") = "http://other.example".into();
    assert!(verifier.refresh_keys().await.is_err());
    assert_eq!(calls.take(), vec![(Discovery, Invalid)], "another issuer");
    assert!(
        verifier.keys_age().is_some(),
        "the keys in use stay, and age"
    );

    // Nothing listens: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("http://{}/realms/test", closed.local_addr().expect("addr"));
    drop(closed);
    let (verifier, _) = observed(&gone, &calls);
    assert!(verifier.refresh_keys().await.is_err());
    assert_eq!(calls.take(), vec![(Discovery, Connect)]);
}

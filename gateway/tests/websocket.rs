//! WebSocket through the real binary: a real client and a real server (tokio-tungstenite, the
//! server an echo started on loopback as the upstream). The handshake is authenticated like
//! any request of its route (bearer token, token cookie, browser session), refused handshakes
//! never reach the upstream, the identity headers reach the upstream's handshake, the frames
//! are relayed without the route's body limit or the per-request read timeouts, an idle
//! upgraded connection is closed after the tenant's `upgrade-idle-timeout`, and
//! `gatehouse_upgraded_connections` counts the open ones.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_test_support::keys::{jwks, now, Kind, TestKey};
use support::login::Browser;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Client = WebSocketStream<TcpStream>;

const ISSUER: &str = "https://issuer.test/realms/demo";

/// A WebSocket upstream on loopback: echoes every message, except `quiet:*` (answered with
/// nothing) and `push:N:MS` (answered with N messages `pushed-i`, MS milliseconds apart).
/// Records the headers of every handshake it accepted.
struct EchoServer {
    addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<http::HeaderMap>>>,
}

impl EchoServer {
    fn start(rt: &tokio::runtime::Runtime) -> EchoServer {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the echo server");
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&handshakes);
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    // Health checks connect and close: not a handshake, nothing recorded.
                    // The callback's error type is tungstenite's, large or not.
                    #[allow(clippy::result_large_err)]
                    let record = |req: &Request, resp: WsResponse| {
                        seen.lock().unwrap().push(req.headers().clone());
                        Ok(resp)
                    };
                    // Pingora 0.9.1 closes an upgraded connection at once when the upstream's
                    // 101 is read before the handshake's end of body has been passed on (its
                    // upstream half then takes that end for the end of the upgraded stream):
                    // a race with a fast upstream, in the product too (README: WebSocket).
                    // Waiting for the handshake's first bytes and 50 ms keeps these tests off it.
                    let mut probe = [0u8; 1];
                    if stream.peek(&mut probe).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, record).await {
                        echo(ws).await;
                    }
                });
            }
        });
        EchoServer { addr, handshakes }
    }

    fn handshakes(&self) -> Vec<http::HeaderMap> {
        self.handshakes.lock().unwrap().clone()
    }
}

async fn echo(ws: WebSocketStream<TcpStream>) {
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(msg)) = rx.next().await {
        // (messages to send, pause before each)
        let (replies, pause) = match &msg {
            Message::Text(t) if t.starts_with("quiet:") => (Vec::new(), 0),
            Message::Text(t) if t.starts_with("push:") => {
                let mut parts = t.split(':').skip(1);
                let n: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let ms: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let pushed = (0..n).map(|i| Message::text(format!("pushed-{i}")));
                (pushed.collect(), ms)
            }
            Message::Text(_) | Message::Binary(_) => (vec![msg], 0),
            Message::Close(_) => {
                let _ = tx.close().await;
                return;
            }
            _ => (Vec::new(), 0),
        };
        for reply in replies {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A signing key, its JWKS file in `dir`, and tokens it signs.
struct Signer {
    key: TestKey,
    jwks_file: std::path::PathBuf,
}

impl Signer {
    fn new(dir: &TempDir) -> Signer {
        let key = TestKey::generate(Kind::P256, "ws-1");
        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks(&[key.jwk()])).unwrap();
        Signer { key, jwks_file }
    }

    fn token(&self, sub: &str) -> String {
        let now = now();
        self.key.mint(
            "ES256",
            &serde_json::json!({
                "iss": ISSUER, "aud": "gatehouse", "sub": sub, "iat": now, "exp": now + 600,
            }),
        )
    }
}

/// Tenant `demo`: bearer tokens from `signer` (also in the `access_token` cookie), the route
/// `/ws/*` with a 1 KiB body limit, `/open/*` white-listed, and the given idle timeout and
/// upstream read timeout.
fn config(p: &Ports, signer: &Signer, echo: &EchoServer, idle: &str, read: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
identity-providers:
  - name: static
    issuer: {ISSUER}
    jwks-file: {jwks}
    client-id: gatehouse
    algorithms: [ES256]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: static
    token-cookie: access_token
    upgrade-idle-timeout: {idle}
    upstreams:
      - name: echo
        targets: ["{echo}"]
        read-timeout: {read}
    identity-headers:
      X-Auth-Subject: sub
    routes:
      - uri: /open/*
        white-listed: true
      - uri: /ws/*
        max-body-size: 1KiB
"#,
        listen = p.listen,
        admin = p.admin,
        jwks = signer.jwks_file.display(),
        echo = echo.addr,
    )
}

/// Opens a WebSocket to `path` on `demo.localhost` through the gateway with extra handshake
/// headers. `Err` carries the refusal's status.
async fn connect(gw: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    let mut req = format!("ws://demo.localhost{path}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let tcp = TcpStream::connect(gw)
        .await
        .expect("connect to the gateway");
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            assert!(
                resp.headers().contains_key("x-request-id"),
                "the 101 carries the request ID: {resp:?}"
            );
            Ok(ws)
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake through the gateway failed: {e}"),
    }
}

/// The value of a `gatehouse_upgraded_connections` series of `tenant`, if present.
fn upgraded_gauge(gw: &Gateway, tenant: &str) -> Option<i64> {
    let m = get(gw.admin, "admin", "/metrics", &[]).ok()?.text();
    let series = format!("gatehouse_upgraded_connections{{tenant=\"{tenant}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

async fn next_text(ws: &mut Client) -> String {
    try_next_text(ws).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn try_next_text(ws: &mut Client) -> Result<String, String> {
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Ok(t.to_string()),
        other => Err(format!("expected a text message, got {other:?}")),
    }
}

#[test]
fn a_thousand_messages_each_way_and_a_stream_past_max_body_size_pass_with_identity_headers() {
    let rt = runtime();
    let echo = EchoServer::start(&rt);
    let dir = TempDir::new("ws-keys");
    let signer = Signer::new(&dir);
    let gw = Gateway::start("ws", |p, _| config(p, &signer, &echo, "1h", "30s"));
    gw.wait_ready();
    assert_eq!(
        upgraded_gauge(&gw, "demo"),
        Some(0),
        "the series exists at 0"
    );
    let token = signer.token("alice");
    let auth = format!("Bearer {token}");
    let ws = rt
        .block_on(connect(
            gw.listen,
            "/ws/chat",
            &[("Authorization", &auth), ("X-Auth-Subject", "mallory")],
        ))
        .expect("an authenticated handshake is accepted");
    assert_eq!(
        upgraded_gauge(&gw, "demo"),
        Some(1),
        "one upgraded connection"
    );

    // The upstream's handshake carried the identity, not the token.
    let seen = echo.handshakes();
    assert_eq!(seen.len(), 1);
    let h = &seen[0];
    assert_eq!(
        h.get_all("x-auth-subject").iter().collect::<Vec<_>>(),
        ["alice"],
        "the identity from the token, not the client's header"
    );
    assert!(
        h.get("authorization").is_none(),
        "the token stays here: {h:?}"
    );
    assert!(h.get("x-request-id").is_some());
    assert!(h.get("x-forwarded-for").is_some());
    assert_eq!(h.get("upgrade").unwrap(), "websocket");

    rt.block_on(async {
        // A thousand messages each way, sent while the echoes come back.
        let (mut tx, mut rx) = ws.split();
        let sender = tokio::spawn(async move {
            for i in 0..1000 {
                tx.send(Message::text(format!("message {i}")))
                    .await
                    .unwrap();
            }
            tx
        });
        for i in 0..1000 {
            match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), format!("message {i}")),
                other => panic!("echo {i}: {other:?}"),
            }
        }
        let mut tx = sender.await.unwrap();
        // 1 MiB of binary messages on a route whose max-body-size is 1 KiB: frames are no
        // request body.
        let mut received = 0usize;
        for i in 0..256u32 {
            let chunk: Vec<u8> = (0..4096u32).map(|j| (i + j) as u8).collect();
            tx.send(Message::binary(chunk.clone())).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    assert_eq!(&b[..], &chunk[..], "binary echo {i}");
                    received += b.len();
                }
                other => panic!("binary echo {i}: {other:?}"),
            }
        }
        assert_eq!(received, 1 << 20);
        let mut ws = tx.reunite(rx).unwrap();
        ws.close(None).await.unwrap();
        // The close handshake completes: the server's close frame, then the end.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
    });
    assert_eventually!(
        Duration::from_secs(10),
        || upgraded_gauge(&gw, "demo") == Some(0),
        "the gauge comes back to 0 once the connection closed: {:?}",
        upgraded_gauge(&gw, "demo")
    );

    // The token cookie authenticates a handshake too.
    let mut ws = rt
        .block_on(connect(
            gw.listen,
            "/ws/cookie",
            &[("Cookie", &format!("access_token={token}"))],
        ))
        .expect("the token cookie authenticates");
    rt.block_on(async {
        ws.send(Message::text("via cookie")).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "via cookie");
    });
    assert_eq!(echo.handshakes()[1].get("x-auth-subject").unwrap(), "alice");
    // A white-listed route upgrades without a token, and no identity is made up.
    let open = rt
        .block_on(connect(
            gw.listen,
            "/open/feed",
            &[("X-Auth-Subject", "mallory")],
        ))
        .expect("white-listed");
    assert!(
        echo.handshakes()[2].get("x-auth-subject").is_none(),
        "a client's identity header never reaches the upstream"
    );
    drop((ws, open));
}

/// (what, handshake headers, expected status)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);

#[test]
fn a_handshake_without_a_valid_token_is_refused_and_never_reaches_the_upstream() {
    let rt = runtime();
    let echo = EchoServer::start(&rt);
    let dir = TempDir::new("ws-keys");
    let signer = Signer::new(&dir);
    let gw = Gateway::start("ws-refused", |p, _| config(p, &signer, &echo, "1h", "30s"));
    gw.wait_ready();
    let forged = {
        let other = Signer::new(&TempDir::new("ws-rogue"));
        format!("Bearer {}", other.token("mallory"))
    };
    let cases: &[Case] = &[
        ("no token", &[], 401),
        ("no token, browser-like", &[("Accept", "text/html")], 401),
        ("a token of another key", &[("Authorization", &forged)], 401),
        (
            "not a bearer credential",
            &[("Authorization", "Basic YTpi")],
            401,
        ),
    ];
    for (what, headers, status) in cases {
        let got = rt.block_on(connect(gw.listen, "/ws/chat", headers));
        assert_eq!(got.err(), Some(*status), "{what}");
    }
    // Outside every route: refused by default deny, with or without a valid token.
    let auth = format!("Bearer {}", signer.token("alice"));
    let got = rt.block_on(connect(
        gw.listen,
        "/elsewhere",
        &[("Authorization", &auth)],
    ));
    assert_eq!(got.err(), Some(403));
    assert!(
        echo.handshakes().is_empty(),
        "no refused handshake reached the upstream: {:?}",
        echo.handshakes()
    );
    assert_eq!(upgraded_gauge(&gw, "demo"), Some(0));
}

#[test]
fn an_upgraded_connection_outlives_the_read_timeouts_while_used_and_closes_when_idle() {
    let rt = runtime();
    let echo = EchoServer::start(&rt);
    let dir = TempDir::new("ws-keys");
    let signer = Signer::new(&dir);
    // The upstream's read-timeout (1s) is shorter than the idle timeout (3s): it must not
    // apply to an upgraded connection.
    let gw = Gateway::start("ws-idle", |p, _| config(p, &signer, &echo, "3s", "1s"));
    gw.wait_ready();
    let auth = format!("Bearer {}", signer.token("alice"));
    let mut ws = rt
        .block_on(connect(gw.listen, "/ws/idle", &[("Authorization", &auth)]))
        .expect("accepted");
    let started = Instant::now();
    let log = |e: String| -> String {
        std::thread::sleep(Duration::from_millis(300)); // the access log is written every 20 ms
        panic!(
            "{e}\nat {:?}; gateway log:\n{}",
            started.elapsed(),
            gw.log()
        )
    };
    rt.block_on(async {
        // Pauses longer than the upstream read-timeout, shorter than the idle timeout.
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(try_next_text(&mut ws).await.unwrap_or_else(log), "ping");
        tokio::time::sleep(Duration::from_millis(1800)).await;
        ws.send(Message::text("still here")).await.unwrap();
        assert_eq!(
            try_next_text(&mut ws).await.unwrap_or_else(log),
            "still here"
        );
        // Only the client speaks for 4.5 s (longer than the idle timeout): the connection
        // is not idle, although the upstream sends nothing back.
        for i in 0..9 {
            ws.send(Message::text(format!("quiet:{i}"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Only the upstream speaks for 4.5 s: not idle either.
        ws.send(Message::text("push:9:500")).await.unwrap();
        for i in 0..9 {
            assert_eq!(
                try_next_text(&mut ws).await.unwrap_or_else(log),
                format!("pushed-{i}")
            );
        }
        ws.send(Message::text("alive")).await.unwrap();
        assert_eq!(try_next_text(&mut ws).await.unwrap_or_else(log), "alive");
    });
    assert_eq!(upgraded_gauge(&gw, "demo"), Some(1));
    // Now nothing either way: closed after the idle timeout (3 s), not before.
    let idle_from = Instant::now();
    let closed_after = rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => idle_from.elapsed(),
            Ok(Some(Ok(m))) => panic!("unexpected message {m:?}"),
            Err(_) => panic!("an idle upgraded connection stayed open 20 s"),
        }
    });
    assert!(
        closed_after >= Duration::from_millis(2800),
        "closed after {closed_after:?}, before the idle timeout"
    );
    assert_eventually!(
        Duration::from_secs(10),
        || upgraded_gauge(&gw, "demo") == Some(0),
        "the idle connection left the gauge"
    );
}

/// Tenant `demo` with browser login (the real IdP) and the WebSocket route `/ws/*`.
fn session_config(p: &Ports, echo: &EchoServer, idp_port: u16) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
  url: memory://
identity-providers:
{provider}
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    upstreams:
      - name: echo
        targets: ["{echo}"]
    identity-headers:
      X-Auth-Userid: preferred_username
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      allowed-redirect-hosts: [demo.localhost]
    cookie:
      secure: false
      encryption-key: "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    routes:
      - uri: /ws/*
        roles: [user]
"#,
        listen = p.listen,
        admin = p.admin,
        echo = echo.addr,
    )
}

#[test]
fn a_browser_session_authenticates_a_handshake_and_none_gets_401_not_a_login_redirect() {
    let rt = runtime();
    let echo = EchoServer::start(&rt);
    let (gw, _idp) = gateway_with_idp("ws-session", None, &[], |p, _, idp_port| {
        session_config(p, &echo, idp_port)
    });

    // A browser's handshake without a session: 401, not a redirect it cannot follow.
    let browser_headers = [
        ("Accept", "text/html,application/xhtml+xml"),
        ("Origin", "http://demo.localhost"),
    ];
    let refused = rt.block_on(connect(gw.listen, "/ws/live", &browser_headers));
    assert_eq!(refused.err(), Some(401));
    // The same path navigated to still goes to the login.
    let nav = gw.get_with("demo.localhost", "/ws/live", &[("Accept", "text/html")]);
    assert_eq!(nav.status, 302, "{nav:?}");
    assert!(echo.handshakes().is_empty());

    let browser = Browser::new(gw.listen);
    // The login ends on /ws/ as a plain GET, which the WebSocket-only upstream does not serve.
    let page = browser.login_from("/oauth/login?rd=/ws/", "alice", "alice-password", false);
    assert_eq!(page.url.path(), "/ws/", "{page:?}");
    let cookies = browser.cookies();
    assert!(cookies.contains("gatehouse_session="), "{cookies}");
    let mut with_session = browser_headers.to_vec();
    with_session.push(("Cookie", &cookies));
    let mut ws = rt
        .block_on(connect(gw.listen, "/ws/live", &with_session))
        .expect("the session authenticates the handshake");
    rt.block_on(async {
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello");
    });
    let seen = echo.handshakes();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].get("x-auth-userid").unwrap(), "alice");
    assert!(
        seen[0]
            .get("cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("gatehouse_session")),
        "the session cookie stays here: {:?}",
        seen[0]
    );
}

#[test]
fn http2_offers_no_extended_connect_so_websockets_stay_on_http11() {
    let rt = runtime();
    let echo = EchoServer::start(&rt);
    let dir = TempDir::new("ws-keys");
    let signer = Signer::new(&dir);
    let gw = Gateway::start("ws-h2", |p, _| {
        config(p, &signer, &echo, "1h", "30s").replacen("listen:", "listen-h2c: true\nlisten:", 1)
    });
    gw.wait_ready();
    rt.block_on(async {
        let tcp = TcpStream::connect(gw.listen).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2c");
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        // One exchange, so the server's SETTINGS have been read.
        let req = http::Request::get("http://demo.localhost/ws/x")
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 401);
        assert!(
            !client.is_extended_connect_protocol_enabled(),
            "RFC 8441 is not offered (README: WebSocket)"
        );
        // A CONNECT is refused before any phase of the gateway runs.
        let mut client = client.ready().await.unwrap();
        let req = http::Request::connect("demo.localhost:443")
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 405);
    });
    assert!(echo.handshakes().is_empty());
}

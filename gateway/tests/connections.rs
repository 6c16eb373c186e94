//! Connections and slow clients through the real binary: a slowloris client is cut with 408
//! within `request-header-timeout` while others are served (on a fresh connection and on a
//! keep-alive one), idle connections from one address are limited while another address is
//! served and the count goes back down as they close, `max-connections`, and the
//! absolute-form request target.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn config(p: &Ports, app: &Upstream, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
{extra}
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// Reads until the peer closes (or `limit` passes): what arrived and whether it closed.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Sends `head` one byte every `pace` on `s` until the peer stops taking bytes; returns when
/// it stopped (or the whole head went out).
fn trickle(s: &mut TcpStream, head: &[u8], pace: Duration) -> Instant {
    for b in head {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(pace);
    }
    Instant::now()
}

fn ok_get(gw: &Gateway, from: &str) -> u16 {
    request_on(
        socket_from(from, gw.listen),
        "GET /x HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n",
    )
    .status
}

#[test]
fn a_slowloris_client_is_cut_with_408_within_the_header_timeout_while_others_are_served() {
    let app = Upstream::start("app");
    let gw = Gateway::start("slowloris", |p, _| {
        config(p, &app, "request-header-timeout: 2s")
    });
    gw.wait_ready();
    let head = b"GET /slow HTTP/1.1\r\nHost: demo.localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

    // A fresh connection that sends one byte a second.
    let started = Instant::now();
    let mut slow = socket_from("127.0.0.1", gw.listen);
    let reader = {
        let mut r = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            let got = read_to_close(&mut r, Duration::from_secs(15));
            (got, started.elapsed())
        })
    };
    let writer = std::thread::spawn(move || trickle(&mut slow, head, Duration::from_secs(1)));
    // Meanwhile other clients are served.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        assert_eq!(ok_get(&gw, "127.0.0.2"), 200);
    }
    let ((text, closed), elapsed) = reader.join().unwrap();
    assert!(closed, "the slow connection was not closed: {text:?}");
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "408 expected, got {text:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "cut after {elapsed:?}, the timeout is 2s"
    );
    let _ = writer.join();
    assert!(
        app.requests().iter().all(|r| r.target != "/slow"),
        "the slow request never reached the upstream"
    );

    // On a keep-alive connection: a prompt first request, then a slow second head; the idle
    // wait between them (3 s, longer than the head timeout) is not held against it.
    let mut conn = socket_from("127.0.0.1", gw.listen);
    conn.write_all(b"GET /first HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    std::thread::sleep(Duration::from_secs(3));
    let second_started = Instant::now();
    let writer = {
        let mut w = conn.try_clone().unwrap();
        std::thread::spawn(move || trickle(&mut w, head, Duration::from_secs(1)))
    };
    let (text, closed) = read_to_close(&mut conn, Duration::from_secs(15));
    let elapsed = second_started.elapsed();
    assert!(closed && text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "the second head was cut after {elapsed:?}"
    );
    let _ = writer.join();
    assert_eq!(ok_get(&gw, "127.0.0.1"), 200);
}

#[test]
fn idle_connections_from_one_address_are_limited_while_another_is_served() {
    let app = Upstream::start("app");
    let gw = Gateway::start("conn-limits", |p, _| {
        config(
            p,
            &app,
            "max-connections-per-ip: 5\nmax-connections: 8\ntrusted-proxies: [127.0.0.5/32]",
        )
    });
    gw.wait_ready();
    // Let the start-up probes' connections close.
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .metrics()
            .contains(r#"gatehouse_connections_open{listener="listen"} 0"#),
        "connections left open at start: {}",
        gw.metrics()
    );

    let mut idle: Vec<TcpStream> = (0..5)
        .map(|_| socket_from("127.0.0.1", gw.listen))
        .collect();
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .metrics()
            .contains(r#"gatehouse_connections_open{listener="listen"} 5"#),
        "five idle connections counted"
    );
    // The sixth from the same address is closed at once, without a byte.
    let mut sixth = socket_from("127.0.0.1", gw.listen);
    let t = Instant::now();
    let (text, closed) = read_to_close(&mut sixth, Duration::from_secs(3));
    assert!(closed && text.is_empty(), "{text:?}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // Another address is served.
    assert_eq!(ok_get(&gw, "127.0.0.2"), 200);

    // max-connections: 8 open in all (5 + 3 from .3), the ninth, from a fresh address, is refused.
    let more: Vec<TcpStream> = (0..3)
        .map(|_| socket_from("127.0.0.3", gw.listen))
        .collect();
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .metrics()
            .contains(r#"gatehouse_connections_open{listener="listen"} 8"#),
        "eight connections counted"
    );
    let mut ninth = socket_from("127.0.0.4", gw.listen);
    let (text, closed) = read_to_close(&mut ninth, Duration::from_secs(3));
    assert!(closed && text.is_empty(), "{text:?}");
    drop(more);

    // Closing the idle connections gives the address its room back: nothing leaks.
    idle.truncate(1);
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .metrics()
            .contains(r#"gatehouse_connections_open{listener="listen"} 1"#),
        "closed connections counted out: {}",
        gw.metrics()
    );
    for _ in 0..6 {
        assert_eq!(ok_get(&gw, "127.0.0.1"), 200);
    }
    // A trusted proxy carries many clients: the per-address limit does not apply to it (the
    // listener's limit does).
    let proxy: Vec<TcpStream> = (0..6)
        .map(|_| socket_from("127.0.0.5", gw.listen))
        .collect();
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .metrics()
            .contains(r#"gatehouse_connections_open{listener="listen"} 7"#),
        "six from the proxy counted: {}",
        gw.metrics()
    );
    assert_eq!(ok_get(&gw, "127.0.0.5"), 200, "a seventh from the proxy");
    drop(proxy);
    drop(idle);
    let m = gw.metrics();
    assert!(
        m.contains(r#"gatehouse_connections_refused_total{limit="max_connections_per_ip",listener="listen"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(
            r#"gatehouse_connections_refused_total{limit="max_connections",listener="listen"} 1"#
        ),
        "{m}"
    );
}

#[test]
fn the_absolute_form_target_is_proxied_like_the_origin_form() {
    let app = Upstream::start("app");
    let gw = Gateway::start("absolute-form", |p, _| config(p, &app, ""));
    gw.wait_ready();
    let port = gw.listen.port();
    let authority = format!("demo.localhost:{port}");
    let send = |head: String| request_on(socket_from("127.0.0.1", gw.listen), &head);

    // With its Host (which must equal the target's authority): proxied in origin form.
    let r = send(format!(
        "GET http://{authority}/a/./b?q=1 HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = app.last().expect("proxied");
    assert_eq!(seen.target, "/a/b?q=1", "normalized, origin form upstream");
    assert_eq!(seen.header("host"), Some(authority.as_str()));
    // Already normal: still origin form upstream.
    let r = send(format!(
        "GET http://{authority}/plain?x=y HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(app.last().unwrap().target, "/plain?x=y");

    // Without Host: the authority decides the tenant and becomes the upstream's Host.
    let r = send(format!(
        "GET http://{authority}/no-host HTTP/1.1\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = app.last().unwrap();
    assert_eq!(seen.target, "/no-host");
    assert_eq!(seen.header("host"), Some(authority.as_str()));

    // An authority naming no tenant is refused (never proxied); a Host that differs from the
    // authority is refused by Pingora itself (stricter than RFC 9112 3.2.2's "the authority
    // wins": an ambiguous host is never routed on).
    let before = app.requests().len();
    let r = send("GET http://unknown.example/a HTTP/1.1\r\nConnection: close\r\n\r\n".into());
    assert_eq!(r.status, 404);
    let r = send(format!(
        "GET http://unknown.example/a HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 400);
    assert_eq!(app.requests().len(), before);
}

#[test]
fn an_http2_request_whose_path_is_normalized_keeps_its_authority_upstream() {
    let app = Upstream::start("app");
    let gw = Gateway::start("h2-authority", |p, dir| {
        let (cert, key) = self_signed_cert(dir, "tls", &["demo.localhost"]);
        config(
            p,
            &app,
            &format!(
                "tls-listen: 127.0.0.1:{}\ntls-cert: {cert}\ntls-key: {key}",
                p.tls
            ),
        )
    });
    gw.wait_ready();
    let port = gw.tls.unwrap().port();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(gw.dir.path().join("tls.crt"))
        .arg("--resolve")
        .arg(format!("demo.localhost:{port}:127.0.0.1"))
        .arg(format!("https://demo.localhost:{port}/h2/a/../b/./c?q=1"))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "2 200", "{}", String::from_utf8_lossy(&out.stderr));
    let seen = app.last().unwrap();
    assert_eq!(seen.target, "/h2/b/c?q=1");
    assert_eq!(
        seen.header("host"),
        Some(format!("demo.localhost:{port}").as_str()),
        "the :authority reaches the upstream as Host"
    );
}

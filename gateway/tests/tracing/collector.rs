//! A collector that is down or hangs costs requests nothing: spans are dropped, not requests.

use super::*;

/// A minimal upstream for latency figures: every response in one write, `TCP_NODELAY`, so no
/// Nagle/delayed-ACK pause (about 40 ms) hides the gateway's own time. `GET` only.
fn fast_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    // A request head ends with an empty line.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line.trim_end().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Latencies of `n` sequential GETs over one keep-alive connection, all answered 200.
fn timed_requests(gw: &Gateway, n: usize) -> Vec<Duration> {
    let mut conn = Conn::open(gw.listen).expect("connect");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = conn.get("demo.localhost", "/page").expect("answer");
        out.push(started.elapsed());
        assert_eq!(r.status, 200, "no request fails: {}", r.text());
    }
    out.sort();
    out
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing() {
    let app = fast_upstream();
    let dir = TempDir::new("tracing-down");
    let provider = static_provider(dir.path());
    // Nothing listens there.
    let closed = format!("http://127.0.0.1:{}/v1/traces", free_port());
    let render = |tracing: String| {
        let provider = provider.clone();
        move |p: &Ports, _: &std::path::Path| {
            format!(
                "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{app}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
                p.listen, p.admin
            )
        }
    };
    let traced = Gateway::start("tracing-down", render(tracing_section(&closed, "1")));
    let plain = Gateway::start("tracing-plain", render(String::new()));
    traced.wait_ready();
    plain.wait_ready();
    timed_requests(&traced, 50);
    timed_requests(&plain, 50);
    // Interleaved rounds, so both see the same machine load.
    let (mut with_down, mut without) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        with_down.extend(timed_requests(&traced, 100));
        without.extend(timed_requests(&plain, 100));
    }
    with_down.sort();
    without.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let (down, up) = (median(&with_down), median(&without));
    eprintln!("median latency: collector down {down:?}, no tracing {up:?}");
    assert!(
        down <= up * 2 + Duration::from_millis(2),
        "a collector that is down adds latency: median {down:?} vs {up:?}"
    );
    assert_eventually!(
        Duration::from_secs(10),
        || metric(&traced, "gatehouse_trace_spans_total{outcome=\"failed\"}") > 0.0,
        "failed exports are counted: {}",
        traced.metrics()
    );
    assert_eq!(
        metric(&traced, "gatehouse_trace_spans_total{outcome=\"exported\"}"),
        0.0
    );
    assert!(
        !plain.metrics().contains("gatehouse_trace_spans_total{"),
        "no tracing, no series"
    );
}

#[test]
fn a_collector_that_hangs_fills_the_queue_and_spans_are_dropped_not_requests() {
    // Accepts connections and never answers: every export waits for its timeout.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", hung.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for conn in hung.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let app = fast_upstream();
    let dir = TempDir::new("tracing-hung");
    let provider = static_provider(dir.path());
    let tracing = tracing_section(&endpoint, "1");
    let gw = Gateway::start("tracing-hung", |p, _| {
        format!(
            "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
            p.listen,
            p.admin,
            app
        )
    });
    gw.wait_ready();
    // The exporter drains a batch at most every 5 s (its timeout); the queue holds 1024
    // requests' spans: sending faster than that must drop spans, never requests.
    let dropped = "gatehouse_trace_spans_total{outcome=\"dropped\"}";
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut sent = 0;
    while metric(&gw, dropped) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "no span dropped after {sent} requests: {}",
            gw.metrics()
        );
        // Four connections at once: faster than one export per timeout can drain.
        let mut times: Vec<Duration> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| timed_requests(&gw, 250)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        times.sort();
        sent += times.len();
        assert!(
            times[times.len() / 2] < Duration::from_millis(50),
            "requests wait for the collector: median {:?}",
            times[times.len() / 2]
        );
    }
    assert!(!held.lock().unwrap().is_empty(), "the exporter did connect");
}

//! The exported spans, their children, the continued trace, no secrets; and a ratio of 0.

use super::*;

#[test]
fn spans_are_exported_with_their_children_the_continued_trace_and_no_secrets() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    let (gw, idp) = traced_stack("tracing", &app, &collector);
    let token = idp.token("svc-user");

    // A bearer request: its request ID (32 hex digits) is the trace ID.
    let rid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/./items?access_token=QUERYSECRET&page=2",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Cookie", "other=COOKIESECRET"),
            ("X-Request-ID", rid),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.last().expect("proxied");
    let spans = collector.trace(rid, |s| s.len() >= 3);
    let server = server_span(&spans);
    assert!(server.parent_span_id.is_empty(), "a new trace has a root");
    assert_eq!(server.name, "GET api");
    assert_eq!(attr(server, "gatehouse.tenant").as_deref(), Some("demo"));
    assert_eq!(attr(server, "gatehouse.route").as_deref(), Some("api"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(server, "url.path").as_deref(),
        Some("/api/items"),
        "normalized, no query"
    );
    assert_eq!(attr(server, "gatehouse.auth").as_deref(), Some("allowed"));
    assert_eq!(attr(server, "gatehouse.request_id").as_deref(), Some(rid));
    let verify = named(&spans, "verify token");
    assert_eq!(
        verify.len(),
        1,
        "a cache miss is verified: {}",
        describe(&spans)
    );
    assert_eq!(verify[0].parent_span_id, server.span_id);
    assert_eq!(
        attr(verify[0], "gatehouse.token.result").as_deref(),
        Some("ok")
    );
    assert_eq!(
        attr(verify[0], "gatehouse.provider").as_deref(),
        Some("keycloak")
    );
    let upstream = named(&spans, "upstream");
    assert_eq!(upstream.len(), 1, "{}", describe(&spans));
    assert_eq!(upstream[0].parent_span_id, server.span_id);
    assert_eq!(upstream[0].kind, SpanKind::Client as i32);
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{rid}-{}-01", hex(&upstream[0].span_id)).as_str()),
        "the upstream's parent is the gateway's upstream span"
    );
    assert_eq!(
        seen.header("x-request-id"),
        Some(rid),
        "the request ID is unchanged"
    );
    for s in &spans {
        assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
        assert!(
            s.start_time_unix_nano >= server.start_time_unix_nano,
            "{}",
            s.name
        );
    }

    // The same token again: a cache hit has no verification span.
    let rid2 = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/items",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Request-ID", rid2),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let spans = collector.trace(rid2, |s| s.len() >= 2);
    assert!(
        named(&spans, "verify token").is_empty(),
        "{}",
        describe(&spans)
    );

    // A revocation-sensitive route: the IdP's introspection endpoint is a child too.
    let rid4 = "7bf92f3577b34da6a3ce929d0e0e4739";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/revocable/x",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Request-ID", rid4),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = collector.trace(rid4, |s| !named(s, "idp introspection").is_empty());
    let server = server_span(&spans);
    let introspection = named(&spans, "idp introspection")[0];
    assert_eq!(introspection.parent_span_id, server.span_id);
    assert_eq!(
        attr(introspection, "gatehouse.idp.call").as_deref(),
        Some("introspection")
    );
    assert_eq!(
        attr(introspection, "gatehouse.idp.outcome").as_deref(),
        Some("ok")
    );

    // A refusal: the server span says why; nothing went upstream.
    let rid3 = "6bf92f3577b34da6a3ce929d0e0e4738";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/items",
        &[
            ("Authorization", "Bearer not.a.jwt"),
            ("X-Request-ID", rid3),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let spans = collector.trace(rid3, |s| s.len() >= 2);
    let server = server_span(&spans);
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(
        attr(server, "gatehouse.auth").as_deref(),
        Some("unauthenticated")
    );
    assert!(
        attr(server, "gatehouse.denial").is_some(),
        "{}",
        describe(&spans)
    );
    assert_eq!(
        named(&spans, "verify token").len(),
        1,
        "a refused token is a verification"
    );
    assert!(named(&spans, "upstream").is_empty());

    // A client's sampled trace is continued; its tracestate passes through.
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let r = gw.get_with(
        "demo.localhost",
        "/public/page",
        &[
            (
                "traceparent",
                &format!("00-{client_trace}-{client_span}-01"),
            ),
            ("tracestate", "vendor=opaque,other=1"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = app.last().unwrap();
    let spans = collector.trace(client_trace, |s| s.len() >= 2);
    let server = server_span(&spans);
    assert_eq!(
        hex(&server.parent_span_id),
        client_span,
        "parent = the client's span"
    );
    assert_eq!(server.trace_state, "vendor=opaque,other=1");
    let upstream = named(&spans, "upstream");
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{client_trace}-{}-01", hex(&upstream[0].span_id)).as_str())
    );
    assert_eq!(seen.header("tracestate"), Some("vendor=opaque,other=1"));

    // A browser login: the callback's spans are the IdP's token call and the store's writes.
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let cookies = browser.cookies();
    let mut callback = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let all = collector.spans();
        let Some(cb) = all
            .iter()
            .map(|(_, s)| s)
            .find(|s| attr(s, "url.path").as_deref() == Some("/oauth/callback"))
        else {
            return false;
        };
        callback = all
            .iter()
            .map(|(_, s)| s.clone())
            .filter(|s| s.trace_id == cb.trace_id)
            .collect();
        !named(&callback, "idp token").is_empty()
            && !named(&callback, "session-store put").is_empty()
    });
    assert!(ok, "the callback's children: {}", describe(&callback));
    let server = server_span(&callback);
    for name in ["idp token", "session-store put"] {
        let child = named(&callback, name)[0];
        assert_eq!(child.parent_span_id, server.span_id, "{name}");
        assert_eq!(child.kind, SpanKind::Client as i32, "{name}");
    }
    assert_eq!(
        attr(named(&callback, "idp token")[0], "gatehouse.idp.outcome").as_deref(),
        Some("ok")
    );

    // Every span: the configured service, and not one secret in any attribute.
    let all = collector.spans();
    assert!(all
        .iter()
        .all(|(service, _)| service == "gatehouse-under-test"));
    let session_cookie = cookies
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v.to_string()))
        .collect::<Vec<_>>();
    let mut secrets = vec![
        "QUERYSECRET",
        "COOKIESECRET",
        token.as_str(),
        "not.a.jwt",
        "code=",
    ];
    secrets.extend(session_cookie.iter().map(String::as_str));
    assert_no_secrets(&all, &secrets);
    // Counted once the collector has answered the export, just after it holds the spans.
    let exported = || metric(&gw, "gatehouse_trace_spans_total{outcome=\"exported\"}");
    assert!(
        wait_until(Duration::from_secs(10), || exported() >= all.len() as f64),
        "{} exported, {} received",
        exported(),
        all.len()
    );
}

#[test]
fn a_ratio_of_zero_exports_nothing_without_a_sampled_client_trace() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    let tracing = tracing_section(&collector.endpoint(), "0");
    let dir = TempDir::new("tracing-zero");
    let provider = static_provider(dir.path());
    let gw = Gateway::start("tracing-zero", |p, _| {
        format!(
            "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
            p.listen,
            p.admin,
            app.target()
        )
    });
    gw.wait_ready();
    for _ in 0..20 {
        let r = gw.get("demo.localhost", "/page");
        assert_eq!(r.status, 200);
        // Not traced: the upstream is told so, in a trace named by the request ID.
        let id = r.header("x-request-id").unwrap().to_string();
        let tp = app
            .last()
            .unwrap()
            .header("traceparent")
            .unwrap()
            .to_string();
        assert!(
            tp.starts_with(&format!("00-{id}-")) && tp.ends_with("-00"),
            "{tp}"
        );
    }
    let unsampled = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    for _ in 0..5 {
        let r = gw.get_with("demo.localhost", "/page", &[("traceparent", unsampled)]);
        assert_eq!(r.status, 200);
        assert_eq!(
            app.last().unwrap().header("traceparent"),
            Some(unsampled),
            "passed on"
        );
    }
    // A sampled client trace is continued even at 0: once its spans are in, anything the
    // requests before it had queued would be too (one queue, exported in order).
    let sampled = "2af7651916cd43dd8448eb211c80319c";
    let r = gw.get_with(
        "demo.localhost",
        "/page",
        &[("traceparent", &format!("00-{sampled}-b7ad6b7169203331-01"))],
    );
    assert_eq!(r.status, 200);
    collector.trace(sampled, |s| s.len() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let all = collector.spans();
    assert!(
        all.iter().all(|(_, s)| hex(&s.trace_id) == sampled),
        "only the sampled client trace was exported: {}",
        describe(&all.into_iter().map(|(_, s)| s).collect::<Vec<_>>())
    );
    // `tracing` is read at start: a reload that changes it says so and changes nothing.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        config.replace("sampling-ratio: 0\n", "sampling-ratio: 1\n"),
    )
    .unwrap();
    gw.signal("HUP");
    assert_eventually!(
        Duration::from_secs(10),
        || gw
            .log()
            .contains("`tracing` changed: it takes effect at the next restart"),
        "the reload warns: {}",
        gw.log()
    );
    let r = gw.get("demo.localhost", "/page");
    assert_eq!(r.status, 200);
    let tp = app
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(tp.ends_with("-00"), "still not traced: {tp}");
}

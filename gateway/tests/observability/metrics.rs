//! The `/metrics` families and their labels against the metrics contract, with exact counts for
//! a known mix of traffic: one test per group of families.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::scrape::{Check, Scrape};
use crate::support::idp::Idp;
use crate::support::login::Browser;
use crate::support::*;
use crate::{assert_eventually, bearer, start};

/// The gateway after a known mix of traffic: what each metrics test checks its counts against.
struct Traffic {
    _idp: Idp,
    _app: Upstream,
    gw: Gateway,
    /// The `svc-admin` token sent (allowed, then a cache hit).
    admin: String,
    /// The `svc-user` token sent (forbidden: no admin role).
    user: String,
    /// When the test started, in Unix seconds.
    started_at: f64,
}

/// Starts the gateway and sends 11 requests: 3 white-listed, 2 allowed with one token (a cache
/// miss, then a hit), one without a token, one forbidden, one to an unknown host, one with an
/// encoded slash and 2 to an upstream with no healthy target; then waits until all are counted.
fn send_traffic(tag: &str) -> Traffic {
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (idp, app, gw) = start(tag);
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let h = "demo.localhost";
    let auth = |t: &str| [("Authorization", bearer(t))];
    let send = |host: &str, path: &str, extra: &[(&str, String)], want: u16| {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = gw.get_with(host, path, &extra);
        assert_eq!(r.status, want, "{host}{path}: {}", r.text());
    };
    for _ in 0..3 {
        send(h, "/public/hello", &[], 200); // white-listed: no auth decision
    }
    send(h, "/api/admin/x", &auth(&admin), 200); // token verified: cache miss
    send(h, "/api/admin/x", &auth(&admin), 200); // the same token: cache hit
    send(h, "/api/things", &[], 401); // no token
    send(h, "/api/admin/x", &auth(&user), 403); // no admin role (cache miss)
    send("nobody.example", "/", &[], 404); // unknown host
    send(h, "/public/a%2Fb", &[], 400); // encoded slash: no route decided
    send(h, "/down/x", &[], 503); // no healthy target
    send(h, "/down/y", &[], 503);
    assert_eq!(
        app.requests().len(),
        5,
        "3 public + 2 allowed reach the app"
    );

    // Counters are recorded in the logging phase, after the response is written.
    assert_eventually!(
        Duration::from_secs(5),
        || Scrape::fetch(&gw).sum("gatehouse_requests_total") == 11.0,
        "11 requests counted; /metrics:\n{}",
        Scrape::fetch(&gw).text
    );
    assert_eventually!(
        Duration::from_secs(5),
        || Scrape::fetch(&gw).value("gatehouse_requests_in_flight", &[]) == Some(0.0),
        "no request in flight"
    );
    Traffic {
        _idp: idp,
        _app: app,
        gw,
        admin,
        user,
        started_at,
    }
}

/// Runs `checks` over one scrape, retried for up to 5 s while late counters and gauges settle,
/// and fails with every contract violation of the last scrape.
fn assert_metrics(gw: &Gateway, checks: impl Fn(&mut Check, &Scrape)) {
    let mut scrape = Scrape::fetch(gw);
    let deadline = Instant::now() + Duration::from_secs(5);
    let problems = loop {
        let mut c = Check::new(&scrape);
        checks(&mut c, &scrape);
        let found = c.problems;
        if found.is_empty() || Instant::now() >= deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
        scrape = Scrape::fetch(gw);
    };
    assert!(
        problems.is_empty(),
        "{} metrics contract violations:\n  {}\n/metrics:\n{}",
        problems.len(),
        problems.join("\n  "),
        scrape.text
    );
}

#[test]
fn requests_are_counted_by_tenant_route_method_and_status_class() {
    let t = send_traffic("metrics-requests");
    assert_metrics(&t.gw, |c, _| {
        let rt = "gatehouse_requests_total";
        if c.family(
            rt,
            "counter",
            &["tenant", "route", "method", "status_class"],
        ) {
            let l = |t, r, s| {
                [
                    ("tenant", t),
                    ("route", r),
                    ("method", "GET"),
                    ("status_class", s),
                ]
            };
            c.eq(rt, &l("demo", "public", "2xx"), 3.0);
            c.eq(rt, &l("demo", "admin", "2xx"), 2.0);
            c.eq(rt, &l("demo", "admin", "4xx"), 1.0);
            c.eq(rt, &l("demo", "api", "4xx"), 1.0);
            c.eq(rt, &l("-", "-", "4xx"), 1.0); // unknown host
            c.eq(rt, &l("demo", "-", "4xx"), 1.0); // bad path: no route
            c.eq(rt, &l("demo", "down", "5xx"), 2.0);
            c.total(rt, 11.0);
        }
        let rd = "gatehouse_request_duration_seconds";
        if c.family(rd, "histogram", &["tenant", "route"]) {
            let n = format!("{rd}_count");
            for (t, r, want) in [
                ("demo", "public", 3.0),
                ("demo", "admin", 3.0),
                ("demo", "api", 1.0),
                ("-", "-", 1.0),
                ("demo", "-", 1.0),
                ("demo", "down", 2.0),
            ] {
                c.eq(&n, &[("tenant", t), ("route", r)], want);
            }
            c.total(&n, 11.0);
        }
        let ud = "gatehouse_upstream_duration_seconds";
        if c.family(ud, "histogram", &["tenant", "upstream"]) {
            let n = format!("{ud}_count");
            c.eq(&n, &[("tenant", "demo"), ("upstream", "app")], 5.0);
            c.total(&n, 5.0);
        }
        c.family("gatehouse_requests_in_flight", "gauge", &[]);
        c.eq("gatehouse_requests_in_flight", &[], 0.0);
    });
}

#[test]
fn auth_decisions_denials_and_token_verifications_are_counted() {
    let t = send_traffic("metrics-auth");
    assert_metrics(&t.gw, |c, m| {
        let ad = "gatehouse_auth_decisions_total";
        if c.family(ad, "counter", &["tenant", "result", "reason"]) {
            let l = |r, why| [("tenant", "demo"), ("result", r), ("reason", why)];
            c.eq(ad, &l("allowed", "ok"), 2.0);
            c.eq(ad, &l("unauthenticated", "unauthenticated"), 1.0);
            c.eq(ad, &l("forbidden", "missing_role"), 1.0);
            c.total(ad, 4.0);
        }
        let dn = "gatehouse_denials_total";
        if c.family(dn, "counter", &["tenant", "reason"]) {
            c.eq(dn, &[("tenant", "-"), ("reason", "unknown_host")], 1.0);
            c.eq(dn, &[("tenant", "demo"), ("reason", "encoded_slash")], 1.0);
            c.eq(
                dn,
                &[("tenant", "demo"), ("reason", "unauthenticated")],
                1.0,
            );
            c.eq(dn, &[("tenant", "demo"), ("reason", "missing_role")], 1.0);
            c.eq(
                dn,
                &[("tenant", "demo"), ("reason", "no_healthy_upstream")],
                2.0,
            );
            c.total(dn, 6.0);
        }
        let tv = "gatehouse_token_verify_duration_seconds";
        if c.family(tv, "histogram", &["provider", "cache"]) {
            let n = format!("{tv}_count");
            c.eq(&n, &[("provider", "keycloak"), ("cache", "miss")], 2.0);
            c.eq(&n, &[("provider", "keycloak"), ("cache", "hit")], 1.0);
        }
        if c.family("gatehouse_token_cache_entries", "gauge", &["provider"]) {
            c.eq(
                "gatehouse_token_cache_entries",
                &[("provider", "keycloak")],
                2.0,
            );
        }
        let jw = "gatehouse_jwks_refresh_total";
        if c.family(jw, "counter", &["provider", "result"]) {
            let l = [("provider", "keycloak"), ("result", "success")];
            c.check(jw, &l, ">= 1", |v| v >= 1.0);
            let failures = m.value(jw, &[("provider", "keycloak"), ("result", "failure")]);
            if failures.unwrap_or(0.0) != 0.0 {
                c.fail(format!("{jw} failure = {failures:?}, expected none"));
            }
        }
    });
}

/// The browser-session families move with a login and its session's traffic: the login, the
/// store's operations and count, local-cache hits and misses, the IdP calls behind it
/// (discovery, keys, the code exchange, a refresh) and the key set's age. (These families were
/// asserted to stay at zero before they were wired; they must move now.)
#[test]
fn a_browser_session_moves_the_login_store_cache_and_idp_families() {
    let t = send_traffic("metrics-sessions");
    let browser = Browser::new(t.gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "login: {page:?}");
    let cookie = browser.cookies();
    let with_session = |want: u16| {
        let r =
            t.gw.get_with("demo.localhost", "/app/page", &[("Cookie", &cookie)]);
        assert_eq!(r.status, want, "{}", r.text());
    };
    for _ in 0..3 {
        with_session(200); // local-cache hits
    }
    // The access token is due for refresh 2 s after it was issued.
    std::thread::sleep(Duration::from_millis(2500));
    with_session(200);
    let refreshed = |m: &Scrape| {
        m.value("gatehouse_token_refresh_total", &[("result", "success")])
            .unwrap_or(0.0)
            >= 1.0
    };
    assert_eventually!(
        Duration::from_secs(10),
        || refreshed(&Scrape::fetch(&t.gw)),
        "a refresh counted; /metrics:\n{}",
        Scrape::fetch(&t.gw).text
    );
    assert_metrics(&t.gw, |c, m| {
        let at_least = |c: &mut Check, name: &str, labels: &[(&str, &str)], n: f64| {
            c.check(name, labels, &format!(">= {n}"), |v| v >= n)
        };
        let lt = "gatehouse_login_total";
        if c.family(lt, "counter", &["tenant", "result"]) {
            c.eq(lt, &[("tenant", "demo"), ("result", "success")], 1.0);
            c.eq(lt, &[("tenant", "demo"), ("result", "failure")], 0.0);
        }
        if c.family("gatehouse_logout_total", "counter", &["tenant"]) {
            c.eq("gatehouse_logout_total", &[("tenant", "demo")], 0.0);
        }
        let tr = "gatehouse_token_refresh_total";
        if c.family(tr, "counter", &["result"]) {
            at_least(c, tr, &[("result", "success")], 1.0);
            c.eq(tr, &[("result", "failure")], 0.0);
        }
        if c.family("gatehouse_sessions_active", "gauge", &[]) {
            c.eq("gatehouse_sessions_active", &[], 1.0);
        }
        let sd = "gatehouse_session_store_duration_seconds";
        if c.family(sd, "histogram", &["op"]) {
            let n = format!("{sd}_count");
            for op in ["get", "put", "replace", "lock", "count"] {
                at_least(c, &n, &[("op", op)], 1.0);
            }
        }
        let se = "gatehouse_session_store_errors_total";
        if c.family(se, "counter", &["op", "outcome"]) {
            c.all_zero(se); // the memory store never fails
            c.check(se, &[("op", "get"), ("outcome", "timeout")], "0", |v| {
                v == 0.0
            });
        }
        let ev = "gatehouse_session_store_events_total";
        if c.family(ev, "counter", &["event"]) {
            c.all_zero(ev); // no Redis client
        }
        let cl = "gatehouse_session_cache_lookups_total";
        if c.family(cl, "counter", &["result"]) {
            at_least(c, cl, &[("result", "hit")], 3.0);
            at_least(c, cl, &[("result", "miss")], 1.0);
            c.eq(cl, &[("result", "stale")], 0.0);
        }
        let ir = "gatehouse_idp_requests_total";
        if c.family(ir, "counter", &["provider", "call", "outcome"]) {
            let l = |call| [("provider", "keycloak"), ("call", call), ("outcome", "ok")];
            at_least(c, ir, &l("discovery"), 1.0);
            at_least(c, ir, &l("jwks"), 1.0);
            c.eq(ir, &l("token"), 1.0);
            at_least(c, ir, &l("refresh"), 1.0);
            c.eq(ir, &l("introspection"), 0.0);
            for s in m.named(ir) {
                if s.labels["outcome"] != "ok" && s.value != 0.0 {
                    c.fail(format!("{ir}{:?} = {}: no call failed", s.labels, s.value));
                }
            }
        }
        let id = "gatehouse_idp_request_duration_seconds";
        if c.family(id, "histogram", &["provider", "call"]) {
            let n = format!("{id}_count");
            c.eq(&n, &[("provider", "keycloak"), ("call", "token")], 1.0);
        }
        let age = "gatehouse_idp_keys_age_seconds";
        if c.family(age, "gauge", &["provider"]) {
            c.check(age, &[("provider", "keycloak")], "0..120 s", |v| {
                (0.0..120.0).contains(&v)
            });
        }
    });
}

#[test]
fn upstream_health_config_reloads_and_build_info_are_exported() {
    let t = send_traffic("metrics-config");
    assert_metrics(&t.gw, |c, _| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let hs = "gatehouse_upstream_healthy_targets";
        if c.family(hs, "gauge", &["tenant", "upstream"]) {
            c.eq(hs, &[("tenant", "demo"), ("upstream", "app")], 1.0);
            c.eq(hs, &[("tenant", "demo"), ("upstream", "dead")], 0.0);
        }
        if c.family("gatehouse_config_reload_total", "counter", &["result"]) {
            c.eq(
                "gatehouse_config_reload_total",
                &[("result", "success")],
                1.0,
            );
            c.total("gatehouse_config_reload_total", 1.0);
        }
        let ts = "gatehouse_config_last_reload_success_timestamp_seconds";
        if c.family(ts, "gauge", &[]) {
            c.check(ts, &[], "the start time", |v| {
                v >= t.started_at - 5.0 && v <= now + 5.0
            });
        }
        if c.family("gatehouse_build_info", "gauge", &["version"]) {
            c.eq(
                "gatehouse_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))],
                1.0,
            );
        }
    });
}

#[test]
fn no_label_carries_a_path_host_or_token() {
    let t = send_traffic("metrics-labels");
    let (admin, user) = (&t.admin, &t.user);
    assert_metrics(&t.gw, |c, m| {
        let forbidden = [
            "hello",
            "/api/things",
            "/api/admin/x",
            "a%2Fb",
            "a/b",
            "/down/x",
            "nobody.example",
            "Bearer",
            &admin[..24],
            &user[..24],
            &admin[admin.len() - 24..],
        ];
        for s in &m.samples {
            for (k, v) in &s.labels {
                if let Some(f) = forbidden.iter().find(|f| v.contains(**f)) {
                    c.fail(format!(
                        "{}: label {k}={v:?} carries request data ({f:?})",
                        s.name
                    ));
                }
            }
        }
        if m.text.contains(&admin[..24]) || m.text.contains(&user[..24]) {
            c.fail("a token appears in /metrics".to_string());
        }
    });
}

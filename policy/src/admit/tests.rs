use super::*;
use crate::forward_auth::TargetError;
use http::header::HOST;

const CONFIG: &str = r#"
trusted-proxies: [127.0.0.1/32]
max-request-header-size: 1KiB
max-request-headers: 20
identity-providers: [{name: kc, issuer: "https://kc.localhost/realms/demo", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams: [{name: app, targets: ["127.0.0.1:1"]}]
    cors:
      origins: ["https://app.demo.localhost"]
      methods: [GET, PUT]
      headers: [Authorization]
    routes:
      - { uri: /public/*, white-listed: true }
      - { uri: /admin/*, roles: [admin], methods: [GET] }
      - { uri: /upload/*, white-listed: true, max-body-size: 1KiB }
      - { uri: /api/* }
  - name: secure
    hosts: [secure.localhost]
    enable-https-redirection: true
    upstreams: [{name: app, targets: ["127.0.0.1:1"]}]
    routes: [{ uri: /*, white-listed: true }]
"#;

fn snapshot() -> Snapshot {
    let config = gatehouse_config::parse(CONFIG, "admit.yaml", &|_| None).expect("config");
    Snapshot::compile(&config).expect("compile")
}

/// A request to `target` on `host` with extra headers, decided from `peer` facts.
struct Req {
    method: Method,
    target: String,
    headers: HeaderMap,
    trusted: bool,
    secure: bool,
    both_lengths: bool,
}

fn req(method: &str, target: &str, host: &str, extra: &[(&'static str, &str)]) -> Req {
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(host).unwrap());
    for (k, v) in extra {
        headers.append(*k, HeaderValue::from_str(v).unwrap());
    }
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        target: target.to_string(),
        headers,
        trusted: false,
        secure: false,
        both_lengths: false,
    }
}

fn decide(policy: &Snapshot, r: &Req) -> Decision {
    let raw = r.target.as_bytes();
    let (raw_path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let host = r.headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap();
    let head = RequestHead {
        method: &r.method,
        raw_path,
        query,
        headers: &r.headers,
        host: Some(host),
        header_bytes: r.target.len() + 40,
        both_lengths: r.both_lengths,
    };
    let conn = Connection {
        tenant: policy.tenant_for_host(host),
        secure: r.secure,
        trusted_peer: r.trusted,
        https_port_suffix: ":8443",
    };
    admit(policy, &head, &conn)
}

fn outcome(r: &Req) -> Admission {
    decide(&snapshot(), r).admission
}

#[test]
fn routes_decide_proxy_or_authenticate() {
    let p = snapshot();
    let d = decide(&p, &req("GET", "/public/x?a=1", "demo.localhost", &[]));
    assert_eq!(d.admission, Admission::Proxy);
    assert_eq!(d.rewritten_target, None, "already normal: sent as received");
    assert!(!d.forward_auth);
    let d = decide(&p, &req("GET", "/admin/x", "demo.localhost", &[]));
    assert_eq!(d.admission, Admission::Authenticate);
    assert!(d.route.is_some());
    assert_eq!(
        outcome(&req("GET", "/nowhere", "demo.localhost", &[])),
        Admission::Authenticate,
        "default deny still authenticates first (401 before 403)"
    );
}

#[test]
fn a_normalized_path_is_the_target_the_upstream_gets() {
    let p = snapshot();
    let d = decide(
        &p,
        &req("GET", "/x/../public//a?q=/../b", "demo.localhost", &[]),
    );
    assert_eq!(d.admission, Admission::Proxy);
    assert_eq!(
        d.rewritten_target.as_deref(),
        Some(&b"/public/a?q=/../b"[..])
    );
    let d = decide(
        &p,
        &req("GET", "/public/%2e%2e/admin/x", "demo.localhost", &[]),
    );
    assert_eq!(d.admission, Admission::Authenticate, "decided as /admin/x");
    assert_eq!(d.rewritten_target.as_deref(), Some(&b"/admin/x"[..]));
}

#[test]
fn refusals_come_in_order() {
    let host = "demo.localhost";
    let mut big = req("GET", "/public/x", host, &[]);
    for i in 0..20 {
        big.headers
            .append("x-filler", HeaderValue::from_str(&i.to_string()).unwrap());
    }
    assert_eq!(outcome(&big), Admission::Deny(Denial::HeadersTooLarge));
    let mut framing = req("POST", "/public/x", host, &[]);
    framing.both_lengths = true;
    assert_eq!(outcome(&framing), Admission::Deny(Denial::AmbiguousFraming));
    let two = req(
        "GET",
        "/public/x",
        host,
        &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
    );
    assert_eq!(
        outcome(&two),
        Admission::Deny(Denial::DuplicateAuthorization)
    );
    assert_eq!(
        outcome(&req("GET", "/public/x", "nobody.localhost", &[])),
        Admission::Deny(Denial::UnknownHost)
    );
    assert_eq!(
        outcome(&req("GET", "/a%2fb", host, &[])),
        Admission::Deny(Denial::BadPath(PathError::EncodedSlash))
    );
    let upload = req("POST", "/upload/x", host, &[("content-length", "2048")]);
    let d = decide(&snapshot(), &upload);
    assert_eq!(d.admission, Admission::Deny(Denial::BodyTooLarge));
    assert_eq!(d.body_limit, 1024);
    let small = req("POST", "/upload/x", host, &[("content-length", "10")]);
    assert_eq!(outcome(&small), Admission::Proxy);
}

#[test]
fn plain_http_to_a_redirecting_tenant_goes_to_https() {
    let r = req("GET", "/a/../b?x=1", "secure.localhost:8080", &[]);
    assert_eq!(
        outcome(&r),
        Admission::Deny(Denial::HttpsRequired {
            location: "https://secure.localhost:8443/b?x=1".into()
        })
    );
    let mut tls = r;
    tls.secure = true;
    assert_eq!(outcome(&tls), Admission::Proxy);
}

#[test]
fn cors_preflights_and_origins() {
    let origin = ("origin", "https://app.demo.localhost");
    let ask = ("access-control-request-method", "PUT");
    let d = decide(
        &snapshot(),
        &req("OPTIONS", "/api/x", "demo.localhost", &[origin, ask]),
    );
    assert!(matches!(d.admission, Admission::Preflight(_)), "{d:?}");
    let refused = req(
        "OPTIONS",
        "/api/x",
        "demo.localhost",
        &[origin, ("access-control-request-method", "DELETE")],
    );
    assert_eq!(outcome(&refused), Admission::Deny(Denial::CorsRefused));
    let d = decide(
        &snapshot(),
        &req("GET", "/api/x", "demo.localhost", &[origin]),
    );
    assert_eq!(d.admission, Admission::Authenticate);
    assert_eq!(
        d.cors_origin,
        Some(HeaderValue::from_static("https://app.demo.localhost"))
    );
}

#[test]
fn builtins_and_forward_auth() {
    assert_eq!(
        outcome(&req("GET", "/oauth/callback?code=x", "demo.localhost", &[])),
        Admission::Builtin(Builtin::Callback)
    );
    assert_eq!(Builtin::from_path("/oauth/logout"), Some(Builtin::Logout));
    assert_eq!(Builtin::from_path("/oauth/logout/"), None);
    // The assertion JWKS is the gateway's on every tenant host, in any spelling of its path.
    for path in [
        "/.well-known/gatehouse/jwks.json",
        "/.well-known/gatehouse/./jwks.json",
        "/.well-known//gatehouse/jwks.json?x=1",
    ] {
        assert_eq!(
            outcome(&req("GET", path, "demo.localhost", &[])),
            Admission::Builtin(Builtin::AssertionJwks),
            "{path}"
        );
    }
    assert_eq!(
        Builtin::from_path("/.well-known/gatehouse/jwks.json/"),
        None
    );
    let mut check = req(
        "GET",
        "/oauth/auth",
        "demo.localhost",
        &[("x-forwarded-uri", "/public/x?y=/admin")],
    );
    check.trusted = true;
    let d = decide(&snapshot(), &check);
    assert_eq!((d.admission, d.forward_auth), (Admission::Proxy, true));
    assert_eq!(d.rewritten_target, None, "a check is never proxied");
    check.headers.insert(
        "x-forwarded-uri",
        HeaderValue::from_static("/public//../admin/x"),
    );
    assert_eq!(
        outcome(&check),
        Admission::Deny(Denial::ForwardAuthTarget(TargetError::NotNormal))
    );
    check.headers.insert(
        "x-forwarded-uri",
        HeaderValue::from_static("/admin/x?next=http://h/public/"),
    );
    check
        .headers
        .insert("x-forwarded-method", HeaderValue::from_static("POST"));
    assert_eq!(
        outcome(&check),
        Admission::Authenticate,
        "decided as POST /admin/x: POST is not listed there, so it falls to the default deny"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("admin".to_string()),
            Just("public".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("%2e%2e".to_string()),
            Just("%61dmin".to_string()),
            "[a-z]{1,3}",
        ]
    }

    proptest! {
        /// Whatever the raw path, the route decided is the one of the target the upstream
        /// gets: deciding again on the rewritten target changes nothing.
        #[test]
        fn the_decision_holds_for_the_target_the_upstream_gets(
            segments in proptest::collection::vec(segment(), 0..8),
            query in proptest::option::of("[a-z/.]{0,6}"),
        ) {
            let p = snapshot();
            let mut target = format!("/{}", segments.join("/"));
            if let Some(q) = &query {
                target.push('?');
                target.push_str(q);
            }
            let first = decide(&p, &req("GET", &target, "demo.localhost", &[]));
            if let Some(rewritten) = &first.rewritten_target {
                let again = String::from_utf8(rewritten.clone()).unwrap();
                let second = decide(&p, &req("GET", &again, "demo.localhost", &[]));
                prop_assert_eq!(&second.admission, &first.admission);
                prop_assert_eq!(second.route, first.route);
                prop_assert_eq!(second.rewritten_target, None);
            }
        }

        /// A forward-auth check never allows what the same request, proxied, would refuse.
        #[test]
        fn a_check_never_allows_more_than_the_proxied_request(
            segments in proptest::collection::vec(segment(), 1..6),
        ) {
            let p = snapshot();
            let path = format!("/{}", segments.join("/"));
            let direct = decide(&p, &req("GET", &path, "demo.localhost", &[]));
            let mut check = req("GET", "/oauth/auth", "demo.localhost", &[("x-forwarded-uri", &path)]);
            check.trusted = true;
            let checked = decide(&p, &check);
            if checked.admission == Admission::Proxy {
                prop_assert_eq!(direct.admission, Admission::Proxy);
                prop_assert_eq!(direct.rewritten_target, None);
            }
        }
    }
}

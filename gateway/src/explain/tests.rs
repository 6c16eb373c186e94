use super::*;

fn query(method: &str, url: &str, headers: &[&str], from: Option<&str>) -> Query {
    Query {
        method: method.to_string(),
        url: url.to_string(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
        from: from.map(str::to_string),
    }
}

#[test]
fn a_query_becomes_the_head_the_gateway_would_parse() {
    let q = query(
        "POST",
        "https://demo.localhost:8443/a/../b?x=1",
        &["Authorization: Bearer secret-value", "X-One:  1 "],
        Some("10.0.0.7"),
    );
    let p = q.parse().expect("parses");
    assert!(p.tls);
    assert_eq!(p.peer, Some("10.0.0.7".parse().unwrap()));
    assert_eq!(p.head.method, http::Method::POST);
    assert_eq!(p.head.raw_path(), b"/a/../b?x=1");
    assert_eq!(p.head.headers["host"], "demo.localhost:8443");
    assert_eq!(p.head.headers["x-one"], "1");
    let raw = String::from_utf8(p.raw).unwrap();
    assert!(raw.starts_with("POST /a/../b?x=1 HTTP/1.1\r\n"), "{raw}");
    assert!(raw.ends_with("host: demo.localhost:8443\r\n\r\n"), "{raw}");
    // What a report shows: no query, no header value.
    assert_eq!(p.described.url, "https://demo.localhost:8443/a/../b");
    assert_eq!(p.described.headers, ["authorization", "x-one"]);
    assert_eq!(p.described.from, "10.0.0.7");
}

#[test]
fn a_host_header_wins_over_the_url_and_no_from_is_unknown() {
    let p = query(
        "GET",
        "http://127.0.0.1:8080/",
        &["Host: demo.localhost"],
        None,
    )
    .parse()
    .expect("parses");
    assert!(!p.tls);
    assert_eq!(p.peer, None);
    assert_eq!(p.head.headers.get_all("host").iter().count(), 1);
    assert_eq!(p.head.headers["host"], "demo.localhost");
    assert_eq!(p.described.from, "unknown");
}

#[test]
fn bad_queries_are_refused_without_repeating_a_header_value() {
    for (q, says) in [
        (query("GE T", "http://a/", &[], None), "invalid method"),
        (query("GET", "/relative", &[], None), "absolute"),
        (query("GET", "ftp://a/", &[], None), "absolute"),
        (
            query("GET", "http://a/", &["Bearer secret-value"], None),
            "header 1 is not",
        ),
        (
            query("GET", "http://a/", &["X: a\u{7}secret-value"], None),
            "invalid value of header x",
        ),
        (
            query("GET", "http://a/", &[], Some("nowhere")),
            "not an IP address",
        ),
    ] {
        let e = q.parse().err().expect("refused").0;
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
    }
}

#[test]
fn the_text_names_each_step_and_the_verdict() {
    let report = Report {
        request: query::Described {
            method: "GET".into(),
            url: "http://demo.localhost/api".into(),
            from: "unknown".into(),
            headers: vec!["authorization".into()],
        },
        steps: vec![Step {
            step: "token",
            outcome: Outcome::Fail,
            summary: "refused by provider kc at exp: expired".into(),
            checks: vec![Check {
                name: "iss".into(),
                outcome: Outcome::Pass,
                expected: Some("https://idp".into()),
                got: Some("https://idp".into()),
                detail: String::new(),
            }],
        }],
        verdict: Verdict::deny(&Denial::InvalidToken {
            reason: "expired",
            description: "the token has expired",
        }),
    };
    let t = text(&report);
    assert!(
        t.contains("token         FAIL  refused by provider kc at exp: expired"),
        "{t}"
    );
    assert!(
        t.contains("    iss             pass  expected https://idp  got https://idp"),
        "{t}"
    );
    assert!(
        t.contains("DENY   refused: 401 expired (status 401, reason expired)"),
        "{t}"
    );
    let j: serde_json::Value = serde_json::from_str(&json(&report)).unwrap();
    assert_eq!(j["verdict"]["reason"], "expired");
    assert_eq!(j["verdict"]["status"], 401);
    assert_eq!(j["steps"][0]["checks"][0]["expected"], "https://idp");
}

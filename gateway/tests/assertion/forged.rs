//! A forged or stale assertion sent by a client never reaches an upstream.

use super::*;

#[test]
fn forged_or_stale_assertions_from_clients_never_reach_an_upstream() {
    let Some(s) = stack("forged_or_stale_assertions", &[("p256.pem", Kind::P256)]) else {
        return;
    };
    let token = s.idp.token("svc-user");
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    // A real assertion for another identity, captured earlier: stale for this request.
    let admin = s.idp.token("svc-admin");
    let stale = s.bearer("demo.localhost", "/app/x", &admin, &[])["raw"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = TestKey::generate(Kind::P256, "forged").mint(
        "ES256",
        &serde_json::json!({"iss": "http://demo.localhost", "aud": "app", "sub": "root",
                            "iat": 0, "exp": 9999999999u64}),
    );
    for value in [stale.as_str(), forged.as_str()] {
        for name in [HEADER, "x_gatehouse_assertion", "X-GATEHOUSE-ASSERTION"] {
            // A white-listed route: the upstream sees none at all, from a client or from a
            // trusted proxy.
            let r = get(s.gw.listen, "demo.localhost", "/public/x", &[(name, value)]).unwrap();
            let seen: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(seen["raw"], Value::Null, "{name}: {seen}");
            let raw = format!(
                "GET /public/x HTTP/1.1\r\nHost: demo.localhost\r\n{name}: {value}\r\nConnection: close\r\n\r\n"
            );
            let r = request_on(socket_from("127.0.0.2", s.gw.listen), &raw);
            let seen: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(seen["raw"], Value::Null, "trusted proxy, {name}: {seen}");
            // An authenticated route: only the gateway's own, for this caller.
            let seen = s.bearer("demo.localhost", "/app/x", &token, &[(name, value)]);
            assert_eq!(seen["count"], 1, "{name}: {seen}");
            assert_ne!(seen["raw"].as_str(), Some(value), "{name}");
            assert_eq!(seen["verified"], true, "{seen}");
            assert_ne!(seen["claims"]["sub"], "root");
            // A tenant without assertions removes the usual name too.
            for (path, auth) in [("/public/x", None), ("/x", Some(&token))] {
                let auth = auth.map(|t| format!("Bearer {t}"));
                let mut headers = vec![(name, value)];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = get(s.gw.listen, "plain.localhost", path, &headers).unwrap();
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                let last = s.plain.last().unwrap();
                assert!(
                    last.headers
                        .iter()
                        .all(|(k, _)| !k.to_ascii_lowercase().contains("gatehouse")),
                    "{name} on {path}: {last:?}"
                );
            }
        }
    }
}

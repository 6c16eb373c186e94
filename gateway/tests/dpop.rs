//! DPoP (RFC 9449) through the real binary: DPoP-bound tokens issued by the real OpenID
//! provider (`testing/idp`, oidc-provider's `dPoP` feature, client_credentials), valid proofs
//! made by a maintained client library (`testing/dpop`, panva's `dpop`), the attacks a library
//! will not make crafted by hand (`gatehouse_test_support::dpop`). Every refusal is a 401 with
//! its `WWW-Authenticate`, never a 5xx; the replay memory is shared by two gateways on a real
//! Redis Cluster.

mod support;

use gatehouse_test_support::dpop::{self as craft, thumbprint};
use gatehouse_test_support::keys::{forge, now, signing_input, Kind, TestKey};
use serde_json::{json, Value};
use support::idp::Idp;
use support::*;

/// The provider's algorithms: the IdP signs with RS256; proofs may use any of them.
const ALGS: &str = "RS256 ES256 PS256 EdDSA";

fn config(listen: u16, admin: u16, app: &Upstream, idp_port: u16, store: &str) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
{store}
identity-providers:
{provider}
    algorithms: [RS256, ES256, PS256, EdDSA]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    resource-metadata:
      scopes-supported: [mcp:tools]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /req/*
        dpop: required
      - uri: /opt/*
        dpop: optional
      - uri: /nonce/*
        dpop: required
        dpop-nonce: true
      - uri: /api/*
"#,
        app = app.target(),
    )
}

/// A gateway (memory session store unless `store` says otherwise) and the IdP.
fn stack(tag: &str, app: &Upstream) -> (Gateway, Idp) {
    let idp = Idp::start(None, &[]);
    let gw = Gateway::start(tag, |p, _| config(p.listen, p.admin, app, idp.port, ""));
    gw.wait_ready();
    (gw, idp)
}

fn host(gw: &Gateway) -> String {
    format!("demo.localhost:{}", gw.listen.port())
}

/// The URI a proof for `path` on `gw` names.
fn htu(gw: &Gateway, path: &str) -> String {
    format!("http://{}{path}", host(gw))
}

/// `method path` on `gw` with these headers (repeats allowed).
fn send(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
        host(gw)
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw_request(gw.listen, raw.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", gw.log()))
}

/// `GET path` with `Authorization: DPoP token` and one `DPoP` header per proof.
fn dpop_get(gw: &Gateway, path: &str, token: &str, proofs: &[&str]) -> Response {
    let auth = format!("DPoP {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend(proofs.iter().map(|p| ("DPoP", *p)));
    send(gw, "GET", path, &headers)
}

fn bearer_get(gw: &Gateway, path: &str, token: &str, proofs: &[&str]) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend(proofs.iter().map(|p| ("DPoP", *p)));
    send(gw, "GET", path, &headers)
}

fn challenge(r: &Response) -> String {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", r.status, r.text()))
        .to_string()
}

/// A 401 whose challenge contains each of `parts`.
fn assert_refused(r: &Response, what: &str, parts: &[&str]) {
    assert_eq!(r.status, 401, "{what}: {} {}", r.status, r.text());
    let c = challenge(r);
    for part in parts {
        assert!(c.contains(part), "{what}: {part:?} not in {c}");
    }
}

/// The client (panva's `dpop`) with `key`: a DPoP-bound token for `client` from `idp`, and
/// proofs for `proofs` (`(htm, htu)`, each bound to the token).
fn client(
    key_pkcs8: Option<&str>,
    alg: &str,
    idp: &Idp,
    client: &str,
    proofs: &[(&str, String)],
) -> Value {
    let mut input = json!({
        "alg": alg,
        "token": {
            "endpoint": format!("{}/protocol/openid-connect/token", idp.issuer),
            "client_id": client,
            "client_secret": format!("{client}-secret"),
        },
        "proofs": proofs.iter().map(|(htm, htu)| json!({"htm": htm, "htu": htu, "access_token": "$token"})).collect::<Vec<_>>(),
    });
    if let Some(k) = key_pkcs8 {
        input["key_pkcs8"] = json!(k);
    }
    craft::client(&input)
}

/// Proofs by the client's key for `(htm, htu, access_token, nonce)`.
fn proofs(key_pkcs8: &str, requests: &[(&str, String, &str, Option<&str>)]) -> Vec<String> {
    let input = json!({
        "alg": "ES256",
        "key_pkcs8": key_pkcs8,
        "proofs": requests.iter().map(|(htm, htu, token, nonce)| {
            let mut p = json!({"htm": htm, "htu": htu, "access_token": token});
            if let Some(n) = nonce { p["nonce"] = json!(n); }
            p
        }).collect::<Vec<_>>(),
    });
    craft::client(&input)["proofs"]
        .as_array()
        .expect("proofs")
        .iter()
        .map(|p| p.as_str().expect("a proof").to_string())
        .collect()
}

fn payload(token: &str) -> Value {
    gatehouse_test_support::keys::decode(token).1
}

/// The ES256 key the bound token of the attack table belongs to: made here (so hand-crafted
/// proofs can be signed with it) and handed to the library as PKCS#8.
fn client_key() -> (TestKey, String) {
    let key = TestKey::generate(Kind::P256, "client");
    // base64url: node's Buffer reads either alphabet.
    let pkcs8 = gatehouse_test_support::keys::b64(key.pkcs8_der());
    (key, pkcs8)
}

#[test]
fn bound_tokens_need_one_fresh_proof_of_their_key_and_every_attack_is_a_401() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("dpop-table", &app);
    let (key, pkcs8) = client_key();
    let x = htu(&gw, "/req/x");
    let answer = client(
        Some(&pkcs8),
        "ES256",
        &idp,
        "svc-user",
        &[("GET", x.clone())],
    );
    let token = answer["token"]["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert_eq!(answer["token"]["token_type"], "DPoP");
    // The IdP bound it to the key's RFC 7638 thumbprint, as the gateway computes it too.
    assert_eq!(
        payload(&token)["cnf"]["jkt"],
        thumbprint(&craft::proof_jwk(&key))
    );
    let lib_proof = answer["proofs"][0].as_str().unwrap().to_string();
    let unbound = idp.token("svc-user");
    assert!(payload(&unbound).get("cnf").is_none());

    // Happy path: the library's proof, once.
    let ok = dpop_get(&gw, "/req/x", &token, &[&lib_proof]);
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), gw.log());
    let seen = app.last().expect("proxied");
    assert_eq!(
        seen.header("x-auth-subject"),
        None,
        "no identity headers configured"
    );

    // The replayed proof.
    let r = dpop_get(&gw, "/req/x", &token, &[&lib_proof]);
    assert_refused(
        &r,
        "replayed jti",
        &[
            "DPoP realm=\"demo\"",
            "error=\"invalid_dpop_proof\"",
            "the DPoP proof was used before",
            &format!("algs=\"{ALGS}\""),
            &format!(
                "resource_metadata=\"http://{}/.well-known/oauth-protected-resource\"",
                host(&gw)
            ),
        ],
    );

    // Library proofs for the wrong request, with another token's ath, by another key.
    let other_token = idp.token("svc-admin");
    let made = proofs(
        &pkcs8,
        &[
            ("POST", x.clone(), &token, None),
            ("GET", htu(&gw, "/req/other"), &token, None),
            ("GET", format!("https://{}/req/x", host(&gw)), &token, None),
            ("GET", x.clone(), &other_token, None),
            ("GET", x.clone(), &token, None),
            ("GET", x.clone(), &token, None),
        ],
    );
    let stranger = client(None, "ES256", &idp, "svc-user", &[("GET", x.clone())]);
    let stranger_proof = proofs(
        stranger["key_pkcs8"].as_str().unwrap(),
        &[("GET", x.clone(), &token, None)],
    );
    let cases: [(&str, &str, &str); 5] = [
        (
            "proof for another method",
            &made[0],
            "the DPoP proof is for another method",
        ),
        (
            "proof for another URI",
            &made[1],
            "the DPoP proof is for another URI",
        ),
        (
            "proof for another scheme",
            &made[2],
            "the DPoP proof is for another URI",
        ),
        (
            "ath of another token",
            &made[3],
            "the DPoP proof is for another access token",
        ),
        (
            "proof key not the token's",
            &stranger_proof[0],
            "the DPoP proof's key is not the token's key",
        ),
    ];
    for (what, proof, description) in cases {
        let r = dpop_get(&gw, "/req/x", &token, &[proof]);
        assert_refused(&r, what, &["error=\"invalid_dpop_proof\"", description]);
    }

    // Hand-crafted: stale and future iat, private key material, alg none and HS256.
    let t = now();
    let header = craft::header(&key, "ES256");
    let at = |iat: u64| key.mint_with_header(&header, &craft::claims("GET", &x, &token, iat));
    let mut private = header.clone();
    private["jwk"]["d"] = json!("c2VjcmV0");
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let claims = craft::claims("GET", &x, &token, t);
    let crafted = [
        ("stale iat", at(t - 200), "the DPoP proof is too old"),
        (
            "future iat",
            at(t + 120),
            "the DPoP proof is issued in the future",
        ),
        (
            "private key in jwk",
            key.mint_with_header(&private, &claims),
            "the DPoP proof's jwk must be a public key",
        ),
        (
            "alg none",
            format!("{}.", signing_input(&none, &claims)),
            "the DPoP proof's algorithm is not accepted",
        ),
        (
            "HS256",
            forge(&hs, &claims, b"0123456789abcdef0123456789abcdef"),
            "the DPoP proof's algorithm is not accepted",
        ),
    ];
    for (what, proof, description) in &crafted {
        let r = dpop_get(&gw, "/req/x", &token, &[proof]);
        assert_refused(&r, what, &["error=\"invalid_dpop_proof\"", description]);
    }

    // Two DPoP headers (each valid alone), and none.
    let r = dpop_get(&gw, "/req/x", &token, &[&made[4], &made[5]]);
    assert_refused(
        &r,
        "two DPoP headers",
        &["exactly one DPoP proof is allowed"],
    );
    let r = dpop_get(&gw, "/req/x", &token, &[]);
    assert_refused(
        &r,
        "missing proof",
        &["error=\"invalid_dpop_proof\"", "a DPoP proof is required"],
    );
    // Neither refusal used the proofs up.
    assert_eq!(dpop_get(&gw, "/req/x", &token, &[&made[4]]).status, 200);

    // The token side: bound token as Bearer, unbound tokens, no token.
    let r = bearer_get(&gw, "/req/x", &token, &[&made[5]]);
    assert_refused(
        &r,
        "bound token as Bearer",
        &[
            "DPoP realm",
            "error=\"invalid_token\"",
            "must be sent with the DPoP scheme",
        ],
    );
    let r = bearer_get(&gw, "/req/x", &unbound, &[]);
    assert_refused(
        &r,
        "unbound token on required",
        &["error=\"invalid_token\"", "a DPoP-bound token is required"],
    );
    let r = dpop_get(&gw, "/req/x", &unbound, &[&made[5]]);
    assert_refused(
        &r,
        "unbound token as DPoP",
        &["the DPoP scheme needs a DPoP-bound token"],
    );
    let r = send(&gw, "GET", "/req/x", &[]);
    assert_refused(
        &r,
        "no credential",
        &["DPoP realm=\"demo\"", &format!("algs=\"{ALGS}\"")],
    );
    assert!(
        !challenge(&r).contains("Bearer"),
        "required offers DPoP only"
    );
    assert!(!challenge(&r).contains("error="));
    let r = send(&gw, "GET", "/req/x", &[("Authorization", "Basic YTpi")]);
    assert_refused(&r, "another scheme", &["error=\"invalid_token\""]);

    // optional: unbound bearer tokens pass, bound ones need their proof.
    let o = htu(&gw, "/opt/y");
    let opt = proofs(
        &pkcs8,
        &[("GET", o.clone(), &token, None), ("GET", o, &token, None)],
    );
    assert_eq!(bearer_get(&gw, "/opt/y", &unbound, &[]).status, 200);
    assert_eq!(dpop_get(&gw, "/opt/y", &token, &[&opt[0]]).status, 200);
    let r = bearer_get(&gw, "/opt/y", &token, &[&opt[1]]);
    assert_refused(
        &r,
        "bound token as Bearer (optional)",
        &["must be sent with the DPoP scheme"],
    );
    let r = dpop_get(&gw, "/opt/y", &token, &[]);
    assert_refused(
        &r,
        "bound token without proof (optional)",
        &["a DPoP proof is required"],
    );
    let r = send(&gw, "GET", "/opt/y", &[]);
    let c = challenge(&r);
    assert_eq!(r.status, 401);
    assert!(
        c.starts_with("Bearer realm=\"demo\"")
            && c.contains(", DPoP realm=\"demo\"")
            && c.contains(&format!("algs=\"{ALGS}\"")),
        "optional offers both schemes: {c}"
    );

    // off: today's behaviour. Tokens are bearer tokens; the DPoP scheme is not a credential.
    assert_eq!(bearer_get(&gw, "/api/z", &unbound, &[]).status, 200);
    assert_eq!(bearer_get(&gw, "/api/z", &token, &[]).status, 200);
    let r = dpop_get(&gw, "/api/z", &token, &[&opt[1]]);
    assert_refused(
        &r,
        "DPoP scheme on an off route",
        &["Bearer realm", "error=\"invalid_token\""],
    );
    assert!(!challenge(&r).contains("DPoP realm"));

    // Counted like every refusal.
    let counted = [
        "dpop_replayed",
        "dpop_wrong_htm",
        "dpop_stale",
        "dpop_private_key",
        "dpop_bound_token_as_bearer",
        "dpop_required",
    ]
    .map(|reason| format!("reason=\"{reason}\""));
    let m = gw.metrics_containing(&counted.each_ref().map(String::as_str));
    for label in &counted {
        assert!(m.contains(label.as_str()), "{label} not counted:\n{m}");
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

#[test]
fn proofs_of_each_algorithm_from_the_library_pass() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("dpop-algs", &app);
    for alg in ["ES256", "RS256", "PS256", "Ed25519"] {
        let path = format!("/req/{alg}");
        let answer = client(None, alg, &idp, "svc-admin", &[("GET", htu(&gw, &path))]);
        let token = answer["token"]["access_token"].as_str().unwrap();
        let jwk = &answer["public_jwk"];
        assert_eq!(payload(token)["cnf"]["jkt"], thumbprint(jwk), "{alg}");
        let r = dpop_get(&gw, &path, token, &[answer["proofs"][0].as_str().unwrap()]);
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
    }
}

#[test]
fn metadata_says_which_routes_need_dpop() {
    let app = Upstream::start("app");
    let (gw, _idp) = stack("dpop-metadata", &app);
    let doc = |path: &str| -> Value {
        let r = gw.get(
            &host(&gw),
            &format!("/.well-known/oauth-protected-resource{path}"),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let algs: Vec<&str> = ALGS.split(' ').collect();
    let required = doc("/req");
    assert_eq!(required["dpop_signing_alg_values_supported"], json!(algs));
    assert_eq!(required["dpop_bound_access_tokens_required"], json!(true));
    let optional = doc("/opt/a");
    assert_eq!(optional["dpop_bound_access_tokens_required"], json!(false));
    assert_eq!(optional["dpop_signing_alg_values_supported"], json!(algs));
    let plain = doc("/api");
    assert!(
        plain.get("dpop_signing_alg_values_supported").is_none(),
        "{plain}"
    );
    assert!(
        plain.get("dpop_bound_access_tokens_required").is_none(),
        "{plain}"
    );
}

#[test]
fn a_nonce_route_answers_use_dpop_nonce_then_takes_the_nonce_it_issued() {
    let app = Upstream::start("app");
    let (gw, idp) = stack("dpop-nonce", &app);
    let (_key, pkcs8) = client_key();
    let n = htu(&gw, "/nonce/x");
    let answer = client(
        Some(&pkcs8),
        "ES256",
        &idp,
        "svc-user",
        &[("GET", n.clone())],
    );
    let token = answer["token"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Without a nonce: 401 use_dpop_nonce and a DPoP-Nonce to use.
    let r = dpop_get(
        &gw,
        "/nonce/x",
        &token,
        &[answer["proofs"][0].as_str().unwrap()],
    );
    assert_refused(&r, "no nonce", &["DPoP realm", "error=\"use_dpop_nonce\""]);
    let nonce = r
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_string();
    // A made-up nonce gets the same answer.
    let bad = proofs(
        &pkcs8,
        &[(
            "GET",
            n.clone(),
            &token,
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )],
    );
    let r = dpop_get(&gw, "/nonce/x", &token, &[&bad[0]]);
    assert_refused(&r, "forged nonce", &["error=\"use_dpop_nonce\""]);
    assert!(r.header("dpop-nonce").is_some());
    // The library's next proof carries the nonce: accepted, once.
    let good = proofs(&pkcs8, &[("GET", n.clone(), &token, Some(&nonce))]);
    let r = dpop_get(&gw, "/nonce/x", &token, &[&good[0]]);
    assert_eq!(r.status, 200, "{}", r.text());
    // The answer hands out the current nonce (RFC 9449 8.2), so a client never needs another
    // use_dpop_nonce round trip while it keeps calling; the next proof takes it.
    let next = r
        .header("dpop-nonce")
        .expect("a DPoP-Nonce on the proxied answer")
        .to_string();
    let r = dpop_get(&gw, "/nonce/x", &token, &[&good[0]]);
    assert_refused(
        &r,
        "replayed with its nonce",
        &["the DPoP proof was used before"],
    );
    let again = proofs(&pkcs8, &[("GET", n, &token, Some(&next))]);
    assert_eq!(dpop_get(&gw, "/nonce/x", &token, &[&again[0]]).status, 200);
    // Routes without dpop-nonce take proofs without one, and hand out none.
    let plain = proofs(&pkcs8, &[("GET", htu(&gw, "/req/x"), &token, None)]);
    let r = dpop_get(&gw, "/req/x", &token, &[&plain[0]]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("dpop-nonce"), None);
}

#[test]
fn a_proof_used_at_one_gateway_is_refused_by_another_on_the_same_redis_cluster() {
    let cluster = gatehouse_test_support::redis::Cluster::start();
    let app = Upstream::start("app");
    let idp = Idp::start(None, &[]);
    let store = format!("session-store:\n  url: {}\n  timeout: 500ms", cluster.url());
    let a = Gateway::start("dpop-redis-a", |p, _| {
        config(p.listen, p.admin, &app, idp.port, &store)
    });
    let b = Gateway::start("dpop-redis-b", |p, _| {
        config(p.listen, p.admin, &app, idp.port, &store)
    });
    a.wait_ready();
    b.wait_ready();
    // Both gateways listen on other ports: proofs name the host each is reached at, so the
    // replay is sent to b with b's host (what a load balancer in front of both would show).
    let (_key, pkcs8) = client_key();
    let answer = client(Some(&pkcs8), "ES256", &idp, "svc-user", &[]);
    let token = answer["token"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let to = |gw: &Gateway, proof: &str| {
        let auth = format!("DPoP {token}");
        let raw = format!(
            "GET /req/x HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\nAuthorization: {auth}\r\nDPoP: {proof}\r\n\r\n"
        );
        raw_request(gw.listen, raw.as_bytes()).unwrap()
    };
    let same_host = "http://demo.localhost/req/x".to_string();
    let requests: Vec<_> = (0..12)
        .map(|_| ("GET", same_host.clone(), token.as_str(), None))
        .collect();
    let made = proofs(&pkcs8, &requests);
    // A gateway whose Redis is still connecting answers 503 (the single use cannot be
    // established) and the proof stays unused: take fresh proofs until one is decided.
    let mut fresh = made.iter();
    let used = loop {
        let proof = fresh.next().expect("Redis decided within 10 proofs");
        let r = to(&a, proof);
        if r.status == 200 {
            break proof.clone();
        }
        assert_eq!(r.status, 503, "{}", r.text());
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let replay = to(&b, &used);
    assert_refused(
        &replay,
        "replay at the other gateway",
        &["the DPoP proof was used before"],
    );
    let replay = to(&a, &used);
    assert_refused(
        &replay,
        "replay at the same gateway",
        &["the DPoP proof was used before"],
    );
    let next = fresh.next().expect("a proof left");
    assert_eq!(to(&b, next).status, 200, "a new proof is fine at b");
    // The proof's key lives in Redis with an expiry: the window (60 s) and leeway (30 s).
    let jti = payload(&used)["jti"].as_str().unwrap().to_string();
    let jkt = payload(&token)["cnf"]["jkt"].as_str().unwrap().to_string();
    let key = format!(
        "gatehouse:dpop:{{{}}}",
        gatehouse_session::dpop::replay_key(&jkt, &jti)
    );
    let ttl: i64 = cluster.cli_c(&["TTL", &key]).trim().parse().expect("a TTL");
    assert!((1..=91).contains(&ttl), "TTL of {key}: {ttl}");
}

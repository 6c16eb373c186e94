//! Each refusal reason, explained at the step that failed, as the gateway refuses it.

use super::*;

#[test]
fn each_refusal_is_explained_at_the_step_that_failed_as_the_gateway_refuses_it() {
    let keys_dir = TempDir::new("explain-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let other = make_keys(keys_dir.path(), "other", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, idp) = stack("explain", &app, &keys, false);
    let iss = idp.issuer.clone();
    let user = idp.token("svc-user");
    let nobody = idp.token("svc-nobody");
    let signed = |extra: Value| sign(&keys, &claims(&iss, extra), None);
    let mut forged = user.clone().into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let now = now();
    let d = "demo.localhost";
    let cases = vec![
        case("allow", "GET", d, "/api/x", bearer(&user), None, "ok"),
        case("white-listed", "GET", d, "/public/x", vec![], None, "ok"),
        case(
            "no token",
            "GET",
            d,
            "/api/x",
            vec![],
            Some("session"),
            "unauthenticated",
        ),
        case(
            "malformed",
            "GET",
            d,
            "/api/x",
            bearer("not-a-jwt"),
            Some("token"),
            "malformed",
        ),
        case(
            "not bearer",
            "GET",
            d,
            "/api/x",
            vec![("Authorization".into(), "Basic dXNlcjpwYXNzd29yZA==".into())],
            Some("credential"),
            "malformed",
        ),
        case(
            "bad signature",
            "GET",
            d,
            "/api/x",
            bearer(&forged),
            Some("token"),
            "bad_signature",
        ),
        case(
            "unknown kid",
            "GET",
            d,
            "/api/x",
            bearer(&sign(&other, &claims(&iss, json!({})), None)),
            Some("token"),
            "unknown_kid",
        ),
        case(
            "wrong iss",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"iss": "http://127.0.0.1:1/realms/other"}))),
            Some("token"),
            "wrong_issuer",
        ),
        case(
            "wrong aud",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"aud": "someone-else"}))),
            Some("token"),
            "wrong_audience",
        ),
        case(
            "expired",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"exp": now - 600}))),
            Some("token"),
            "expired",
        ),
        case(
            "nbf in the future",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"nbf": now + 600}))),
            Some("token"),
            "not_yet_valid",
        ),
        case(
            "ID token as bearer",
            "GET",
            d,
            "/api/x",
            bearer(&signed(
                json!({"typ": "ID", "nonce": "n-1", "azp": "gatehouse"}),
            )),
            Some("token"),
            "not_access_token",
        ),
        case(
            "missing role",
            "GET",
            d,
            "/api/admin/x",
            bearer(&user),
            Some("requirements"),
            "missing_role",
        ),
        case(
            "missing group",
            "GET",
            d,
            "/api/team/x",
            bearer(&nobody),
            Some("requirements"),
            "missing_group",
        ),
        case(
            "claim mismatch",
            "GET",
            d,
            "/api/mail/x",
            bearer(&nobody),
            Some("requirements"),
            "claim_mismatch",
        ),
        case(
            "acr too weak",
            "GET",
            d,
            "/api/strong/x",
            bearer(&signed(json!({"acr": "silver"}))),
            Some("step-up"),
            "insufficient_acr",
        ),
        case(
            "resource audience",
            "GET",
            d,
            "/api/resource/x",
            bearer(&user),
            Some("token"),
            "wrong_audience",
        ),
        case(
            "wrong method",
            "POST",
            "strict.localhost",
            "/read/x",
            bearer(&user),
            Some("route"),
            "no_route",
        ),
        case(
            "unknown host",
            "GET",
            "nobody.localhost",
            "/api/x",
            bearer(&user),
            Some("tenant"),
            "unknown_host",
        ),
    ];
    for c in &cases {
        check_case(&gw, c);
    }
    // The detail a person reads: expected against got, and how long ago a token expired.
    let expired = &cases[9];
    let (_, out, _) = explain_cli(&gw, expired, false);
    let exp = out
        .lines()
        .find(|l| l.trim_start().starts_with("exp "))
        .expect("exp line");
    assert!(exp.contains("FAIL") && exp.contains("expired: 6"), "{out}");
    let wrong_iss = &cases[7];
    let (_, out, _) = explain_cli(&gw, wrong_iss, false);
    let iss_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("iss "))
        .expect("iss line");
    assert!(
        iss_line.contains(&format!("expected {iss}"))
            && iss_line.contains("got http://127.0.0.1:1/realms/other"),
        "{out}"
    );
    let (_, out, _) = explain_cli(&gw, &cases[17], false);
    assert!(out.contains("skipped: POST is not in [GET]"), "{out}");
    let (_, out, _) = explain_cli(&gw, &cases[12], false);
    assert!(
        out.contains("role admin") && out.contains("absent"),
        "{out}"
    );
    // The tenant step names the host rule that chose it.
    let wildcard = case(
        "wildcard host",
        "GET",
        "a.demo.localhost",
        "/public/x",
        vec![],
        None,
        "ok",
    );
    let (code, out, _) = explain_cli(&gw, &wildcard, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("matched the host rule \"*.demo.localhost\""),
        "{out}"
    );
}

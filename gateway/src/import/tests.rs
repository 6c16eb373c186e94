//! Unit tests of the Gatekeeper importer: the option reader, the route semantics, the mapping
//! of each option and the not-carried list.

use serde_yaml::Value;

use super::convert::search_pattern;
use super::headers::header_case;
use super::notes::{is_known, nearest, Kind, MAPPED, NOT_CARRIED};
use super::values::{is_env_reference, issuer_of, listen_addr};
use super::{import, validate};

fn no_file(_: &str) -> Option<String> {
    None
}

/// Imports `text` with `args`; panics unless the output validates.
fn run(text: &str, args: &[&str]) -> (Value, super::Notes) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let imported = import(text, "test", &args, &no_file).expect("imports");
    validate(&imported.yaml).unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    let value = serde_yaml::from_str(&imported.yaml).unwrap();
    (value, imported.notes)
}

const BASE: &str = "discovery-url: https://sso.example.com/realms/r/.well-known/openid-configuration\n\
                    client-id: app\nupstream-url: http://10.0.0.1:8080\nredirection-url: https://app.example.com\n";

fn tenant(v: &Value) -> &Value {
    &v["tenants"][0]
}

/// The routes as `(uri, methods or "*", summary)` triples.
fn routes(v: &Value) -> Vec<(String, String, String)> {
    tenant(v)["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let methods = r["methods"]
                .as_sequence()
                .map(|m| {
                    m.iter()
                        .map(|x| x.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "*".into());
            let mut summary = Vec::new();
            if r["white-listed"].as_bool() == Some(true) {
                summary.push("public".to_string());
            }
            if r["white-listed-anon"].as_bool() == Some(true) {
                summary.push("anon".to_string());
            }
            if let Some(roles) = r["roles"].as_sequence() {
                let roles: Vec<&str> = roles.iter().map(|x| x.as_str().unwrap()).collect();
                summary.push(format!("roles={}", roles.join(",")));
            }
            if r["require-all"].as_bool() == Some(true) {
                summary.push("all".into());
            }
            if let Some(groups) = r["groups"].as_sequence() {
                let g: Vec<&str> = groups.iter().map(|x| x.as_str().unwrap()).collect();
                summary.push(format!("groups={}", g.join(",")));
            }
            if let Some(mc) = r["match-claims"].as_mapping() {
                for (k, v) in mc {
                    summary.push(format!("{}~{}", k.as_str().unwrap(), v.as_str().unwrap()));
                }
            }
            if summary.is_empty() {
                summary.push("auth".into());
            }
            (
                r["uri"].as_str().unwrap().to_string(),
                methods,
                summary.join(" "),
            )
        })
        .collect()
}

fn route_set(v: &Value) -> Vec<String> {
    routes(v)
        .into_iter()
        .map(|(u, m, s)| format!("{u} [{m}] {s}"))
        .collect()
}

#[test]
fn resources_keep_gatekeeper_semantics() {
    // (resources YAML, extra top-level, expected routes)
    let cases: &[(&str, &str, &[&str])] = &[
        // Default deny (gogatekeeper's default): everything else needs a token.
        ("[]", "", &["/* [*] auth"]),
        // Default deny off: everything else is public.
        ("[]", "enable-default-deny: false\n", &["/* [*] public"]),
        // Strict: unmatched paths are refused: no /* route at all.
        ("[{uri: /open/*, white-listed: true}]", "enable-default-deny-strict: true\n", &["/open/* [*] public"]),
        // Roles are ALL required by default...
        (
            "[{uri: /admin/*, roles: [admin, 'app:ops']}]",
            "",
            &["/* [*] auth", "/admin [*] auth", "/admin/* [*] roles=admin,app:ops all"],
        ),
        // ...unless require-any-role; groups are ANY.
        (
            "[{uri: /a/*, roles: [x, y], require-any-role: true, groups: [g1, g2]}]",
            "",
            &["/* [*] auth", "/a [*] auth", "/a/* [*] roles=x,y groups=g1,g2"],
        ),
        // All roles AND any of several groups: the groups become one claim regex.
        (
            "[{uri: /b/*, roles: [x, y], groups: [g1, g.2]}]",
            "",
            &["/* [*] auth", "/b [*] auth", "/b/* [*] roles=x,y all groups~^(?:g1|g\\.2)$"],
        ),
        // A single role: no require-all needed.
        ("[{uri: /c, roles: [x]}]", "", &["/* [*] auth", "/c [*] roles=x"]),
        // Methods: the listed ones get the rule, the others what Gatekeeper falls back to.
        (
            "[{uri: /d/*, methods: [GET, POST], roles: [x]}]",
            "enable-default-deny: false\n",
            &[
                "/* [*] public",
                "/d [*] public",
                "/d/* [DELETE,HEAD,OPTIONS,PATCH,PUT,TRACE] public",
                "/d/* [GET,POST] roles=x",
            ],
        ),
        // /x* covers /x too; /x/* does not cover /x in chi, so /x gets the fallback.
        (
            "[{uri: /e*, white-listed: true}, {uri: /f/*, white-listed: true}]",
            "",
            &["/* [*] auth", "/e/* [*] public", "/f [*] auth", "/f/* [*] public"],
        ),
        // An exact uri and a longer prefix win over shorter prefixes.
        (
            "[{uri: /g/*, roles: [x]}, {uri: /g/open, white-listed: true}, {uri: /g/deep/*, roles: [y]}]",
            "",
            &[
                "/* [*] auth",
                "/g [*] auth",
                "/g/* [*] roles=x",
                "/g/deep [*] roles=x",
                "/g/deep/* [*] roles=y",
                "/g/open [*] public",
            ],
        ),
        // The last resource for a (uri, method) wins, as in chi.
        (
            "[{uri: /h, roles: [x]}, {uri: /h, roles: [y]}]",
            "",
            &["/* [*] auth", "/h [*] roles=y"],
        ),
        // The command-line form inside a config file.
        ("['uri=/k/*|methods=GET|roles=x,y']", "", &["/* [*] auth", "/k [*] auth", "/k/* [DELETE,HEAD,OPTIONS,PATCH,POST,PUT,TRACE] auth", "/k/* [GET] roles=x,y all"]),
        // An exact / and an exact /x/ do not decide for the prefixes around them.
        (
            "[{uri: /, white-listed: true}, {uri: /api/, white-listed: true}, {uri: '/api/*', roles: [x]}]",
            "",
            &["/ [*] public", "/* [*] auth", "/api [*] auth", "/api/ [*] public", "/api/* [*] roles=x"],
        ),
        // Anonymous access.
        ("[{uri: /i, white-listed-anon: true}]", "", &["/* [*] auth", "/i [*] anon"]),
        // Global match-claims apply to every authenticated route, not to public ones.
        (
            "[{uri: /j, white-listed: true}]",
            "match-claims: {email: '^.*@example\\.com$'}\n",
            &["/* [*] email~^.*@example\\.com$", "/j [*] public"],
        ),
    ];
    for (resources, extra, want) in cases {
        let text = format!("{BASE}{extra}resources: {resources}\n");
        let (v, _) = run(&text, &[]);
        let got = route_set(&v);
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "resources {resources} {extra}");
    }
}

#[test]
fn uris_gatehouse_cannot_express_are_listed_not_guessed() {
    let text = format!(
        "{BASE}resources:\n  - {{uri: '/users/{{id}}/x', roles: [x]}}\n  - {{uri: '/a/*/b', roles: [x]}}\n  - {{uri: 'nope', roles: [x]}}\n"
    );
    let (v, notes) = run(&text, &[]);
    assert_eq!(route_set(&v), ["/* [*] auth"]);
    let carried: Vec<String> = notes
        .of(Kind::NotCarried)
        .map(|n| n.option.clone())
        .collect();
    for uri in ["/users/{id}/x", "/a/*/b", "nope"] {
        assert!(
            carried.iter().any(|o| o.ends_with(uri)),
            "{uri} not listed: {carried:?}"
        );
    }
}

#[test]
fn command_line_arguments_override_and_add_like_gatekeeper() {
    let args = "- --discovery-url=https://sso.example.com/realms/r\n\
                - --client-id app\n\
                - --upstream-url\n\
                - https://backend.internal\n\
                - --enable-default-deny=false\n\
                - --resources=uri=/admin/*|methods=GET|roles=a,b|require-any-role=true\n\
                - --cors-origins=https://a.example,https://b.example\n\
                - --no-redirects\n";
    let (v, _) = run(
        args,
        &["--listen=:3000", "--resources=uri=/ops/*|roles=ops"],
    );
    assert_eq!(v["listen"].as_str(), Some("0.0.0.0:3000"));
    assert_eq!(
        v["identity-providers"][0]["client-id"].as_str(),
        Some("app")
    );
    assert_eq!(
        v["identity-providers"][0]["issuer"].as_str(),
        Some("https://sso.example.com/realms/r")
    );
    let up = &tenant(&v)["upstreams"][0];
    assert_eq!(up["targets"][0].as_str(), Some("backend.internal:443"));
    assert_eq!(up["tls"].as_bool(), Some(true));
    assert_eq!(
        tenant(&v)["cors"]["origins"].as_sequence().unwrap().len(),
        2
    );
    assert!(
        tenant(&v)["login"].is_null(),
        "--no-redirects: no browser login"
    );
    let got = route_set(&v);
    assert!(
        got.contains(&"/admin/* [GET] roles=a,b".to_string()),
        "{got:?}"
    );
    assert!(got.contains(&"/ops/* [*] roles=ops".to_string()), "{got:?}");
    // An argument list's --config file is read, its flags applied over it: scalars replace,
    // resources add.
    let file = BASE.replace("client-id: app", "client-id: from-file")
        + "resources: [{uri: /a, roles: [x]}]\n";
    let list =
        "- --config=/etc/gk/config.yaml\n- --client-id=from-args\n- --resources=uri=/b|roles=y\n";
    let read = |p: &str| (p == "/etc/gk/config.yaml").then(|| file.clone());
    let imported = import(list, "t", &[], &read).unwrap();
    let v: Value = serde_yaml::from_str(&imported.yaml).unwrap();
    assert_eq!(
        v["identity-providers"][0]["client-id"].as_str(),
        Some("from-args")
    );
    let got = route_set(&v);
    assert!(
        got.contains(&"/a [*] roles=x".to_string()) && got.contains(&"/b [*] roles=y".to_string()),
        "{got:?}"
    );
    // `--flag value` in one argument, as Gatekeeper's docs write some of them.
    let (v, _) = run(
        BASE,
        &["--match-claims 'aud=sso.*'", "--listen 127.0.0.1:3000"],
    );
    assert_eq!(v["listen"].as_str(), Some("127.0.0.1:3000"));
    assert_eq!(
        v["tenants"][0]["routes"][0]["match-claims"]["aud"].as_str(),
        Some("^(?s:.*)(?:sso.*)(?s:.*)$")
    );
    // A later argument overrides the file's scalar.
    let (v, _) = run(BASE, &["--client-id=other"]);
    assert_eq!(
        v["identity-providers"][0]["client-id"].as_str(),
        Some("other")
    );
}

#[test]
fn secrets_are_references_never_literals() {
    let text = format!(
        "{BASE}client-secret: s3cr3t-literal\nencryption-key: AgXa7xRcoClDEU0ZDSH4X0XhL5Qy2Z2j\n\
         store-url: redis://user:hunter2@redis:6379/0?protocol=3\n"
    );
    let args: Vec<String> = Vec::new();
    let imported = import(&text, "t", &args, &no_file).unwrap();
    for literal in [
        "s3cr3t-literal",
        "AgXa7xRcoClDEU0ZDSH4X0XhL5Qy2Z2j",
        "hunter2",
    ] {
        assert!(
            !imported.yaml.contains(literal),
            "{literal} copied:\n{}",
            imported.yaml
        );
        for n in &imported.notes.items {
            assert!(!n.to_string().contains(literal), "{literal} in a note: {n}");
        }
    }
    let v: Value = serde_yaml::from_str(&imported.yaml).unwrap();
    assert_eq!(
        v["identity-providers"][0]["client-secret"].as_str(),
        Some("${GATEKEEPER_CLIENT_SECRET}")
    );
    assert_eq!(
        tenant(&v)["cookie"]["encryption-key"].as_str(),
        Some("${GATEHOUSE_COOKIE_KEY}")
    );
    assert_eq!(
        v["session-store"]["url"].as_str(),
        Some("redis://user:${GATEKEEPER_STORE_PASSWORD}@redis:6379/0")
    );
    assert!(imported.notes.of(Kind::Secret).count() >= 3);
    // A reference in the source is kept as it is.
    let (v, _) = run(&format!("{BASE}client-secret: ${{MY_SECRET}}\n"), &[]);
    assert_eq!(
        v["identity-providers"][0]["client-secret"].as_str(),
        Some("${MY_SECRET}")
    );
}

#[test]
fn each_option_maps_to_its_gatehouse_key() {
    // (extra source, path into the output, expected value as YAML)
    let cases: &[(&str, &[&str], &str)] = &[
        ("secure-cookie: false", &["tenants", "0", "cookie", "secure"], "false"),
        ("same-site-cookie: Strict", &["tenants", "0", "cookie", "same-site"], "strict"),
        ("cookie-domain: .example.com", &["tenants", "0", "cookie", "domain"], "example.com"),
        ("store-url: redis://r:6379", &["session-store", "url"], "redis://r:6379"),
        ("store-url: redis://a:1,b:2\nenable-store-ha: true", &["session-store", "url"], "redis-cluster://a:1,b:2"),
        ("enable-logging: true", &["access-log", "enabled"], "true"),
        ("enable-json-logging: false", &["access-log", "format"], "text"),
        ("listen-admin: 127.0.0.1:4000", &["admin-listen"], "127.0.0.1:4000"),
        ("request-id-header: X-Correlation-Id", &["tenants", "0", "request-id-header"], "X-Correlation-Id"),
        ("cors-origins: ['https://a.example']\ncors-credentials: true", &["tenants", "0", "cors", "credentials"], "true"),
        ("cors-origins: ['https://a.example']\ncors-max-age: 10m", &["tenants", "0", "cors", "max-age"], "10m"),
        ("cors-origins: ['https://a.example']\ncors-exposed-headers: [X-Id]", &["tenants", "0", "cors", "exposed-headers", "0"], "X-Id"),
        ("filter-browser-xss: true", &["tenants", "0", "security-headers", "X-XSS-Protection"], "1; mode=block"),
        ("content-security-policy: default-src 'none'", &["tenants", "0", "security-headers", "Content-Security-Policy"], "default-src 'none'"),
        ("response-headers: {X-Served-By: gk}", &["tenants", "0", "security-headers", "X-Served-By"], "gk"),
        ("add-claims: [given_name]", &["tenants", "0", "identity-headers", "X-Auth-Given-Name"], "given_name"),
        ("add-claims: ['given_name|X-First']", &["tenants", "0", "identity-headers", "X-First"], "given_name"),
        ("enable-authorization-header: true", &["tenants", "0", "forward-access-token"], "true"),
        ("post-logout-redirect-uri: https://app.example.com/bye", &["tenants", "0", "login", "post-logout-redirect-url"], "https://app.example.com/bye"),
        ("scopes: [groups]", &["identity-providers", "0", "scopes", "3"], "groups"),
        ("upstream-timeout: 5s", &["tenants", "0", "upstreams", "0", "connect-timeout"], "5s"),
        ("upstream-response-header-timeout: 1m30s", &["tenants", "0", "upstreams", "0", "read-timeout"], "1m30s"),
        ("max-body-size: 1048576", &["tenants", "0", "routes", "0", "max-body-size"], "1048576"),
        ("max-header-size: 65536", &["max-request-header-size"], "65536"),
        ("hostnames: [App.Example.com, b.example.com]", &["tenants", "0", "hosts", "1"], "b.example.com"),
        ("tls-cert: /c.pem\ntls-private-key: /k.pem\nlisten: :443\nlisten-http: :80", &["tls-listen"], "0.0.0.0:443"),
        ("tls-cert: /c.pem\ntls-private-key: /k.pem\nlisten: :443\nlisten-http: :80\nenable-https-redirection: true", &["tenants", "0", "enable-https-redirection"], "true"),
        ("server-idle-timeout: 2m", &["keepalive-timeout"], "2m"),
        ("hostnames: ['app.example.com:443']", &["tenants", "0", "hosts", "0"], "app.example.com"),
        ("listen: :3000\nlisten-admin: :3000", &["admin-listen"], "127.0.0.1:9100"),
    ];
    for (extra, path, want) in cases {
        let text = format!("{BASE}{extra}\n");
        let args: Vec<String> = Vec::new();
        let imported = import(&text, "t", &args, &no_file).unwrap();
        let v: Value = serde_yaml::from_str(&imported.yaml).unwrap();
        let mut at = &v;
        for p in *path {
            at = match p.parse::<usize>() {
                Ok(i) => &at[i],
                Err(_) => &at[*p],
            };
        }
        let want: Value = serde_yaml::from_str(want).unwrap();
        assert_eq!(at, &want, "{extra} -> {path:?}\n{}", imported.yaml);
    }
    // A plain-http provider is allowed explicitly (gatehouse refuses it otherwise), an https
    // one is not touched.
    let (v, notes) = run(BASE, &["--discovery-url=http://127.0.0.1:1/realms/r"]);
    assert_eq!(
        v["identity-providers"][0]["allow-insecure-http"].as_bool(),
        Some(true)
    );
    assert!(notes
        .items
        .iter()
        .any(|n| n.option == "discovery-url" && n.text.contains("plain http")));
    let (v, _) = run(BASE, &[]);
    assert!(v["identity-providers"][0]["allow-insecure-http"].is_null());
    // The mapping output validates (TLS aside, whose files do not exist here).
    let (v, _) = run(&format!("{BASE}listen: :3000\n"), &[]);
    assert_eq!(v["listen"].as_str(), Some("0.0.0.0:3000"));
}

#[test]
fn every_unsupported_option_is_listed_with_a_reason_and_what_to_do() {
    for (option, why, instead) in NOT_CARRIED {
        assert!(!why.is_empty() && !instead.is_empty(), "{option}");
        assert!(
            !MAPPED.contains(option),
            "{option} is both mapped and not carried"
        );
        let value = if *option == "headers" { "{a: b}" } else { "x" };
        let args: Vec<String> = Vec::new();
        let imported = import(&format!("{BASE}{option}: {value}\n"), "t", &args, &no_file).unwrap();
        let note = imported
            .notes
            .of(Kind::NotCarried)
            .find(|n| n.option == *option)
            .unwrap_or_else(|| panic!("{option} is not listed"));
        assert!(
            note.text.contains(why) && note.text.contains(instead),
            "{note}"
        );
        let leaked = imported
            .yaml
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{option}:")));
        assert!(!leaked, "{option} leaked into the output");
    }
    // An option Gatekeeper does not know is listed as such, with the nearest known name.
    let args: Vec<String> = Vec::new();
    let imported = import(
        &format!("{BASE}post-logout-redirect-url: x\n"),
        "t",
        &args,
        &no_file,
    )
    .unwrap();
    let unknown: Vec<String> = imported
        .notes
        .of(Kind::Unknown)
        .map(|n| n.to_string())
        .collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].contains("post-logout-redirect-uri"),
        "{unknown:?}"
    );
}

#[test]
fn weakening_differences_are_named() {
    let text = format!(
        "{BASE}match-claims: {{email: '!@evil'}}\nresources:\n  - {{uri: /up/*, roles: [x], headers: ['x-key:1']}}\n  - {{uri: /adm*, roles: [x]}}\n"
    );
    let (_, notes) = run(&text, &[]);
    let all: Vec<String> = notes.items.iter().map(|n| n.to_string()).collect();
    let has = |s: &str| all.iter().any(|n| n.contains(s));
    assert!(has("match-claims email") && has("negated"), "{all:?}");
    assert!(has("admits requests without those headers"), "{all:?}");
    assert!(has("also matches /adm-anything"), "{all:?}");
}

#[test]
fn acr_levels_become_the_routes_step_up() {
    let text = format!(
        "{BASE}enable-loa: true\nresources:\n  - {{uri: /bank/*, roles: [user], acr: [level2, level3]}}\n"
    );
    let (v, notes) = run(&text, &[]);
    let bank = tenant(&v)["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["uri"] == "/bank/*")
        .expect("route");
    assert_eq!(
        bank["acr"],
        serde_yaml::from_str::<Value>("[level2, level3]").unwrap()
    );
    let all: Vec<String> = notes.items.iter().map(|n| n.to_string()).collect();
    assert!(
        !all.iter()
            .any(|n| n.contains("acr") || n.contains("enable-loa")),
        "{all:?}"
    );
}

#[test]
fn small_helpers() {
    assert_eq!(
        issuer_of("https://k/realms/r/.well-known/openid-configuration"),
        "https://k/realms/r"
    );
    assert_eq!(issuer_of("https://k/realms/r/"), "https://k/realms/r");
    assert_eq!(listen_addr(":3000").as_deref(), Some("0.0.0.0:3000"));
    assert_eq!(listen_addr("unix:///run/gk.sock"), None);
    assert_eq!(listen_addr("nonsense"), None);
    assert_eq!(search_pattern("^.*@example\\.com$"), "^.*@example\\.com$");
    assert_eq!(search_pattern("sso.*"), "^(?s:.*)(?:sso.*)(?s:.*)$");
    assert_eq!(search_pattern("^https://"), "^(?s:.*)(?:^https://)(?s:.*)$");
    for (pattern, value, hit) in [
        ("sso", "my-sso-app", true),
        ("^https://", "http://x", false),
        ("^a$", "a", true),
        ("^a$", "ab", false),
    ] {
        let re = regex::Regex::new(&format!("^(?:{})$", search_pattern(pattern))).unwrap();
        assert_eq!(re.is_match(value), hit, "{pattern} on {value}");
    }
    assert_eq!(header_case("given_name"), "Given-Name");
    assert_eq!(header_case("custom.claim-x"), "Custom-Claim-X");
    assert!(is_env_reference("${A_B1}"));
    assert!(
        !is_env_reference("pre${A}") && !is_env_reference("${}") && !is_env_reference("${a-b}")
    );
    assert!(is_known("resources") && is_known("enable-uma") && !is_known("colour"));
    assert_eq!(
        nearest("enable-authorization-cookie"),
        Some("enable-authorization-cookies")
    );
    assert_eq!(nearest("something-else-entirely"), None);
}

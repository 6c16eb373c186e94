//! Observability through the real binary: the `/metrics` families and their labels against the
//! metrics contract (exact counts for the traffic sent), and every shipped dashboard and rule
//! expression (`deploy/grafana`, `deploy/prometheus`) evaluated by a real Prometheus scraping
//! the real gateway.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use support::idp::Idp;
use support::*;

/// The histogram buckets of every `_seconds` histogram (the contract).
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// One tenant with white-listed, authenticated and role-protected routes, an identity
/// provider, a live upstream and one whose only target never answers.
fn config(p: &Ports, app: &Upstream, dead_port: u16, issuer: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
identity-providers:
  - name: keycloak
    issuer: {issuer}
    allow-insecure-http: true
    client-id: gatehouse
    client-secret: gatehouse-secret
    audiences: [gatehouse]
    algorithms: [RS256, ES256]
    jwks-min-refetch-interval: 2s
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    default-upstream: app
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ path: /health, interval: 300ms, timeout: 200ms }}
      - name: dead
        targets: ["127.0.0.1:{dead_port}"]
        health-check: {{ interval: 300ms, timeout: 200ms }}
    routes:
      - uri: /public/*
        name: public
        white-listed: true
      - uri: /api/admin/*
        name: admin
        roles: [admin]
      - uri: /api/*
        name: api
      - uri: /down/*
        name: down
        white-listed: true
        upstream: dead
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// Starts the IdP, the upstream and the gateway, and waits until the gateway has the IdP's
/// keys and has health-checked both pools (`app` healthy, `dead` not).
fn start(tag: &str) -> (Idp, Upstream, Gateway) {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let dead_port = free_port(); // bound then released: nothing listens there
    let gw = Gateway::start(tag, |p, _| config(p, &app, dead_port, &idp.issuer));
    gw.wait_readiness(
        "demo/app up, demo/dead down, keys loaded",
        |status, text| {
            status == 200
                && text.contains("pool demo/app: up,")
                && text.contains("pool demo/dead: down,")
                && text.contains(": up, signing keys loaded")
        },
    );
    (idp, app, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `token` with one byte of its signature flipped: a valid shape, a bad signature.
fn bad_signature(token: &str) -> String {
    let mut it = token.split('.');
    let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let mut sig = B64.decode(s).unwrap();
    sig[0] ^= 0x55;
    format!("{h}.{p}.{}", B64.encode(sig))
}

/// `token` with its header's `kid` replaced by one the IdP never published.
fn unknown_kid(token: &str) -> String {
    let mut it = token.split('.');
    let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let mut header: serde_json::Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    header["kid"] = serde_json::json!("observability-unknown-kid");
    format!("{}.{p}.{s}", B64.encode(header.to_string()))
}

// ---- the Prometheus text format -------------------------------------------------------------

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A sample's labels other than `le`, in order.
type LabelSet = Vec<(String, String)>;

/// A parsed `/metrics` scrape.
struct Scrape {
    text: String,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s
            .parse()
            .unwrap_or_else(|_| panic!("bad sample value {s:?}")),
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('='), "label {key} without =");
        assert_eq!(chars.next(), Some('"'), "label {key} value not quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next().expect("dangling escape") {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_string(), value);
    }
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(n), Some(t)) = (it.next(), it.next()) {
                    types.insert(n.to_string(), t.to_string());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) = match line.find('{') {
                Some(open) => {
                    let close = line.rfind('}').expect("closing brace");
                    (
                        &line[..open],
                        parse_labels(&line[open + 1..close]),
                        &line[close + 1..],
                    )
                }
                None => {
                    let sp = line.find(' ').expect("name value");
                    (&line[..sp], BTreeMap::new(), &line[sp..])
                }
            };
            let value = parse_value(rest.split_whitespace().next().expect("a value"));
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Scrape {
            text,
            types,
            samples,
        }
    }

    fn fetch(gw: &Gateway) -> Scrape {
        let r = get(gw.admin, "admin", "/metrics", &[]).expect("GET /metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        Scrape::parse(r.text())
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.named(name).find(|s| s.labels == want).map(|s| s.value)
    }

    /// The sum over every sample of `name`.
    fn sum(&self, name: &str) -> f64 {
        self.named(name).map(|s| s.value).sum()
    }
}

/// Collects every contract violation of one scrape, so one run reports all of them.
struct Check<'a> {
    m: &'a Scrape,
    problems: Vec<String>,
}

impl<'a> Check<'a> {
    fn new(m: &'a Scrape) -> Check<'a> {
        Check {
            m,
            problems: Vec::new(),
        }
    }

    fn fail(&mut self, msg: String) {
        self.problems.push(msg);
    }

    /// The family exists with this type and every sample carries exactly `labels` (plus `le`
    /// on histogram buckets); histograms use the contract's buckets.
    fn family(&mut self, name: &str, kind: &str, labels: &[&str]) -> bool {
        match self.m.types.get(name) {
            None => {
                self.fail(format!("family {name} ({kind}) is missing"));
                return false;
            }
            Some(t) if t != kind => {
                self.fail(format!("family {name} is a {t}, expected a {kind}"));
                return false;
            }
            Some(_) => {}
        }
        let want: BTreeSet<&str> = labels.iter().copied().collect();
        let names: Vec<String> = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect()
        } else {
            vec![name.to_string()]
        };
        let mut ok = true;
        for n in &names {
            let mut any = false;
            for s in self.m.named(n) {
                any = true;
                let mut have: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
                if n.ends_with("_bucket") && !have.remove("le") {
                    self.fail(format!("{n}: a bucket without le: {:?}", s.labels));
                    ok = false;
                }
                if have != want {
                    self.fail(format!(
                        "{n}: labels {have:?}, expected exactly {want:?} ({:?})",
                        s.labels
                    ));
                    ok = false;
                    break;
                }
            }
            if !any {
                self.fail(format!("{n}: no samples (no label set initialized)"));
                ok = false;
            }
        }
        if kind == "histogram" && ok {
            self.buckets(name);
        }
        ok
    }

    /// Every label set of histogram `name` has the contract's buckets, cumulative, with
    /// `+Inf` equal to `_count`.
    fn buckets(&mut self, name: &str) {
        let bucket = format!("{name}_bucket");
        let mut sets: BTreeMap<LabelSet, Vec<(f64, f64)>> = BTreeMap::new();
        for s in self.m.named(&bucket) {
            let mut key: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.retain(|(k, _)| k != "le");
            let le = parse_value(&s.labels["le"]);
            sets.entry(key).or_default().push((le, s.value));
        }
        for (key, mut les) in sets {
            les.sort_by(|a, b| a.0.total_cmp(&b.0));
            let bounds: Vec<f64> = les.iter().map(|(le, _)| *le).collect();
            let mut want = BUCKETS.to_vec();
            want.push(f64::INFINITY);
            if bounds != want {
                self.fail(format!(
                    "{bucket}{key:?}: buckets {bounds:?}, expected {want:?}"
                ));
                continue;
            }
            if les.windows(2).any(|w| w[1].1 < w[0].1) {
                self.fail(format!(
                    "{bucket}{key:?}: buckets are not cumulative: {les:?}"
                ));
            }
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let count = self.m.value(&format!("{name}_count"), &labels);
            if count != Some(les.last().unwrap().1) {
                self.fail(format!(
                    "{name}_count{key:?} = {count:?}, but the +Inf bucket says {}",
                    les.last().unwrap().1
                ));
            }
        }
    }

    /// The sample with exactly these labels has this value.
    fn eq(&mut self, name: &str, labels: &[(&str, &str)], want: f64) {
        let got = self.m.value(name, labels);
        if got != Some(want) {
            let others: Vec<String> = self
                .m
                .named(name)
                .map(|s| format!("{:?}={}", s.labels, s.value))
                .collect();
            self.fail(format!(
                "{name}{labels:?} = {got:?}, expected {want}; present: {others:?}"
            ));
        }
    }

    /// The sum over every sample of `name` is `want` (no traffic counted twice or elsewhere).
    fn total(&mut self, name: &str, want: f64) {
        let got = self.m.sum(name);
        if got != want {
            self.fail(format!("sum of {name} = {got}, expected {want}"));
        }
    }

    /// The sample exists and its value satisfies `ok`.
    fn check(&mut self, name: &str, labels: &[(&str, &str)], what: &str, ok: impl Fn(f64) -> bool) {
        match self.m.value(name, labels) {
            Some(v) if ok(v) => {}
            got => self.fail(format!("{name}{labels:?} = {got:?}, expected {what}")),
        }
    }

    /// Every sample of `name` (a family that sees no traffic in this test) is 0.
    fn all_zero(&mut self, name: &str) {
        for s in self.m.named(name) {
            if s.value != 0.0 {
                self.fail(format!("{name}{:?} = {}, expected 0", s.labels, s.value));
            }
        }
    }
}

#[test]
fn metrics_families_labels_and_counts() {
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (idp, app, gw) = start("metrics");
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

    // Every check over one scrape, retried while late counters and gauges settle.
    let mut scrape = Scrape::fetch(&gw);
    let deadline = Instant::now() + Duration::from_secs(5);
    let problems = loop {
        let m = &scrape;
        let mut c = Check::new(m);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();

        // Requests: exact counts by tenant, route, method and status class.
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

        // Authentication and authorization.
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

        // Browser sessions: no traffic yet, but every family exists (initialized to 0).
        for (name, kind, labels) in [
            (
                "gatehouse_login_total",
                "counter",
                &["tenant", "result"][..],
            ),
            ("gatehouse_logout_total", "counter", &["tenant"][..]),
            ("gatehouse_token_refresh_total", "counter", &["result"][..]),
            (
                "gatehouse_session_store_errors_total",
                "counter",
                &["op"][..],
            ),
            ("gatehouse_sessions_active", "gauge", &[][..]),
        ] {
            if c.family(name, kind, labels) {
                c.all_zero(name);
            }
        }
        if c.family(
            "gatehouse_session_store_duration_seconds",
            "histogram",
            &["op"],
        ) {
            c.all_zero("gatehouse_session_store_duration_seconds_count");
        }
        for name in ["gatehouse_login_total", "gatehouse_logout_total"] {
            if m.named(name).next().is_some()
                && !m
                    .named(name)
                    .any(|s| s.labels.get("tenant").map(String::as_str) == Some("demo"))
            {
                c.fail(format!("{name}: no series for tenant demo"));
            }
        }

        // Upstreams, configuration, build.
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
                v >= started_at - 5.0 && v <= now + 5.0
            });
        }
        if c.family("gatehouse_build_info", "gauge", &["version"]) {
            c.eq(
                "gatehouse_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))],
                1.0,
            );
        }

        // Never a raw path, host, token or credential in a label.
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

        let found = c.problems;
        if found.is_empty() || Instant::now() >= deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
        scrape = Scrape::fetch(&gw);
    };
    assert!(
        problems.is_empty(),
        "{} metrics contract violations:\n  {}\n/metrics:\n{}",
        problems.len(),
        problems.join("\n  "),
        scrape.text
    );
}

// ---- Prometheus -----------------------------------------------------------------------------

/// `name` on PATH (or in /usr/bin, where Debian installs prometheus and promtool).
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The rule files CI and operators load: every `deploy/prometheus/*.yml`.
fn rule_files() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    files
}

/// A real Prometheus on a loopback port with its data in a temp dir; stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    log_path: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    fn start(bin: &Path, scrape: std::net::SocketAddr) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let rules: Vec<String> = rule_files()
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect();
        let config = format!(
            r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: gatehouse
    static_configs:
      - targets: ["{scrape}"]
"#,
            rules = rules.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let ready = wait_until(Duration::from_secs(30), || {
            get(addr, "127.0.0.1", "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        assert!(ready, "prometheus did not become ready; log:\n{}", p.log());
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal_pid(self.child.id(), "TERM");
        if !wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs a command from the repository root: (success, stdout + stderr).
fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_evaluates_every_dashboard_and_rule_expression() {
    let Some(prometheus) = which("prometheus") else {
        skip_or_fail(
            "prometheus_evaluates_every_dashboard_and_rule_expression",
            "`prometheus` is not installed (Debian: apt-get install -y prometheus)",
        );
        return;
    };
    let promtool = which("promtool").expect("promtool (installed with prometheus)");
    let python = which("python3").expect("python3 runs testing/prometheus/*.py");

    // The rule files are valid Prometheus 2 rule files.
    let files: Vec<String> = rule_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, out) = run(&promtool, &args);
    assert!(ok, "promtool check rules failed:\n{out}");

    let (idp, _app, gw) = start("prometheus");
    let prom = Prometheus::start(&prometheus, gw.admin);

    // ~15 s of mixed traffic (bounded): allowed, cached, refused, forged, unknown host, bad
    // path and 503, so every family and label the panels and rules read has data.
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let (bad_sig, bad_kid) = (bad_signature(&admin), unknown_kid(&admin));
    let h = "demo.localhost";
    let plan: Vec<(&str, &str, Option<&str>, u16)> = vec![
        (h, "/public/hello", None, 200),
        (h, "/api/admin/x", Some(admin.as_str()), 200),
        (h, "/api/things", Some(user.as_str()), 200),
        (h, "/api/things", None, 401),
        (h, "/api/admin/x", Some(user.as_str()), 403),
        (h, "/api/admin/x", Some(bad_sig.as_str()), 401),
        (h, "/api/admin/x", Some(bad_kid.as_str()), 401),
        ("nobody.example", "/", None, 404),
        (h, "/public/a%2Fb", None, 400),
        (h, "/down/x", None, 503),
    ];
    let started = Instant::now();
    let mut sent = 0;
    for round in 0..300 {
        if started.elapsed() >= Duration::from_secs(15) {
            break;
        }
        for (host, path, token, want) in &plan {
            let header = token.map(bearer);
            let extra: Vec<(&str, &str)> = header
                .iter()
                .map(|v| ("Authorization", v.as_str()))
                .collect();
            let r = gw.get_with(host, path, &extra);
            assert_eq!(r.status, *want, "round {round}: {host}{path}: {}", r.text());
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("sent {sent} requests in {:?}", started.elapsed());

    // Every panel, variable and rule expression returns data (alerts in their bool form).
    let script = repo_root().join("testing/prometheus/promql.py");
    let (ok, out) = run(
        &python,
        &[
            script.to_str().unwrap(),
            "check",
            "--prometheus",
            &prom.url,
            "--wait",
            "30",
            "--verbose",
        ],
    );
    println!("{out}");
    assert!(
        ok,
        "expressions without data (or invalid):\n{out}\nprometheus log:\n{}",
        prom.log()
    );

    // The latency panel plots into a PNG.
    let out_dir = TempDir::new("plot");
    let png = out_dir.path().join("latency.png");
    let script = repo_root().join("testing/prometheus/plot_latency.py");
    let (ok, out) = run(
        &python,
        &[
            script.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--since",
            "2m",
            "--out",
            png.to_str().unwrap(),
        ],
    );
    assert!(ok, "plot_latency.py failed:\n{out}");
    let bytes = std::fs::read(&png).expect("the PNG was written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 400 && height >= 200, "{width}x{height}");
    assert!(
        bytes.len() > 4000,
        "a plot, not a blank image: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
}

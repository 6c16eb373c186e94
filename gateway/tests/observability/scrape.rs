//! The Prometheus text format: a parsed `/metrics` scrape and the contract checks over it.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;

/// The histogram buckets of every `_seconds` histogram (the contract).
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A sample's labels other than `le`, in order.
type LabelSet = Vec<(String, String)>;

/// A parsed `/metrics` scrape.
pub struct Scrape {
    pub text: String,
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
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
    /// Parses the text format: `# TYPE` lines and samples.
    pub fn parse(text: String) -> Scrape {
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

    /// `GET /metrics` on the admin listener, which must answer 200.
    pub fn fetch(gw: &Gateway) -> Scrape {
        let r = get(gw.admin, "admin", "/metrics", &[]).expect("GET /metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        Scrape::parse(r.text())
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.named(name).find(|s| s.labels == want).map(|s| s.value)
    }

    /// The sum over every sample of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.named(name).map(|s| s.value).sum()
    }
}

/// Collects every contract violation of one scrape, so one run reports all of them.
pub struct Check<'a> {
    m: &'a Scrape,
    pub problems: Vec<String>,
}

impl<'a> Check<'a> {
    pub fn new(m: &'a Scrape) -> Check<'a> {
        Check {
            m,
            problems: Vec::new(),
        }
    }

    /// Records a violation.
    pub fn fail(&mut self, msg: String) {
        self.problems.push(msg);
    }

    /// The family exists with this type and every sample carries exactly `labels` (plus `le`
    /// on histogram buckets); histograms use the contract's buckets.
    pub fn family(&mut self, name: &str, kind: &str, labels: &[&str]) -> bool {
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
    pub fn eq(&mut self, name: &str, labels: &[(&str, &str)], want: f64) {
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
    pub fn total(&mut self, name: &str, want: f64) {
        let got = self.m.sum(name);
        if got != want {
            self.fail(format!("sum of {name} = {got}, expected {want}"));
        }
    }

    /// The sample exists and its value satisfies `ok`.
    pub fn check(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        what: &str,
        ok: impl Fn(f64) -> bool,
    ) {
        match self.m.value(name, labels) {
            Some(v) if ok(v) => {}
            got => self.fail(format!("{name}{labels:?} = {got:?}, expected {what}")),
        }
    }

    /// Every sample of `name` (a family that sees no traffic in this test) is 0.
    pub fn all_zero(&mut self, name: &str) {
        for s in self.m.named(name) {
            if s.value != 0.0 {
                self.fail(format!("{name}{:?} = {}, expected 0", s.labels, s.value));
            }
        }
    }
}

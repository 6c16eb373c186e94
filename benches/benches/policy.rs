//! Micro-benchmarks of the per-request policy blocks, each beside the naive alternative where
//! there is one.
//!
//! Run: `cargo bench -p gatehouse-benches --bench policy -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_policy::host::HostTable;
use gatehouse_policy::path::normalize_path;
use gatehouse_policy::request_id::{is_valid_request_id, new_request_id};
use gatehouse_policy::routes::{MethodSet, RouteTable};
use http::Method;

fn bench_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize_path");
    for (name, path) in [
        ("normal", &b"/api/v1/tenants/acme/users/12345/profile"[..]),
        (
            "needs_work",
            &b"//api/v1/./tenants/%61cme/users/../users/12345/profile%3a"[..],
        ),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(name), path, |b, p| {
            b.iter(|| normalize_path(black_box(p)).map(|c| c.len()))
        });
    }
    g.finish();
}

fn bench_host(c: &mut Criterion) {
    // 5 000 exact names and 5 000 wildcards.
    let pairs = (0..10_000).map(|i| {
        if i % 2 == 0 {
            (format!("tenant{i}.example.com"), i)
        } else {
            (format!("*.tenant{i}.example.com"), i)
        }
    });
    let table = HostTable::new(pairs).expect("valid hosts");
    let mut g = c.benchmark_group("host_lookup_10k");
    for (name, host) in [
        ("exact", "Tenant4242.example.com:443"),
        ("wildcard", "app.eu.tenant4243.example.com"),
        ("miss", "unknown.example.org"),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(name), host, |b, h| {
            b.iter(|| table.lookup(black_box(h)))
        });
    }
    g.finish();
}

/// One route of the naive reference.
struct NaiveRoute {
    key: String,
    prefix: bool,
    methods: Option<MethodSet>,
    value: usize,
}

/// What a linear scan costs: every route is checked and ranked.
fn naive_lookup<'a>(routes: &'a [NaiveRoute], path: &str, method: &Method) -> Option<&'a usize> {
    let mut best: Option<((u8, usize, bool), &usize)> = None;
    for r in routes {
        if !r.methods.is_none_or(|m| m.contains(method)) {
            continue;
        }
        let rank = if r.prefix {
            let hit = path == r.key
                || path
                    .strip_prefix(r.key.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if !hit {
                continue;
            }
            (0, r.key.len(), r.methods.is_some())
        } else {
            if path != r.key {
                continue;
            }
            (1, 0, r.methods.is_some())
        };
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, &r.value));
        }
    }
    best.map(|(_, v)| v)
}

/// `n` routes shaped like a real tenant's: a catch-all, per-service prefixes, per-resource
/// prefixes with method sets, and some exact endpoints.
fn routes(n: usize) -> Vec<NaiveRoute> {
    let mut out = vec![NaiveRoute {
        key: String::new(),
        prefix: true,
        methods: None,
        value: 0,
    }];
    let mut i = 1;
    while out.len() < n {
        let svc = i % 50;
        let (key, prefix, methods) = match i % 4 {
            0 => (format!("/svc{svc}/v1/res{i}"), true, None),
            1 => (
                format!("/svc{svc}/v1/res{}", i - 1),
                true,
                Some(MethodSet::GET | MethodSet::HEAD),
            ),
            2 => (format!("/svc{svc}/v1/res{i}/health"), false, None),
            _ => (format!("/svc{svc}/v2/items{i}/detail"), true, None),
        };
        out.push(NaiveRoute {
            key,
            prefix,
            methods,
            value: i,
        });
        i += 1;
    }
    out
}

fn bench_routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [10, 1_000, 10_000] {
        let naive = routes(n);
        let mut b = RouteTable::builder();
        for r in &naive {
            let pattern = if r.prefix {
                format!("{}/*", r.key)
            } else {
                r.key.clone()
            };
            b.insert(&pattern, r.methods, r.value).expect("valid route");
        }
        let table = b.build();
        // A path under the last deep prefix route, so the naive scan cannot stop early anyway.
        let target = naive
            .iter()
            .rev()
            .find(|r| r.prefix && r.methods.is_none() && !r.key.is_empty())
            .map_or_else(|| "/x".to_owned(), |r| format!("{}/a/b/c", r.key));
        let method = Method::POST;
        assert_eq!(
            table.lookup(&target, &method),
            naive_lookup(&naive, &target, &method)
        );
        g.bench_with_input(BenchmarkId::new("table", n), &target, |b, p| {
            b.iter(|| table.lookup(black_box(p), black_box(&method)))
        });
        g.bench_with_input(BenchmarkId::new("naive_scan", n), &target, |b, p| {
            b.iter(|| naive_lookup(&naive, black_box(p), black_box(&method)))
        });
    }
    g.finish();
}

fn bench_request_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_id");
    g.bench_function("new", |b| b.iter(new_request_id));
    g.bench_function("validate_36", |b| {
        b.iter(|| is_valid_request_id(black_box(b"3f2b9c1e-5d4a-4f6b-9e8d-7c6b5a493827")))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_path,
    bench_host,
    bench_routes,
    bench_request_id
);
criterion_main!(benches);

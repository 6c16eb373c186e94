//! The tenants' and routes' `rate-limits` at run time: one lock-free table per limit
//! (`gatehouse_policy::ratelimit`), kept across reloads while the limit is unchanged, checked
//! after authentication on every request about to be proxied.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use gatehouse_config::{Config, RateLimit, RateLimitKey};
use gatehouse_policy::ratelimit::{
    policy_item, wait_seconds, Bucket, LocalLimiter, Verdict, TABLE_SLOTS,
};
use gatehouse_policy::snapshot::{Denial, RouteRef};
use http::HeaderValue;

mod shared;
pub use shared::SharedBuckets;

/// One configured limit.
pub struct Limit {
    /// As configured.
    pub definition: RateLimit,
    /// The policy's name in the `RateLimit` headers (`tenant.client-ip`, `route.subject`, ...).
    pub name: String,
    /// The `RateLimit-Policy` item.
    pub policy: HeaderValue,
    /// The per-key buckets (for a `shared` limit: when Redis cannot decide).
    pub local: Arc<LocalLimiter>,
    /// For a `shared` limit: its part of the Redis key (tenant, route, index).
    pub shared_id: Option<String>,
}

/// One tenant's limits.
#[derive(Default)]
pub struct TenantLimits {
    tenant: Vec<Limit>,
    routes: Vec<Vec<Limit>>,
    /// Whether any limit is configured on the tenant or one of its routes.
    pub any: bool,
}

impl TenantLimits {
    /// The limits a request on `route` passes, tenant's first; a denial's `limit` indexes this.
    pub fn for_route(&self, route: RouteRef) -> impl Iterator<Item = &Limit> {
        let route_limits = match route {
            RouteRef::Route(r) => self.routes.get(r).map(Vec::as_slice).unwrap_or_default(),
            RouteRef::Unmatched => &[],
        };
        self.tenant.iter().chain(route_limits)
    }
}

/// Who a request is, for the limits' keys.
pub struct Caller<'a> {
    /// The client address (see `gatehouse_policy::ratelimit::client_address`).
    pub ip: Option<IpAddr>,
    /// The authenticated `sub`, if any.
    pub subject: Option<&'a str>,
}

/// Every tenant's limits, indexed like the config's tenants.
#[derive(Default)]
pub struct Limits(Vec<TenantLimits>);

/// What a limit is reused by across reloads: tenant, route (none for the tenant's own), index
/// and definition.
type Identity = (String, Option<String>, usize, RateLimit);

impl Limits {
    /// Builds the limits of `config`, reusing the tables of `previous` whose limit is unchanged
    /// (so a reload neither forgets nor resets anyone's bucket).
    pub fn build(
        config: &Config,
        previous: Option<&Limits>,
        previous_config: Option<&Config>,
    ) -> Limits {
        let mut reusable: HashMap<Identity, Arc<LocalLimiter>> = HashMap::new();
        if let (Some(prev), Some(prev_config)) = (previous, previous_config) {
            for (t, tenant) in prev_config.tenants.iter().enumerate() {
                let Some(limits) = prev.0.get(t) else {
                    continue;
                };
                for (i, l) in limits.tenant.iter().enumerate() {
                    reusable.insert(
                        (tenant.name.clone(), None, i, l.definition.clone()),
                        l.local.clone(),
                    );
                }
                for (r, route) in tenant.routes.iter().enumerate() {
                    for (i, l) in limits.routes.get(r).into_iter().flatten().enumerate() {
                        reusable.insert(
                            (
                                tenant.name.clone(),
                                Some(route.name.clone()),
                                i,
                                l.definition.clone(),
                            ),
                            l.local.clone(),
                        );
                    }
                }
            }
        }
        let mut make = |tenant: &str, route: Option<&str>, list: &[RateLimit]| -> Vec<Limit> {
            list.iter()
                .enumerate()
                .map(|(i, definition)| {
                    let id = (
                        tenant.to_string(),
                        route.map(str::to_string),
                        i,
                        definition.clone(),
                    );
                    let bucket = Bucket::new(definition.count, definition.period, definition.burst);
                    let local = reusable.remove(&id).unwrap_or_else(|| {
                        let slots = match definition.key {
                            RateLimitKey::Tenant => 1,
                            _ => TABLE_SLOTS,
                        };
                        Arc::new(LocalLimiter::new(bucket, slots))
                    });
                    let name = policy_name(route.is_some(), definition.key, i, list);
                    Limit {
                        shared_id: definition
                            .shared
                            .then(|| format!("{tenant}/{}/{i}", route.unwrap_or("-"))),
                        policy: policy_item(&name, bucket),
                        name,
                        definition: definition.clone(),
                        local,
                    }
                })
                .collect()
        };
        Limits(
            config
                .tenants
                .iter()
                .map(|t| {
                    let tenant = make(&t.name, None, &t.rate_limits);
                    let routes: Vec<Vec<Limit>> = t
                        .routes
                        .iter()
                        .map(|r| make(&t.name, Some(&r.name), &r.rate_limits))
                        .collect();
                    TenantLimits {
                        any: !tenant.is_empty() || routes.iter().any(|r| !r.is_empty()),
                        tenant,
                        routes,
                    }
                })
                .collect(),
        )
    }

    /// Tenant `t`'s limits.
    pub fn tenant(&self, t: usize) -> &TenantLimits {
        &self.0[t]
    }

    /// The limit a [`Denial::RateLimited`] names.
    pub fn limit(&self, t: usize, route: RouteRef, index: usize) -> Option<&Limit> {
        self.0.get(t)?.for_route(route).nth(index)
    }
}

/// `tenant.<key>` or `route.<key>`, with the limit's index when the same key appears twice in
/// one list.
fn policy_name(route: bool, key: RateLimitKey, index: usize, list: &[RateLimit]) -> String {
    let scope = if route { "route" } else { "tenant" };
    if list.iter().filter(|l| l.key == key).count() > 1 {
        format!("{scope}.{}.{index}", key.as_str())
    } else {
        format!("{scope}.{}", key.as_str())
    }
}

/// Takes a token from every limit of the request's tenant and route, in order; the first one
/// that is empty refuses the request (tokens taken by the limits before it stay taken). A
/// `shared` limit asks Redis (`shared`, with `fallback` counted when the local bucket has to
/// decide instead); the others never await.
pub async fn check(
    limits: &TenantLimits,
    route: RouteRef,
    caller: &Caller<'_>,
    now: Instant,
    shared: &SharedBuckets,
    fallback: impl Fn(),
) -> Result<(), (Denial, RateLimitKey)> {
    for (i, limit) in limits.for_route(route).enumerate() {
        let local = &limit.local;
        let verdict = match limit.shared_id.as_deref() {
            Some(id) => {
                let bucket = local.bucket();
                let key = shared_key(id, limit.definition.key, caller);
                match shared.take(&key, bucket.interval_us, bucket.burst).await {
                    Some(gatehouse_session::store::SharedVerdict::Allowed(remaining)) => {
                        Verdict::Allowed { remaining }
                    }
                    Some(gatehouse_session::store::SharedVerdict::Limited(wait_ms)) => {
                        Verdict::Limited {
                            wait_us: wait_ms.saturating_mul(1000),
                        }
                    }
                    None => {
                        fallback();
                        local_check(limit, caller, now)
                    }
                }
            }
            None => local_check(limit, caller, now),
        };
        if let Verdict::Limited { wait_us } = verdict {
            return Err((
                Denial::RateLimited {
                    limit: i,
                    retry_after: wait_seconds(wait_us),
                },
                limit.definition.key,
            ));
        }
    }
    Ok(())
}

fn local_check(limit: &Limit, caller: &Caller<'_>, now: Instant) -> Verdict {
    let local = &limit.local;
    // Keys of different kinds never meet in one table, but a subject and an anonymous caller's
    // address do: the tag keeps them apart.
    let hash = match (limit.definition.key, caller.subject) {
        (RateLimitKey::Tenant, _) => 0,
        (RateLimitKey::Subject, Some(sub)) => local.hash(&(1u8, sub)),
        (RateLimitKey::ClientIp | RateLimitKey::Subject, _) => local.hash(&(0u8, caller.ip)),
    };
    local.check(hash, local.now_us(now))
}

/// The shared bucket's id: the limit's id and the caller's key (`s:` subject, `a:` address),
/// hashed so Redis holds neither, with a hash every replica computes alike.
fn shared_key(id: &str, key: RateLimitKey, caller: &Caller<'_>) -> String {
    use std::hash::Hasher as _;
    let mut h = gatehouse_session::store::StableHasher::default();
    match (key, caller.subject) {
        (RateLimitKey::Tenant, _) => return id.to_string(),
        (RateLimitKey::Subject, Some(sub)) => {
            h.write(b"s:");
            h.write(sub.as_bytes());
        }
        _ => {
            h.write(b"a:");
            match caller.ip.map(|ip| ip.to_canonical()) {
                Some(IpAddr::V4(ip)) => h.write(&ip.octets()),
                Some(IpAddr::V6(ip)) => h.write(&ip.octets()),
                None => {}
            }
        }
    }
    format!("{id}:{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        gatehouse_config::parse(yaml, "t.yaml", &|_| None).unwrap()
    }

    /// A check of local limits only, which never awaits.
    fn check(
        t: &TenantLimits,
        route: RouteRef,
        caller: &Caller<'_>,
        now: Instant,
    ) -> Result<(), (Denial, RateLimitKey)> {
        use futures_util::FutureExt as _;
        let shared = SharedBuckets::new(&Default::default());
        super::check(t, route, caller, now, &shared, || {
            panic!("no shared limit here")
        })
        .now_or_never()
        .expect("local limits never await")
    }

    #[test]
    fn shared_keys_hash_the_caller_and_tell_kinds_apart() {
        let ip = Some("192.0.2.1".parse().unwrap());
        let a = Caller {
            ip,
            subject: Some("alice"),
        };
        let anon = Caller { ip, subject: None };
        let k = |key, c: &Caller<'_>| shared_key("demo/-/0", key, c);
        assert_eq!(k(RateLimitKey::Tenant, &a), "demo/-/0");
        assert_ne!(
            k(RateLimitKey::Subject, &a),
            k(RateLimitKey::Subject, &anon)
        );
        assert_eq!(
            k(RateLimitKey::Subject, &anon),
            k(RateLimitKey::ClientIp, &a)
        );
        assert!(!k(RateLimitKey::Subject, &a).contains("alice"));
        assert!(k(RateLimitKey::ClientIp, &a).starts_with("demo/-/0:"));
    }

    const YAML: &str = "
identity-providers:
  - { name: idp, issuer: \"https://idp.example\", client-id: gatehouse }
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: idp
    upstreams: [{ name: app, targets: [\"127.0.0.1:1\"] }]
    rate-limits:
      - { key: client-ip, rate: 1/m, burst: 2 }
    routes:
      - uri: /api/*
        rate-limits:
          - { key: subject, rate: 1/m, burst: 1 }
          - { key: subject, rate: 100/h, burst: 5 }
      - uri: /*
";

    #[test]
    fn tenant_then_route_limits_by_key_and_names() {
        let c = config(YAML);
        let limits = Limits::build(&c, None, None);
        let t = limits.tenant(0);
        assert!(t.any);
        let names: Vec<&str> = t
            .for_route(RouteRef::Route(0))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["tenant.client-ip", "route.subject.0", "route.subject.1"]
        );
        assert_eq!(t.tenant[0].policy, "\"tenant.client-ip\";q=2;w=120");
        let now = Instant::now();
        let ip = Some("127.0.0.2".parse().unwrap());
        let alice = Caller {
            ip,
            subject: Some("alice"),
        };
        let bob = Caller {
            ip: Some("127.0.0.3".parse().unwrap()),
            subject: Some("bob"),
        };
        assert!(check(t, RouteRef::Route(0), &alice, now).is_ok());
        // alice's own limit of 1 is spent; bob (another address) is not affected.
        let (denial, key) = check(t, RouteRef::Route(0), &alice, now).unwrap_err();
        assert_eq!((denial.status(), key), (429, RateLimitKey::Subject));
        assert!(matches!(
            denial,
            Denial::RateLimited {
                limit: 1,
                retry_after: 60
            }
        ));
        assert!(check(t, RouteRef::Route(0), &bob, now).is_ok());
        // alice's address has used its 2 tokens: refused by the tenant's limit, on any route.
        let (denial, key) = check(t, RouteRef::Unmatched, &alice, now).unwrap_err();
        assert_eq!(key, RateLimitKey::ClientIp);
        assert!(matches!(denial, Denial::RateLimited { limit: 0, .. }));
        assert_eq!(
            limits
                .limit(0, RouteRef::Route(0), 2)
                .map(|l| l.name.as_str()),
            Some("route.subject.1")
        );
    }

    #[test]
    fn a_reload_keeps_unchanged_buckets_and_renews_changed_ones() {
        let c = config(YAML);
        let first = Limits::build(&c, None, None);
        let same = Limits::build(&c, Some(&first), Some(&c));
        assert!(Arc::ptr_eq(
            &first.tenant(0).tenant[0].local,
            &same.tenant(0).tenant[0].local
        ));
        let changed = config(&YAML.replace("rate: 1/m, burst: 2", "rate: 2/m, burst: 2"));
        let next = Limits::build(&changed, Some(&same), Some(&c));
        assert!(!Arc::ptr_eq(
            &same.tenant(0).tenant[0].local,
            &next.tenant(0).tenant[0].local
        ));
        assert!(Arc::ptr_eq(
            &same.tenant(0).routes[0][0].local,
            &next.tenant(0).routes[0][0].local
        ));
    }
}

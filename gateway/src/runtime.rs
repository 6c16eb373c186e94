//! The compiled, immutable runtime a request reads once: the policy snapshot (hosts, routes,
//! header sets), the upstream pools and the TLS certificates. A reload compiles a new one and
//! swaps it in with `ArcSwap`; requests in flight keep the one they loaded.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::Config;
use gatehouse_policy::snapshot::{RouteRef, Snapshot};
use prometheus::IntCounter;

use crate::assertion::TenantAssertion;
use crate::auth::Provider;
use crate::login_settings::cookies::GatewayCookies;
use crate::login_settings::tenant::TenantLogin;
use crate::metrics::{Metrics, RouteMetrics};
use crate::pools::Pool;
use crate::tls::{CertStore, CurrentCertificates};

/// Everything a request needs, compiled from one config.
pub struct Runtime {
    /// The config this runtime was compiled from.
    pub config: Arc<Config>,
    /// Hosts, routes, header sets: pure policy.
    pub policy: Snapshot,
    /// `pools[tenant][upstream]`, indexed like the config's tenants and upstreams.
    pub pools: Vec<Vec<Arc<Pool>>>,
    /// Certificates by SNI name (empty without `tls-listen`).
    pub certs: CertStore,
    /// Identity providers by name.
    pub providers: HashMap<String, Arc<Provider>>,
    /// Each tenant's identity provider, indexed like the tenants: a request finds its provider
    /// by index rather than hashing the provider's name.
    pub tenant_providers: Vec<Option<Arc<Provider>>>,
    /// Browser login settings per tenant (tenants with `login`), indexed like the tenants.
    pub logins: Vec<Option<TenantLogin>>,
    /// Every tenant's gateway cookies, removed from every proxied request.
    pub gateway_cookies: GatewayCookies,
    /// Pre-resolved metric handles, indexed like the tenants.
    pub tenant_metrics: Vec<TenantMetrics>,
    /// Metrics of requests that matched no tenant.
    pub unknown_host_metrics: RouteMetrics,
    /// Identity-assertion signers, indexed like the tenants (`None`: the tenant has none).
    pub assertions: Vec<Option<Arc<TenantAssertion>>>,
    /// Every tenant's and route's `rate-limits`.
    pub limits: crate::ratelimit::Limits,
    /// DPoP server nonces, indexed like the tenants (`None`: no route of the tenant has
    /// `dpop-nonce`).
    pub dpop_nonces: Vec<Option<Arc<gatehouse_session::dpop::NonceIssuer>>>,
}

/// One tenant's pre-resolved metric handles.
pub struct TenantMetrics {
    /// Per route, in file order.
    pub routes: Vec<RouteMetrics>,
    /// Paths that matched no route.
    pub unmatched: RouteMetrics,
    /// `gatehouse_auth_decisions_total{result="allowed",reason="ok"}`.
    pub auth_allowed: IntCounter,
}

/// The shared handle to the runtime currently in force.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

impl Runtime {
    /// Compiles `config`. Pools whose upstream definition is unchanged from `previous` are
    /// reused (keeping their health state and idle connections); others are created fresh.
    pub fn compile(
        config: Arc<Config>,
        previous: Option<&Runtime>,
        metrics: &Metrics,
    ) -> Result<Runtime, String> {
        let policy = Snapshot::compile(&config).map_err(|e| e.to_string())?;
        let mut reusable: HashMap<(&str, &str), &Arc<Pool>> = HashMap::new();
        if let Some(prev) = previous {
            for (t, tenant) in prev.config.tenants.iter().enumerate() {
                for (u, upstream) in tenant.upstreams.iter().enumerate() {
                    reusable.insert((&tenant.name, &upstream.name), &prev.pools[t][u]);
                }
            }
        }
        let mut pools = Vec::with_capacity(config.tenants.len());
        for tenant in &config.tenants {
            let mut tenant_pools = Vec::with_capacity(tenant.upstreams.len());
            for upstream in &tenant.upstreams {
                let pool = match reusable.get(&(tenant.name.as_str(), upstream.name.as_str())) {
                    Some(p) if p.definition == *upstream => Arc::clone(p),
                    _ => Arc::new(Pool::new(&tenant.name, upstream, metrics).map_err(|e| {
                        format!("tenant {}: upstream {}: {e}", tenant.name, upstream.name)
                    })?),
                };
                tenant_pools.push(pool);
            }
            pools.push(tenant_pools);
        }
        let certs = CertStore::load(&config)?;
        let mut providers = HashMap::new();
        for definition in &config.identity_providers {
            let previous = previous.and_then(|p| p.providers.get(&definition.name));
            let provider = match previous {
                Some(p) if p.definition == *definition => Arc::clone(p),
                _ => Arc::new(
                    Provider::new(definition, metrics)
                        .map_err(|e| format!("identity provider {}: {e}", definition.name))?,
                ),
            };
            providers.insert(definition.name.clone(), provider);
        }
        let tenant_providers = config
            .tenants
            .iter()
            .map(|t| {
                t.identity_provider
                    .as_ref()
                    .and_then(|p| providers.get(p))
                    .cloned()
            })
            .collect();
        let tenant_metrics = config
            .tenants
            .iter()
            .map(|t| TenantMetrics {
                routes: t
                    .routes
                    .iter()
                    .map(|r| metrics.route(&t.name, &r.name))
                    .collect(),
                unmatched: metrics.route(&t.name, "-"),
                auth_allowed: metrics.auth_allowed(&t.name),
            })
            .collect();
        let mut logins = Vec::with_capacity(config.tenants.len());
        for tenant in &config.tenants {
            let login = match (
                &tenant.login,
                tenant
                    .identity_provider
                    .as_ref()
                    .and_then(|p| providers.get(p)),
            ) {
                (Some(login), Some(provider)) => Some(
                    TenantLogin::new(
                        &tenant.name,
                        &provider.definition.issuer,
                        &tenant.cookie,
                        login,
                        Arc::clone(&provider.oidc),
                        Arc::clone(&provider.verifier),
                    )
                    .map_err(|e| format!("tenant {}: {e}", tenant.name))?,
                ),
                _ => None,
            };
            logins.push(login);
        }
        let assertions = crate::assertion::build(
            &config,
            previous.map_or(&[][..], |p| p.assertions.as_slice()),
        )?;
        metrics.init_series(&config);
        crate::observers::init_series(metrics, &config);
        let limits = crate::ratelimit::Limits::build(
            &config,
            previous.map(|p| &p.limits),
            previous.map(|p| &*p.config),
        );
        let dpop_nonces = config
            .tenants
            .iter()
            .map(crate::dpop::nonce_issuer)
            .collect();
        Ok(Runtime {
            assertions,
            limits,
            dpop_nonces,
            logins,
            gateway_cookies: GatewayCookies::from_config(&config),
            unknown_host_metrics: metrics.route("-", "-"),
            tenant_metrics,
            config,
            policy,
            pools,
            certs,
            providers,
            tenant_providers,
        })
    }

    /// Checks what `compile` would, without building pools (no DNS, no sockets): the policy
    /// compiles, every certificate loads and matches its key, every `jwks-file` parses, every
    /// identity-assertion key parses. For `gatehouse check`.
    pub fn validate(config: &Config) -> Result<(), String> {
        Snapshot::compile(config).map_err(|e| e.to_string())?;
        CertStore::load(config)?;
        crate::assertion::build(config, &[])?;
        for definition in &config.identity_providers {
            gatehouse_session::verifier::TokenVerifier::new(definition, 0)
                .map_err(|e| format!("identity provider {}: {e}", definition.name))?;
        }
        Ok(())
    }

    /// The identity provider of tenant `t`, if it names one.
    pub fn provider(&self, t: usize) -> Option<&Provider> {
        self.tenant_providers[t].as_deref()
    }

    /// The metric handles of a request's tenant and route.
    pub fn route_metrics(&self, tenant: Option<usize>, route: Option<RouteRef>) -> &RouteMetrics {
        match (tenant, route) {
            (Some(t), Some(RouteRef::Route(r))) => &self.tenant_metrics[t].routes[r],
            (Some(t), _) => &self.tenant_metrics[t].unmatched,
            (None, _) => &self.unknown_host_metrics,
        }
    }

    /// Every pool, once.
    pub fn all_pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.iter().flatten()
    }
}

impl CurrentCertificates for SharedRuntime {
    fn install(
        &self,
        server_name: Option<&str>,
        ssl: &mut pingora::protocols::tls::TlsRef,
    ) -> Result<bool, pingora::tls::error::ErrorStack> {
        self.load().certs.install(server_name, ssl)
    }
}

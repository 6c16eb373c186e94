//! The `ProxyHttp` phases. Each is thin: gather inputs from the session, call pure functions in
//! `gatehouse_policy`, act on the result.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_policy::admit::Admission;
use gatehouse_policy::headers::{forward_request, Forwarding};
use gatehouse_policy::request_id::is_valid_request_id;
use gatehouse_policy::snapshot::Denial;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};

use crate::accesslog::{AccessLog, Entry};
use crate::auth::each_identity_header;
use crate::connections::HeadTimed;
use crate::ctx::{arrival, client_host, RequestCtx};
use crate::identify::{identify, Demand, Need};
use crate::login::{self, Builtin, Sessions};
use crate::metrics::Metrics;
use crate::responses;
use crate::runtime::SharedRuntime;
use crate::upgrade;

mod steps;

pub(crate) use steps::request_head;

/// The boxed future an `#[async_trait]` method returns.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `/oauth/userinfo` answers for whoever the caller is, and for nobody.
const USERINFO_DEMAND: Demand = Demand {
    revocation_checked: false,
    identity: Need::Optional,
    resource: None,
    dpop: None,
};

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    /// The runtime in force; each request loads it once.
    pub runtime: SharedRuntime,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// `https://host:PORT` suffix for HTTPS redirects ("" for 443 or no TLS listener).
    pub https_port_suffix: String,
    /// Downstream keep-alive idle timeout, seconds.
    pub keepalive_secs: u64,
    /// The access log, unless disabled.
    pub access_log: Option<AccessLog>,
    /// Browser sessions (the store outlives reloads).
    pub sessions: Arc<Sessions>,
    /// The Redis buckets of `shared` rate limits (the connection outlives reloads).
    pub shared_limits: Arc<crate::ratelimit::SharedBuckets>,
    /// OpenTelemetry traces, when `tracing` is configured (read at start).
    pub tracer: crate::otel::SharedTracer,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a disabled compression module, whose
    /// context is still built and called on every request. gatehouse does not compress.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let runtime = self.runtime.load_full();
        session.set_keepalive(Some(self.keepalive_secs));
        // The head is in: its request-header-timeout deadline stops.
        if let Some(stream) = HeadTimed::of(session.as_downstream().stream()) {
            stream.head_read();
        }
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let req = session.req_header();
        let arrived = arrival(&runtime.policy, req, ctx.client_ip, ctx.tls);
        ctx.trusted_peer = arrived.trusted_peer;
        ctx.secure = arrived.secure;
        ctx.tenant = arrived.tenant;
        let id_header = match ctx.tenant {
            Some(t) => &runtime.policy.tenant(t).request_id_header,
            None => &runtime.policy.default_request_id_header,
        };
        // A valid client ID is kept (shared, not copied); otherwise the one `new_ctx` generated.
        if let Some(v) = req
            .headers
            .get(id_header)
            .filter(|v| is_valid_request_id(v.as_bytes()))
        {
            ctx.request_id = v.clone();
        }
        if let Some(tracer) = &self.tracer {
            (ctx.trace, ctx.traceparent) =
                tracer.begin(&req.headers, ctx.request_id.as_bytes(), ctx.started);
        }
        ctx.runtime = Some(runtime);
        self.metrics.in_flight.inc();
        Ok(())
    }

    /// Written out rather than `async fn`: an untraced request boxes `decide_and_act`'s future
    /// directly, as `#[async_trait]` would box the body. Awaiting it from inside an outer
    /// future instead moves the whole (several-kilobyte) future into that one on every request
    /// (`loadtest/README.md`, session 10).
    fn request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        session: &'life1 mut Session,
        ctx: &'life2 mut RequestCtx,
    ) -> BoxFuture<'async_trait, pingora::Result<bool>>
    where
        RequestCtx: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        if ctx.trace.is_none() {
            return Box::pin(self.decide_and_act(session, ctx));
        }
        Box::pin(async move {
            // A traced request: the verification, IdP and store calls made while deciding
            // are its child spans.
            let (result, children) =
                crate::otel::scope::collect(self.decide_and_act(session, ctx)).await;
            if let Some(trace) = ctx.trace.as_mut() {
                trace.children = children;
            }
            result
        })
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(chunk) = body {
            ctx.body_seen += chunk.len() as u64;
            if ctx.body_seen > ctx.body_limit {
                ctx.denial = Some(Denial::BodyTooLarge);
                // The client's fault: Pingora ends the request at once for a downstream error,
                // where an HTTP/2 upstream would otherwise be awaited for the rest of the body.
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body exceeds max-body-size",
                )
                .into_down());
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let runtime = ctx.runtime.as_deref().expect("set in early_request_filter");
        let (Some(tenant), Some(route)) = (ctx.tenant, ctx.route) else {
            return Error::e_explain(ErrorType::InternalError, "no route decided");
        };
        let upstream = runtime.policy.tenant(tenant).route(route).upstream;
        let pool = &runtime.pools[tenant][upstream];
        let mut key = [0u8; 16];
        let key: &[u8] = match ctx.client_ip {
            Some(IpAddr::V4(ip)) => {
                key[..4].copy_from_slice(&ip.octets());
                &key[..4]
            }
            Some(IpAddr::V6(ip)) => {
                key.copy_from_slice(&ip.octets());
                &key[..]
            }
            None => &key[..0],
        };
        match pool.select(key) {
            Some(mut peer) => {
                ctx.upstream = Some((upstream, std::time::Instant::now()));
                let req = session.req_header();
                if let Some(idle) = upgrade::upstream_read_timeout(req, ctx) {
                    peer.options.read_timeout = Some(idle);
                } else if let Some(deadline) = crate::grpc::call_read_timeout(
                    req,
                    peer.options.read_timeout,
                    runtime.policy.tenant(tenant).upgrade_idle_timeout,
                ) {
                    peer.options.read_timeout = Some(deadline);
                }
                Ok(peer)
            }
            None => {
                ctx.denial = Some(Denial::NoHealthyUpstream);
                Error::e_explain(ErrorType::HTTPStatus(503), "no healthy upstream target")
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let runtime = ctx.runtime.as_deref().expect("set in early_request_filter");
        let tenant = ctx.tenant.map(|t| runtime.policy.tenant(t));
        let identity_headers = tenant
            .map(|t| t.identity_headers.as_slice())
            .unwrap_or_default();
        let id_header = match tenant {
            Some(t) => &t.request_id_header,
            None => &runtime.policy.default_request_id_header,
        };
        let forwarding = Forwarding {
            client_ip: ctx.client_ip,
            trusted_peer: ctx.trusted_peer,
            tls: ctx.tls,
            authority: session.req_header().uri.authority().map(|a| a.as_str()),
            identity_headers,
            forward_access_token: tenant.is_some_and(|t| t.forward_access_token),
            pass_rewrite_headers: tenant.is_some_and(|t| t.pass_rewrite_headers),
            request_id: (id_header, ctx.request_id.clone()),
            assertion_header: tenant.and_then(|t| t.assertion_header.as_ref()),
            traceparent: ctx.traceparent.as_ref(),
        };
        edit_request_headers(upstream_request, |headers| {
            forward_request(headers, &forwarding);
            if let (Some(claims), Some(tenant)) = (&ctx.claims, tenant) {
                each_identity_header(claims, tenant, |name, value| {
                    headers.insert(name.clone(), value.clone());
                });
            }
            if let (Some(claims), Some(t), Some((u, _))) = (&ctx.claims, ctx.tenant, ctx.upstream) {
                if let Some(assertion) = &runtime.assertions[t] {
                    let upstream = &runtime.config.tenants[t].upstreams[u].name;
                    let host = client_host(session.req_header()).unwrap_or_default();
                    crate::assertion::insert(
                        headers,
                        assertion,
                        claims,
                        (u, upstream),
                        ctx.secure,
                        host,
                    );
                }
            }
            // Session and login-state cookies are the gateway's, every tenant's: the upstream
            // gets the identity headers instead.
            runtime.gateway_cookies.remove_from(headers);
        });
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some((upstream, started)), Some(t), Some(runtime)) =
            (ctx.upstream, ctx.tenant, ctx.runtime.as_deref())
        {
            let elapsed = started.elapsed();
            runtime.pools[t][upstream]
                .latency
                .observe(elapsed.as_secs_f64());
            ctx.upstream_elapsed = Some(elapsed);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if upgrade::completes_upgrade(upstream_response.status.as_u16(), session) {
            upgrade::upgraded(session, ctx, &self.metrics);
        }
        responses::apply_common_headers(upstream_response, ctx);
        if let Some(nonce) = crate::dpop::fresh_nonce(ctx) {
            upstream_response.insert_header("DPoP-Nonce", nonce)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 && session.response_written().is_none() {
            if ctx.runtime.is_none() {
                ctx.runtime = Some(self.runtime.load_full());
            }
            if let Err(write_err) = responses::error_status(session, ctx, code).await {
                tracing::debug!(error = %write_err, "failed to send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // The next byte on this connection starts the next head's deadline.
        if let Some(stream) = HeadTimed::of(session.as_downstream().stream()) {
            stream.request_done();
        }
        if ctx.runtime.is_none() {
            return; // the request never got past header parsing
        }
        self.metrics.in_flight.dec();
        upgrade::closed(ctx);
        let trace = ctx.trace.take();
        let runtime = ctx.runtime.as_deref().expect("checked above");
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        let method = &session.req_header().method;
        runtime.route_metrics(ctx.tenant, ctx.route).observe(
            &self.metrics,
            method,
            status,
            elapsed,
        );
        let tenant = ctx.tenant.map(|t| runtime.policy.tenant(t));
        let tenant_name = tenant.map(|t| t.name.as_str()).unwrap_or("-");
        if let (Some(trace), Some(tracer)) = (trace, &self.tracer) {
            tracer.finish(
                &trace,
                &crate::otel::Finished {
                    method: method.as_str(),
                    path: logged_path(session.req_header()),
                    tenant: tenant_name,
                    route: route_name(tenant, ctx.route),
                    status,
                    auth: ctx.auth,
                    denial: ctx.denial.as_ref().map(|d| d.reason()),
                    request_id: ctx.request_id(),
                    upstream: ctx.upstream.and_then(|(u, chosen)| {
                        Some((runtime.pools[ctx.tenant?][u].label.as_str(), chosen))
                    }),
                    ended: std::time::Instant::now(),
                },
            );
        }
        if let Some(denial) = &ctx.denial {
            self.metrics.record_denial(tenant_name, denial.reason());
        }
        if let Some(log) = self.access_log.as_ref().filter(|l| l.wants(status)) {
            let route = route_name(tenant, ctx.route);
            let upstream = ctx
                .upstream
                .and_then(|(u, _)| ctx.tenant.map(|t| runtime.pools[t][u].label.as_str()));
            log.record(&Entry {
                request_id: ctx.request_id(),
                tenant: tenant_name,
                route,
                method: method.as_str(),
                path: logged_path(session.req_header()),
                status,
                duration: elapsed,
                upstream,
                upstream_duration: ctx.upstream_elapsed,
                auth: ctx.auth.unwrap_or("-"),
                reason: ctx.denial.as_ref().map(|d| d.reason()),
                sub: ctx.claims.as_ref().and_then(|c| c.sub.as_deref()),
                client_ip: ctx.client_ip,
            });
        }
    }
}

impl Gateway {
    /// `request_filter`'s work: admit, authenticate, rate-limit, then proxy (`Ok(false)`) or
    /// answer (`Ok(true)`, the response written).
    async fn decide_and_act(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let runtime = Arc::clone(ctx.runtime.as_ref().expect("set in early_request_filter"));
        let denial = match self.admit(session, ctx, &runtime) {
            Admission::Proxy if ctx.forward_auth => {
                responses::forward_auth_allowed(session, ctx).await?;
                return Ok(true);
            }
            Admission::Proxy => match self.rate_limit(session, ctx, &runtime).await {
                Ok(()) => return Ok(false),
                Err(denial) => denial,
            },
            Admission::Preflight(headers) => {
                responses::preflight(session, ctx, headers).await?;
                return Ok(true);
            }
            Admission::Builtin(builtin @ (Builtin::ResourceMetadata | Builtin::AssertionJwks)) => {
                crate::well_known::serve(builtin, session, ctx, &runtime).await?;
                return Ok(true);
            }
            Admission::Builtin(builtin) => {
                let t = ctx.tenant.expect("built-ins are served on tenant hosts");
                // userinfo answers for whoever the caller is (bearer token or session).
                let claims = if builtin == Builtin::Userinfo {
                    identify(
                        session.req_header(),
                        ctx,
                        t,
                        &runtime,
                        &self.sessions,
                        USERINFO_DEMAND,
                    )
                    .await
                    .ok()
                    .flatten()
                } else {
                    None
                };
                login::serve_builtin(
                    builtin,
                    session,
                    ctx,
                    runtime.logins[t].as_ref(),
                    &self.sessions,
                    claims,
                )
                .await?;
                return Ok(true);
            }
            Admission::Deny(denial) => {
                // A refused forward-auth check, or a request with two credentials, is an
                // authentication decision too.
                if ctx.forward_auth || denial == Denial::DuplicateAuthorization {
                    let tenant = ctx.tenant_name().unwrap_or("-");
                    self.metrics
                        .record_auth_refusal(tenant, denial.auth_result(), denial.reason());
                }
                denial
            }
            Admission::Authenticate => match self.authenticate(session, ctx, &runtime).await {
                Ok(()) if ctx.forward_auth => {
                    responses::forward_auth_allowed(session, ctx).await?;
                    return Ok(true);
                }
                Ok(()) => match self.rate_limit(session, ctx, &runtime).await {
                    Ok(()) => return Ok(false),
                    Err(denial) => denial,
                },
                Err(denial) => denial,
            },
        };
        responses::deny(session, ctx, denial).await?;
        Ok(true)
    }
}

/// The route's name for logs and spans, `-` without one.
fn route_name(
    tenant: Option<&gatehouse_policy::snapshot::TenantPolicy>,
    route: Option<gatehouse_policy::snapshot::RouteRef>,
) -> &str {
    match (tenant, route) {
        (Some(t), Some(r)) => t.route(r).name.as_str(),
        _ => "-",
    }
}

/// The request's path as logs and spans show it: the normalized target (admission rewrote it)
/// without its query, which may carry secrets.
fn logged_path(req: &RequestHeader) -> &str {
    let raw = req.raw_path();
    let path = raw.split(|&b| b == b'?').next().unwrap_or_default();
    std::str::from_utf8(path).unwrap_or("(not utf-8)")
}

/// Edits a request header's map in place. Pingora's `RequestHeader` keeps a second,
/// case-keyed map and parses the name again on every `insert_header`; as `http` parts every
/// edit is one plain map insert (`benches/benches/headers.rs`: about half the cost). The case
/// map is dropped, so header names reach the upstream in lowercase, as Envoy and HAProxy send
/// them (names are case-insensitive, RFC 9110 5.1).
fn edit_request_headers(req: &mut RequestHeader, edit: impl FnOnce(&mut http::HeaderMap)) {
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let header = std::mem::replace(req, placeholder);
    // Origin-form targets round-trip through the URI; any other form is kept verbatim.
    let from_uri =
        header.uri.path_and_query().map(|p| p.as_str().as_bytes()) == Some(header.raw_path());
    let verbatim = (!from_uri).then(|| header.raw_path().to_vec());
    let mut parts = http::request::Parts::from(header);
    edit(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(target) = verbatim {
        // The same bytes were accepted when the request was parsed.
        let _ = req.set_raw_path(&target);
    }
}

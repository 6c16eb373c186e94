#!/usr/bin/env node
// gatehouse test identity provider: an OpenID Provider built on the real
// `oidc-provider` (v9) package, served on loopback, mounted under
// /realms/demo with Keycloak-style endpoint paths and Keycloak-shaped claims.
// See README.md next to this file for the env vars, clients, accounts and claims.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import { createLocalJWKSet, jwtVerify } from 'jose';

import { generateJwk, inferAlg, publicJwk } from './keys.mjs';

// oidc-provider prints its NOTICEs with console.info (stdout). Stdout is reserved
// for the single `IDP READY <issuer>` line, so everything else goes to stderr.
const DEBUG = process.env.IDP_DEBUG === '1';
const toStderr = (...args) => { if (DEBUG) console.error(...args); };
console.info = toStderr;
console.log = toStderr;
const origWarn = console.warn.bind(console);
console.warn = (...args) => {
  // oidc-provider development warnings are noise for tests; show them with IDP_DEBUG=1
  if (DEBUG || !String(args[0]).startsWith('oidc-provider WARNING')) origWarn(...args);
};
// imported after the console redirection so its import-time warnings obey it too
const { default: Provider } = await import('oidc-provider');

// ---------------------------------------------------------------- configuration
const env = process.env;
const PORT = Number.parseInt(env.IDP_PORT || '18090', 10);
const HOST = env.IDP_HOST || '127.0.0.1';
const ISSUER = (env.IDP_ISSUER || `http://127.0.0.1:${PORT}/realms/demo`).replace(/\/+$/, '');
const MOUNT = new URL(ISSUER).pathname.replace(/\/+$/, ''); // "/realms/demo"
const ACCESS_TOKEN_TTL = Number.parseInt(env.IDP_ACCESS_TOKEN_TTL || '300', 10);
const REFRESH_TOKEN_TTL = Number.parseInt(env.IDP_REFRESH_TOKEN_TTL || '1800', 10);
const ROTATE_REFRESH = (env.IDP_REFRESH_ROTATE ?? '1') !== '0';
const AT_FORMAT = env.IDP_ACCESS_TOKEN_FORMAT === 'opaque' ? 'opaque' : 'jwt';
const AT_TYP = env.IDP_ACCESS_TOKEN_TYP || 'at+jwt';
const list = (v, d) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean);
const REDIRECT_URIS = list(env.IDP_REDIRECT_URIS, 'http://demo.localhost:8080/oauth/callback');
const POST_LOGOUT_REDIRECT_URIS = list(env.IDP_POST_LOGOUT_REDIRECT_URIS, 'http://demo.localhost:8080/');

const RESOURCE = 'urn:gatehouse'; // resource indicator (RFC 8707) every access token is minted for
const AUDIENCE = 'gatehouse';
const EXTRA_AUDIENCE = ['account']; // Keycloak adds "account"; appended in the JWT customizer
const SCOPES = ['openid', 'email', 'profile', 'offline_access'];
// Scopes of the other resources (RFC 8707) the IdP issues tokens for: any http(s) URL on a
// loopback host (127.0.0.1, localhost, *.localhost), with the URL itself as the audience.
const RESOURCE_SCOPES = ['mcp:tools'];
// Authentication context classes (RFC 9470 step-up): a login reaches the first of the
// requested `acr_values` the IdP knows, else the lowest.
const ACR_VALUES = ['bronze', 'silver', 'gold'];
function loopbackResource(indicator) {
  let url;
  try { url = new URL(indicator); } catch { return false; }
  const host = url.hostname;
  return (url.protocol === 'http:' || url.protocol === 'https:') && !url.hash && !url.search
    && (host === '127.0.0.1' || host === 'localhost' || host.endsWith('.localhost'));
}

// Keycloak-style endpoint paths (relative to the issuer)
const ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  userinfo: '/protocol/openid-connect/userinfo',
  jwks: '/protocol/openid-connect/certs',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  end_session: '/protocol/openid-connect/logout',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
};

// ---------------------------------------------------------------- keys
function loadKeys() {
  if (!env.IDP_KEYS) return [generateJwk('RS256')];
  const parsed = JSON.parse(fs.readFileSync(env.IDP_KEYS, 'utf8'));
  const keys = Array.isArray(parsed) ? parsed : parsed.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${env.IDP_KEYS}: no keys`);
  return keys.map((k, i) => {
    if (!k.d) throw new Error(`${env.IDP_KEYS}: key #${i} (kid=${k.kid}) is not a private key`);
    const alg = inferAlg(k);
    return { ...k, kid: k.kid || `key-${i}-${crypto.randomBytes(6).toString('base64url')}`, alg, use: k.use || 'sig' };
  });
}
const KEYS = loadKeys();
const SIGNING_KEY = KEYS[0];
const SIGNING_ALG = SIGNING_KEY.alg;
const PUBLIC_JWKS = { keys: KEYS.map(publicJwk) };
const localJwks = createLocalJWKSet(PUBLIC_JWKS);

// ---------------------------------------------------------------- identities
const realm = (roles) => ({ roles });

const USERS = {
  alice: {
    sub: '00000000-0000-4000-8000-0000000a11ce',
    password: 'alice-password',
    given_name: 'Alice',
    family_name: 'Admin',
    realm_access: realm(['admin', 'user']),
    resource_access: { gatehouse: { roles: ['super-admin'] } },
    groups: ['/developers'],
  },
  bob: {
    sub: '00000000-0000-4000-8000-000000000b0b',
    password: 'bob-password',
    given_name: 'Bob',
    family_name: 'User',
    realm_access: realm(['user']),
    resource_access: undefined,
    groups: [],
  },
};
const USERS_BY_SUB = new Map(Object.entries(USERS).map(([name, u]) => [u.sub, { name, ...u }]));

function userClaims(name) {
  const u = USERS[name];
  return {
    sub: u.sub,
    preferred_username: name,
    name: `${u.given_name} ${u.family_name}`,
    given_name: u.given_name,
    family_name: u.family_name,
    email: `${name}@example.com`,
    email_verified: true,
    realm_access: u.realm_access,
    ...(u.resource_access ? { resource_access: u.resource_access } : {}),
    groups: u.groups,
  };
}

// Service accounts of client_credentials clients (Keycloak "service-account-<client>")
const SERVICE_ACCOUNTS = {
  'svc-admin': {
    email: 'admin@example.com',
    email_verified: true,
    realm_access: realm(['admin', 'user', 'offline_access']),
    resource_access: { gatehouse: { roles: ['super-admin', 'uploader'] }, account: { roles: ['manage-account'] } },
    groups: ['/developers', '/admins'],
  },
  'svc-user': {
    email: 'user@example.com',
    email_verified: true,
    realm_access: realm(['user']),
    resource_access: { gatehouse: { roles: ['reader'] } },
    groups: ['/developers'],
  },
  'svc-nobody': {
    email: 'nobody@other.org',
    email_verified: false,
    realm_access: realm([]),
    resource_access: undefined,
    groups: [],
  },
  gatehouse: {
    email: undefined,
    email_verified: undefined,
    realm_access: realm([]),
    resource_access: undefined,
    groups: [],
  },
};

function serviceAccountClaims(clientId) {
  const sa = SERVICE_ACCOUNTS[clientId];
  if (!sa) return undefined;
  const out = {
    preferred_username: `service-account-${clientId}`,
    realm_access: sa.realm_access,
    ...(sa.resource_access ? { resource_access: sa.resource_access } : {}),
    groups: sa.groups,
  };
  if (sa.email !== undefined) {
    out.email = sa.email;
    out.email_verified = sa.email_verified;
  }
  return out;
}

// ---------------------------------------------------------------- stats (GET /__test/stats)
const stats = {
  started_at: new Date().toISOString(),
  token_requests: 0,
  token_requests_by_grant_type: {},
  token_errors_by_grant_type: {},
  jwks_fetches: 0,
  discovery_fetches: 0,
  authorization_requests: 0,
  introspection_requests: 0,
  userinfo_requests: 0,
  end_session_requests: 0,
  logins: 0,
  login_failures: 0,
};
const resetStats = () => {
  for (const k of Object.keys(stats)) {
    if (typeof stats[k] === 'number') stats[k] = 0;
    else if (k !== 'started_at') stats[k] = {};
  }
};
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

// ---------------------------------------------------------------- refresh faults (tests)
// The token endpoint's answer to the refresh_token grant, set by POST /__test/refresh-fault
// (loopback peers only): mode=off (normal), 503 (temporarily_unavailable) or invalid_grant;
// delay_ms=N waits N ms before answering (either way). Other grants are never affected.
const refreshFault = { mode: 'off', delay_ms: 0 };
const REFRESH_FAULT_MODES = new Set(['off', '503', 'invalid_grant']);

// ---------------------------------------------------------------- outage (tests)
// POST /__test/outage?mode=503 (loopback peers only): every request to the realm (discovery,
// JWKS, token, introspection, login pages) answers 503 until mode=off. Counted in stats.
const outage = { mode: 'off' };
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const isLoopback = (addr) => addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1';

// ---------------------------------------------------------------- HTML
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:360px;margin:40px auto}label{display:block;margin-top:10px}
input{width:100%;box-sizing:border-box;padding:6px}.error{color:#b00}</style></head>
<body>${body}</body></html>`;
}

function loginPage({ action, error, username, clientId }) {
  return page('Sign in to demo', `<h1 id="kc-page-title">Sign in to your account</h1>
<p>Client: <code>${esc(clientId)}</code></p>
${error ? `<p class="error" id="input-error">${esc(error)}</p>` : ''}
<form id="kc-form-login" method="post" action="${esc(action)}">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" value="${esc(username)}" autocomplete="username" autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <p><input id="kc-login" name="login" type="submit" value="Sign In"></p>
</form>`);
}

// ---------------------------------------------------------------- provider
const configuration = {
  clients: [
    {
      client_id: 'gatehouse',
      client_secret: 'gatehouse-secret',
      client_name: 'gatehouse',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: REDIRECT_URIS,
      post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
      token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
      scope: [...SCOPES, ...RESOURCE_SCOPES].join(' '),
      id_token_signed_response_alg: SIGNING_ALG,
      require_auth_time: true,
    },
    ...['svc-admin', 'svc-user', 'svc-nobody'].map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      client_name: id,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: [...SCOPES, ...RESOURCE_SCOPES].join(' '),
      id_token_signed_response_alg: SIGNING_ALG,
    })),
  ],
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: SIGNING_ALG,
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  jwks: { keys: KEYS },
  scopes: [...SCOPES, ...RESOURCE_SCOPES],
  acrValues: ACR_VALUES,
  responseTypes: ['code'],
  claims: {
    acr: null,
    sid: null,
    auth_time: null,
    iss: null,
    openid: ['sub', 'preferred_username', 'realm_access', 'resource_access', 'groups'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  // put the scope-granted claims into the ID token too (Keycloak does)
  conformIdTokenClaims: false,
  cookies: {
    keys: ['gatehouse-test-idp-cookie-key-1'],
    long: { httpOnly: true, sameSite: 'lax', path: '/' },
    short: { httpOnly: true, sameSite: 'lax', path: '/' },
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
    userinfoSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
    introspectionSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
    authorizationSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
    // DPoP proofs (RFC 9449) the token endpoint accepts from clients
    dPoPSigningAlgValues: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519'],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // DPoP (RFC 9449): a token request with a DPoP proof gets a DPoP-bound access token
    // (`token_type: DPoP`, `cnf.jkt` = the proof key's thumbprint), with any grant.
    dPoP: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none',
    },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // Confirm the logout without a user prompt: the form is auto-submitted by
      // a tiny script (a plain HTTP client can POST the form itself).
      async logoutSource(ctx, form) {
        const auto = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit">Sign out</button></noscript></form>');
        ctx.body = page('Signing out', `${auto}<script>document.getElementById('op.logoutForm').submit()</script>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<h1 id="kc-page-title">You are logged out</h1>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => (Array.isArray(oneOf) && oneOf.length ? oneOf[0] : RESOURCE),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) {
          if (!loopbackResource(resourceIndicator)) throw new Provider.errors.InvalidTarget();
          return {
            scope: [...RESOURCE_SCOPES, ...SCOPES].join(' '),
            audience: resourceIndicator,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: SIGNING_ALG, kid: SIGNING_KEY.kid } },
          };
        }
        return {
          scope: SCOPES.join(' '),
          audience: AUDIENCE,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: AT_FORMAT,
          ...(AT_FORMAT === 'jwt' ? { jwt: { sign: { alg: SIGNING_ALG, kid: SIGNING_KEY.kid } } } : {}),
        };
      },
    },
  },
  // Keycloak-shaped claims for every access token (also reported by introspection)
  extraTokenClaims: async (ctx, token) => {
    if (token.accountId) {
      const u = USERS_BY_SUB.get(token.accountId);
      if (!u) return undefined;
      const { sub, ...claims } = userClaims(u.name);
      // The login behind the grant (RFC 9470 step-up claims): the code, or the refresh token.
      const { AuthorizationCode: code, RefreshToken: refresh } = ctx.oidc?.entities ?? {};
      const login = code ?? refresh;
      const auth = login ? { ...(login.acr ? { acr: login.acr } : {}), ...(login.authTime ? { auth_time: login.authTime } : {}) } : {};
      return { ...claims, ...auth, typ: 'Bearer', azp: token.clientId, ...(token.sid ? { sid: token.sid } : {}) };
    }
    const sa = serviceAccountClaims(token.clientId);
    return sa ? { ...sa, typ: 'Bearer', azp: token.clientId } : { typ: 'Bearer', azp: token.clientId };
  },
  formats: {
    customizers: {
      async jwt(ctx, token, jwt) {
        const p = jwt.payload;
        if (p.aud === AUDIENCE) p.aud = [AUDIENCE, ...EXTRA_AUDIENCE];
        if (!token.accountId && SERVICE_ACCOUNTS[token.clientId]) p.sub = `service-account-${token.clientId}`;
        p.nbf = p.iat;
        // Keycloak's client_credentials tokens carry the default client scopes
        if (!p.scope && !token.accountId) p.scope = 'profile email';
        p.azp = token.clientId;
        jwt.header = { typ: AT_TYP };
      },
    },
  },
  findAccount: async (ctx, sub) => {
    const u = USERS_BY_SUB.get(sub);
    if (!u) return undefined;
    return { accountId: sub, claims: async () => userClaims(u.name) };
  },
  interactions: {
    url: async (ctx, interaction) => `${MOUNT}/interaction/${interaction.uid}`,
  },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (code.kind === 'AuthorizationCode' || code.kind === 'RefreshToken'),
  rotateRefreshToken: () => ROTATE_REFRESH,
  pkce: { required: () => false },
  routes: ROUTES,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    IdToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    RefreshToken: REFRESH_TOKEN_TTL,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1>${Object.entries(out).map(([k, v]) => `<p><b>${esc(k)}</b>: <span id="${esc(k)}">${esc(v)}</span></p>`).join('')}`);
  },
};

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;
// Keycloak always puts `sid` into ID (and access) tokens; oidc-provider only does
// so for clients registered for back-channel logout, or when requested explicitly.
provider.Client.prototype.includeSid = () => true;

provider.on('server_error', (ctx, err) => { console.error('IDP server_error', err); });
if (DEBUG) {
  for (const ev of ['grant.error', 'introspection.error', 'end_session.error', 'authorization.error', 'userinfo.error']) {
    provider.on(ev, (ctx, err) => console.error(`IDP ${ev}: ${err.message} ${err.error_description || ''}`));
  }
}

async function readForm(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > 64 * 1024) throw new Error('body too large');
    chunks.push(c);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

function bearer(ctx) {
  const h = ctx.get('authorization');
  const m = /^bearer\s+(\S+)$/i.exec(h || '');
  return m ? m[1] : undefined;
}

const isJwt = (t) => typeof t === 'string' && t.split('.').length === 3;

async function verifyAccessToken(token) {
  const { payload } = await jwtVerify(token, localJwks, { issuer: ISSUER, clockTolerance: 5 });
  return payload;
}

// Koa middleware run before oidc-provider's router (paths are relative to the mount)
provider.use(async (ctx, next) => {
  // --- refresh faults: read the form here (oidc-provider then uses the parsed body) and
  // answer a refresh_token grant as the fault says
  if (ctx.path === ROUTES.token && ctx.method === 'POST'
      && (refreshFault.mode !== 'off' || refreshFault.delay_ms > 0)) {
    const form = await readForm(ctx.req);
    ctx.req.body = form;
    if (form.grant_type === 'refresh_token') {
      if (refreshFault.delay_ms > 0) await sleep(refreshFault.delay_ms);
      const fault = refreshFault.mode;
      if (fault !== 'off') {
        stats.token_requests += 1;
        bump(stats.token_requests_by_grant_type, 'refresh_token');
        bump(stats.token_errors_by_grant_type, 'refresh_token');
        ctx.set('cache-control', 'no-store');
        if (fault === '503') {
          ctx.status = 503;
          ctx.body = { error: 'temporarily_unavailable', error_description: 'test fault: the token endpoint is down' };
        } else {
          ctx.status = 400;
          ctx.body = { error: 'invalid_grant', error_description: 'test fault: the refresh token is no longer valid' };
        }
        return;
      }
    }
  }

  // --- interactions: login form + auto-consent
  const im = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (im) {
    ctx.set('cache-control', 'no-store');
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { uid, prompt, params } = details;
    const action = `${MOUNT}/interaction/${uid}`;
    if (prompt.name === 'login') {
      if (ctx.method === 'GET') {
        ctx.type = 'html';
        ctx.body = loginPage({ action, clientId: params.client_id, username: params.login_hint });
        return;
      }
      if (ctx.method === 'POST') {
        const form = await readForm(ctx.req);
        const username = String(form.username ?? form.login ?? '');
        const user = USERS[username];
        if (!user || user.password !== String(form.password ?? '')) {
          stats.login_failures += 1;
          ctx.type = 'html';
          ctx.status = 200;
          ctx.body = loginPage({ action, clientId: params.client_id, username, error: 'Invalid username or password.' });
          return;
        }
        stats.logins += 1;
        const requested = String(params.acr_values ?? '').split(' ').filter((v) => ACR_VALUES.includes(v));
        const acr = requested[0] ?? ACR_VALUES[0];
        const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
          login: { accountId: user.sub, remember: false, acr },
        }, { mergeWithLastSubmission: false });
        ctx.status = 303;
        ctx.redirect(returnTo);
        return;
      }
    }
    if (prompt.name === 'consent') {
      // consent is granted automatically (GET or POST)
      const { details: missing } = prompt;
      let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
      if (!grant) grant = new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      if (missing.missingResourceScopes) {
        for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
          grant.addResourceScope(indicator, scope.join(' '));
        }
      }
      const grantId = await grant.save();
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }
    ctx.throw(501, `interaction prompt ${prompt.name} not implemented`);
  }

  // --- userinfo with a JWT access token (oidc-provider refuses tokens that have an audience)
  if (ctx.path === ROUTES.userinfo && AT_FORMAT === 'jwt' && isJwt(bearer(ctx))) {
    stats.userinfo_requests += 1;
    ctx.set('cache-control', 'no-store');
    let payload;
    try {
      payload = await verifyAccessToken(bearer(ctx));
    } catch (e) {
      ctx.status = 401;
      ctx.set('www-authenticate', 'Bearer error="invalid_token", error_description="invalid token provided"');
      ctx.body = { error: 'invalid_token', error_description: 'invalid token provided' };
      return;
    }
    const u = USERS_BY_SUB.get(payload.sub);
    const scopes = new Set(String(payload.scope || '').split(' '));
    let claims;
    if (u) {
      const c = userClaims(u.name);
      claims = {
        sub: c.sub, preferred_username: c.preferred_username, realm_access: c.realm_access,
        ...(c.resource_access ? { resource_access: c.resource_access } : {}), groups: c.groups,
      };
      if (scopes.has('email')) Object.assign(claims, { email: c.email, email_verified: c.email_verified });
      if (scopes.has('profile')) Object.assign(claims, { name: c.name, given_name: c.given_name, family_name: c.family_name });
    } else {
      const sa = serviceAccountClaims(payload.azp) || {};
      claims = { sub: payload.sub, ...sa };
    }
    ctx.body = claims;
    return;
  }

  await next();

  // --- counters
  const route = ctx.oidc?.route;
  if (route === 'token') {
    const gt = ctx.oidc.params?.grant_type || 'unknown';
    stats.token_requests += 1;
    bump(stats.token_requests_by_grant_type, gt);
    if (ctx.status >= 400) bump(stats.token_errors_by_grant_type, gt);
  } else if (route === 'jwks') {
    stats.jwks_fetches += 1;
  } else if (route === 'discovery') {
    stats.discovery_fetches += 1;
  } else if (route === 'authorization') {
    stats.authorization_requests += 1;
  } else if (route === 'userinfo') {
    stats.userinfo_requests += 1;
  } else if (route === 'end_session') {
    stats.end_session_requests += 1;
  } else if (route === 'introspection') {
    stats.introspection_requests += 1;
    // oidc-provider cannot introspect structured (JWT) access tokens; the client
    // is authenticated at this point, so answer Keycloak-style from the verified JWT.
    const token = ctx.oidc.params?.token;
    if (ctx.body?.error === 'unsupported_token_type' && ctx.oidc.client && isJwt(token)) {
      let body = { active: false };
      try {
        const p = await verifyAccessToken(token);
        body = {
          ...p,
          active: true,
          client_id: p.client_id ?? p.azp,
          username: p.preferred_username,
          token_type: p.cnf?.jkt ? 'DPoP' : 'Bearer',
        };
      } catch { /* inactive */ }
      ctx.status = 200;
      ctx.remove('www-authenticate');
      ctx.body = body;
    } else if (ctx.body?.active === true && ctx.body.token_type) {
      // opaque access tokens (IDP_ACCESS_TOKEN_FORMAT=opaque): make the answer Keycloak-like too
      const b = ctx.body;
      if (!b.sub && SERVICE_ACCOUNTS[b.client_id]) b.sub = `service-account-${b.client_id}`;
      b.username ??= b.preferred_username;
      if (b.aud === AUDIENCE) b.aud = [AUDIENCE, ...EXTRA_AUDIENCE];
    }
  }
});

// ---------------------------------------------------------------- HTTP server
const callback = provider.callback();

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  if (DEBUG) res.on('finish', () => console.error(`IDP ${req.method} ${req.originalUrl || req.url} -> ${res.statusCode} (${Date.now() - started}ms)`));
  const path = req.url.split('?')[0];
  if (path === '/__test/stats' || path === `${MOUNT}/__test/stats`) {
    if (req.method === 'GET') return sendJson(res, 200, stats);
    if (req.method === 'POST' || req.method === 'DELETE') { resetStats(); return sendJson(res, 200, stats); }
    return sendJson(res, 405, { error: 'method not allowed' });
  }
  if (path === '/__test/stats/reset' && req.method === 'POST') { resetStats(); return sendJson(res, 200, stats); }
  if (path === '/__test/refresh-fault') {
    if (!isLoopback(req.socket.remoteAddress)) return sendJson(res, 403, { error: 'loopback only' });
    if (req.method === 'GET') return sendJson(res, 200, refreshFault);
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    const q = new URLSearchParams(req.url.split('?')[1] || '');
    const mode = q.get('mode') ?? refreshFault.mode;
    const delay = Number.parseInt(q.get('delay_ms') ?? String(refreshFault.delay_ms), 10);
    if (!REFRESH_FAULT_MODES.has(mode) || !Number.isFinite(delay) || delay < 0) {
      return sendJson(res, 400, { error: 'mode is off, 503 or invalid_grant; delay_ms a number >= 0' });
    }
    refreshFault.mode = mode;
    refreshFault.delay_ms = delay;
    return sendJson(res, 200, refreshFault);
  }
  if (path === '/__test/outage') {
    if (!isLoopback(req.socket.remoteAddress)) return sendJson(res, 403, { error: 'loopback only' });
    if (req.method === 'GET') return sendJson(res, 200, outage);
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    const mode = new URLSearchParams(req.url.split('?')[1] || '').get('mode') ?? outage.mode;
    if (mode !== 'off' && mode !== '503') return sendJson(res, 400, { error: 'mode is off or 503' });
    outage.mode = mode;
    return sendJson(res, 200, outage);
  }
  if (path === '/health' || path === `${MOUNT}/health`) return sendJson(res, 200, { status: 'UP' });
  if (outage.mode === '503' && (!MOUNT || path === MOUNT || path.startsWith(`${MOUNT}/`))) {
    stats.outage_answers = (stats.outage_answers || 0) + 1;
    return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'test outage' });
  }
  if (MOUNT && (path === MOUNT || path.startsWith(`${MOUNT}/`))) {
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    return callback(req, res);
  }
  if (!MOUNT) return callback(req, res);
  return sendJson(res, 404, { error: 'not found', hint: `the realm lives under ${MOUNT}` });
});
server.keepAliveTimeout = 5000;

let closing = false;
function shutdown(sig) {
  if (closing) return;
  closing = true;
  if (DEBUG) console.error(`IDP ${sig}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.on('error', (e) => {
  console.error(`IDP failed to listen on ${HOST}:${PORT}: ${e.message}`);
  process.exit(1);
});
server.listen(PORT, HOST, () => {
  process.stdout.write(`IDP READY ${ISSUER}\n`);
  if (DEBUG) console.error(`IDP signing with kid=${SIGNING_KEY.kid} alg=${SIGNING_ALG}; keys: ${KEYS.map((k) => k.kid).join(', ')}`);
});

#!/usr/bin/env node
// Self-test for the gatehouse test IdP: starts idp.mjs on a free loopback port
// with a generated key file and exercises discovery, JWKS, client_credentials
// (basic + post auth), the browser authorization-code flow with PKCE (plain
// fetch, cookie jar by hand), refresh and refresh faults, userinfo, introspection, RP-initiated
// logout, key rotation and /__test/stats.  Exit 0 = pass.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { createLocalJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

import { writeKeyFiles } from './keys.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VERBOSE = process.env.SELFTEST_VERBOSE === '1';
const REDIRECT_URI = 'http://demo.localhost:8080/oauth/callback';
const POST_LOGOUT = 'http://demo.localhost:8080/';

let failures = 0;
function check(cond, msg) {
  if (!cond) {
    failures += 1;
    throw new Error(`ASSERTION FAILED: ${msg}`);
  }
  if (VERBOSE) console.log(`  ok - ${msg}`);
}
const eq = (a, b, msg) => check(JSON.stringify(a) === JSON.stringify(b), `${msg} (got ${JSON.stringify(a)}, want ${JSON.stringify(b)})`);
const decode = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function startIdp(port, keysFile, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(HERE, 'idp.mjs')], {
      env: { ...process.env, IDP_PORT: String(port), IDP_KEYS: keysFile, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`IdP did not become ready; stderr:\n${err}`)); }, 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^IDP READY (\S+)$/m.exec(out);
      if (m) { clearTimeout(timer); resolve({ child, issuer: m[1], stdout: () => out, stderr: () => err }); }
    });
    child.stderr.on('data', (d) => { err += d; if (VERBOSE) process.stderr.write(d); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`IdP exited early (${code}); stderr:\n${err}`)); });
  });
}

function stopIdp(idp) {
  return new Promise((resolve) => {
    if (idp.child.exitCode !== null) return resolve(idp.child.exitCode);
    idp.child.removeAllListeners('exit');
    idp.child.on('exit', (code, sig) => resolve(code ?? sig));
    idp.child.kill('SIGTERM');
  });
}

async function tokenRequest(url, form, { auth } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth) headers.authorization = auth;
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form) });
  const body = await res.json();
  return { status: res.status, body };
}

// --- minimal cookie jar for the browser flow
class Jar {
  constructor() { this.cookies = new Map(); }
  store(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]) < new Date())
        || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name); else this.cookies.set(name, value);
    }
  }
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '); }
}

// Follow redirects by hand (so cookies are kept) until leaving the IdP origin.
async function browse(jar, url, init = {}, origin) {
  let res;
  let current = url;
  let opts = init;
  for (let hop = 0; hop < 20; hop += 1) {
    if (!current.startsWith(origin)) return { url: current, res: undefined };
    res = await fetch(current, { ...opts, redirect: 'manual', headers: { ...(opts.headers || {}), cookie: jar.header() } });
    jar.store(res);
    if (res.status >= 300 && res.status < 400) {
      current = new URL(res.headers.get('location'), current).href;
      opts = {};
      continue;
    }
    return { url: current, res };
  }
  throw new Error('too many redirects');
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-idp-selftest-'));
  const k1File = path.join(tmp, 'k1.json');
  const k2File = path.join(tmp, 'k2.json');
  const { priv: k1 } = writeKeyFiles(k1File, ['RS256']);
  const { priv: k2 } = writeKeyFiles(k2File, ['ES256']);
  check(fs.existsSync(path.join(tmp, 'k1.public.json')), 'keys.mjs wrote k1.public.json');
  check(!JSON.parse(fs.readFileSync(path.join(tmp, 'k1.public.json'))).keys[0].d, 'public JWKS has no private members');

  const port = await freePort();
  let idp = await startIdp(port, k1File);
  const issuer = `http://127.0.0.1:${port}/realms/demo`;
  const origin = `http://127.0.0.1:${port}`;
  try {
    eq(idp.issuer, issuer, 'READY line carries the issuer');
    eq(idp.stdout(), `IDP READY ${issuer}\n`, 'stdout is exactly one READY line');

    // ---------------- discovery + JWKS
    const disco = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    eq(disco.issuer, issuer, 'discovery issuer');
    check(disco.token_endpoint.startsWith(issuer), 'token endpoint under issuer');
    check(disco.introspection_endpoint, 'introspection endpoint advertised');
    check(disco.end_session_endpoint, 'end_session endpoint advertised');
    check(disco.code_challenge_methods_supported.includes('S256'), 'PKCE S256 supported');
    const jwks = await (await fetch(disco.jwks_uri)).json();
    eq(jwks.keys.map((k) => k.kid), [k1.keys[0].kid], 'JWKS serves k1');
    check(jwks.keys.every((k) => !k.d), 'JWKS is public');
    const JWKS = createLocalJWKSet(jwks);

    // ---------------- client_credentials: svc-admin via client_secret_basic
    const admin = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials' }, { auth: basic('svc-admin', 'svc-admin-secret') });
    eq(admin.status, 200, 'svc-admin token status');
    const { payload: a, protectedHeader: ah } = await jwtVerify(admin.body.access_token, JWKS, { issuer, audience: 'gatehouse' });
    eq(ah.kid, k1.keys[0].kid, 'svc-admin token signed by k1');
    eq(a.iss, issuer, 'iss');
    eq(a.aud, ['gatehouse', 'account'], 'aud');
    eq(a.sub, 'service-account-svc-admin', 'sub');
    eq(a.preferred_username, 'service-account-svc-admin', 'preferred_username');
    eq(a.azp, 'svc-admin', 'azp');
    eq(a.typ, 'Bearer', 'typ');
    eq(a.email, 'admin@example.com', 'email');
    eq(a.email_verified, true, 'email_verified');
    eq(a.realm_access, { roles: ['admin', 'user', 'offline_access'] }, 'realm_access');
    eq(a.resource_access, { gatehouse: { roles: ['super-admin', 'uploader'] }, account: { roles: ['manage-account'] } }, 'resource_access');
    eq(a.groups, ['/developers', '/admins'], 'groups');
    check(typeof a.jti === 'string' && a.jti.length > 10, 'jti');
    check(typeof a.scope === 'string', 'scope');
    check(a.exp - a.iat === 300, `exp = iat + 300 (${a.exp - a.iat})`);
    check(a.nbf === a.iat, 'nbf');
    check(Math.abs(a.iat - Date.now() / 1000) < 10, 'iat is now');
    if (VERBOSE) console.log(JSON.stringify(a, null, 2));

    // ---------------- client_credentials: svc-user via client_secret_post
    const user = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials', client_id: 'svc-user', client_secret: 'svc-user-secret' });
    eq(user.status, 200, 'svc-user token status');
    const { payload: u } = await jwtVerify(user.body.access_token, JWKS, { issuer, audience: 'gatehouse' });
    eq(u.sub, 'service-account-svc-user', 'svc-user sub');
    eq(u.realm_access, { roles: ['user'] }, 'svc-user realm_access');
    eq(u.resource_access, { gatehouse: { roles: ['reader'] } }, 'svc-user resource_access');
    eq(u.groups, ['/developers'], 'svc-user groups');
    eq(u.email, 'user@example.com', 'svc-user email');

    // ---------------- svc-nobody + a failing request
    const nobody = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials' }, { auth: basic('svc-nobody', 'svc-nobody-secret') });
    const n = decode(nobody.body.access_token);
    eq(n.realm_access, { roles: [] }, 'svc-nobody realm_access');
    eq(n.resource_access, undefined, 'svc-nobody has no resource_access');
    eq(n.groups, [], 'svc-nobody groups');
    eq(n.email_verified, false, 'svc-nobody email_verified');
    const bad = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials' }, { auth: basic('svc-admin', 'wrong') });
    eq(bad.status, 401, 'wrong secret rejected');

    // ---------------- introspection (JWT access token, by gatehouse)
    const intro = await (await fetch(disco.introspection_endpoint, {
      method: 'POST',
      headers: { authorization: basic('gatehouse', 'gatehouse-secret'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: admin.body.access_token }),
    })).json();
    eq(intro.active, true, 'introspection active');
    eq(intro.client_id, 'svc-admin', 'introspection client_id');
    eq(intro.username, 'service-account-svc-admin', 'introspection username');
    eq(intro.realm_access, { roles: ['admin', 'user', 'offline_access'] }, 'introspection realm_access');
    const introBad = await (await fetch(disco.introspection_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: `${admin.body.access_token.slice(0, -4)}AAAA`, client_id: 'gatehouse', client_secret: 'gatehouse-secret' }),
    })).json();
    eq(introBad.active, false, 'tampered token is inactive');

    // ---------------- browser flow for alice (authorization code + PKCE)
    const jar = new Jar();
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const state = crypto.randomBytes(8).toString('hex');
    const nonce = crypto.randomBytes(8).toString('hex');
    const authUrl = `${disco.authorization_endpoint}?${new URLSearchParams({
      client_id: 'gatehouse', response_type: 'code', redirect_uri: REDIRECT_URI,
      scope: 'openid email profile', state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
    })}`;
    let step = await browse(jar, authUrl, {}, origin);
    eq(step.res?.status, 200, 'login form served');
    let html = await step.res.text();
    check(/name="username"/.test(html) && /name="password"/.test(html) && /id="kc-login"/.test(html), 'login form has username/password/submit');
    const action = new URL(/<form[^>]*action="([^"]+)"/.exec(html)[1].replace(/&amp;/g, '&'), step.url).href;

    // wrong password -> form again
    step = await browse(jar, action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: 'nope' }) }, origin);
    html = await step.res.text();
    check(step.res.status === 200 && /Invalid username or password/.test(html), 'wrong password re-renders the form with an error');

    step = await browse(jar, action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: 'alice-password' }) }, origin);
    check(step.url.startsWith(REDIRECT_URI), `redirected to the client (${step.url})`);
    const cb = new URL(step.url);
    eq(cb.searchParams.get('state'), state, 'state echoed');
    eq(cb.searchParams.get('iss'), issuer, 'iss in authorization response');
    const code = cb.searchParams.get('code');
    check(code, 'authorization code present');

    const tok = await tokenRequest(disco.token_endpoint, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
    }, { auth: basic('gatehouse', 'gatehouse-secret') });
    eq(tok.status, 200, `code exchange (${JSON.stringify(tok.body)})`);
    check(tok.body.refresh_token, 'refresh token issued');
    const { payload: idt } = await jwtVerify(tok.body.id_token, JWKS, { issuer, audience: 'gatehouse' });
    eq(idt.sub, '00000000-0000-4000-8000-0000000a11ce', 'alice sub');
    eq(idt.preferred_username, 'alice', 'alice preferred_username');
    eq(idt.email, 'alice@example.com', 'alice email');
    eq(idt.email_verified, true, 'alice email_verified');
    eq(idt.nonce, nonce, 'nonce');
    eq(idt.realm_access, { roles: ['admin', 'user'] }, 'alice realm_access (id token)');
    eq(idt.resource_access, { gatehouse: { roles: ['super-admin'] } }, 'alice resource_access (id token)');
    eq(idt.groups, ['/developers'], 'alice groups (id token)');
    check(typeof idt.sid === 'string', 'sid in id token');
    if (VERBOSE) console.log(JSON.stringify(idt, null, 2));
    const { payload: aat } = await jwtVerify(tok.body.access_token, JWKS, { issuer, audience: 'gatehouse' });
    eq(aat.sub, idt.sub, 'access token sub');
    eq(aat.aud, ['gatehouse', 'account'], 'alice access token aud');
    eq(aat.azp, 'gatehouse', 'alice access token azp');
    eq(aat.realm_access, { roles: ['admin', 'user'] }, 'alice access token realm_access');
    eq(aat.preferred_username, 'alice', 'alice access token preferred_username');
    check(String(aat.scope).split(' ').includes('openid'), `alice access token scope (${aat.scope})`);
    if (VERBOSE) console.log(JSON.stringify(aat, null, 2));

    // userinfo with the JWT access token
    const ui = await (await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.body.access_token}` } })).json();
    eq(ui.preferred_username, 'alice', 'userinfo preferred_username');
    eq(ui.email, 'alice@example.com', 'userinfo email');

    // refresh (rotates)
    let ref = await tokenRequest(disco.token_endpoint, { grant_type: 'refresh_token', refresh_token: tok.body.refresh_token }, { auth: basic('gatehouse', 'gatehouse-secret') });
    eq(ref.status, 200, `refresh (${JSON.stringify(ref.body)})`);
    check(ref.body.refresh_token && ref.body.refresh_token !== tok.body.refresh_token, 'refresh token rotated');
    eq(decode(ref.body.access_token).realm_access, { roles: ['admin', 'user'] }, 'refreshed access token claims');

    // refresh faults on demand (POST /__test/refresh-fault): 503, invalid_grant, a delay
    const fault = async (q) => fetch(`${origin}/__test/refresh-fault?${q}`, { method: 'POST' });
    const refreshWith = (rt) => tokenRequest(disco.token_endpoint, { grant_type: 'refresh_token', refresh_token: rt }, { auth: basic('gatehouse', 'gatehouse-secret') });
    eq((await fault('mode=503')).status, 200, 'fault control accepts mode=503');
    const down = await refreshWith(ref.body.refresh_token);
    eq([down.status, down.body.error], [503, 'temporarily_unavailable'], 'refresh answered 503 on demand');
    eq((await fault('mode=invalid_grant')).status, 200, 'fault control accepts mode=invalid_grant');
    const revoked = await refreshWith(ref.body.refresh_token);
    eq([revoked.status, revoked.body.error], [400, 'invalid_grant'], 'refresh answered invalid_grant on demand');
    eq((await fault('mode=bogus')).status, 400, 'an unknown mode is refused');
    eq(await (await fetch(`${origin}/__test/refresh-fault`)).json(), { mode: 'invalid_grant', delay_ms: 0 }, 'fault state readable');
    eq((await fault('mode=off&delay_ms=400')).status, 200, 'fault control accepts a delay');
    const t0 = Date.now();
    const slow = await refreshWith(ref.body.refresh_token);
    check(Date.now() - t0 >= 400, `the delayed refresh took ${Date.now() - t0} ms`);
    eq(slow.status, 200, `mode=off: the faults left the refresh token alone (${JSON.stringify(slow.body)})`);
    check(slow.body.refresh_token !== ref.body.refresh_token, 'and it rotates as usual');
    ref = slow;
    eq((await fault('mode=off&delay_ms=0')).status, 200, 'faults off');

    // a second login in the same browser is silent (SSO session)
    step = await browse(jar, authUrl.replace(`state=${state}`, 'state=again'), {}, origin);
    check(step.url.startsWith(REDIRECT_URI) && new URL(step.url).searchParams.get('code'), 'SSO: second authorization is silent');

    // RP-initiated logout with id_token_hint + post_logout_redirect_uri
    const logoutUrl = `${disco.end_session_endpoint}?${new URLSearchParams({ id_token_hint: tok.body.id_token, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' })}`;
    step = await browse(jar, logoutUrl, {}, origin);
    eq(step.res?.status, 200, 'logout page');
    html = await step.res.text();
    const lform = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    check(lform && /document\.getElementById\('op\.logoutForm'\)\.submit\(\)/.test(html), 'logout page auto-submits');
    const fields = Object.fromEntries([...lform[2].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((m) => [m[1], m[2]]));
    step = await browse(jar, new URL(lform[1], step.url).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) }, origin);
    eq(step.url, `${POST_LOGOUT}?state=bye`, 'logout redirects to post_logout_redirect_uri');
    const ref2 = await tokenRequest(disco.token_endpoint, { grant_type: 'refresh_token', refresh_token: ref.body.refresh_token }, { auth: basic('gatehouse', 'gatehouse-secret') });
    eq(ref2.status, 400, 'refresh token dead after logout');
    step = await browse(jar, authUrl, {}, origin);
    check(step.res?.status === 200 && /kc-form-login/.test(await step.res.text()), 'after logout the login form is shown again');

    // ---------------- stats
    const stats = await (await fetch(`${origin}/__test/stats`)).json();
    eq(stats.token_requests_by_grant_type.client_credentials, 4, 'stats: client_credentials count');
    eq(stats.token_requests_by_grant_type.authorization_code, 1, 'stats: authorization_code count');
    eq(stats.token_requests_by_grant_type.refresh_token, 5, 'stats: refresh_token count (faults included)');
    eq(stats.token_errors_by_grant_type, { client_credentials: 1, refresh_token: 3 }, 'stats: errors (faults included)');
    eq(stats.jwks_fetches, 1, 'stats: jwks fetches');
    eq(stats.logins, 1, 'stats: logins');
    await fetch(`${origin}/__test/stats`, { method: 'DELETE' });
    eq((await (await fetch(`${origin}/__test/stats`)).json()).token_requests, 0, 'stats reset');

    // ---------------- key rotation: restart with [k2 (ES256), k1]
    eq(await stopIdp(idp), 0, 'clean exit on SIGTERM');
    const rotated = path.join(tmp, 'k2k1.json');
    fs.writeFileSync(rotated, JSON.stringify({ keys: [k2.keys[0], k1.keys[0]] }));
    idp = await startIdp(port, rotated);
    const jwks2 = await (await fetch(disco.jwks_uri)).json();
    eq(jwks2.keys.map((k) => k.kid), [k2.keys[0].kid, k1.keys[0].kid], 'rotated JWKS serves k2 then k1');
    const after = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials' }, { auth: basic('svc-admin', 'svc-admin-secret') });
    const hdr = decodeProtectedHeader(after.body.access_token);
    eq([hdr.kid, hdr.alg], [k2.keys[0].kid, 'ES256'], 'after rotation k2 signs');
    await jwtVerify(after.body.access_token, createLocalJWKSet(jwks2), { issuer, audience: 'gatehouse' });
    await jwtVerify(admin.body.access_token, createLocalJWKSet(jwks2), { issuer, audience: 'gatehouse' });
    check(true, 'old k1 token still verifies against rotated JWKS');
  } finally {
    await stopIdp(idp);
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  // ---------------- other key types start and sign
  for (const alg of ['PS256', 'ES384', 'EdDSA']) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-idp-selftest-'));
    const f = path.join(dir, 'k.json');
    const { priv } = writeKeyFiles(f, [alg]);
    const p = await freePort();
    const x = await startIdp(p, f);
    try {
      const r = await tokenRequest(`http://127.0.0.1:${p}/realms/demo/protocol/openid-connect/token`, { grant_type: 'client_credentials' }, { auth: basic('svc-user', 'svc-user-secret') });
      const j = await (await fetch(`http://127.0.0.1:${p}/realms/demo/protocol/openid-connect/certs`)).json();
      const { protectedHeader } = await jwtVerify(r.body.access_token, createLocalJWKSet(j), { issuer: `http://127.0.0.1:${p}/realms/demo` });
      eq([protectedHeader.alg, protectedHeader.kid], [alg, priv.keys[0].kid], `${alg} key signs access tokens`);
    } finally {
      await stopIdp(x);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

main().then(() => {
  console.log('selftest: PASS');
  process.exit(0);
}, (err) => {
  console.error(`selftest: FAIL: ${err.stack || err.message}`);
  process.exit(1);
});

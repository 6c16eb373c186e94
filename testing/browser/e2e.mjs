#!/usr/bin/env node
// Browser end-to-end test of gatehouse's login flow: headless Chromium (Debian's, driven by
// playwright-core; no browser download) logs in at the test IdP through the gateway, keeps the
// session, reads /oauth/userinfo, logs out at the gateway and at the IdP, and checks that a new
// visit asks for a login again. See README.md beside this file.
//
//   node e2e.mjs --base http://demo.localhost:PORT --user alice --password alice-password \
//     --expect-user alice [--post-logout URL] [--idp ISSUER] [--screenshot DIR] \
//     [--app-path /app/page] [--expect-text TEXT]... [--check PATH=STATUS]...
//
// Stdout: exactly one JSON line (`ok`, each step's result and timing). Exit 0 when every step
// passed, 1 on the first failure (the message is in the JSON line and on stderr), 2 on bad usage.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const USAGE =
  'usage: node e2e.mjs --base http://demo.localhost:PORT --user USER --password PASS --expect-user NAME ' +
  '[--post-logout URL (default BASE/)] [--idp ISSUER] [--screenshot DIR] [--cookie-name gatehouse_session] ' +
  '[--app-path /app/page] [--expect-text TEXT]... [--check PATH=STATUS]... ' +
  '[--chromium /usr/bin/chromium] [--step-timeout-ms 15000] [--total-timeout-ms 75000]';

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      base: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      'expect-user': { type: 'string' },
      'post-logout': { type: 'string' },
      idp: { type: 'string' },
      screenshot: { type: 'string' },
      'cookie-name': { type: 'string', default: 'gatehouse_session' },
      'app-path': { type: 'string', default: '/app/page' },
      'expect-text': { type: 'string', multiple: true, default: [] },
      check: { type: 'string', multiple: true, default: [] },
      chromium: { type: 'string', default: process.env.CHROMIUM_PATH || '/usr/bin/chromium' },
      'step-timeout-ms': { type: 'string', default: '15000' },
      'total-timeout-ms': { type: 'string', default: '75000' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
for (const k of ['base', 'user', 'password', 'expect-user']) {
  if (!opts[k]) {
    console.error(`missing --${k}\n${USAGE}`);
    process.exit(2);
  }
}

const base = new URL(opts.base);
const BASE = base.origin; // no trailing slash
const APP_PATH = opts['app-path'];
if (!APP_PATH.startsWith('/')) {
  console.error(`--app-path must start with "/"\n${USAGE}`);
  process.exit(2);
}
const APP = `${BASE}${APP_PATH}`;
// --check PATH=STATUS: after the login, a navigation to PATH must answer STATUS.
const CHECKS = opts.check.map((c) => {
  const m = /^(\/[^=]*)=(\d{3})$/.exec(c);
  if (!m) {
    console.error(`--check ${c}: expected PATH=STATUS such as /admin/=403\n${USAGE}`);
    process.exit(2);
  }
  return { path: m[1], status: Number(m[2]) };
});
const postLogout = new URL(opts['post-logout'] || `${BASE}/`);
const idpIssuer = opts.idp ? opts.idp.replace(/\/+$/, '') : null;
const STEP_MS = Math.min(Number(opts['step-timeout-ms']) || 15000, 15000);
const TOTAL_MS = Math.min(Number(opts['total-timeout-ms']) || 75000, 90000);
const shotDir = opts.screenshot || null;
if (shotDir) mkdirSync(shotDir, { recursive: true });

const t0 = performance.now();
const result = { ok: false, base: BASE, user: opts.user, steps: [], total_ms: 0 };
let browserContext = null;
let profileDir = null;
let finished = false;

function ms(since) {
  return Math.round(performance.now() - since);
}

/// Removes secrets from URLs we print (codes, tokens), keeping their presence visible.
function redact(u) {
  try {
    const url = new URL(u);
    for (const k of ['code', 'id_token_hint', 'state', 'nonce', 'code_challenge', 'session_state', 'iss']) {
      if (url.searchParams.has(k)) url.searchParams.set(k, '…');
    }
    return url.toString();
  } catch {
    return String(u);
  }
}

async function cleanup() {
  if (browserContext) {
    const ctx = browserContext;
    browserContext = null;
    await Promise.race([ctx.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  if (profileDir) {
    try {
      rmSync(profileDir, { recursive: true, force: true });
    } catch {}
    profileDir = null;
  }
}

async function finish(ok, error) {
  if (finished) return;
  finished = true;
  result.ok = ok;
  if (error) result.error = error;
  result.total_ms = ms(t0);
  await cleanup();
  process.stdout.write(JSON.stringify(result) + '\n');
  if (!ok) console.error(`e2e: FAILED: ${error}`);
  process.exit(ok ? 0 : 1);
}

// The whole run is bounded whatever happens inside Chromium.
const totalTimer = setTimeout(() => {
  finish(false, `the whole run took longer than ${TOTAL_MS} ms (last step: ${result.steps.at(-1)?.name ?? 'launch'})`);
}, TOTAL_MS);

class StepError extends Error {}
function fail(msg) {
  throw new StepError(msg);
}

// Main-frame navigation requests and responses, in order, for redirect-chain checks.
const navLog = [];
function navSince(mark) {
  return navLog.slice(mark);
}
function chainText(entries) {
  return entries
    .map((e) => `${e.method} ${redact(e.url)} -> ${e.status ?? '(no response)'}${e.location ? ` Location: ${redact(e.location)}` : ''}`)
    .join(' | ');
}

let page = null;

async function bodyText() {
  try {
    return (await page.evaluate(() => document.body?.innerText ?? '')).trim();
  } catch {
    return '';
  }
}

async function where() {
  const text = (await bodyText()).replace(/\s+/g, ' ').slice(0, 300);
  return `now at ${redact(page.url())}; page text: ${JSON.stringify(text)}`;
}

async function step(n, name, fn) {
  const start = performance.now();
  const mark = navLog.length;
  const entry = { step: n, name, ok: false, ms: 0 };
  result.steps.push(entry);
  let timer;
  try {
    const detail = await Promise.race([
      fn(mark),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new StepError(`step timed out after ${STEP_MS} ms`)), STEP_MS);
      }),
    ]);
    clearTimeout(timer);
    entry.ok = true;
    entry.ms = ms(start);
    entry.url = redact(page.url());
    if (detail && typeof detail === 'object') Object.assign(entry, detail);
  } catch (e) {
    clearTimeout(timer);
    entry.ms = ms(start);
    entry.url = page ? redact(page.url()) : null;
    const nav = navSince(mark);
    if (nav.length) entry.navigations = chainText(nav);
    let msg = e instanceof StepError ? e.message : `${e.name}: ${e.message.split('\n')[0]}`;
    if (page) msg += `; ${await where()}`;
    if (nav.length) msg += `; navigations: ${chainText(nav)}`;
    entry.error = msg;
    await shot(n, `${name}-FAILED`);
    throw new StepError(`step ${n} (${name}): ${msg}`);
  }
  await shot(n, name);
}

async function shot(n, name) {
  if (!shotDir || !page) return;
  try {
    await page.screenshot({ path: join(shotDir, `${String(n).padStart(2, '0')}-${name}.png`), timeout: 5000 });
  } catch {}
}

const sameOrigin = (u, origin) => {
  try {
    return new URL(u).origin === origin;
  } catch {
    return false;
  }
};
const pathOf = (u) => {
  try {
    return new URL(u).pathname;
  } catch {
    return '';
  }
};
const isIdp = (u) => (idpIssuer ? String(u).startsWith(idpIssuer + '/') : !sameOrigin(u, BASE));

/// The IdP's login form is on screen.
async function expectLoginForm(mark) {
  await page.waitForSelector('#username', { state: 'visible', timeout: STEP_MS });
  if (!isIdp(page.url())) fail(`the login form is not at the IdP${idpIssuer ? ` (${idpIssuer})` : ''}`);
  const nav = navSince(mark);
  const first = nav.find((e) => e.url === APP);
  if (!first) fail('no navigation to the protected page was seen');
  if (![302, 303, 307].includes(first.status))
    fail(`GET ${APP_PATH} without a session answered ${first.status}, expected a 302 to /oauth/login`);
  if (!first.location || !new URL(first.location, APP).pathname.startsWith('/oauth/login'))
    fail(`GET ${APP_PATH} redirected to ${first.location}, expected /oauth/login?rd=...`);
  const login = nav.find((e) => sameOrigin(e.url, BASE) && pathOf(e.url) === '/oauth/login');
  if (!login) fail('the browser never reached /oauth/login');
  if (![302, 303, 307].includes(login.status) || !login.location || !isIdp(login.location))
    fail(`/oauth/login answered ${login.status} ${login.location ?? ''}, expected a 302 to the IdP`);
  return { chain: chainText(nav) };
}

async function expectAppPage(response, what) {
  if (!sameOrigin(page.url(), BASE) || pathOf(page.url()) !== APP_PATH) fail(`${what}: not back at ${APP}`);
  if (!response) fail(`${what}: no response for ${APP}`);
  const status = response.status();
  const text = await bodyText();
  if (status !== 200) fail(`${what}: ${APP} answered ${status}`);
  if (!text.includes(`GET ${APP_PATH}`)) fail(`${what}: the page is not the upstream's echo: ${JSON.stringify(text.slice(0, 200))}`);
  for (const t of opts['expect-text']) {
    if (!text.includes(t)) fail(`${what}: the page does not show ${JSON.stringify(t)}: ${JSON.stringify(text.slice(0, 400))}`);
  }
  const upstream = (await response.allHeaders())['x-upstream'] ?? null;
  return { status, body: text.slice(0, 100), upstream };
}

/// The last main-frame response for `url` seen since `mark`.
function lastResponseFor(mark, url) {
  return navSince(mark)
    .filter((e) => e.url === url && e.response)
    .at(-1)?.response;
}

async function cookieNames() {
  return (await browserContext.cookies(BASE)).map((c) => c.name);
}

async function main() {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    fail(`playwright-core is not installed: run npm ci in testing/browser (${e.message.split('\n')[0]})`);
  }
  const resolverHost = base.hostname;
  const args = [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    '--no-proxy-server',
  ];
  if (!/^[\d.]+$/.test(resolverHost) && resolverHost !== 'localhost') {
    args.push(`--host-resolver-rules=MAP ${resolverHost} 127.0.0.1`);
  }
  profileDir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-chromium-'));
  const launchStart = performance.now();
  try {
    browserContext = await chromium.launchPersistentContext(profileDir, {
      executablePath: opts.chromium,
      headless: true,
      args,
      timeout: STEP_MS,
      viewport: { width: 1000, height: 700 },
      env: { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' },
    });
  } catch (e) {
    fail(`cannot start Chromium at ${opts.chromium}: ${e.message.split('\n')[0]}`);
  }
  result.launch_ms = ms(launchStart);
  browserContext.setDefaultTimeout(STEP_MS);
  browserContext.setDefaultNavigationTimeout(STEP_MS);
  page = browserContext.pages()[0] ?? (await browserContext.newPage());

  page.on('request', (req) => {
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      navLog.push({ method: req.method(), url: req.url(), request: req, status: null, location: null, response: null });
    }
  });
  page.on('response', (res) => {
    const req = res.request();
    const e = navLog.findLast((x) => x.request === req);
    if (e) {
      e.status = res.status();
      e.location = res.headers()['location'] ?? null;
      e.response = res;
    }
  });

  // (1) A protected page without a session leads to the IdP's login form.
  await step(1, 'redirected-to-idp-login', async (mark) => {
    await page.goto(APP, { waitUntil: 'load' });
    return expectLoginForm(mark);
  });

  // (2)+(3) Logging in at the IdP comes back to the original page, served by the upstream.
  await step(2, 'idp-login', async (mark) => {
    await page.fill('#username', opts.user);
    await page.fill('#password', opts.password);
    const left = page.waitForURL((u) => !isIdp(u.toString()), { waitUntil: 'commit' }).then(() => 'left');
    const refused = page.waitForSelector('#input-error', { state: 'attached' }).then(() => 'refused');
    left.catch(() => {});
    refused.catch(() => {});
    await page.click('#kc-login', { noWaitAfter: true });
    const outcome = await Promise.race([left, refused]);
    if (outcome === 'refused') fail(`the IdP refused the user name or password of ${JSON.stringify(opts.user)}`);
    return { chain: chainText(navSince(mark)) };
  });
  await step(3, 'back-at-original-page', async (mark) => {
    await page.waitForURL(APP, { waitUntil: 'load' });
    const all = navSince(0);
    const cb = all.filter((e) => sameOrigin(e.url, BASE) && pathOf(e.url) === '/oauth/callback').at(-1);
    if (!cb) fail('the IdP never redirected to /oauth/callback');
    if (![302, 303, 307].includes(cb.status)) fail(`/oauth/callback answered ${cb.status}, expected a 302 back to the page`);
    if (!(await cookieNames()).includes(opts['cookie-name']))
      fail(`no ${opts['cookie-name']} cookie after the callback (cookies: ${(await cookieNames()).join(', ') || 'none'})`);
    const res = lastResponseFor(0, APP);
    return { callback_status: cb.status, ...(await expectAppPage(res, 'after login')) };
  });

  // (4) /oauth/userinfo with the same cookies names the user.
  await step(4, 'userinfo', async () => {
    const r = await page.evaluate(async () => {
      const res = await fetch('/oauth/userinfo', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    });
    if (r.status !== 200) fail(`/oauth/userinfo answered ${r.status}: ${r.text.slice(0, 200)}`);
    let info;
    try {
      info = JSON.parse(r.text);
    } catch {
      fail(`/oauth/userinfo is not JSON (${r.type}): ${r.text.slice(0, 200)}`);
    }
    if (info.preferred_username !== opts['expect-user'])
      fail(`/oauth/userinfo preferred_username is ${JSON.stringify(info.preferred_username)}, expected ${JSON.stringify(opts['expect-user'])}`);
    return { status: r.status, preferred_username: info.preferred_username, sub: info.sub ?? null };
  });

  // (5) A reload keeps the session: 200 straight from the gateway, no trip to the IdP.
  await step(5, 'reload-keeps-session', async (mark) => {
    const res = await page.reload({ waitUntil: 'load' });
    const nav = navSince(mark);
    const elsewhere = nav.filter((e) => !sameOrigin(e.url, BASE));
    if (elsewhere.length) fail(`the reload left the gateway: ${chainText(elsewhere)}`);
    if (res && res.request().redirectedFrom()) fail(`the reload was redirected: ${chainText(nav)}`);
    return expectAppPage(res, 'after reload');
  });

  // (5b) With --check: other pages answer as the user's roles say (a 403 page is the
  // gateway's own, not a login).
  if (CHECKS.length) {
    await step(5.5, 'route-checks', async () => {
      const seen = [];
      for (const c of CHECKS) {
        const res = await page.goto(`${BASE}${c.path}`, { waitUntil: 'load' });
        const status = res ? res.status() : null;
        if (!sameOrigin(page.url(), BASE) || pathOf(page.url()) !== c.path)
          fail(`${c.path}: the browser left it for ${redact(page.url())} (expected ${c.status} there)`);
        if (status !== c.status) fail(`${c.path} answered ${status}, expected ${c.status}`);
        seen.push(`${c.path}=${status}`);
      }
      return { checks: seen };
    });
  }

  // (6) Logout: the gateway sends the browser to the IdP's end-session endpoint, whose page
  // submits itself, and the IdP sends it on to the post-logout URL.
  await step(6, 'logout', async (mark) => {
    const atPostLogout = (u) => u.origin === postLogout.origin && u.pathname === postLogout.pathname;
    await page.goto(`${BASE}/oauth/logout`, { waitUntil: 'commit' });
    await page.waitForURL(atPostLogout, { waitUntil: 'load' });
    const nav = navSince(mark);
    const out = nav.find((e) => sameOrigin(e.url, BASE) && pathOf(e.url) === '/oauth/logout');
    if (!out || ![302, 303, 307].includes(out.status) || !out.location)
      fail(`/oauth/logout answered ${out?.status}, expected a 302 to the IdP's end-session endpoint`);
    const end = new URL(out.location, BASE);
    if (!isIdp(end.toString()) || !end.pathname.endsWith('/protocol/openid-connect/logout'))
      fail(`/oauth/logout redirected to ${redact(end)}, not to the IdP's end-session endpoint`);
    if (!end.searchParams.get('id_token_hint')) fail('the end-session redirect has no id_token_hint');
    const plr = end.searchParams.get('post_logout_redirect_uri');
    if (plr !== postLogout.toString() && plr !== opts['post-logout'])
      fail(`post_logout_redirect_uri is ${JSON.stringify(plr)}, expected ${JSON.stringify(postLogout.toString())}`);
    const confirm = nav.find((e) => e.method === 'POST' && isIdp(e.url));
    if (!confirm) fail("the IdP's logout form was never submitted");
    if (![302, 303].includes(confirm.status)) fail(`the IdP's logout POST answered ${confirm.status}`);
    const landed = nav.filter((e) => atPostLogout(new URL(e.url))).at(-1);
    if (landed?.status >= 400) fail(`the post-logout page answered ${landed.status}`);
    const left = await cookieNames();
    if (left.includes(opts['cookie-name'])) fail(`the ${opts['cookie-name']} cookie is still set after logout`);
    const info = await page.evaluate(async () => {
      const res = await fetch('/oauth/userinfo', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      return res.status;
    });
    if (info !== 401) fail(`/oauth/userinfo after logout answered ${info}, expected 401`);
    return { chain: chainText(nav), post_logout_status: landed?.status ?? null, userinfo_after: info };
  });

  // (7) The protected page asks for a login again: the session is gone at the gateway (302 to
  // /oauth/login) and at the IdP (its login form, not a silent SSO return).
  await step(7, 'login-required-again', async (mark) => {
    await page.goto(APP, { waitUntil: 'load' });
    if (sameOrigin(page.url(), BASE) && pathOf(page.url()) === APP_PATH)
      fail('the protected page was served again after logout (the IdP session survived: silent SSO)');
    return expectLoginForm(mark);
  });
}

main()
  .then(() => {
    clearTimeout(totalTimer);
    return finish(true);
  })
  .catch((e) => {
    clearTimeout(totalTimer);
    return finish(false, e instanceof StepError ? e.message : `${e.name}: ${e.message.split('\n')[0]}`);
  });

#!/usr/bin/env node
// Mints the static key material and bearer tokens of one load-test run.
//
//   node loadtest/mint.mjs OUTDIR ISSUER TTL_SECONDS MISS_TOKENS [DPOP_JWK]
//
// Uses `jose` from testing/idp/node_modules (no network, no IdP). Writes into OUTDIR:
//   jwks.private.json   the RS256 signing key (never leaves OUTDIR)
//   jwks.json           the public JWKS: gatehouse `jwks-file`, served to Apache by the upstream
//   pubkey.pem          the same public key as SPKI PEM (HAProxy `jwt_verify`)
//   token.txt           one valid token (warm-cache scenarios), roles [user]
//   miss.txt            MISS_TOKENS distinct valid tokens, one a line (cache-miss scenario)
//   valid.txt           8 distinct valid tokens (the 80 % of the allowed/denied mix)
//   forged.txt          8 tokens with the right kid and claims but signed by another key (the
//                       20 %: each costs a failed signature check, none can be cached as valid)
//   dpop-token.txt      with DPOP_JWK (a file holding a public JWK, from testing/dpop/client.mjs):
//                       one token bound to that key (`cnf.jkt` = its RFC 7638 SHA-256 thumbprint)
// Every token: iss = ISSUER, aud = [gatehouse, account], exp = now + TTL_SECONDS, RS256, a
// Keycloak-shaped body (realm_access.roles = [user]) of about the size the test IdP issues.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'testing', 'idp', 'package.json'));
const jose = await import(require.resolve('jose'));

const [outDir, issuer, ttlArg, missArg, dpopJwkPath] = process.argv.slice(2);
if (!outDir || !issuer) {
  process.stderr.write('usage: node mint.mjs OUTDIR ISSUER [TTL_SECONDS] [MISS_TOKENS] [DPOP_JWK]\n');
  process.exit(2);
}
const ttl = Number(ttlArg || 3600);
const missCount = Number(missArg || 20000);
fs.mkdirSync(outDir, { recursive: true });

const kid = 'loadtest-rs256';
const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const { privateKey: otherKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const pubJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
const privJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
fs.writeFileSync(path.join(outDir, 'jwks.json'), `${JSON.stringify({ keys: [pubJwk] })}\n`);
fs.writeFileSync(path.join(outDir, 'jwks.private.json'), `${JSON.stringify({ keys: [privJwk] })}\n`, { mode: 0o600 });
fs.writeFileSync(path.join(outDir, 'pubkey.pem'), await jose.exportSPKI(publicKey));

const now = Math.floor(Date.now() / 1000);
function claims(i) {
  return {
    sub: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    preferred_username: `loadtest-${i}`,
    realm_access: { roles: ['user'] },
    resource_access: { gatehouse: { roles: ['reader'] } },
    groups: ['/developers'],
    email: `user${i}@example.com`,
    email_verified: true,
    typ: 'Bearer',
    azp: 'gatehouse',
    scope: 'openid email profile',
    client_id: 'gatehouse',
    jti: `lt-${i}-${now}`,
  };
}
async function mint(i, key = privateKey, extra = {}) {
  return new jose.SignJWT({ ...claims(i), ...extra })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(['gatehouse', 'account'])
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttl)
    .sign(key);
}

const started = Date.now();
fs.writeFileSync(path.join(outDir, 'token.txt'), `${await mint(0)}\n`);
const valid = [];
const forged = [];
for (let i = 1; i <= 8; i++) {
  valid.push(await mint(i));
  forged.push(await mint(100 + i, otherKey));
}
fs.writeFileSync(path.join(outDir, 'valid.txt'), `${valid.join('\n')}\n`);
fs.writeFileSync(path.join(outDir, 'forged.txt'), `${forged.join('\n')}\n`);
if (dpopJwkPath) {
  // The DPoP scenario's token: the same claims, bound to the client's key (RFC 9449 6.1).
  const jwk = JSON.parse(fs.readFileSync(dpopJwkPath, 'utf8'));
  const jkt = await jose.calculateJwkThumbprint(jwk, 'sha256');
  fs.writeFileSync(path.join(outDir, 'dpop-token.txt'), `${await mint(9, privateKey, { cnf: { jkt } })}\n`);
}

// The miss set: signed in batches of concurrent promises (node's crypto runs them on its pool).
const out = fs.openSync(path.join(outDir, 'miss.txt'), 'w');
const batch = 256;
for (let i = 0; i < missCount; i += batch) {
  const n = Math.min(batch, missCount - i);
  const toks = await Promise.all(Array.from({ length: n }, (_, j) => mint(1000 + i + j)));
  fs.writeSync(out, `${toks.join('\n')}\n`);
}
fs.closeSync(out);
process.stderr.write(`mint: ${missCount + 17} tokens (kid ${kid}, exp +${ttl}s) in ${((Date.now() - started) / 1000).toFixed(1)}s -> ${outDir}\n`);

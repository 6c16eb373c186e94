#!/usr/bin/env node
// Key generation helper for the gatehouse test IdP.
//
//   node keys.mjs OUT.json [alg ...]
//
// Writes OUT.json (private JWKS, {"keys":[...]}, one key per alg, in the order
// given; the FIRST key is the one idp.mjs signs with) and OUT.public.json (the
// matching public JWKS, usable as a static `jwks-file`). Default alg: RS256.
// Supported algs: RS256, PS256, ES256, ES384, EdDSA (alias: Ed25519).
//
// Also importable: `import { generateJwk, publicJwk, writeKeyFiles } from './keys.mjs'`.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUPPORTED_ALGS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'priv', 'k'];

function normaliseAlg(alg) {
  const a = String(alg).trim();
  if (a.toLowerCase() === 'ed25519' || a.toLowerCase() === 'eddsa') return 'EdDSA';
  const up = a.toUpperCase();
  if (!SUPPORTED_ALGS.includes(up)) {
    throw new Error(`unsupported alg ${alg} (supported: ${SUPPORTED_ALGS.join(', ')})`);
  }
  return up;
}

/** Generate one private JWK (with kid, alg, use) for the given JWS alg. */
export function generateJwk(alg = 'RS256', kid) {
  const a = normaliseAlg(alg);
  let pair;
  switch (a) {
    case 'RS256':
    case 'PS256':
      pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'ES256':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      break;
    case 'ES384':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      break;
    case 'EdDSA':
      pair = crypto.generateKeyPairSync('ed25519');
      break;
    default:
      throw new Error(`unsupported alg ${alg}`);
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  const id = kid || `${a.toLowerCase()}-${crypto.randomBytes(9).toString('base64url')}`;
  return { kid: id, use: 'sig', alg: a, ...jwk };
}

/** Strip private members from a JWK. */
export function publicJwk(jwk) {
  const pub = { ...jwk };
  for (const m of PRIVATE_MEMBERS) delete pub[m];
  return pub;
}

/** Infer the JWS alg of a JWK that has no `alg` member. */
export function inferAlg(jwk) {
  if (jwk.alg) return jwk.alg === 'Ed25519' ? 'EdDSA' : jwk.alg;
  switch (jwk.kty) {
    case 'RSA': return 'RS256';
    case 'EC':
      if (jwk.crv === 'P-256') return 'ES256';
      if (jwk.crv === 'P-384') return 'ES384';
      break;
    case 'OKP':
      if (jwk.crv === 'Ed25519') return 'EdDSA';
      break;
    default:
  }
  throw new Error(`cannot infer a supported alg for key kid=${jwk.kid} kty=${jwk.kty} crv=${jwk.crv}`);
}

export function publicPathFor(out) {
  return out.endsWith('.json') ? `${out.slice(0, -'.json'.length)}.public.json` : `${out}.public.json`;
}

/** Generate keys for `algs` and write OUT (private) and OUT.public.json. Returns both JWKS. */
export function writeKeyFiles(out, algs = ['RS256']) {
  const keys = (algs.length ? algs : ['RS256']).map((a) => generateJwk(a));
  const priv = { keys };
  const pub = { keys: keys.map(publicJwk) };
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(priv, null, 2)}\n`, { mode: 0o600 });
  fs.writeFileSync(publicPathFor(out), `${JSON.stringify(pub, null, 2)}\n`);
  return { priv, pub, publicPath: publicPathFor(out) };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const [out, ...algs] = process.argv.slice(2);
  if (!out || out === '-h' || out === '--help') {
    process.stderr.write('usage: node keys.mjs OUT.json [RS256|PS256|ES256|ES384|EdDSA ...]\n');
    process.exit(out ? 0 : 2);
  }
  try {
    const { priv, publicPath } = writeKeyFiles(out, algs);
    process.stdout.write(`${priv.keys.map((k) => `${k.kid} ${k.alg}`).join('\n')}\n`);
    process.stderr.write(`wrote ${out} and ${publicPath}\n`);
  } catch (e) {
    process.stderr.write(`keys.mjs: ${e.message}\n`);
    process.exit(1);
  }
}

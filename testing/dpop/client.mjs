#!/usr/bin/env node
// A DPoP (RFC 9449) client for gatehouse's tests and load harness, made with panva's `dpop`
// library: it holds a key pair, asks the test IdP for a DPoP-bound access token with that key
// (client_credentials, answering a `use_dpop_nonce` once), and makes proofs for requests.
//
// Input (stdin, JSON):
//   { "alg": "ES256" | "RS256" | "PS256" | "Ed25519",        key type of a new key pair
//     "key_pkcs8": "<base64 DER>",                         or an existing private key
//     "token": { "endpoint", "client_id", "client_secret", "resource"?, "scope"? },
//     "proofs": [ { "htm", "htu", "access_token"?, "nonce"?, "count"? } ] }
// A proof's `access_token` of "$token" is the token obtained above; `count` makes that many
// proofs (each with its own jti). Output (stdout, JSON):
//   { "key_pkcs8", "public_jwk", "token"?: <the token response>, "proofs": [<JWT>, ...] }

import { generateKeyPair, generateProof } from 'dpop';

const PARAMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
  Ed25519: { name: 'Ed25519' },
};

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

// The key pair: imported from PKCS#8 (the public half derived through a JWK export), or new.
async function keyPair(input) {
  const alg = input.alg || 'ES256';
  const params = PARAMS[alg];
  if (!params) throw new Error(`unsupported alg ${alg}`);
  if (!input.key_pkcs8) {
    return generateKeyPair(alg, { extractable: true });
  }
  const der = Buffer.from(input.key_pkcs8, 'base64');
  const privateKey = await crypto.subtle.importKey('pkcs8', der, params, true, ['sign']);
  const jwk = await crypto.subtle.exportKey('jwk', privateKey);
  for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'key_ops', 'ext']) delete jwk[m];
  const publicKey = await crypto.subtle.importKey('jwk', jwk, params, true, ['verify']);
  return { privateKey, publicKey };
}

async function requestToken(keypair, t) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (t.resource) form.set('resource', t.resource);
  if (t.scope) form.set('scope', t.scope);
  const basic = Buffer.from(`${encodeURIComponent(t.client_id)}:${encodeURIComponent(t.client_secret)}`).toString('base64');
  let nonce;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const proof = await generateProof(keypair, t.endpoint, 'POST', nonce);
    const res = await fetch(t.endpoint, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
      body: form,
    });
    const body = await res.json();
    if (res.ok) return body;
    if (body.error === 'use_dpop_nonce' && res.headers.get('dpop-nonce') && nonce === undefined) {
      nonce = res.headers.get('dpop-nonce');
      continue;
    }
    throw new Error(`token request: ${res.status} ${JSON.stringify(body)}`);
  }
  throw new Error('token request: the nonce was refused twice');
}

const input = await readStdin();
const keypair = await keyPair(input);
const out = {
  key_pkcs8: Buffer.from(await crypto.subtle.exportKey('pkcs8', keypair.privateKey)).toString('base64'),
  public_jwk: await crypto.subtle.exportKey('jwk', keypair.publicKey),
  proofs: [],
};
if (input.token) out.token = await requestToken(keypair, input.token);
for (const p of input.proofs || []) {
  const token = p.access_token === '$token' ? out.token?.access_token : p.access_token;
  for (let i = 0; i < (p.count ?? 1); i += 1) {
    out.proofs.push(await generateProof(keypair, p.htu, p.htm, p.nonce, token));
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);

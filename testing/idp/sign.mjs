// Signs a JWT with the first key of a private JWKS file (as written by keys.mjs), for tests that
// need tokens the IdP itself would sign, such as back-channel logout tokens.
//   node sign.mjs KEYS.json '{"iss":"...","aud":"gatehouse",...}' [typ]
// Prints the compact JWT. `iat` is added when missing.
import { readFileSync } from 'node:fs';
import { importJWK, SignJWT } from 'jose';

const [keysFile, claimsJson, typ] = process.argv.slice(2);
if (!keysFile || !claimsJson) {
  console.error('usage: node sign.mjs KEYS.json CLAIMS_JSON [typ]');
  process.exit(2);
}
const jwk = JSON.parse(readFileSync(keysFile, 'utf8')).keys[0];
const key = await importJWK(jwk, jwk.alg);
const claims = JSON.parse(claimsJson);
const header = { alg: jwk.alg, kid: jwk.kid };
if (typ) header.typ = typ;
let jwt = new SignJWT(claims).setProtectedHeader(header);
if (claims.iat === undefined) jwt = jwt.setIssuedAt();
process.stdout.write(`${await jwt.sign(key)}\n`);

#!/usr/bin/env python3
"""An upstream that verifies gatehouse's identity assertions the way a real one would: PyJWT
(with cryptography) against the JWKS the gateway publishes, fetched through PyJWKClient (cached,
refetched once for an unknown kid).

    upstream.py serve --settings FILE
        Listens on 127.0.0.1 on a free port and prints "LISTENING <port>". FILE (JSON, read on
        every request, so a test can write it once the gateway's port is known) names
        "jwks_url", "header", "audience", "issuer" and optionally "jwks_lifespan" (seconds the
        client caches the JWKS, default 300, as PyJWKClient's). Every request is answered 200 with JSON:
        {"path", "raw": the header as received (null when absent), "count", "verified": true
        with "claims" and "kid", or false with "error"}.
    upstream.py verify --jwks-url URL --audience AUD --issuer ISS TOKEN
        Verifies one token with a fresh JWKS client; prints the same JSON, exits 0 or 1.

Only the Python standard library and PyJWT[crypto] (scripts/install-deps.sh installs them into
the project's venv).
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

ALGORITHMS = ["ES256", "EdDSA"]


def verify(client, token, audience, issuer):
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        return {"verified": True, "claims": claims, "kid": key.key_id}
    except Exception as e:  # every failure is an answer, never a crash
        return {"verified": False, "error": f"{type(e).__name__}: {e}"}


def serve(args):
    clients = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with open(args.settings) as f:
                settings = json.load(f)
            url = settings["jwks_url"]
            lifespan = settings.get("jwks_lifespan", 300)
            if (url, lifespan) not in clients:
                clients[(url, lifespan)] = jwt.PyJWKClient(url, cache_keys=True, lifespan=lifespan)
            client = clients[(url, lifespan)]
            values = self.headers.get_all(settings["header"]) or []
            out = {"path": self.path, "raw": values[0] if values else None, "count": len(values)}
            if values:
                out.update(verify(client, values[0], settings["audience"], settings["issuer"]))
            body = (json.dumps(out) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = handle_one

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--settings", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--jwks-url", required=True)
    v.add_argument("--audience", required=True)
    v.add_argument("--issuer", required=True)
    v.add_argument("token")
    args = p.parse_args()
    if args.cmd == "serve":
        serve(args)
    else:
        out = verify(jwt.PyJWKClient(args.jwks_url, cache_keys=False), args.token,
                     args.audience, args.issuer)
        print(json.dumps(out))
        sys.exit(0 if out["verified"] else 1)


if __name__ == "__main__":
    main()

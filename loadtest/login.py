#!/usr/bin/env python3
"""Browser login through the test IdP, for the load harness (stdlib only).

    login.py --port PORT [--host demo.localhost] [--path /app/x] [--user alice]
             [--password alice-password] [--cookie-name gatehouse_session]
             [--callback-path /oauth/callback] [--timeout 10]

Does what gateway/tests/support/login.rs does: GET the protected page as a navigation
(Accept: text/html) -> 302 /oauth/login?rd=... -> 302 to the IdP -> follows redirects (keeping
the IdP's cookies) to the HTML login form -> POSTs username/password to the form's action
(relative to the form page, `&amp;` unescaped) -> follows redirects to the gateway's
/oauth/callback -> GETs it with the gateway's state cookie -> 302 + Set-Cookie with the session.
`HOST` (any *.localhost name) is sent to 127.0.0.1:PORT. Prints the `Cookie` header value that
carries the session (`gatehouse_session=...`) on stdout; exit 1 with the trail on stderr if the
flow does not end with that cookie or never passed through CALLBACK_PATH on HOST.
Bounded: at most 20 steps, TIMEOUT seconds per request.

The same flow logs in on any OIDC client that redirects to the IdP itself and keeps its state in
cookies; the one cookie jar carries them. Apache mod_auth_openidc:

    login.py --port PORT --cookie-name mod_auth_openidc_session --callback-path /oauth2callback

(GET /app/x -> 302 straight to the IdP + Set-Cookie mod_auth_openidc_state_<state> -> login form
-> redirects to /oauth2callback?code=..&state=.. -> GET with the state cookie -> 302 back to
/app/x + Set-Cookie mod_auth_openidc_session=<session id>.)
"""
import argparse
import http.client
import http.cookiejar
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request


class LoopbackConnection(http.client.HTTPConnection):
    """Connects *.localhost names to 127.0.0.1 (the Host header keeps the name)."""

    def connect(self):
        host = "127.0.0.1" if self.host == "localhost" or self.host.endswith(".localhost") else self.host
        self.sock = socket.create_connection((host, self.port), self.timeout)


class LoopbackHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(LoopbackConnection, req)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="demo.localhost")
    ap.add_argument("--path", default="/app/x")
    ap.add_argument("--user", default="alice")
    ap.add_argument("--password", default="alice-password")
    ap.add_argument("--cookie-name", default="gatehouse_session",
                    help="the session cookie to print (mod_auth_openidc: mod_auth_openidc_session)")
    ap.add_argument("--callback-path", default="/oauth/callback",
                    help="the client's redirect URI path; the flow must pass through it "
                         "(mod_auth_openidc: its OIDCRedirectURI, e.g. /oauth2callback)")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        LoopbackHandler(), NoRedirect(), urllib.request.HTTPCookieProcessor(jar))
    trail = []
    callbacks = []  # statuses of the GETs on the client's callback

    def fetch(url, form=None):
        data = urllib.parse.urlencode(form).encode() if form else None
        req = urllib.request.Request(url, data=data)
        req.add_header("Accept", "text/html,application/xhtml+xml")
        if data:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            r = opener.open(req, timeout=a.timeout)
        except urllib.error.HTTPError as e:  # 3xx/4xx/5xx: NoRedirect leaves them to us
            r = e
        body = r.read().decode("utf-8", "replace")
        set_cookies = [h.split("=", 1)[0] for h in r.headers.get_all("Set-Cookie") or []]
        trail.append(f"{'POST' if data else 'GET'} {url} -> {r.status}"
                     + (f" (Set-Cookie: {', '.join(set_cookies)})" if set_cookies else ""))
        parts = urllib.parse.urlsplit(url)
        if not data and parts.hostname == a.host and parts.path == a.callback_path:
            callbacks.append(r.status)
        return r.status, r.headers.get("Location"), body

    base = f"http://{a.host}:{a.port}"
    url = base + a.path
    status, loc, body = fetch(url)
    for _ in range(20):
        if loc:
            url = urllib.parse.urljoin(url, loc)
            if urllib.parse.urlsplit(url).path == a.path and urllib.parse.urlsplit(url).hostname == a.host:
                break  # back at the protected page after the callback: logged in
            status, loc, body = fetch(url)
            continue
        if status == 200 and 'name="username"' in body:
            action = body.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
            url = urllib.parse.urljoin(url, action)
            status, loc, body = fetch(url, {"username": a.user, "password": a.password})
            continue
        break
    for c in jar:
        if c.name == a.cookie_name and c.domain.lstrip(".") == a.host and c.value:
            if not callbacks:
                print(f"login.py: got {c.name} without passing through {a.callback_path}; trail:\n  "
                      + "\n  ".join(trail), file=sys.stderr)
                return 1
            print(f"{c.name}={c.value}")
            return 0
    print(f"login.py: no {a.cookie_name} cookie for {a.host} (jar: "
          + ", ".join(f"{c.name}@{c.domain}" for c in jar) + "); trail:\n  " + "\n  ".join(trail),
          file=sys.stderr)
    if body:
        print("last body: " + body[:500], file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

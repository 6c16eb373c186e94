#!/usr/bin/env python3
"""Browser login against a gatehouse tenant with `login`, for the load harness (stdlib only).

    login.py --port PORT [--host demo.localhost] [--path /app/x] [--user alice]
             [--password alice-password] [--cookie-name gatehouse_session] [--timeout 10]

Does what gateway/tests/support/login.rs does: GET the protected page as a navigation
(Accept: text/html) -> 302 /oauth/login?rd=... -> 302 to the IdP -> follows redirects (keeping
the IdP's cookies) to the HTML login form -> POSTs username/password to the form's action
(relative to the form page, `&amp;` unescaped) -> follows redirects to the gateway's
/oauth/callback -> GETs it with the gateway's state cookie -> 302 + Set-Cookie with the session.
`HOST` (any *.localhost name) is sent to 127.0.0.1:PORT. Prints the `Cookie` header value that
carries the session (`gatehouse_session=...`) on stdout; exit 1 with the trail on stderr if the
flow does not end with that cookie. Bounded: at most 20 steps, TIMEOUT seconds per request.
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
    ap.add_argument("--cookie-name", default="gatehouse_session")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        LoopbackHandler(), NoRedirect(), urllib.request.HTTPCookieProcessor(jar))
    trail = []

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
        trail.append(f"{'POST' if data else 'GET'} {url} -> {r.status}")
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
        if c.name == a.cookie_name and c.domain.lstrip(".") == a.host:
            print(f"{c.name}={c.value}")
            return 0
    print("login.py: no session cookie; trail:\n  " + "\n  ".join(trail), file=sys.stderr)
    if body:
        print("last body: " + body[:500], file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Sections of report.py for the scenarios of issue 19: `ws-echo` (WebSocket messages through
gatehouse vs the bare Pingora proxy and nginx) and `ratelimit` (the JWT route with and without
a rate limit, in one gatehouse); and of issue 20: `dpop` (the JWT route with `dpop: required`
vs the bearer JWT route, in one gatehouse).

Each section function takes the scenario's aggregated peers (report.aggregate per peer), the
run's raw runs and folder, the writer of report.md and report.py's chart functions, writes its
tables and plots, and returns what goes into summary.json.
"""
import os
import re

WS_PEERS = [
    ("gatehouse", "gatehouse, JWT route (bearer token checked at the handshake)"),
    ("bare-proxy", "bare-proxy (Pingora `ProxyHttp` with only `upstream_peer`)"),
    ("nginx", "nginx `proxy_pass` with `Upgrade`/`Connection` passed on"),
]
RL_PEERS = [
    ("gatehouse-jwt", "`/api/*`: the JWT route, no rate limit"),
    ("gatehouse-rl-local", "`/rl-local/*`: + client-ip limit 1 000 000/s (never refuses)"),
    ("gatehouse-rl-shared", "`/rl-shared/*`: + the same limit, `shared: true` (Redis Cluster)"),
    ("gatehouse-rl-refuse", "`/rl-refuse/*`: + client-ip limit 10/m, burst 10 (refuses ~all: 429)"),
]


def ratio(v, ref):
    return f"{v / ref:.2f}" if ref else "-"


def ws_echo(peers, runs, results, w, charts):
    """The ws-echo section: messages/s (round trips) per proxy and the ratios to bare-proxy
    and nginx of the same run."""
    meta = charts.get("meta", {})
    w("## ws-echo: WebSocket echo, messages per second through each proxy\n")
    w(f"`ws-bench client`: {meta.get('ws_conns', '?')} WebSockets opened (and each checked with "
      f"one echo) before the clock starts, then {meta.get('ws_messages', '?')} binary messages of "
      f"{meta.get('ws_size', '?')} bytes per WebSocket, one in flight per connection (sent, "
      "echoed by `ws-bench echo` upstream, received); msgs/s = echoes / (first send to last "
      "echo), latency = one round trip. The handshake goes to the JWT route `/api/*` of "
      "gatehouse with the bearer token (the same headers go to the other two, unread); each "
      "proxy one worker thread/process. The echo server answers a handshake 50 ms after its "
      "first bytes, outside the measured window: Pingora 0.9.1 (gatehouse and bare-proxy) "
      "closes a WebSocket right after the `101` when a fast upstream answers before the "
      "handshake's end of body was passed on (README, WebSocket, known issue); a connection "
      "closed before its first echo would be reopened and counted as *reopened*.\n")
    bare = (peers.get("bare-proxy") or {}).get("rps")
    nginx = (peers.get("nginx") or {}).get("rps")
    w("| proxy | msgs/s | p50 | p99 | p99.9 | vs bare | vs nginx | reopened after the 101 "
      "| connections failed |")
    w("|---|---|---|---|---|---|---|---|---|")
    out = {}
    for p, label in WS_PEERS:
        a = peers.get(p)
        if not a:
            continue
        reopened = sum(r.get("ws_reconnects", 0) for r in runs.get(p, []))
        spread = (f" ({a['rps_min'] / 1000:.1f}-{a['rps_max'] / 1000:.1f}k)"
                  if a["rounds"] > 1 else "")
        w(f"| {label} | {a['rps'] / 1000:.1f}k{spread} | {a['p50']:.2f} | {a['p99']:.2f} | "
          f"{a['p999']:.2f} | {ratio(a['rps'], bare)} | {ratio(a['rps'], nginx)} | {reopened} | "
          f"{a['errors']} |")
        out[p] = {"msgs_per_s": a["rps"], "p50_ms": a["p50"], "p99_ms": a["p99"],
                  "p999_ms": a["p999"], "reopened": reopened, "failed": a["errors"],
                  "vs_bare": a["rps"] / bare if bare else None,
                  "vs_nginx": a["rps"] / nginx if nginx else None}
    w("")
    g = out.get("gatehouse")
    if g and g["vs_bare"] and g["vs_nginx"]:
        w(f"gatehouse / bare Pingora = **{g['vs_bare']:.2f}x**, gatehouse / nginx = "
          f"**{g['vs_nginx']:.2f}x** (messages per second, same run).\n")
    if any(a["errors"] for a in peers.values()):
        w("**Some WebSockets failed or timed out: these figures are not a clean measurement.**\n")
    _plots(peers, results, w, charts, "ws-echo", "messages per second (echo round trips)")
    return out


def shared_script_calls(results):
    """Per round: the Redis Cluster's script calls (EVAL/EVALSHA, all nodes) during that
    round's rl-shared run, from raw/ratelimit-shared-redis-rN.txt (INFO commandstats)."""
    raw = os.path.join(results, "raw")
    calls = {}
    for name in sorted(os.listdir(raw)):
        m = re.match(r"ratelimit-shared-redis-r(\d+)\.txt$", name)
        if not m:
            continue
        n = 0
        with open(os.path.join(raw, name), errors="replace") as f:
            for line in f:
                c = re.match(r"cmdstat_(eval|evalsha|evalsha_ro|eval_ro):calls=(\d+)", line.strip())
                if c:
                    n += int(c.group(2))
        calls[int(m.group(1))] = n
    return calls


def fallbacks(results):
    """gatehouse_rate_limit_shared_fallback_total at the end of the run, or None."""
    path = os.path.join(results, "raw", "ratelimit-fallbacks.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if line.startswith("LT_RL_FALLBACKS "):
                return int(line.split()[1])
    return None


def ratelimit(peers, runs, results, w, charts):
    """The ratelimit section: req/s of the JWT route with a limit that never refuses (local and
    shared) and with one that refuses nearly everything, each divided by the plain JWT route
    of the same instance and run."""
    w("## ratelimit: the JWT route with a rate limit (issue 19)\n")
    w("One gatehouse instance (one worker thread), four routes that differ only in their "
      "`rate-limits`, the warm bearer token on every request (`wrk` token mode), so the "
      "ratios are the limiter's cost: **vs JWT** = req/s / the plain JWT route `/api/*` of the "
      "same run. Every `wrk` connection comes from 127.0.0.1: one client-ip key. The refusing "
      "route answers `429` with `Retry-After` and the `RateLimit`/`RateLimit-Policy` fields "
      "without calling the upstream: its rate is the cost of a refusal (token verified, limit "
      "checked, 429 written).\n")
    jwt = (peers.get("gatehouse-jwt") or {}).get("rps")
    w("| route | req/s | p50 | p99 | p99.9 | vs JWT | 429 (share of answers) | errors |")
    w("|---|---|---|---|---|---|---|---|")
    out = {}
    for p, label in RL_PEERS:
        a = peers.get(p)
        if not a:
            continue
        share = a["non2xx"] / a["requests"] if a["requests"] else 0
        spread = (f" ({a['rps_min'] / 1000:.1f}-{a['rps_max'] / 1000:.1f}k)"
                  if a["rounds"] > 1 else "")
        w(f"| {label} | {a['rps'] / 1000:.1f}k{spread} | {a['p50']:.2f} | {a['p99']:.2f} | "
          f"{a['p999']:.2f} | {ratio(a['rps'], jwt)} | {a['non2xx']} ({share * 100:.2f} %) | "
          f"{a['errors']} |")
        out[p] = {"rps": a["rps"], "p50_ms": a["p50"], "p99_ms": a["p99"],
                  "vs_jwt": a["rps"] / jwt if jwt else None, "refused": a["non2xx"],
                  "refused_share": share, "errors": a["errors"]}
    w("")
    for p in ("gatehouse-jwt", "gatehouse-rl-local", "gatehouse-rl-shared"):
        if out.get(p, {}).get("refused"):
            w(f"**{p}: {out[p]['refused']} non-2xx answers on a route that should refuse "
              "nothing: not a clean measurement.**\n")
    calls = shared_script_calls(results)
    shared_runs = {r["round"]: r["requests"] for r in runs.get("gatehouse-rl-shared", [])}
    common = sorted(set(calls) & set(shared_runs))
    reqs = sum(shared_runs[r] for r in common)
    if reqs:
        per = sum(calls[r] for r in common) / reqs
        out["shared_script_calls_per_request"] = per
        w(f"Redis Cluster script calls (`EVAL`/`EVALSHA`, all nodes, stats reset before each "
          f"`/rl-shared/*` run) per `/rl-shared/*` request: **{per:.2f}** ({reqs} requests; one "
          "expected: one round trip per check).\n")
    fb = fallbacks(results)
    if fb is not None:
        out["shared_fallbacks"] = fb
        w(f"`gatehouse_rate_limit_shared_fallback_total` at the end of the run: {fb} (checks "
          "the local bucket decided because Redis did not answer in time).\n")
    _plots(peers, results, w, charts, "ratelimit", "requests per second")
    return out


DPOP_PEERS = [
    ("gatehouse", "`/api/*`: bearer JWT route (same token every request, cache warm)"),
    ("gatehouse-dpop", "`/dpop/*`: the same route with `dpop: required` (bound token cached, "
                       "a fresh ES256 proof checked and recorded per request)"),
]


def dpop(peers, runs, results, w, charts):
    """The dpop section: req/s and latency of the DPoP route divided by the bearer route of the
    same instance and run, and the DPoP route's non-2xx answers (a clean run has none)."""
    meta = charts.get("meta", {})
    w("## dpop: DPoP-bound token + proof vs bearer token (issue 20)\n")
    w("One gatehouse instance (one worker thread), two routes that differ only in `dpop: "
      "required`. The bearer route gets `jwt-warm`'s request; the DPoP route gets "
      "`Authorization: DPoP <token>` (RS256, `cnf.jkt` = the client key's thumbprint, in the "
      "verified-token cache after the first request) and a `DPoP` proof that is new on every "
      "request: ES256, made before the round's runs by `testing/dpop/client.mjs` (panva's "
      f"`dpop`), {meta.get('dpop_proofs', '?')} in all, split over the rounds; each is used "
      "once (a second use is refused `401`, checked in the preflight), so the run stops when "
      "its proofs are used up and its rate is that window's. `dpop-proof-window: 10m`; the "
      "memory replay store records every proof. **vs bearer** = DPoP / bearer of the same run "
      "(req/s; latency: p50 and p99).\n")
    bearer = peers.get("gatehouse")
    w("| route | req/s | p50 | p99 | p99.9 | req/s vs bearer | p50 vs bearer | p99 vs bearer "
      "| requests | non-2xx | errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    out = {}
    for p, label in DPOP_PEERS:
        a = peers.get(p)
        if not a:
            continue
        spread = (f" ({a['rps_min'] / 1000:.1f}-{a['rps_max'] / 1000:.1f}k)"
                  if a["rounds"] > 1 else "")
        b = bearer or {}
        w(f"| {label} | {a['rps'] / 1000:.1f}k{spread} | {a['p50']:.2f} | {a['p99']:.2f} | "
          f"{a['p999']:.2f} | {ratio(a['rps'], b.get('rps'))} | {ratio(a['p50'], b.get('p50'))} "
          f"| {ratio(a['p99'], b.get('p99'))} | {a['requests']} | {a['non2xx']} | "
          f"{a['errors']} |")
        out[p] = {"rps": a["rps"], "p50_ms": a["p50"], "p99_ms": a["p99"], "p999_ms": a["p999"],
                  "requests": a["requests"], "non_2xx": a["non2xx"], "errors": a["errors"],
                  "status_counts": a["status_counts"]}
    w("")
    d = peers.get("gatehouse-dpop")
    if d and bearer and bearer["rps"]:
        out["rps_vs_bearer"] = d["rps"] / bearer["rps"]
        out["p50_vs_bearer"] = d["p50"] / bearer["p50"] if bearer["p50"] else None
        out["p99_vs_bearer"] = d["p99"] / bearer["p99"] if bearer["p99"] else None
        w(f"DPoP / bearer = **{out['rps_vs_bearer']:.2f}x** req/s, p50 "
          f"{d['p50']:.2f} vs {bearer['p50']:.2f} ms, p99 {d['p99']:.2f} vs {bearer['p99']:.2f} ms "
          f"(same instance, same run); non-2xx on the DPoP route: **{d['non2xx']}**.\n")
    if d and d["status_counts"]:
        w("DPoP route answers by status: " + ", ".join(
            f"{c}: {n}" for c, n in sorted(d["status_counts"].items())) + ".\n")
    for p, _ in DPOP_PEERS:
        a = peers.get(p)
        if a and (a["non2xx"] or a["errors"]):
            w(f"**{p}: {a['non2xx']} non-2xx answers and {a['errors']} socket errors (a "
              "refused, replayed or stale proof, or proofs used up): not a clean "
              "measurement.**\n")
    _plots(peers, results, w, charts, "dpop", "requests per second")
    return out


def _plots(peers, results, w, charts, s, xlabel):
    order = sorted(peers, key=lambda p: -peers[p]["rps"])
    tp, cp = f"throughput-{s}.png", f"latency-{s}.png"
    charts["throughput"](os.path.join(results, tp), f"{s}: throughput", order,
                         [peers[p]["rps"] for p in order], [peers[p]["rps_min"] for p in order],
                         [peers[p]["rps_max"] for p in order], xlabel=xlabel)
    charts["latency"](os.path.join(results, cp), f"{s}: latency by percentile",
                      [(p, peers[p]["cdf"]) for p in order])
    w(f"![throughput {s}]({tp})\n")
    w(f"![latency by percentile {s}]({cp})\n")


SECTIONS = {"ws-echo": ws_echo, "ratelimit": ratelimit, "dpop": dpop}

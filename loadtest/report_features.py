"""Sections of report.py for the scenarios of issue 19: `ws-echo` (WebSocket messages through
gatehouse vs the bare Pingora proxy and nginx) and `ratelimit` (the JWT route with and without
a rate limit, in one gatehouse).

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


SECTIONS = {"ws-echo": ws_echo, "ratelimit": ratelimit}

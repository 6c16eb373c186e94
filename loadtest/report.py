#!/usr/bin/env python3
"""Report of one load-harness run (the standard library and matplotlib).

    report.py RESULTS_DIR

Reads RESULTS_DIR/run.json and RESULTS_DIR/raw/ (wrk outputs named SCENARIO__PEER__rROUND.txt
with the LT_* lines printed by lua/lt.lua's done(), idle__SERVER.txt from idle.py, and
instructions__SERVER.txt with the callgrind counts run.sh writes) and writes
RESULTS_DIR/report.md, RESULTS_DIR/summary.json and PNG plots drawn with matplotlib: per
scenario, throughput bars (the min-max of the rounds as error bars) and the latency percentiles
on the HdrHistogram "nines" axis from wrk's latency distribution; idle memory per connection.

Per scenario and peer: req/s is the mean over rounds (min-max shown), p50/p99/p99.9 the median
over rounds. Ratios divide by a reference measured in the same run:
  vs bare  - bare-proxy in the same scenario, else in `plain` (the framework ceiling)
  vs nginx - nginx plain proxy_pass (`plain`)
  vs HAProxy (jwt) - haproxy-jwt in the same scenario, else in `jwt-warm`
  vs Apache (jwt)  - apache-jwt in `jwt-warm`
  vs Apache (session) - apache-session in `session` (mod_auth_openidc as OIDC client, sessions in
                     one Redis node; session table and goals only)
RESULTS_DIR/raw/apache-session-redis-rROUND.txt (INFO commandstats of that Redis node, reset
before the round's apache-session run) gives the Redis commands per request.
The ws-echo and ratelimit scenarios (issue 19) have their own sections (report_features.py):
ws-echo's runs are `ws-bench client` outputs in the same LT_* form (a message echoed counts as a
request) and divide by bare-proxy and nginx of ws-echo; ratelimit divides by its plain JWT route;
so does dpop (issue 20: the `dpop: required` route vs the bearer route of the same instance).
"""
import json
import os
import re
import statistics
import sys

import report_features

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("report.py: matplotlib is missing: run ./scripts/install-deps.sh and run this with "
             "the venv's python (scripts/python-venv.sh prints it)")

SCENARIO_ORDER = ["plain", "jwt-warm", "jwt-miss", "mix-80-20", "tenants-1-vs-10000", "jwt-tracing",
                  "session", "ws-echo", "ratelimit", "dpop"]
SCENARIO_TITLE = {
    "plain": "plain: white-listed route / plain proxy",
    "jwt-warm": "jwt-warm: bearer JWT, same token (verified-token cache warm)",
    "jwt-miss": "jwt-miss: bearer JWT, a fresh token per request (cache miss, RS256 verify)",
    "mix-80-20": "mix-80-20: 80 % valid tokens / 20 % forged (401)",
    "tenants-1-vs-10000": "tenants-1-vs-10000: white-listed route, 1 vs 10 000 tenants in the config",
    "jwt-tracing": ("jwt-tracing: bearer JWT (cache warm), tracing not configured vs OpenTelemetry "
                    "tracing at sampling-ratio 0.01 exporting to a local OTLP/HTTP sink"),
    "session": ("Sessions (issue 5): cookie session (browser login) on memory / Redis Cluster, "
                "and Apache mod_auth_openidc (OIDC client, sessions in Redis)"),
}
SESSION_PEERS = [
    ("gatehouse-public", "(a) public white-listed route, same instance as (b)"),
    ("gatehouse-session-memory", "(b) session, `memory://` (local cache warm)"),
    ("gatehouse-session-redis-nocache", "(c) session, Redis Cluster, `local-cache-ttl: 0s` (every request a Redis GET)"),
    ("gatehouse-session-redis-5s", "(d) session, Redis Cluster, `local-cache-ttl: 5s` (warm)"),
    ("bare-proxy", "bare-proxy, same request (with the cookie)"),
    ("apache-session", "(e) Apache 2.4 + mod_auth_openidc, OIDC client, `server-cache` sessions "
                       "in **one standalone Redis node** (it cannot use a Redis Cluster)"),
]
NOT_YET = []
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
def parse_wrk(path):
    run = {"pcts": {}, "codes": {}}
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("LT_SUMMARY"):
                for kv in line.split()[1:]:
                    k, v = kv.split("=")
                    run[k] = int(v)
            elif line.startswith("LT_PCT"):
                _, p, us = line.split()
                run["pcts"][float(p)] = int(us)
            elif line.startswith("LT_WINDOW"):
                for kv in line.split()[1:]:
                    k, v = kv.split("=")
                    run["window_" + k] = int(v)
            elif line.startswith("LT_STATUS"):
                _, code, n = line.split()
                run["codes"][code] = int(n)
            elif line.startswith("LT_WS "):  # ws-bench client: its connections and reopens
                for kv in line.split()[1:]:
                    k, v = kv.split("=")
                    run["ws_" + k] = int(v)
    if "requests" not in run or not run.get("duration_us"):
        return None
    run["rps"] = run["requests"] / (run["duration_us"] / 1e6)
    if run.get("window_elapsed_us"):
        # The miss mode stops after its token set: its rate is that window's, not wrk's -d.
        run["rps"] = run["window_requests"] / (run["window_elapsed_us"] / 1e6)
    run["errors"] = sum(run.get(k, 0) for k in ("connect", "read", "write", "timeout"))
    return run


def load(results):
    raw = os.path.join(results, "raw")
    runs, idle, instr, broken = {}, [], [], []
    for name in sorted(os.listdir(raw)):
        path = os.path.join(raw, name)
        m = re.match(r"(.+)__(.+)__r(\d+)\.txt$", name)
        if m:
            r = parse_wrk(path)
            if r is None:
                broken.append(name)
                continue
            r["round"] = int(m.group(3))
            runs.setdefault(m.group(1), {}).setdefault(m.group(2), []).append(r)
        elif name.startswith("idle__"):
            with open(path) as f:
                for line in f:
                    if line.startswith("LT_IDLE "):
                        idle.append(json.loads(line[len("LT_IDLE "):]))
        elif name.startswith("instructions__"):
            with open(path) as f:
                for line in f:
                    if line.startswith("LT_INSTR "):
                        instr.append(json.loads(line[len("LT_INSTR "):]))
    return runs, idle, instr, broken


INSTR_ORDER = ["bare-proxy", "bare-proxy-timeouts", "gatehouse-white-listed", "gatehouse-jwt",
               "gatehouse-jwt-assertion", "gatehouse-jwt-ratelimit", "gatehouse-jwt-tracing",
               "baseline-white-listed",
               "baseline-jwt", "gatehouse-session"]


def instruction_rows(instr):
    """One row per server from its LT_INSTR lines (one per round): the per-request counts,
    their median, and the summed requests and non-2xx answers."""
    rows = {}
    for d in instr:
        r = rows.setdefault(d["server"], {"server": d["server"], "path": d["path"], "per": [],
                                          "net": [], "requests": 0, "non_2xx": 0})
        r["per"].append(d["instructions"] / d["requests"])
        r["net"].append((d["instructions"] - d.get("idle_instructions", 0)) / d["requests"])
        r["requests"] += d["requests"]
        r["non_2xx"] += d["non_2xx"]
    for r in rows.values():
        r["median"] = statistics.median(r["per"])
        r["net_median"] = statistics.median(r["net"])
    return sorted(rows.values(), key=lambda r: (INSTR_ORDER + [r["server"]]).index(r["server"]))


def load_redis_stats(results):
    """Per round: {command: calls} from raw/apache-session-redis-rN.txt (INFO commandstats)."""
    raw = os.path.join(results, "raw")
    stats = {}
    for name in sorted(os.listdir(raw)):
        m = re.match(r"apache-session-redis-r(\d+)\.txt$", name)
        if not m:
            continue
        calls = {}
        with open(os.path.join(raw, name), errors="replace") as f:
            for line in f:
                c = re.match(r"cmdstat_([^:]+):calls=(\d+)", line.strip())
                if c and c.group(1) != "config|resetstat":
                    calls[c.group(1)] = int(c.group(2))
        stats[int(m.group(1))] = calls
    return stats


def aggregate(rounds):
    rps = [r["rps"] for r in rounds]
    pct_keys = sorted(set.intersection(*(set(r["pcts"]) for r in rounds)))
    status = {}
    for r in rounds:
        for c, n in r["codes"].items():
            status[c] = status.get(c, 0) + n
    return {
        "rps": statistics.mean(rps), "rps_min": min(rps), "rps_max": max(rps), "rounds": len(rps),
        "p50": statistics.median(r["pcts"].get(50.0, 0) for r in rounds) / 1000,
        "p99": statistics.median(r["pcts"].get(99.0, 0) for r in rounds) / 1000,
        "p999": statistics.median(r["pcts"].get(99.9, 0) for r in rounds) / 1000,
        "cdf": [(p, statistics.mean(r["pcts"][p] for r in rounds) / 1000) for p in pct_keys],
        "requests": sum(r["requests"] for r in rounds),
        "non2xx": sum(r.get("status", 0) for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "status_counts": status,
    }


# --------------------------------------------------------------------------------------------
# Plots (matplotlib, drawn off-screen), sized to be read at a glance inside report.md.
# --------------------------------------------------------------------------------------------
NINES = [50, 90, 99, 99.9, 99.99]


def nines(p):
    """The HdrHistogram percentile axis: 1 / (1 - p), plotted on a log scale, so 90 %, 99 %,
    99.9 % and 99.99 % are evenly spaced and the tail gets as much room as the body."""
    return 1.0 / (1.0 - min(p, 99.999) / 100.0)


def _save(fig, path):
    fig.savefig(path, dpi=100)
    plt.close(fig)


def throughput_chart(path, title, labels, means, mins, maxs, ref_line=None,
                     xlabel="requests per second"):
    """Horizontal bars of the mean req/s (or `xlabel`) per peer, the min-max of the rounds as
    error bars."""
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.45 * len(labels)))
    y = list(range(len(labels)))[::-1]
    err = [[m - lo for m, lo in zip(means, mins)], [hi - m for m, hi in zip(means, maxs)]]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    ax.barh(y, means, xerr=err, color=colors, capsize=4, error_kw={"elinewidth": 1.2})
    ax.set_yticks(y, labels)
    for yi, m, hi in zip(y, means, maxs):
        ax.text(hi, yi, f"  {m / 1000:.1f}k" if m >= 1000 else f"  {m:.0f}", va="center", fontsize=9)
    if ref_line:
        ax.axvline(ref_line[1], color="#c00000", linestyle="--", linewidth=1.2)
        ax.text(ref_line[1], len(labels) - 0.45, f" {ref_line[0]}", color="#c00000", fontsize=9,
                va="bottom")
    ax.set_xlabel(f"{xlabel} (mean of the rounds; bars: min-max)")
    ax.set_xlim(0, max(maxs + ([ref_line[1]] if ref_line else [])) * 1.18)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, loc="left", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def latency_chart(path, title, series):
    """series: [(label, [(percentile, ms), ...])] from wrk's latency distribution; x = the
    percentile on the nines axis, y = latency in ms."""
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    for i, (label, pts) in enumerate(series):
        pts = sorted((p, ms) for p, ms in pts if 0 < p <= 99.999)
        if not pts:
            continue
        ax.plot([nines(p) for p, _ in pts], [ms for _, ms in pts], label=label,
                color=PALETTE[i % len(PALETTE)], linewidth=1.8)
    ax.set_xscale("log")
    ax.set_xticks([nines(p) for p in NINES], [f"{p:g}%" for p in NINES])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(nines(NINES[0]) * 0.8, nines(NINES[-1]) * 1.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, loc="left", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def idle_chart(path, servers, per_conn_kib, rss_mib, conns):
    """Idle memory per connection (KiB) per server, with the RSS it comes from."""
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.45 * len(servers)))
    y = list(range(len(servers)))[::-1]
    ax.barh(y, per_conn_kib, color=[PALETTE[i % len(PALETTE)] for i in range(len(servers))])
    ax.set_yticks(y, servers)
    for yi, v, rss, n in zip(y, per_conn_kib, rss_mib, conns):
        ax.text(v, yi, f"  {v:.1f} KiB  (RSS {rss:.0f} MiB, {n} connections)", va="center",
                fontsize=9)
    ax.set_xlim(0, max(per_conn_kib + [1]) * 1.9)
    ax.set_xlabel("resident memory per idle keep-alive connection (KiB)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("idle connections: memory per connection", loc="left", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def ratio(v, ref):
    return f"{v / ref:.2f}" if ref else "-"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = sys.argv[1]
    meta = {}
    if os.path.exists(os.path.join(results, "run.json")):
        with open(os.path.join(results, "run.json")) as f:
            meta = json.load(f)
    runs, idle, instr, broken = load(results)
    redis_stats = load_redis_stats(results)
    agg = {s: {p: aggregate(r) for p, r in peers.items()} for s, peers in runs.items()}

    def get(s, p):
        return agg.get(s, {}).get(p)

    def ref_bare(s):
        return (get(s, "bare-proxy") or get("plain", "bare-proxy") or {}).get("rps")

    ref_nginx = (get("plain", "nginx") or {}).get("rps")

    def ref_hap(s):
        return (get(s, "haproxy-jwt") or get("jwt-warm", "haproxy-jwt") or {}).get("rps")

    ref_apache = (get("jwt-warm", "apache-jwt") or {}).get("rps")

    out = []
    w = out.append
    w(f"# gatehouse load report {meta.get('stamp', '')}\n")
    w(f"`wrk -t1 -c{meta.get('connections', 64)}`, {meta.get('duration_s', '?')} s per run, "
      f"{meta.get('rounds', '?')} round(s) with the peers rotated every round, loopback, "
      "a 20-byte nginx upstream, one worker thread/process per server. "
      f"Host: {meta.get('host', '?')}, {meta.get('cpus', '?')} CPUs, load average at start "
      f"{meta.get('load_at_start', '?')}. Versions: "
      + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()) + ".\n")
    if meta.get("quick"):
        w("**Quick run** (`--quick`: one round of short runs): indicative only; "
          "use the default run for figures you quote.\n")
    w("req/s: mean over rounds (min-max). p50/p99/p99.9: median over rounds, ms. Ratios divide "
      "the req/s by a reference from this same run: **bare** = bare-proxy (same scenario, else "
      "`plain`), **nginx** = nginx plain `proxy_pass`, **HAProxy** = HAProxy `jwt_verify` (same "
      "scenario, else `jwt-warm`), **Apache** = Apache mod_auth_openidc (`jwt-warm`); the "
      "session section also divides by **Apache (e)** = mod_auth_openidc as OIDC client "
      "(`session`).\n")
    if broken:
        w(f"**Runs without a wrk summary (failed):** {', '.join(broken)}\n")

    summary = {"meta": meta, "scenarios": {}, "idle": idle, "instructions": instr, "goals": []}
    for s in SCENARIO_ORDER + sorted(set(agg) - set(SCENARIO_ORDER)):
        if s not in agg:
            continue
        peers = agg[s]
        if s in report_features.SECTIONS:
            charts = {"throughput": throughput_chart, "latency": latency_chart, "meta": meta}
            summary["scenarios"][s] = report_features.SECTIONS[s](peers, runs[s], results, w,
                                                                  charts)
            continue
        w(f"## {SCENARIO_TITLE.get(s, s)}\n")
        if s == "session":
            pub = (peers.get("gatehouse-public") or {}).get("rps")
            aps = (peers.get("apache-session") or {}).get("rps")
            w("The tenant has `login` + `cookie`; alice logged in through the test IdP "
              "(`login.py`, access tokens valid 1 h: no refresh during the runs) and every "
              "request carries her `gatehouse_session` cookie. (e) is Apache mod_auth_openidc "
              "as OIDC client of the same IdP (client `gatehouse`), alice logged in on it the "
              "same way; its requests carry its `mod_auth_openidc_session` cookie (the session "
              "id). **vs public** = the white-listed route (a) of the same run; **vs bare** = "
              "bare-proxy in this scenario; **vs Apache (e)** = (e) of the same run.\n")
            w("| configuration | req/s | p50 | p99 | p99.9 | vs public (a) | vs bare "
              "| vs Apache (e) | non-2xx | errors |")
            w("|---|---|---|---|---|---|---|---|---|---|")
            for p, label in SESSION_PEERS:
                a = peers.get(p)
                if not a:
                    continue
                spread = (f" ({a['rps_min'] / 1000:.1f}-{a['rps_max'] / 1000:.1f}k)"
                          if a["rounds"] > 1 else "")
                w(f"| {label} | {a['rps'] / 1000:.1f}k{spread} | {a['p50']:.2f} | {a['p99']:.2f} | "
                  f"{a['p999']:.2f} | {ratio(a['rps'], pub)} | {ratio(a['rps'], ref_bare(s))} | "
                  f"{ratio(a['rps'], aps)} | {a['non2xx']} | {a['errors']} |")
            w("")
            if aps:
                vs = [f"{lab} / Apache (e) = **{peers[p]['rps'] / aps:.2f}x**" for p, lab in
                      (("gatehouse-session-redis-5s", "gatehouse (d), Redis Cluster, cache warm"),
                       ("gatehouse-session-redis-nocache",
                        "gatehouse (c), Redis Cluster, cache off")) if p in peers]
                if vs:
                    w("Against Apache mod_auth_openidc: " + "; ".join(vs) + ".\n")
                w("**mod_auth_openidc cannot use a Redis Cluster; it gets a single Redis node.** "
                  "mod_auth_openidc 2.4.x talks to one `host:port` (`OIDCRedisCacheServer`: one "
                  "hiredis connection per process, a `MOVED` reply is an error), so (e) keeps its "
                  "sessions in one standalone Redis on loopback while (c) and (d) use the 6-node "
                  "cluster: (e) is spared the cluster's routing and has no failover. It has no "
                  "in-process cache in front of Redis: every request reads the session from Redis "
                  "(key hashed with the passphrase, value AES-GCM encrypted, `OIDCCacheEncrypt` "
                  "default), and with `OIDCProviderMetadataURL` (the static endpoint directives "
                  "take only https URLs; the test IdP is plain http) the provider metadata too; "
                  "each round trip holds a process-wide mutex. So (e) does the work of (c) "
                  "(every request a Redis round trip), not of (d) (local cache warm); (d) vs (e) "
                  "compares each gateway as configured for sessions in Redis.\n")
                ap_rounds = {r["round"]: r["requests"] for r in runs["session"]["apache-session"]}
                common = sorted(set(ap_rounds) & set(redis_stats))
                reqs = sum(ap_rounds[r] for r in common)
                if reqs:
                    cmds = {}
                    for r in common:
                        for c, n in redis_stats[r].items():
                            cmds[c] = cmds.get(c, 0) + n
                    per = {c: n / reqs for c, n in sorted(cmds.items())}
                    summary["apache_session_redis_per_request"] = per
                    w("Redis commands per (e) request in this run (INFO commandstats of its node, "
                      f"reset before each (e) run; {reqs} requests): "
                      + ", ".join(f"`{c.upper()}` {v:.2f}" for c, v in per.items())
                      + " (expected: 2 `GET`s, the session and the provider metadata; a `SETEX` "
                      "at most once a minute when the sliding inactivity timeout is pushed on).\n")
            w("Same figures, all peers, with the other references:\n")
        w("| peer | req/s | p50 | p99 | p99.9 | vs bare | vs nginx | vs HAProxy (jwt) "
          "| vs Apache (jwt) | non-2xx | errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        order = sorted(peers, key=lambda p: -peers[p]["rps"])
        for p in order:
            a = peers[p]
            spread = (f" ({a['rps_min'] / 1000:.1f}-{a['rps_max'] / 1000:.1f}k)"
                      if a["rounds"] > 1 else "")
            w(f"| {p} | {a['rps'] / 1000:.1f}k{spread} | {a['p50']:.2f} | {a['p99']:.2f} | "
              f"{a['p999']:.2f} | {ratio(a['rps'], ref_bare(s))} | {ratio(a['rps'], ref_nginx)} | "
              f"{ratio(a['rps'], ref_hap(s))} | {ratio(a['rps'], ref_apache)} | "
              f"{a['non2xx']} | {a['errors']} |")
        w("")
        notes = []
        for p in order:
            a = peers[p]
            if a["status_counts"]:
                notes.append(f"{p}: " + ", ".join(f"{c}: {n}" for c, n in
                                                   sorted(a["status_counts"].items())))
            if s != "mix-80-20" and (a["non2xx"] or a["errors"]):
                notes.append(f"**{p}: {a['non2xx']} non-2xx responses and {a['errors']} socket "
                             "errors: this figure is not a clean measurement.**")
        if notes:
            w("Responses by status: " + "; ".join(notes) + "\n")
        if s == "tenants-1-vs-10000" and meta.get("tenants_startup_ms"):
            w(f"gatehouse with {meta.get('tenants', '?')} tenants took "
              f"{meta['tenants_startup_ms'] / 1000:.1f} s from start to listening (config load, "
              "compile, pools); with 1 tenant it is well under a second.\n")
        tp = f"throughput-{s}.png"
        throughput_chart(os.path.join(results, tp), f"{s}: throughput", order,
                         [peers[p]["rps"] for p in order], [peers[p]["rps_min"] for p in order],
                         [peers[p]["rps_max"] for p in order],
                         ("bare-proxy", ref_bare(s)) if "bare-proxy" not in peers and ref_bare(s)
                         else None)
        cp = f"latency-{s}.png"
        latency_chart(os.path.join(results, cp), f"{s}: latency by percentile",
                      [(p, peers[p]["cdf"]) for p in order])
        w(f"![throughput {s}]({tp})\n")
        w(f"![latency by percentile {s}]({cp})\n")
        summary["scenarios"][s] = {p: {k: v for k, v in a.items() if k != "cdf"}
                                   for p, a in peers.items()}

    w("## idle-10k: idle keep-alive connections, RSS of the serving process\n")
    if idle:
        w("| server | connections still open | RSS before | RSS idle | per connection | failures |")
        w("|---|---|---|---|---|---|")
        for d in idle:
            w(f"| {d['server']} | {d['still_open']} / {d['requested']} | "
              f"{d['rss_before_kib'] / 1024:.1f} MiB | {d['rss_idle_kib'] / 1024:.1f} MiB | "
              f"{d['per_conn_kib']:.1f} KiB | {d['failures']} |")
        w("")
        idle_chart(os.path.join(results, "idle-memory.png"), [d["server"] for d in idle],
                   [d["per_conn_kib"] for d in idle], [d["rss_idle_kib"] / 1024 for d in idle],
                   [d["still_open"] for d in idle])
        w("![idle memory per connection](idle-memory.png)\n")
    else:
        w("not measured in this run.\n")

    w("## instructions: user-space instructions per request (callgrind)\n")
    if instr:
        conns = meta.get("instr_conns", 16)
        w(f"Each server alone under valgrind's callgrind, `wrk -t1 -c{conns}`, counters zeroed after a "
          "2 s warm-up. Every request carries `Host` and the warm token, except on "
          "**gatehouse-session** (the session scenario's Redis Cluster configuration with its "
          "local cache warm, as (d), a fresh instance), which gets alice's session cookie. These count the work of "
          "the process's own code (Pingora, gatehouse, libc, the allocator), not the kernel's: "
          "they move far less than req/s with the machine's load (a few % between runs, as the "
          "scheduler batches more or fewer requests per wake-up, against up to 20 % for req/s "
          "here), so they show A/B differences between commits that req/s hides. "
          "**bare-proxy-timeouts** is bare-proxy with gatehouse's default timeouts armed "
          "(`BARE_PROXY_TIMEOUTS=1`): the framework's timer cost alone. **baseline-*** rows "
          "(with `LT_BASELINE`) are the same routes on a gatehouse built from an earlier commit. "
          "**gatehouse-jwt-assertion** and **gatehouse-jwt-ratelimit** are the JWT route with a "
          "signed identity assertion (EC P-256, cached per identity) and with a client-ip rate "
          "limit too high to refuse anything, and **gatehouse-jwt-tracing** with OpenTelemetry "
          "tracing at sampling-ratio 0.01 (exporting to a local sink): each feature's cost on vs "
          "off.\n")
        rows = instruction_rows(instr)
        if any(len(r["per"]) > 1 for r in rows):
            w("With `LT_INSTR_ROUNDS` > 1 the gatehouse and baseline servers ran that many rounds, "
              "alternating which went first; a row gives the median per request and, in "
              "brackets, the range over the rounds.\n")
        w("**net** subtracts what the process did in an idle window of the same length right "
          "after the counted run (health checks, timers): a run that serves fewer requests, on a "
          "busy machine, spreads that background over fewer of them, so the net figure is the one "
          "to compare between servers and runs.\n")
        w("| server | path | requests | instructions per request | net | vs bare-proxy (net) | non-2xx |")
        w("|---|---|---|---|---|---|---|")
        base = next((r for r in rows if r["server"] == "bare-proxy"), None)
        base_net = base["net_median"] if base else None
        for r in rows:
            vs = f"{r['net_median'] / base_net:.2f}x" if base_net else "-"
            spread = (f" ({min(r['per']):,.0f}-{max(r['per']):,.0f})"
                      if len(r["per"]) > 1 else "")
            net_spread = (f" ({min(r['net']):,.0f}-{max(r['net']):,.0f})"
                          if len(r["net"]) > 1 else "")
            w(f"| {r['server']} | `{r['path']}` | {r['requests']} | {r['median']:,.0f}{spread} | "
              f"{r['net_median']:,.0f}{net_spread} | {vs} | {r['non_2xx']} |")
        w("")
        by_name = {r["server"]: r for r in rows}
        jwt = by_name.get("gatehouse-jwt")
        for feature in ("assertion", "ratelimit"):
            on = by_name.get(f"gatehouse-jwt-{feature}")
            if on and jwt:
                w(f"- gatehouse-jwt-{feature} against gatehouse-jwt (the feature on vs off): "
                  f"{(on['median'] / jwt['median'] - 1) * 100:+.2f} % per request, "
                  f"{(on['net_median'] / jwt['net_median'] - 1) * 100:+.2f} % net (medians)")
        for route in ("jwt", "white-listed"):
            now, before = by_name.get(f"gatehouse-{route}"), by_name.get(f"baseline-{route}")
            if now and before:
                w(f"- gatehouse-{route} against baseline-{route}: "
                  f"{(now['median'] / before['median'] - 1) * 100:+.2f} % per request, "
                  f"{(now['net_median'] / before['net_median'] - 1) * 100:+.2f} % net (medians)")
        w("")
    else:
        w("not measured in this run.\n")

    if NOT_YET:
        w("## not yet measured\n")
        for n in NOT_YET:
            w(f"- {n}: not yet")
        w("")

    # Goals of issue 10, evaluated on this run's numbers.
    goals = []

    def goal(name, value, target, ok):
        goals.append((name, value, target, "met" if ok else "**not met**"))

    gw, bw = get("jwt-warm", "gatehouse"), get("jwt-warm", "bare-proxy") or get("plain", "bare-proxy")
    hw, aw = get("jwt-warm", "haproxy-jwt"), get("jwt-warm", "apache-jwt")
    if gw and bw:
        r = gw["rps"] / bw["rps"]
        goal("bearer JWT, warm cache vs bare Pingora", f"{r:.2f}x", ">= 0.95x", r >= 0.95)
        d = gw["p99"] - bw["p99"]
        goal("p99 of the JWT route minus bare Pingora's p99", f"{d:+.2f} ms", "<= 0.5 ms", d <= 0.5)
    if gw and hw:
        r = gw["rps"] / hw["rps"]
        goal("bearer JWT, warm cache vs HAProxy jwt_verify", f"{r:.2f}x", ">= 2.0x", r >= 2.0)
    if gw and aw:
        r = gw["rps"] / aw["rps"]
        goal("bearer JWT, warm cache vs Apache mod_auth_openidc", f"{r:.2f}x", ">= 3.0x", r >= 3.0)
    gm, hm = get("jwt-miss", "gatehouse"), get("jwt-miss", "haproxy-jwt")
    if gm and hm:
        r = gm["rps"] / hm["rps"]
        goal("bearer JWT, cache miss vs HAProxy jwt_verify", f"{r:.2f}x", ">= 0.9x", r >= 0.9)
    t1, t10 = get("tenants-1-vs-10000", "gatehouse-1-tenant"), get("tenants-1-vs-10000",
                                                                    "gatehouse-10000-tenants")
    if t1 and t10:
        r = t10["rps"] / t1["rps"]
        goal("10 000 tenants vs 1 tenant, throughput", f"{r:.2f}x", "within 5 % (>= 0.95x)",
             r >= 0.95)
    tp, tt = get("jwt-tracing", "gatehouse"), get("jwt-tracing", "gatehouse-tracing")
    if tp and tt:
        r = tt["rps"] / tp["rps"]
        goal("issue 22: JWT route, tracing at ratio 0.01 vs not configured", f"{r:.3f}x",
             "within 3 % (>= 0.97x)", r >= 0.97)
    ib = next((d for d in idle if d["server"] == "bare-proxy"), None)
    ig = next((d for d in idle if d["server"] == "gatehouse"), None)
    if ib and ig:
        r = ig["rss_idle_kib"] / ib["rss_idle_kib"]
        goal("10 000 idle connections: RSS vs bare Pingora", f"{r:.2f}x", "<= 1.1x", r <= 1.1)
    ng = get("plain", "nginx")
    if gw and ng:
        r = gw["rps"] / ng["rps"]
        goal("stretch: authenticated route vs nginx plain proxy_pass", f"{r:.2f}x", "> 1.0x",
             r > 1.0)
    sw, so, sb = (get("session", "gatehouse-session-redis-5s"),
                  get("session", "gatehouse-session-redis-nocache"), get("session", "bare-proxy")
                  or get("plain", "bare-proxy"))
    if sw and sb:
        r = sw["rps"] / sb["rps"]
        goal("cookie session on Redis Cluster, local cache warm, vs bare Pingora", f"{r:.2f}x",
             ">= 0.95x", r >= 0.95)
    if so and sb:
        r = so["rps"] / sb["rps"]
        goal("cookie session on Redis Cluster, local cache off, vs bare Pingora", f"{r:.2f}x",
             ">= 0.6x", r >= 0.6)
    if not (sw and so and sb):
        goals.append(("cookie session, local cache warm / off", "-", ">= 0.95x / >= 0.6x bare",
                      "not measured in this run"))
    sa = get("session", "apache-session")
    for g, what in ((sw, "local cache warm (d)"), (so, "local cache off (c)")):
        if g and sa:
            goals.append((f"cookie session on Redis Cluster, {what}, vs Apache mod_auth_openidc "
                          "(OIDC client, sessions in one Redis node)",
                          f"{g['rps'] / sa['rps']:.2f}x", "no target (reference)", "reported"))
    w("## goals of issue 10 on this run\n")
    w("| goal | this run | target | |")
    w("|---|---|---|---|")
    for g in goals:
        w("| " + " | ".join(g) + " |")
    w("")
    summary["goals"] = [dict(zip(("goal", "value", "target", "status"), g)) for g in goals]

    with open(os.path.join(results, "report.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(os.path.join(results, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

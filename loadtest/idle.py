#!/usr/bin/env python3
"""Idle keep-alive connections: the memory scenario of gatehouse's load harness.

    idle.py --target 127.0.0.1:PORT --pid PID [--conns 10000] [--sources 8] [--host H]
            [--path /p] [--hold 3] [--timeout 90]

Opens --conns HTTP/1.1 keep-alive connections to --target from --sources loopback source
addresses (127.0.0.11, 127.0.0.12, ...: each source has its own ephemeral port range), sends one
GET on each and reads the whole response, then leaves every connection idle. After --hold
seconds it reads the RSS of process --pid (VmRSS in /proc/PID/status), checks how many
connections are still open, prints one JSON line and closes everything. Bounded: at most
--conns connections, 256 connecting at a time, and --timeout seconds overall. Stdlib only.
"""
import argparse
import asyncio
import json
import resource
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one(i, args, host, port, sem, conns, failures):
    src = f"127.0.0.{11 + i % args.sources}"
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(src, 0)), 10)
            writer.write(f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
                         f"User-Agent: gatehouse-loadtest-idle\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            if status != 200:
                failures.append(f"status {status}")
            conns.append((reader, writer))
        except Exception as e:  # noqa: BLE001 - counted and reported, never fatal
            failures.append(type(e).__name__)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--name", default="server")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--path", default="/")
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.conns + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if args.conns + 64 > want:
        args.conns = max(0, want - 64)
    host, port = args.target.rsplit(":", 1)
    port = int(port)
    before = rss_kib(args.pid)
    conns, failures = [], []
    sem = asyncio.Semaphore(256)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one(i, args, host, port, sem, conns, failures)
                             for i in range(args.conns))),
            args.timeout)
    except asyncio.TimeoutError:
        failures.append("overall timeout")
    opened_s = time.monotonic() - t0
    await asyncio.sleep(args.hold)
    idle = rss_kib(args.pid)
    # Still open: the server has not closed them (a closed one reads EOF at once).
    still = 0
    for reader, _ in conns:
        if not reader.at_eof() and reader.exception() is None:
            still += 1
    result = {
        "server": args.name, "pid": args.pid, "requested": args.conns,
        "opened": len(conns), "still_open": still, "failures": len(failures),
        "failure_kinds": sorted(set(failures))[:5], "open_seconds": round(opened_s, 2),
        "rss_before_kib": before, "rss_idle_kib": idle,
        "per_conn_kib": round((idle - before) / max(1, len(conns)), 2),
    }
    for _, w in conns:
        w.close()
    print("LT_IDLE " + json.dumps(result), flush=True)
    print(f"[idle] {args.name:<28} {still:>6} open  RSS {idle / 1024:7.1f} MiB "
          f"(+{result['per_conn_kib']:.1f} KiB/conn, {len(failures)} failures)", flush=True)
    return 0 if len(conns) == args.conns else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

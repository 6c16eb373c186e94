#!/usr/bin/env python3
"""Plots the dashboard's main latency panel (p50/p95/p99 by tenant and route) as a PNG.

Queries each of the panel's expressions over a time range with /api/v1/query_range (Grafana
variables substituted as in promql.py: every tenant and route, $__rate_interval = 1m) and
draws the series with matplotlib (the venv of scripts/python-venv.sh).

  ~/.cache/gatehouse-venv/bin/python testing/prometheus/plot_latency.py --prometheus http://127.0.0.1:9090 \
      --out docs/latency.png [--since 1h | --start T --end T] [--step 15s] \
      [--panel "Request latency"] [--dashboard deploy/grafana/gatehouse-overview.json]

T is a Unix timestamp or RFC 3339 time. Exit status 0 when the PNG was written with at least
one series, 1 when the panel returned no data, 2 on errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import re
import sys
import time
from pathlib import Path

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
except ImportError:  # the message is the point
    sys.exit(
        "plot_latency.py: matplotlib is missing: run ./scripts/install-deps.sh and run this with "
        "the venv's python (scripts/python-venv.sh prints it)"
    )

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402  (the sibling module)

DEFAULT_PANEL = "Request latency"

# ------------------------------------------------------------------------------------------
# Drawing (matplotlib, off-screen).

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]
LINESTYLES = ["-", "--", ":"]


def render(series: list[tuple[str, list[tuple[float, float]]]], title: str, width: int, height: int) -> bytes:
    """Line chart of (label, [(unix time, seconds)]) over UTC time, latency in ms (or s when
    above a second), a grid and a legend below; `width` x `height` pixels."""
    points = [v for _, pts in series for _, v in pts if not math.isnan(v)]
    if not points:
        raise ValueError("no data points to draw")
    scale, unit = (1000.0, "ms") if max(points) < 1 else (1.0, "s")
    rows = math.ceil(len(series) / 2)
    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    for i, (label, pts) in enumerate(series):
        ax.plot(
            [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t, _ in pts],
            [v * scale for _, v in pts],  # NaN leaves a gap
            label=label[:60],
            color=PALETTE[i % len(PALETTE)],
            linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
            linewidth=1.6,
            marker="." if len(pts) < 3 else None,
        )
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_ylabel(f"latency ({unit})")
    ax.set_xlabel("time (UTC)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.timezone.utc))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.18 + 0.035 * rows)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# Querying.


def parse_time(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def parse_duration(s: str) -> float:
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        pos = m.end()
    if pos != len(s) or total <= 0:
        raise ValueError(f"invalid duration {s!r} (expected e.g. 15s, 5m, 1h)")
    return total


def legend(fmt: str, labels: dict) -> str:
    if not fmt or fmt == "__auto":
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def find_panel(dash: dict, title: str) -> dict:
    panels = [p for p in promql._walk_panels(dash.get("panels")) if p.get("type") != "row"]
    for p in panels:
        if p.get("title") == title:
            return p
    for p in panels:
        if (p.get("title") or "").startswith(title):
            return p
    raise ValueError(f"no panel titled {title!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--out", default="docs/latency.png", help="PNG to write (default docs/latency.png)")
    ap.add_argument("--dashboard", default=str(promql.ROOT / "deploy/grafana/gatehouse-overview.json"))
    ap.add_argument("--panel", default=DEFAULT_PANEL, help="panel title or its beginning")
    ap.add_argument("--since", default="15m", help="range ending now (default 15m)")
    ap.add_argument("--start", help="range start (Unix time or RFC 3339); overrides --since")
    ap.add_argument("--end", help="range end (default now)")
    ap.add_argument("--step", help="resolution (default: the range / 240, at least 1s)")
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=520)
    args = ap.parse_args(argv)
    try:
        dash = json.loads(Path(args.dashboard).read_text())
        panel = find_panel(dash, args.panel)
        variables = promql.dashboard_variables(dash)
        end = parse_time(args.end) if args.end else time.time()
        start = parse_time(args.start) if args.start else end - parse_duration(args.since)
        if end <= start:
            raise ValueError("the range ends before it starts")
        step = parse_duration(args.step) if args.step else max(1.0, (end - start) / 240)
        series = []
        for target in panel.get("targets") or []:
            if not target.get("expr") or target.get("hide"):
                continue
            query = promql.substitute(target["expr"], variables)
            data = promql.api_get(
                args.prometheus, "/api/v1/query_range",
                {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
                timeout=30,
            )
            for s in data.get("result") or []:
                pts = [(float(t), float(v)) for t, v in s.get("values") or []]
                if any(not math.isnan(v) and not math.isinf(v) for _, v in pts):
                    pts = [(t, v if not math.isinf(v) else float("nan")) for t, v in pts]
                    series.append((legend(target.get("legendFormat", ""), s.get("metric", {})), pts))
        if not series:
            print("plot_latency.py: the panel's queries returned no data in the range", file=sys.stderr)
            return 1
        series.sort(key=lambda x: x[0])
        series = series[: 3 * len(PALETTE)]
        png = render(series, panel.get("title", "latency"), args.width, args.height)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
        print(f"wrote {out} ({len(png)} bytes, {len(series)} series, {start:.0f}..{end:.0f} step {step:g}s)")
        return 0
    except (promql.ApiError, OSError, ValueError, KeyError) as e:
        print(f"plot_latency.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

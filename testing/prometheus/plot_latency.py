#!/usr/bin/env python3
"""Plots the dashboard's main latency panel (p50/p95/p99 by tenant and route) as a PNG.

Queries each of the panel's expressions over a time range with /api/v1/query_range (Grafana
variables substituted as in promql.py: every tenant and route, $__rate_interval = 1m) and
draws the series with a small pure-Python rasterizer and PNG encoder (zlib): no matplotlib,
Python 3.11 standard library only.

  python3 testing/prometheus/plot_latency.py --prometheus http://127.0.0.1:9090 \
      --out docs/latency.png [--since 1h | --start T --end T] [--step 15s] \
      [--panel "Request latency"] [--dashboard deploy/grafana/gatehouse-overview.json]

T is a Unix timestamp or RFC 3339 time. Exit status 0 when the PNG was written with at least
one series, 1 when the panel returned no data, 2 on errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import struct
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402  (the sibling module)

DEFAULT_PANEL = "Request latency"

# ------------------------------------------------------------------------------------------
# PNG and a tiny raster canvas.


def png_bytes(width: int, height: int, rgb: bytearray) -> bytes:
    """An 8-bit RGB PNG (filter 0 on every row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    stride = width * 3
    raw = b"".join(b"\x00" + bytes(rgb[y * stride : (y + 1) * stride]) for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# 5x7 glyphs, one 5-bit row each (lowercase letters are drawn as capitals).
_G = {
    "0": "0e 11 13 15 19 11 0e", "1": "04 0c 04 04 04 04 0e", "2": "0e 11 01 02 04 08 1f",
    "3": "1f 02 04 02 01 11 0e", "4": "02 06 0a 12 1f 02 02", "5": "1f 10 1e 01 01 11 0e",
    "6": "06 08 10 1e 11 11 0e", "7": "1f 01 02 04 08 08 08", "8": "0e 11 11 0e 11 11 0e",
    "9": "0e 11 11 0f 01 02 0c", "A": "0e 11 11 1f 11 11 11", "B": "1e 11 11 1e 11 11 1e",
    "C": "0e 11 10 10 10 11 0e", "D": "1c 12 11 11 11 12 1c", "E": "1f 10 10 1e 10 10 1f",
    "F": "1f 10 10 1e 10 10 10", "G": "0e 11 10 17 11 11 0f", "H": "11 11 11 1f 11 11 11",
    "I": "0e 04 04 04 04 04 0e", "J": "07 02 02 02 02 12 0c", "K": "11 12 14 18 14 12 11",
    "L": "10 10 10 10 10 10 1f", "M": "11 1b 15 15 11 11 11", "N": "11 11 19 15 13 11 11",
    "O": "0e 11 11 11 11 11 0e", "P": "1e 11 11 1e 10 10 10", "Q": "0e 11 11 11 15 12 0d",
    "R": "1e 11 11 1e 14 12 11", "S": "0f 10 10 0e 01 01 1e", "T": "1f 04 04 04 04 04 04",
    "U": "11 11 11 11 11 11 0e", "V": "11 11 11 11 11 0a 04", "W": "11 11 11 15 15 15 0a",
    "X": "11 11 0a 04 0a 11 11", "Y": "11 11 11 0a 04 04 04", "Z": "1f 01 02 04 08 10 1f",
    " ": "00 00 00 00 00 00 00", ".": "00 00 00 00 00 0c 0c", ",": "00 00 00 00 0c 04 08",
    ":": "00 0c 0c 00 0c 0c 00", "-": "00 00 00 1f 00 00 00", "_": "00 00 00 00 00 00 1f",
    "/": "01 02 02 04 08 08 10", "*": "00 04 15 0e 15 04 00", "(": "02 04 08 08 08 04 02",
    ")": "08 04 02 02 02 04 08", "[": "0e 08 08 08 08 08 0e", "]": "0e 02 02 02 02 02 0e",
    "{": "02 04 04 08 04 04 02", "}": "08 04 04 02 04 04 08", "=": "00 00 1f 00 1f 00 00",
    "%": "18 19 02 04 08 13 03", "+": "00 04 04 1f 04 04 00", "<": "02 04 08 10 08 04 02",
    ">": "08 04 02 01 02 04 08", "'": "04 04 08 00 00 00 00", '"': "0a 0a 00 00 00 00 00",
    "|": "04 04 04 04 04 04 04", "!": "04 04 04 04 04 00 04", "?": "0e 11 01 02 04 00 04",
    "#": "0a 0a 1f 0a 1f 0a 0a", "~": "00 00 08 15 02 00 00", "&": "0c 12 14 08 15 12 0d",
}
GLYPHS = {c: [int(h, 16) for h in rows.split()] for c, rows in _G.items()}

PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]


class Canvas:
    def __init__(self, width: int, height: int, bg=(255, 255, 255)):
        self.w, self.h = width, height
        self.px = bytearray(bytes(bg) * (width * height))

    def set(self, x: int, y: int, c) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(c)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c) -> None:
        for y in range(max(0, y0), min(self.h, y1)):
            i = (y * self.w + max(0, x0)) * 3
            n = min(self.w, x1) - max(0, x0)
            if n > 0:
                self.px[i : i + 3 * n] = bytes(c) * n

    def line(self, x0: int, y0: int, x1: int, y1: int, c, thick: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        for _ in range(dx - dy + 2):  # bounded: one step per pixel of the longer axis
            for ox in range(thick):
                for oy in range(thick):
                    self.set(x0 + ox, y0 + oy, c)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, s: str, c=(0, 0, 0), scale: int = 1) -> int:
        """Draws `s` with its top-left at (x, y); returns the x after the text."""
        for ch in s:
            rows = GLYPHS.get(ch.upper(), GLYPHS["?"])
            for ry, bits in enumerate(rows):
                for rx in range(5):
                    if bits & (0x10 >> rx):
                        self.rect(x + rx * scale, y + ry * scale, x + (rx + 1) * scale, y + (ry + 1) * scale, c)
            x += 6 * scale
        return x


def text_width(s: str, scale: int = 1) -> int:
    return len(s) * 6 * scale


def nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_seconds(v: float, unit: str) -> str:
    x = v * 1000 if unit == "ms" else v
    s = f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{s} {unit}"


def render(series: list[tuple[str, list[tuple[float, float]]]], title: str, width: int, height: int) -> bytes:
    """Line chart of (label, [(unix time, seconds)]) with axes, grid and a legend."""
    cv = Canvas(width, height)
    legend_cols = max(1, (width - 80) // 300)
    legend_rows = math.ceil(len(series) / legend_cols)
    left, right, top = 80, 20, 34
    bottom = 40 + legend_rows * 14
    pw, ph = width - left - right, height - top - bottom
    if pw < 50 or ph < 50:
        raise ValueError("image too small for the number of series")
    cv.text(left, 10, title, scale=2)
    points = [p for _, pts in series for p in pts if not math.isnan(p[1])]
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    if t1 <= t0:
        t1 = t0 + 1
    vmax = max(v for _, v in points)
    vmax = vmax * 1.1 if vmax > 0 else 0.001
    step = nice_step(vmax)
    vmax = math.ceil(vmax / step) * step
    unit = "ms" if vmax < 1 else "s"

    def px(t: float, v: float) -> tuple[int, int]:
        return (left + round((t - t0) / (t1 - t0) * (pw - 1)), top + ph - 1 - round(v / vmax * (ph - 1)))

    grid, axis = (225, 225, 225), (60, 60, 60)
    k = 0
    while k * step <= vmax + step / 1000 and k < 50:
        v = k * step
        _, y = px(t0, v)
        cv.rect(left, y, left + pw, y + 1, grid)
        label = fmt_seconds(v, unit)
        cv.text(left - 6 - text_width(label), y - 3, label, axis)
        k += 1
    tstep = nice_step(t1 - t0, 6)
    for mult in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if mult >= tstep:
            tstep = mult
            break
    t = math.ceil(t0 / tstep) * tstep
    n = 0
    while t <= t1 and n < 50:
        x, _ = px(t, 0)
        cv.rect(x, top, x + 1, top + ph, grid)
        label = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M:%S")
        cv.text(x - text_width(label) // 2, top + ph + 6, label, axis)
        t += tstep
        n += 1
    cv.rect(left, top, left + 1, top + ph, axis)
    cv.rect(left, top + ph - 1, left + pw, top + ph, axis)
    cv.text(left + pw - text_width("UTC"), top + ph + 18, "UTC", axis)
    for i, (label, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        prev = None
        for t, v in pts:
            if math.isnan(v):
                prev = None
                continue
            cur = px(t, v)
            if prev is not None:
                cv.line(prev[0], prev[1], cur[0], cur[1], color, thick=2)
            else:
                cv.rect(cur[0], cur[1], cur[0] + 2, cur[1] + 2, color)
            prev = cur
        col, row = i % legend_cols, i // legend_cols
        lx, ly = left + col * 300, height - bottom + 32 + row * 14
        cv.rect(lx, ly + 2, lx + 14, ly + 5, color)
        cv.text(lx + 20, ly, label[:46], (0, 0, 0))
    return png_bytes(width, height, cv.px)


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

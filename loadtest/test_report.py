"""Tests of report.py: a results folder made here (wrk-style raw files, idle lines) gives
report.md with its tables and PNG plots, and the plots have the axes they promise.

    ~/.cache/gatehouse-venv/bin/python -m unittest discover -s loadtest -p 'test_*.py'
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

PCTS = [10, 50, 90, 99, 99.9, 99.99, 99.999, 100]


def wrk_output(requests, base_us, non2xx=0):
    lines = [f"LT_SUMMARY requests={requests} duration_us=2000000 bytes=1 connect=0 read=0 "
             f"write=0 status={non2xx} timeout=0"]
    lines += [f"LT_PCT {p:g} {int(base_us * (1 + p / 25))}" for p in PCTS]
    return "\n".join(lines) + "\n"


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


class ReportTest(unittest.TestCase):
    def test_results_folder_to_report_with_plots(self):
        with tempfile.TemporaryDirectory() as results:
            raw = os.path.join(results, "raw")
            os.mkdir(raw)
            for peer, reqs in (("gatehouse", 200000), ("bare-proxy", 210000)):
                for rnd, scale in ((1, 1.0), (2, 0.9)):
                    with open(os.path.join(raw, f"plain__{peer}__r{rnd}.txt"), "w") as f:
                        f.write(wrk_output(int(reqs * scale), 300))
            with open(os.path.join(raw, "idle__gatehouse.txt"), "w") as f:
                f.write('LT_IDLE {"server": "gatehouse", "still_open": 10000, "requested": 10000, '
                        '"rss_before_kib": 9000, "rss_idle_kib": 51000, "per_conn_kib": 4.2, '
                        '"failures": 0}\n')
            out = subprocess.run([sys.executable, report.__file__, results], capture_output=True,
                                 text=True, check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(results, "report.md")) as f:
                md = f.read()
            self.assertIn("![throughput plain](throughput-plain.png)", md)
            self.assertIn("![latency by percentile plain](latency-plain.png)", md)
            self.assertIn("![idle memory per connection](idle-memory.png)", md)
            # bare-proxy: mean of 210k and 189k over 2 s, min-max shown
            self.assertIn("| bare-proxy | 99.8k (94.5-105.0k) |", md)
            for png in ("throughput-plain.png", "latency-plain.png", "idle-memory.png"):
                w, h = png_size(os.path.join(results, png))
                self.assertGreaterEqual(w, 800, png)
                self.assertGreaterEqual(h, 150, png)

    def test_ws_echo_and_ratelimit_sections_give_their_ratios(self):
        with tempfile.TemporaryDirectory() as results:
            raw = os.path.join(results, "raw")
            os.mkdir(raw)

            def put(name, text):
                with open(os.path.join(raw, name), "w") as f:
                    f.write(text)

            # ws-bench client outputs: 2 s windows, so msgs/s = messages / 2
            for peer, msgs, reopened in (("gatehouse", 90000, 1), ("bare-proxy", 100000, 0),
                                         ("nginx", 60000, 0)):
                put(f"ws-echo__{peer}__r1.txt", wrk_output(msgs, 400) +
                    f"LT_WS conns=64 messages=2000 size=64 reconnects={reopened} "
                    "handshake_p50_us=51000 handshake_max_us=60000\n")
            for peer, reqs, refused in (("gatehouse-jwt", 100000, 0),
                                        ("gatehouse-rl-local", 98000, 0),
                                        ("gatehouse-rl-shared", 60000, 0),
                                        ("gatehouse-rl-refuse", 120000, 119990)):
                put(f"ratelimit__{peer}__r1.txt", wrk_output(reqs, 300, refused))
            # two nodes' INFO commandstats: 30000 + 30000 script calls for 60000 requests
            put("ratelimit-shared-redis-r1.txt",
                "# Commandstats\ncmdstat_evalsha:calls=30000,usec=1,usec_per_call=0.1\n"
                "cmdstat_get:calls=5,usec=1\n# Commandstats\n"
                "cmdstat_evalsha:calls=29990,usec=1\ncmdstat_eval:calls=10,usec=1\n")
            put("ratelimit-fallbacks.txt", "LT_RL_FALLBACKS 0\n")
            with open(os.path.join(results, "run.json"), "w") as f:
                f.write('{"ws_conns": 64, "ws_messages": 2000, "ws_size": 64}')
            out = subprocess.run([sys.executable, report.__file__, results], capture_output=True,
                                 text=True, check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(results, "report.md")) as f:
                md = f.read()
            self.assertIn("64 WebSockets opened", md)
            self.assertIn("| gatehouse, JWT route (bearer token checked at the handshake) | 45.0k "
                          "| 1.20 | 1.98 | 2.00 | 0.90 | 1.50 | 1 | 0 |", md)
            self.assertIn("gatehouse / bare Pingora = **0.90x**, gatehouse / nginx = **1.50x**",
                          md)
            self.assertIn("![throughput ws-echo](throughput-ws-echo.png)", md)
            self.assertIn("| `/rl-local/*`: + client-ip limit 1 000 000/s (never refuses) | 49.0k "
                          "| 0.90 | 1.49 | 1.50 | 0.98 | 0 (0.00 %) | 0 |", md)
            self.assertIn("| 30.0k | 0.90 | 1.49 | 1.50 | 0.60 | 0 (0.00 %) |", md)
            self.assertIn("| 1.20 | 119990 (99.99 %) |", md)
            self.assertIn("per `/rl-shared/*` request: **1.00** (60000 requests", md)
            self.assertIn("`gatehouse_rate_limit_shared_fallback_total` at the end of the run: 0",
                          md)
            self.assertNotIn("not a clean measurement", md)
            self.assertIn("![throughput ratelimit](throughput-ratelimit.png)", md)
            for png in ("throughput-ws-echo.png", "latency-ratelimit.png"):
                w, h = png_size(os.path.join(results, png))
                self.assertGreaterEqual(w, 800, png)

    def test_dpop_section_divides_by_the_bearer_route_and_counts_refusals(self):
        with tempfile.TemporaryDirectory() as results:
            raw = os.path.join(results, "raw")
            os.mkdir(raw)

            def put(name, text):
                with open(os.path.join(raw, name), "w") as f:
                    f.write(text)

            put("dpop__gatehouse__r1.txt", wrk_output(100000, 300))
            # the DPoP run stopped after its proofs: 30000 responses in a 1.5 s window
            put("dpop__gatehouse-dpop__r1.txt", wrk_output(30064, 600) +
                "LT_STATUS 200 30000\nLT_WINDOW requests=30000 elapsed_us=1500000\n")
            with open(os.path.join(results, "run.json"), "w") as f:
                f.write('{"dpop_proofs": 40000}')
            out = subprocess.run([sys.executable, report.__file__, results], capture_output=True,
                                 text=True, check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(results, "report.md")) as f:
                md = f.read()
            self.assertIn("40000 in all", md)
            # bearer 50k req/s (100000 in 2 s), p50 = 3 x 300 us; DPoP 20k (the window's, not
            # wrk's 2 s), every percentile twice the bearer's
            self.assertIn("| 50.0k | 0.90 | 1.49 | 1.50 | 1.00 | 1.00 | 1.00 | 100000 | 0 | 0 |", md)
            self.assertIn("| 20.0k | 1.80 | 2.98 | 3.00 | 0.40 | 2.00 | 2.00 | 30064 | 0 | 0 |", md)
            self.assertIn("DPoP / bearer = **0.40x** req/s, p50 1.80 vs 0.90 ms", md)
            self.assertIn("non-2xx on the DPoP route: **0**", md)
            self.assertNotIn("not a clean measurement", md)
            self.assertIn("![throughput dpop](throughput-dpop.png)", md)
            with open(os.path.join(results, "summary.json")) as f:
                summary = json.load(f)
            self.assertAlmostEqual(summary["scenarios"]["dpop"]["rps_vs_bearer"], 0.4)

            # replayed proofs (401) make the run invalid, and the report says so
            put("dpop__gatehouse-dpop__r1.txt", wrk_output(30064, 600, non2xx=12) +
                "LT_STATUS 200 29988\nLT_STATUS 401 12\n")
            out = subprocess.run([sys.executable, report.__file__, results], capture_output=True,
                                 text=True, check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(results, "report.md")) as f:
                md = f.read()
            self.assertIn("non-2xx on the DPoP route: **12**", md)
            self.assertIn("DPoP route answers by status: 200: 29988, 401: 12.", md)
            self.assertIn("**gatehouse-dpop: 12 non-2xx answers and 0 socket errors", md)

    def capture(self, draw, *args):
        figures = []
        saved = report._save
        report._save = lambda fig, path: figures.append(fig)
        try:
            draw("unused.png", *args)
        finally:
            report._save = saved
        self.assertEqual(len(figures), 1)
        return figures[0].axes[0]

    def test_latency_on_the_nines_axis(self):
        series = [("gatehouse", [(50.0, 0.2), (90.0, 0.3), (99.0, 0.5), (99.9, 0.9),
                                 (99.99, 2.0), (100.0, 9.0)])]
        ax = self.capture(report.latency_chart, "t", series)
        self.assertEqual(ax.get_xscale(), "log")
        labels = [t.get_text() for t in ax.get_xticklabels()]
        self.assertEqual(labels, ["50%", "90%", "99%", "99.9%", "99.99%"])
        self.assertEqual([round(x) for x in ax.get_xticks()], [2, 10, 100, 1000, 10000])
        line = ax.get_lines()[0]
        # x = 1 / (1 - p); the max (100 %) has no place on the axis and is left out
        self.assertEqual([round(x) for x in line.get_xdata()], [2, 10, 100, 1000, 10000])
        self.assertEqual(list(line.get_ydata()), [0.2, 0.3, 0.5, 0.9, 2.0])
        self.assertEqual(ax.get_ylabel(), "latency (ms)")

    def test_throughput_bars_carry_the_rounds_min_max(self):
        ax = self.capture(report.throughput_chart, "t", ["a", "b"], [100.0, 50.0], [90.0, 40.0],
                          [120.0, 55.0])
        bars = [p for p in ax.patches]
        self.assertEqual([b.get_width() for b in bars], [100.0, 50.0])
        # the error bar of "a" spans its rounds' min and max
        segments = [seg for c in ax.collections for seg in c.get_segments()]
        spans = sorted((round(s[0][0]), round(s[1][0])) for s in segments)
        self.assertEqual(spans, [(40, 55), (90, 120)])


if __name__ == "__main__":
    unittest.main()

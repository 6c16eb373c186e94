"""Tests of report.py: a results folder made here (wrk-style raw files, idle lines) gives
report.md with its tables and PNG plots, and the plots have the axes they promise.

    ~/.cache/gatehouse-venv/bin/python -m unittest discover -s loadtest -p 'test_*.py'
"""
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

PCTS = [10, 50, 90, 99, 99.9, 99.99, 99.999, 100]


def wrk_output(requests, base_us):
    lines = [f"LT_SUMMARY requests={requests} duration_us=2000000 bytes=1 connect=0 read=0 "
             "write=0 status=0 timeout=0"]
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

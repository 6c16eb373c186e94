"""Tests of plot_latency.render without a Prometheus (the real panel is plotted by
gateway/tests/observability/prometheus.rs): series over time become a PNG of the requested
size, in ms below a second, with gaps where a value is missing.

    ~/.cache/gatehouse-venv/bin/python -m unittest discover -s testing/prometheus -p 'test_*.py'
"""
import math
import struct
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plot_latency  # noqa: E402


class RenderTest(unittest.TestCase):
    def series(self):
        t0 = 1_800_000_000
        p50 = [(t0 + 15 * i, 0.002 + 0.0001 * i) for i in range(20)]
        p99 = [(t0 + 15 * i, float("nan") if i == 7 else 0.009) for i in range(20)]
        return [('p50 demo "/api/*"', p50), ('p99 demo "/api/*"', p99)]

    def test_png_of_the_requested_size(self):
        png = plot_latency.render(self.series(), "Request latency", 1000, 520)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(png[12:16], b"IHDR")
        self.assertEqual(struct.unpack(">II", png[16:24]), (1000, 520))
        self.assertGreater(len(png), 10_000, "a plot, not a blank image")

    def test_axes_in_ms_with_gaps(self):
        figures = []
        savefig = plot_latency.plt.Figure.savefig
        plot_latency.plt.Figure.savefig = lambda fig, *a, **k: (figures.append(fig), savefig(fig, *a, **k))
        try:
            plot_latency.render(self.series(), "Request latency", 1000, 520)
        finally:
            plot_latency.plt.Figure.savefig = savefig
        ax = figures[0].axes[0]
        self.assertEqual(ax.get_ylabel(), "latency (ms)")
        p50, p99 = ax.get_lines()
        self.assertAlmostEqual(p50.get_ydata()[0], 2.0)
        self.assertTrue(math.isnan(p99.get_ydata()[7]))
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()],
                         ['p50 demo "/api/*"', 'p99 demo "/api/*"'])

    def test_no_points_is_an_error(self):
        with self.assertRaises(ValueError):
            plot_latency.render([("empty", [(1.0, float("nan"))])], "t", 800, 400)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""The shipped Prometheus rule files (deploy/prometheus/*.yml) prepared for tests.

Usage:
  python3 testing/prometheus/rulefiles.py unit [--promtool PATH]
      Runs `promtool test rules` on deploy/prometheus/tests/*.test.yml against copies of the
      rule files without their `annotations:` blocks, so the unit tests check each alert's
      threshold, window, `for` and labels, not its prose. Exit status: promtool's.

  python3 testing/prometheus/rulefiles.py scale --factor N [--for-factor M] --out DIR
      Writes copies of the rule files into DIR with every range selector (`[5m]`) divided by N
      and every `for:` divided by M (default N), each at least 3 s, so a range holds several
      1 s scrapes. Thresholds are untouched: an alert fires on the same rates, sooner, which
      lets a test watch alerts fire and resolve on a real Prometheus in seconds (a larger M
      leaves a short fault long enough to outlast its `for`).
      Prints the written paths, one a line.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"(\d+)([smhdw])")


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def strip_annotations(text: str) -> str:
    """The rule file without any `annotations:` mapping (and the lines nested under it)."""
    out, skip_deeper_than = [], None
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None:
            if not line.strip() or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if line.strip() == "annotations:":
            skip_deeper_than = indent
            continue
        out.append(line)
    return "".join(out)


def _seconds(m: re.Match) -> int:
    return int(m.group(1)) * UNIT[m.group(2)]


def scale(text: str, factor: int, for_factor: int | None = None) -> str:
    """Every `[d]` range divided by `factor` and every `for: d` by `for_factor` (default
    `factor`), each at least 3 s, in seconds."""

    def by(n: int):
        return lambda m: f"{max(3, _seconds(m) // n)}s"

    text = re.sub(r"\[(\d+[smhdw])\]", lambda m: "[" + DURATION.sub(by(factor), m.group(1)) + "]", text)
    return re.sub(
        r"(\bfor:\s*)(\d+[smhdw])",
        lambda m: m.group(1) + DURATION.sub(by(for_factor or factor), m.group(2)),
        text,
    )


def cmd_unit(args) -> int:
    promtool = args.promtool or shutil.which("promtool") or "/usr/bin/promtool"
    tests = sorted((RULES / "tests").glob("*.test.yml"))
    if not tests:
        print(f"rulefiles.py: no unit tests in {RULES / 'tests'}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gatehouse-ruletest-") as tmp:
        work = Path(tmp)
        (work / "tests").mkdir()
        for f in rule_files():
            (work / f.name).write_text(strip_annotations(f.read_text()))
        for t in tests:
            shutil.copy(t, work / "tests" / t.name)
        run = subprocess.run(
            [promtool, "test", "rules", *[f"tests/{t.name}" for t in tests]],
            cwd=work,
            capture_output=True,
            text=True,
        )
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        return run.returncode


def cmd_scale(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in rule_files():
        target = out / f.name
        target.write_text(scale(f.read_text(), args.factor, args.for_factor))
        print(target)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    unit = sub.add_parser("unit")
    unit.add_argument("--promtool")
    sc = sub.add_parser("scale")
    sc.add_argument("--factor", type=int, required=True)
    sc.add_argument("--for-factor", type=int)
    sc.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    return cmd_unit(args) if args.cmd == "unit" else cmd_scale(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Every PromQL expression gatehouse ships, listed or checked against a real Prometheus.

Sources (by default, relative to the repository root):
  deploy/grafana/*.json       panels[].targets[].expr, rows' nested panels included, and the
                              `label_values(...)` queries of the template variables
  deploy/prometheus/*.yml     the `expr` of every recording and alerting rule

Usage:
  python3 testing/prometheus/promql.py list [--raw]
  python3 testing/prometheus/promql.py check --prometheus http://127.0.0.1:9090 \
      [--allow-empty-file FILE] [--allow-flat-file FILE | --only-file FILE] [--wait SECONDS]

Grafana variables are replaced so that the expression is plain PromQL:
  $__rate_interval -> 1m, $__interval -> 15s, $__range -> 1h (and their _ms/_s forms);
  a query variable used in a label matcher (`tenant=~"$tenant"`) matches everything: the
  value becomes `.*` and `=` becomes `=~` so the matcher stays valid; custom, constant and
  interval variables take their current value.

`check` evaluates each expression with /api/v1/query and reports which return no data. An
alerting rule is checked in its "bool form": `bool` is added to every comparison
(`x > 0.05` -> `x > bool 0.05`), so the check says whether the series the alert watches
exist, not whether the alert fires right now. An allow-empty file lists expression ids (exactly, or shell
patterns, as printed by `list`) that may return no data; `#` starts a comment.

A dashboard panel must also show data that moved: a panel whose every value is 0 or NaN (a
rate of a counter that never changed, a quantile of a histogram that saw nothing) is FLAT and
fails, like an empty one. Panels that only a fault moves (error rates, Redis events) are
listed in an allow-flat file and checked by the fault scenario instead, with `--only-file`
naming the same file: then only those panels are checked, and each must have moved.

Exit status: 0 when every expression returned data (or is allowed to be empty) and every panel
moved (or is allowed to be flat), 1 otherwise, 2 for usage or source errors. Python 3.11
standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_GLOB = "deploy/grafana/*.json"
RULES_GLOB = "deploy/prometheus/*.yml"

BUILTIN_VARS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


# --------------------------------------------------------------------------------------------
# A small YAML reader: the block subset rule files use (mappings, sequences, plain and quoted
# scalars, `|`/`>` block scalars with chomping, simple flow sequences and mappings, comments).


class YamlError(ValueError):
    pass


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _strip_comment(s: str) -> str:
    quote = None
    for i, c in enumerate(s):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def _split_key(s: str):
    """`key: value` -> (key, value) or None when `s` is not a mapping entry."""
    if s[:1] in "\"'":
        q = s[0]
        end = s.find(q, 1)
        while end != -1 and q == "'" and s[end + 1 : end + 2] == "'":
            end = s.find(q, end + 2)
        if end == -1:
            return None
        rest = s[end + 1 :]
        if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
            return _scalar(s[: end + 1]), rest[1:].strip()
        return None
    m = re.match(r"^([^\s:#][^:]*?|[^\s:#]?):(?:\s+(.*))?$", s)
    if not m or s.startswith(("[", "{")):
        return None
    return m.group(1).strip(), (m.group(2) or "").strip()


def _split_flow(s: str) -> list[str]:
    parts, depth, quote, cur = [], 0, None, ""
    for c in s:
        if quote:
            cur += c
            if c == quote:
                quote = None
            continue
        if c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += c
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _scalar(s: str):
    s = s.strip()
    if s.startswith('"'):
        if not s.endswith('"') or len(s) < 2:
            raise YamlError(f"unterminated string {s!r}")
        return json.loads(s)
    if s.startswith("'"):
        if not s.endswith("'") or len(s) < 2:
            raise YamlError(f"unterminated string {s!r}")
        return s[1:-1].replace("''", "'")
    if s.startswith("[") and s.endswith("]"):
        return [_scalar(p) for p in _split_flow(s[1:-1])]
    if s.startswith("{") and s.endswith("}"):
        out = {}
        for p in _split_flow(s[1:-1]):
            kv = _split_key(p)
            if kv is None:
                raise YamlError(f"bad flow mapping entry {p!r}")
            out[kv[0]] = _scalar(kv[1]) if kv[1] else None
        return out
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", s):
        return float(s)
    return s


class _Yaml:
    def __init__(self, text: str):
        self.lines = text.replace("\t", "    ").splitlines()
        self.i = 0

    def _next_significant(self):
        while self.i < len(self.lines) and _is_blank(self.lines[self.i]):
            self.i += 1
        return self.i if self.i < len(self.lines) else None

    def _is_seq_item(self, line: str) -> bool:
        s = line.lstrip(" ")
        return s == "-" or s.startswith("- ")

    def node(self, indent: int):
        j = self._next_significant()
        if j is None:
            return None
        line = self.lines[j]
        if _indent(line) < indent:
            return None
        if self._is_seq_item(line):
            return self.seq(_indent(line))
        return self.mapping(_indent(line))

    def seq(self, indent: int):
        out = []
        while True:
            j = self._next_significant()
            if j is None:
                return out
            line = self.lines[j]
            if _indent(line) != indent or not self._is_seq_item(line):
                if _indent(line) > indent:
                    raise YamlError(f"line {j + 1}: unexpected indentation")
                return out
            rest = line.strip()[1:].strip()
            rest_nc = _strip_comment(rest)
            if not rest_nc:
                self.i = j + 1
                out.append(self.node(indent + 1))
            elif _split_key(rest_nc) is not None or self._is_seq_item(" " + rest):
                # `- key: value`: a mapping (or nested sequence) starting on this line.
                self.lines[j] = " " * (indent + 2) + rest
                out.append(self.node(indent + 2))
            else:
                self.i = j + 1
                out.append(self.value(rest, indent))
        return out

    def mapping(self, indent: int):
        out = {}
        while True:
            j = self._next_significant()
            if j is None:
                return out
            line = self.lines[j]
            if _indent(line) != indent or self._is_seq_item(line):
                if _indent(line) > indent:
                    raise YamlError(f"line {j + 1}: unexpected indentation")
                return out
            kv = _split_key(line.strip())
            if kv is None:
                raise YamlError(f"line {j + 1}: expected `key: value`, got {line.strip()!r}")
            key, rest = kv
            self.i = j + 1
            if key in out:
                raise YamlError(f"line {j + 1}: duplicate key {key!r}")
            out[key] = self.value(rest, indent)
        return out

    def value(self, rest: str, indent: int):
        """The value after `key:` or `- ` on a line at `indent`; self.i is the next line."""
        body = _strip_comment(rest)
        if body[:1] in ("|", ">"):
            return self.block_scalar(body, indent)
        if body:
            return _scalar(body)
        j = self._next_significant()
        if j is None:
            return None
        line = self.lines[j]
        if _indent(line) > indent or (_indent(line) == indent and self._is_seq_item(line)):
            return self.node(_indent(line))
        return None

    def block_scalar(self, header: str, indent: int) -> str:
        m = re.fullmatch(r"([|>])([-+]?)(\d?)([-+]?)", header)
        if not m:
            raise YamlError(f"bad block scalar header {header!r}")
        style, chomp = m.group(1), m.group(2) or m.group(4)
        raw = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and _indent(line) <= indent:
                break
            raw.append(line)
            self.i += 1
        block = min((_indent(x) for x in raw if x.strip()), default=indent + 1)
        if m.group(3):
            block = indent + int(m.group(3))
        lines = [x[block:] if x.strip() else "" for x in raw]
        while lines and not lines[-1] and chomp != "+":
            lines.pop()
        if style == "|":
            text = "\n".join(lines)
        else:
            text, prev_blank = "", True
            for x in lines:
                if not x:
                    text += "\n"
                    prev_blank = True
                elif x.startswith(" "):
                    text += ("\n" if not prev_blank else "") + x
                    prev_blank = False
                else:
                    text += ("" if prev_blank else " ") + x
                    prev_blank = False
        if chomp == "-":
            return text.rstrip("\n")
        return text + "\n" if text else text


def load_yaml(text: str):
    """Parses the YAML subset used by Prometheus rule files."""
    return _Yaml(text).node(0)


# --------------------------------------------------------------------------------------------
# Expressions.


@dataclass
class Expr:
    """One expression: where it comes from, as written, and as it is evaluated."""

    id: str
    raw: str
    query: str
    kind: str  # panel | variable | record | alert
    source: str
    notes: list[str] = field(default_factory=list)


_VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_MATCHER_RE = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def _var_name(m: re.Match) -> str:
    return m.group(1) or m.group(2) or m.group(3)


def dashboard_variables(dash: dict) -> dict[str, str | None]:
    """Variable name -> value to substitute outside label matchers (None: a "match all" one)."""
    out: dict[str, str | None] = {}
    for v in (dash.get("templating") or {}).get("list") or []:
        name, kind = v.get("name"), v.get("type")
        if not name:
            continue
        if kind in ("custom", "constant", "interval", "textbox"):
            cur = (v.get("current") or {}).get("value")
            if isinstance(cur, list):
                cur = cur[0] if cur else None
            if not cur or cur == "$__all":
                opts = v.get("options") or []
                cur = opts[0].get("value") if opts else None
            if not cur and isinstance(v.get("query"), str):
                cur = v["query"].split(",")[0].strip()
            if kind == "interval" and cur in (None, "$__auto_interval_" + name, "auto"):
                cur = "1m"
            out[name] = str(cur) if cur is not None else None
        else:
            out[name] = None
    return out


def substitute(expr: str, variables: dict[str, str | None] | None = None) -> str:
    """Replaces Grafana variables so that `expr` is plain PromQL."""
    variables = variables or {}

    def in_matcher(m: re.Match) -> str:
        label, op, value = m.groups()
        if not _VAR_RE.search(value):
            return m.group(0)
        dynamic = [
            _var_name(v)
            for v in _VAR_RE.finditer(value)
            if _var_name(v) not in BUILTIN_VARS and variables.get(_var_name(v)) is None
        ]
        if dynamic:
            if op in ("=", "=~"):
                # The "All" value: anything, and `=` must become a regex match to allow it.
                value = _VAR_RE.sub(
                    lambda v: ".*" if _var_name(v) in dynamic else _plain(v, variables), value
                )
                return f'{label}=~"{value}"'
            # A negative matcher on "All" excludes nothing.
            return f'{label}!="__gatehouse_promql_check_none__"'
        return f'{label}{op}"{_VAR_RE.sub(lambda v: _plain(v, variables), value)}"'

    out = _MATCHER_RE.sub(in_matcher, expr)
    return _VAR_RE.sub(lambda v: _plain(v, variables, outside=True), out)


def _plain(m: re.Match, variables: dict[str, str | None], outside: bool = False) -> str:
    name = _var_name(m)
    if name in BUILTIN_VARS:
        return BUILTIN_VARS[name]
    value = variables.get(name)
    if value is not None:
        return value
    if outside and name not in variables:
        return m.group(0)  # not a variable of this dashboard: left for Prometheus to reject
    return ".*"


def bool_form(expr: str) -> str:
    """Adds `bool` to every comparison outside label matchers, ranges and strings, so the
    expression returns every watched series (as 0 or 1) instead of only those that match."""
    out, i, depth_brace, depth_bracket, quote = [], 0, 0, 0, None
    n = len(expr)
    while i < n:
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\" and quote != "`" and i + 1 < n:
                out.append(expr[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c == "{":
            depth_brace += 1
        elif c == "}":
            depth_brace -= 1
        elif c == "[":
            depth_bracket += 1
        elif c == "]":
            depth_bracket -= 1
        elif c == "#":  # a comment runs to the end of the line
            j = expr.find("\n", i)
            j = n if j == -1 else j
            out.append(expr[i:j])
            i = j
            continue
        if depth_brace == 0 and depth_bracket == 0:
            two = expr[i : i + 2]
            op = None
            if two in ("==", "!=", ">=", "<="):
                op = two
            elif c in "<>":
                op = c
            if op:
                out.append(op)
                i += len(op)
                m = re.match(r"\s*bool\b", expr[i:])
                if not m:
                    out.append(" bool" if expr[i : i + 1].isspace() else " bool ")
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _label_values_query(q: str) -> str | None:
    """`label_values(metric{...}, label)` -> `group by (label) (metric{...})`; other variable
    queries that are PromQL (`query_result(expr)`, a bare expression) -> the expression."""
    q = q.strip()
    m = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_]\w*)\s*\)", q, re.S)
    if m:
        return f"group by ({m.group(2)}) ({m.group(1).strip()})"
    if re.fullmatch(r"label_values\(\s*[A-Za-z_]\w*\s*\)", q) or q.startswith(
        ("label_names(", "metrics(")
    ):
        return None
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return m.group(1)
    return q or None


def _walk_panels(panels):
    for p in panels or []:
        yield p
        yield from _walk_panels(p.get("panels"))


def _is_prometheus(ds, default: bool = True) -> bool:
    if ds is None:
        return default
    if isinstance(ds, str):
        return "prom" in ds.lower() or ds.startswith("$")
    kind = ds.get("type")
    return kind is None or kind == "prometheus" or str(ds.get("uid", "")).startswith("$")


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def dashboard_exprs(path: Path) -> list[Expr]:
    dash = json.loads(path.read_text())
    if "dashboard" in dash and "panels" not in dash:
        dash = dash["dashboard"]  # an API export wrapper
    variables = dashboard_variables(dash)
    src = _rel(path)
    out = []
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") != "query" or not _is_prometheus(v.get("datasource")):
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        promql = _label_values_query(q or "")
        if promql:
            out.append(Expr(f"{src} :: ${v['name']}", q, substitute(promql, variables), "variable", src))
    for p in _walk_panels(dash.get("panels")):
        if p.get("type") == "row":
            continue
        for t in p.get("targets") or []:
            expr = t.get("expr")
            if not expr or t.get("hide"):
                continue
            if not _is_prometheus(t.get("datasource"), _is_prometheus(p.get("datasource"))):
                continue
            ident = f"{src} :: {p.get('title') or 'panel ' + str(p.get('id'))} [{t.get('refId', '?')}]"
            out.append(Expr(ident, expr, substitute(expr, variables), "panel", src))
    return out


def rule_exprs(path: Path) -> list[Expr]:
    doc = load_yaml(path.read_text()) or {}
    src = _rel(path)
    out = []
    for g in doc.get("groups") or []:
        for r in g.get("rules") or []:
            expr = str(r.get("expr", "")).strip()
            if "alert" in r:
                out.append(Expr(f"{src} :: {g['name']}/{r['alert']}", expr, bool_form(expr), "alert", src))
            elif "record" in r:
                out.append(Expr(f"{src} :: {g['name']}/{r['record']}", expr, expr, "record", src))
    return out


def collect(dashboards: list[Path], rules: list[Path]) -> list[Expr]:
    out = []
    for p in dashboards:
        out += dashboard_exprs(p)
    for p in rules:
        out += rule_exprs(p)
    return out


# --------------------------------------------------------------------------------------------
# Prometheus HTTP API.


class ApiError(Exception):
    pass


def api_get(base: str, endpoint: str, params: dict, timeout: float = 10.0) -> dict:
    url = f"{base.rstrip('/')}{endpoint}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except Exception:  # noqa: BLE001 - the error body is best effort
            raise ApiError(f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApiError(str(e)) from None
    if body.get("status") != "success":
        raise ApiError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    return body["data"]


def instant(base: str, query: str) -> tuple[int, bool, bool]:
    """Evaluates `query` now: (number of series, whether every value is NaN, whether every
    value is 0 or NaN)."""
    data = api_get(base, "/api/v1/query", {"query": query})
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string"):
        values = [str(result[1])]
    else:
        values = [s.get("value", [0, ""])[1] for s in result or []]
    return len(values), bool(values) and all(v == "NaN" for v in values), flat(values)


def flat(values: list[str]) -> bool:
    """Whether no value moved: every one is 0 or NaN (Prometheus sends values as strings)."""
    for v in values:
        try:
            x = float(v)
        except ValueError:
            return False
        if x == x and x != 0.0:
            return False
    return True


# --------------------------------------------------------------------------------------------
# CLI.


def _sources(args) -> tuple[list[Path], list[Path]]:
    dashboards = [Path(p) for p in args.dashboard] if args.dashboard else sorted(ROOT.glob(DASHBOARD_GLOB))
    rules = [Path(p) for p in args.rules] if args.rules else sorted(ROOT.glob(RULES_GLOB))
    return dashboards, rules


def _allowed(path: str | None) -> list[str]:
    if not path:
        return []
    pats = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            pats.append(line)
    return pats


def cmd_list(args) -> int:
    exprs = collect(*_sources(args))
    if args.json:
        json.dump([e.__dict__ for e in exprs], sys.stdout, indent=2)
        print()
        return 0
    for e in exprs:
        print(f"# {e.id} ({e.kind})")
        print((e.raw if args.raw else e.query).strip())
        print()
    print(f"# {len(exprs)} expressions")
    return 0


def _matches(e: Expr, patterns: list[str]) -> bool:
    """An id equal to a pattern (ids end in `[A]`, which a shell pattern reads as a class),
    or matching it as a shell pattern."""
    return any(e.id == p or fnmatch.fnmatchcase(e.id, p) for p in patterns)


def cmd_check(args) -> int:
    exprs = collect(*_sources(args))
    allowed = _allowed(args.allow_empty_file)
    allowed_flat = _allowed(args.allow_flat_file)
    only = _allowed(args.only_file)
    if args.only_file:
        if not only:
            print(f"promql.py: {args.only_file} lists nothing", file=sys.stderr)
            return 2
        exprs = [e for e in exprs if _matches(e, only)]
        unmatched = [p for p in only if not any(_matches(e, [p]) for e in exprs)]
        if unmatched:
            # A pattern that names no expression any more would silently check nothing.
            print(f"promql.py: {args.only_file}: no expression matches {unmatched}", file=sys.stderr)
            return 2
    status: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + max(0.0, args.wait)
    pending = list(exprs)
    rounds = 0
    while pending and rounds < 10_000:
        rounds += 1
        still = []
        for e in pending:
            try:
                n, nan, is_flat = instant(args.prometheus, e.query)
            except ApiError as err:
                msg = str(err)
                # A query that Prometheus rejects is a bug in the expression; an unreachable
                # server is retried until the deadline.
                if "bad_data" in msg or "execution" in msg:
                    status[e.id] = ("ERROR", msg)
                    continue
                status[e.id] = ("UNREACHABLE", msg)
                still.append(e)
                continue
            must_move = e.kind == "panel" and not _matches(e, allowed_flat)
            if n and must_move and is_flat:
                what = "all NaN (nothing observed)" if nan else "every value 0 or NaN (nothing moved)"
                status[e.id] = ("FLAT", f"{n} series, {what}")
                still.append(e)
            elif n:
                status[e.id] = ("OK", f"{n} series" + (", all NaN (no observations yet)" if nan else ""))
            else:
                status[e.id] = ("EMPTY", "no data")
                still.append(e)
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    failed = 0
    for e in exprs:
        state, detail = status[e.id]
        if state == "EMPTY" and _matches(e, allowed):
            state = "ALLOWED-EMPTY"
        if state in ("EMPTY", "ERROR", "UNREACHABLE", "FLAT"):
            failed += 1
        print(f"{state:<13} {e.id}: {detail}")
        if state in ("EMPTY", "ERROR", "FLAT") and args.verbose:
            print("    " + e.query.strip().replace("\n", "\n    "))
    ok = len(exprs) - failed
    print(f"{ok}/{len(exprs)} expressions returned data (panels: data that moved) or are allowed not to; {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("list", "check"):
        p = sub.add_parser(name)
        p.add_argument("--dashboard", action="append", help=f"dashboard JSON (default: {DASHBOARD_GLOB})")
        p.add_argument("--rules", action="append", help=f"rule file (default: {RULES_GLOB})")
        if name == "list":
            p.add_argument("--raw", action="store_true", help="print expressions as written")
            p.add_argument("--json", action="store_true", help="print JSON")
        else:
            p.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
            p.add_argument("--allow-empty-file", help="expression ids (shell patterns) that may be empty")
            flat_or_only = p.add_mutually_exclusive_group()
            flat_or_only.add_argument("--allow-flat-file",
                                      help="panel ids (shell patterns) that may be all 0/NaN: only a fault moves them")
            flat_or_only.add_argument("--only-file",
                                      help="check only these ids (shell patterns); each panel among them must move")
            p.add_argument("--wait", type=float, default=0.0,
                           help="retry empty expressions for up to this many seconds (default 0)")
            p.add_argument("-v", "--verbose", action="store_true", help="print failing queries")
    args = ap.parse_args(argv)
    try:
        return cmd_list(args) if args.cmd == "list" else cmd_check(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"promql.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The venv of the project's Python tools (testing/python-requirements.txt): $GATEHOUSE_VENV, by
# default ~/.cache/gatehouse-venv. Created, or updated when the requirements file changes, with
# pip from PyPI (the only network use; later runs are offline). Prints the venv's python on
# stdout. scripts/install-deps.sh, testing/k8s/validate.sh and loadtest/run.sh call it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${GATEHOUSE_VENV:-$HOME/.cache/gatehouse-venv}"
req="$root/testing/python-requirements.txt"
sum="$(md5sum <"$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements-md5" 2>/dev/null)" != "$sum" ]; then
  echo "python-venv: installing testing/python-requirements.txt into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "$sum" >"$venv/.requirements-md5"
fi
echo "$venv/bin/python"

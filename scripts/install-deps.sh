#!/usr/bin/env bash
# Installs what building and testing gatehouse needs on a fresh Debian machine: the C toolchain
# pieces Pingora, OpenSSL and aws-lc build with (cmake, pkg-config, OpenSSL headers), the real
# programs the tests drive (curl, openssl, nginx for forward-auth behind auth_request, Prometheus
# and promtool for the dashboards and rules, redis-server for the Redis Cluster, Debian's
# chromium for the browser test, Python 3, Node.js for the test OpenID provider), the test
# IdP's npm packages (testing/idp, from its lockfile) and the Python gRPC test tools
# (testing/grpc/requirements.txt, in the test venv). Safe to run again; installs only what is
# missing.
set -euo pipefail

packages=(build-essential cmake pkg-config libssl-dev curl openssl ca-certificates nginx-light prometheus python3 python3-venv redis-server chromium)
missing=()
# Node.js and npm: any install will do (some images ship npm inside their nodejs package, and
# Debian's separate npm package would conflict with it).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Tests start their own nginx, Prometheus and Redis on loopback ports; packaged services must
  # not hold ports 80, 9090 and 6379.
  for svc in nginx prometheus redis-server; do
    $sudo service "$svc" stop >/dev/null 2>&1 || true
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is not on PATH; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
# The test OpenID provider (oidc-provider) and the browser driver (playwright-core, driving
# Debian's chromium; it never downloads a browser): reinstalled when their lockfiles change.
for dir in testing/idp testing/browser; do
  pkg="$(dirname "$0")/../$dir"
  sum="$(md5sum < "$pkg/package-lock.json")"
  if [ "$(cat "$pkg/node_modules/.lock-md5" 2>/dev/null)" != "$sum" ]; then
    echo "install-deps: npm ci in $dir"
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$sum" > "$pkg/node_modules/.lock-md5"
  fi
done
# The Python test tools' venv (testing/k8s/validate.sh adds its own there): the gRPC client and
# server of gateway/tests/grpc.rs, reinstalled when testing/grpc/requirements.txt changes.
venv="${GATEHOUSE_VENV:-$HOME/.cache/gatehouse-venv}"
req="$(dirname "$0")/../testing/grpc/requirements.txt"
sum="$(md5sum < "$req")"
if [ "$(cat "$venv/.grpc-requirements-md5" 2>/dev/null)" != "$sum" ]; then
  echo "install-deps: pip install -r testing/grpc/requirements.txt into $venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req"
  echo "$sum" > "$venv/.grpc-requirements-md5"
fi
echo "install-deps: ok"

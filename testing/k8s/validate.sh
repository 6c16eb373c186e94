#!/usr/bin/env bash
# Validates the Kubernetes deployment (deploy/k8s) offline; CI runs it. Checks:
#   1. kubectl with built-in kustomize is installed
#   2. every kustomization renders: overlays/dev, overlays/prod, deploy/k8s (and equals prod)
#   3. the rendered objects validate against the Kubernetes OpenAPI schemas (kubernetes-validate,
#      bundled schemas, --strict: unknown fields are errors) for 1.30 (the oldest supported: the
#      preStop `sleep` action) and the newest bundled version; CRD kinds (ServiceMonitor,
#      PrometheusRule) have no bundled schema and are only warned about (invariants.py checks them)
#   4. the validator itself rejects a known-bad manifest (so a broken install cannot pass)
#   5. `gatehouse check` accepts the config of each overlay as its pods would see it
#      (check-config.py: mounted files and env rebuilt from the rendered manifests), without any
#      warning (weaker fall-through routes, shared cookie keys or domains, unanchored claims)
#   6. the gatehouse binary only needs libraries the distroless/cc runtime image has (Dockerfile)
#   7. invariants.py on the production render (one check per invariant)
#   8. generate-monitoring.py --check: the PrometheusRules and dashboard copies are up to date
# Prints `k8s: N passed, M failed` last and exits non-zero if anything failed.
#
# Needs: kubectl (>= 1.27, for kustomize v5 components; scripts/install-deps.sh installs it into
# ~/.cache/gatehouse-tools/bin, searched first), python3 with venv, the gatehouse binary
# ($CARGO_TARGET_DIR/{debug,release}/gatehouse, built with `cargo build -p gatehouse` if absent).
# Uses the venv of scripts/python-venv.sh ($HOME/.cache/gatehouse-venv, created once from PyPI:
# the only network use; later runs are offline) for kubernetes-validate and PyYAML.
set -uo pipefail
cd "$(dirname "$0")/../.."

K8S_MIN=1.30.0
K8S_MAX=1.37.0
VENV="${GATEHOUSE_VENV:-$HOME/.cache/gatehouse-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || sed 's/^/       /' "$2" | head -40; }
finish() {
  echo "k8s: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# -- 1. kubectl + kustomize (never skipped: without it the check fails, in CI and out)
# scripts/install-deps.sh installs kubectl here when none is on PATH.
PATH="${GATEHOUSE_TOOLS:-$HOME/.cache/gatehouse-tools}/bin:$PATH"
if ! command -v kubectl >/dev/null 2>&1 || ! kubectl kustomize --help >/dev/null 2>&1; then
  fail "kubectl with built-in kustomize is not installed: run ./scripts/install-deps.sh (it installs kubectl >= 1.27 when none is on PATH)"
  finish
fi
kminor="$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)"
if [ "${kminor:-0}" -lt 27 ]; then
  fail "$(command -v kubectl) is kubectl 1.${kminor:-?}: 1.27 or newer is needed (kustomize v5 components); run ./scripts/install-deps.sh"
  finish
fi
pass "kubectl 1.$kminor ($(command -v kubectl)) $(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' | sed 's/^/with kustomize /')"

# -- the Python tools (scripts/python-venv.sh: the venv, created once)
PY="$(GATEHOUSE_VENV="$VENV" scripts/python-venv.sh)" && [ -x "$VENV/bin/kubernetes-validate" ] \
  || { fail "could not create the venv $VENV (python3-venv and PyPI access needed once)"; finish; }

# -- 2. render
render() { # name dir
  if kubectl kustomize "$2" >"$work/$1.yaml" 2>"$work/$1.err"; then
    pass "render $2 ($(grep -c '^kind:' "$work/$1.yaml") objects)"
  else
    fail "render $2" "$work/$1.err"
    return 1
  fi
}
render dev deploy/k8s/overlays/dev
render prod deploy/k8s/overlays/prod
if render root deploy/k8s; then
  if cmp -s "$work/root.yaml" "$work/prod.yaml"; then pass "deploy/k8s renders the prod overlay"
  else diff "$work/prod.yaml" "$work/root.yaml" >"$work/root.diff"; fail "deploy/k8s differs from overlays/prod" "$work/root.diff"; fi
fi

# -- 3. schemas
for r in dev prod; do
  [ -s "$work/$r.yaml" ] || { fail "schema validation of $r: nothing rendered"; continue; }
  if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_MIN" -k "$K8S_MAX" "$work/$r.yaml" >"$work/$r.kv" 2>&1; then
    crds="$(grep -c "Couldn't find schema" "$work/$r.kv")"
    pass "$r validates against Kubernetes $K8S_MIN and $K8S_MAX schemas (strict; $crds CRD object(s) not schema-checked)"
  else
    fail "$r does not validate against the Kubernetes schemas" "$work/$r.kv"
  fi
done

# -- 4. the validator rejects a bad object (an unknown field and a wrong type)
cat >"$work/bad.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: x
          lifecycle: {preStop: {sleep: {secondz: 5}}}
          ports: [{containerPort: "eighty"}]
EOF
if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_MIN" "$work/bad.yaml" >/dev/null 2>&1; then
  fail "kubernetes-validate accepted a known-bad Deployment: the schema check is not working"
else
  pass "kubernetes-validate rejects a known-bad Deployment"
fi

# -- 5. gatehouse check on each overlay's config
bin=""
for b in "$CARGO_TARGET_DIR/debug/gatehouse" "$CARGO_TARGET_DIR/release/gatehouse"; do
  [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; } && bin="$b"
done
if [ -z "$bin" ]; then
  echo "== building gatehouse (cargo build -p gatehouse)"
  cargo build -q -p gatehouse && bin="$CARGO_TARGET_DIR/debug/gatehouse"
fi
for r in dev prod; do
  if [ -z "$bin" ]; then fail "gatehouse check ($r): no gatehouse binary"; continue; fi
  if "$PY" testing/k8s/check-config.py "$work/$r.yaml" --binary "$bin" >"$work/$r.check" 2>&1; then
    pass "gatehouse check accepts the $r config ($(grep -o 'OK: .*' "$work/$r.check"))"
    # A shipped config draws no warning: no route's unlisted methods fall through to a route
    # that asks less, no two tenants share a cookie key or cookie domain, no unanchored claim.
    if grep -E ': warning: ' "$work/$r.check" >"$work/$r.warn"; then
      fail "gatehouse check warns about the $r config" "$work/$r.warn"
    else
      pass "gatehouse check has no warning for the $r config"
    fi
  else
    fail "gatehouse check rejects the $r config" "$work/$r.check"
  fi
done

# -- 6. the runtime image has what the binary links (Dockerfile: distroless/cc-debian12)
if [ -n "$bin" ] && command -v ldd >/dev/null 2>&1; then
  ldd "$bin" | awk '{print $1}' | sed 's#.*/##' | grep -v -E '^(linux-vdso\.so\.1|ld-linux[^ ]*|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$' >"$work/libs" || true
  if [ -s "$work/libs" ]; then
    fail "gatehouse links libraries that gcr.io/distroless/cc-debian12 does not ship (see Dockerfile)" "$work/libs"
  else
    pass "gatehouse links only glibc/libgcc_s (OpenSSL is vendored): distroless/cc suffices"
  fi
fi

# -- 7. invariants of the production render
if [ -s "$work/prod.yaml" ]; then
  "$PY" testing/k8s/invariants.py "$work/prod.yaml" --count-file "$work/inv.count" | sed 's/^/  /'
  if [ -s "$work/inv.count" ]; then
    read -r p f <"$work/inv.count"
    passed=$((passed + p)); failed=$((failed + f))
  else
    fail "invariants.py did not run"
  fi
fi

# -- 8. generated monitoring objects up to date
if "$PY" testing/k8s/generate-monitoring.py --check >"$work/gen.out" 2>&1; then
  pass "$(tail -1 "$work/gen.out" | sed 's/^generate-monitoring: //') (generate-monitoring.py --check)"
else
  fail "generated monitoring objects are stale or their sources are missing" "$work/gen.out"
fi

finish

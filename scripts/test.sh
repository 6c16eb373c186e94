#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's unit tests, the integration tests that
# drive the real binary against real upstream servers, and `gatehouse check` over every
# example config the project ships.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (tests)"
cargo test --workspace --no-run
echo "== gatehouse check over config/examples"
for f in config/examples/*.yaml; do
  OIDC_CLIENT_SECRET=example-secret COOKIE_KEY=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE= \
    "$CARGO_TARGET_DIR/debug/gatehouse" check --config "$f"
done
echo "== Kubernetes manifests (render, schema-validate, invariants, embedded config)"
testing/k8s/validate.sh
echo "== the load report's and the latency plot's Python tests (matplotlib, in the tools' venv)"
py="$(scripts/python-venv.sh)"
"$py" -m unittest discover -s loadtest -p 'test_*.py'
"$py" -m unittest discover -s testing/prometheus -p 'test_*.py'
echo "== test OpenID provider self-test (testing/idp)"
(cd testing/idp && node selftest.mjs)
echo "== cargo test (every test binary runs, whatever another one did: all failures at once)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# After the workspace's tests: it builds the gateway again, in a clean clone of HEAD.
echo "== the README's new-user path on a clean clone (testing/demo/readme-path.sh)"
testing/demo/readme-path.sh 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
# One closing line over every test binary (cargo prints one "test result" per binary, the last
# of which is often a crate's empty doc-test run) and the README's path.
awk '/^test result:|^readme: [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed[;,]?$/) p += $(i-1); if ($i ~ /^failed[;,]?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"

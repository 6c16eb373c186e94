#!/usr/bin/env bash
# Fresh machine to a running demo: installs the dependencies, builds the gateway, starts the
# project's test OpenID provider (testing/idp: a Keycloak-shaped realm "demo" with demo users, on
# 127.0.0.1:18090) and runs the gateway on the embedded demo (config/examples/demo.yaml: in-memory
# sessions, the demo tenant, the built-in upstream on 127.0.0.1:18080), which uses that provider.
# Ctrl-C (or SIGTERM to this script) stops both.
#
# GATEHOUSE_PROFILE (default release) is the cargo profile built and run; the README's own test
# (testing/demo/readme-path.sh) uses dev, the build the test suite already has.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
profile="${GATEHOUSE_PROFILE:-release}"
cargo build --profile "$profile" -p gatehouse
case "$profile" in
  dev) bin="$CARGO_TARGET_DIR/debug/gatehouse" ;;
  *) bin="$CARGO_TARGET_DIR/$profile/gatehouse" ;;
esac

idp_pid=""
idp_out="$(mktemp)"
idp_err="$(mktemp)"
stop() {
  trap - EXIT INT TERM
  if [ -n "$gw_pid" ]; then kill -INT "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi
  if [ -n "$idp_pid" ]; then kill -TERM "$idp_pid" 2>/dev/null || true; wait "$idp_pid" 2>/dev/null || true; fi
  rm -f "$idp_out" "$idp_err"
}
gw_pid=""
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# The IdP's defaults are the demo's: issuer http://127.0.0.1:18090/realms/demo, the client
# `gatehouse` with redirect URI http://demo.localhost:8080/oauth/callback.
node testing/idp/idp.mjs >"$idp_out" 2>"$idp_err" &
idp_pid=$!
for _ in $(seq 1 150); do
  grep -q '^IDP READY ' "$idp_out" && break
  if ! kill -0 "$idp_pid" 2>/dev/null; then
    echo "setup: the demo identity provider (node testing/idp/idp.mjs) did not start:" >&2
    cat "$idp_err" >&2
    exit 1
  fi
  sleep 0.2
done
grep -q '^IDP READY ' "$idp_out" || { echo "setup: the demo identity provider did not get ready within 30 s" >&2; cat "$idp_err" >&2; exit 1; }

cat <<'EOF'

The demo identity provider is up: http://127.0.0.1:18090/realms/demo
gatehouse is starting on http://127.0.0.1:8080 (admin on 127.0.0.1:9100). Ctrl-C stops both.
  browser:  http://demo.localhost:8080/app/   alice / alice-password (admin), bob / bob-password (user)
  curl:     curl -i -H 'Host: demo.localhost' http://127.0.0.1:8080/public/hello
  a token:  see "Quick start" in README.md

EOF
# In the background and waited for, so that the traps above run when a signal arrives.
"$bin" run &
gw_pid=$!
set +e
wait "$gw_pid"
status=$?
set -e
gw_pid=""
exit "$status"

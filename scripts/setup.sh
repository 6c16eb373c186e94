#!/usr/bin/env bash
# Fresh machine to a running gateway: installs the dependencies, builds the release binary and
# runs it on the embedded demo (in-memory sessions, demo tenant, built-in echo upstream).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
cargo build --release -p gatehouse
echo
echo "gatehouse is starting on http://127.0.0.1:8080 (admin on 127.0.0.1:9100). In another shell:"
echo "  curl -i -H 'Host: demo.localhost' http://127.0.0.1:8080/public/hello"
echo "  curl -i http://127.0.0.1:9100/readyz"
echo
exec "$CARGO_TARGET_DIR/release/gatehouse" run

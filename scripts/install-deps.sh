#!/usr/bin/env bash
# Installs what building and testing gatehouse needs on a fresh Debian machine: the C toolchain
# pieces Pingora and its TLS backend build with (cmake, pkg-config, OpenSSL headers), and the
# real programs the tests drive (curl, openssl). Safe to run again; installs only what is missing.
set -euo pipefail

packages=(build-essential cmake pkg-config libssl-dev curl openssl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is not on PATH; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
echo "install-deps: ok"

#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine; skips what is there.
# `--test` adds what only the tests need (chromedriver for `wasm-pack test`). The Rust-side tools
# are scripts/install-tools.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
for_tests=0
[ "${1:-}" = --test ] && for_tests=1

packages=(mesa-vulkan-drivers libvulkan1 time chromium)
[ $for_tests = 1 ] && packages+=(chromium-driver)
need_apt=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (rustup) is required" >&2; exit 1; }
command -v cargo-fmt >/dev/null && command -v clippy-driver >/dev/null ||
  echo "setup: rustfmt and clippy are missing (rustup component add rustfmt clippy); the tests need them" >&2
command -v node >/dev/null || { echo "setup: node and npm are required" >&2; exit 1; }
# JS tooling (playwright-core drives Debian's chromium; binaryen gives wasm-opt; vite for the app test;
# typescript checks index.d.ts).
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -x node_modules/.bin/tsc ] || [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/vite ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

#!/usr/bin/env bash
# Installs the Rust-side tools the wasm build needs (the wasm32 target, wasm-bindgen-cli pinned to
# the wasm-bindgen crate's version) and, with --test, wasm-pack for `wasm-pack test`; skips what
# is there. Each tool builds in a target dir of its own, so test.sh can run this in the background
# while the project's native build holds the project's build lock.
set -euo pipefail
WB_VERSION=0.2.130        # = the wasm-bindgen crate in Cargo.toml
WASM_PACK_VERSION=0.15.1
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB_VERSION"; then
  echo "install-tools: wasm-bindgen-cli $WB_VERSION (~4 min)"
  CARGO_TARGET_DIR="$HOME/.cache/wasm-bindgen-cli-build" cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi
if [ "${1:-}" = --test ] && ! wasm-pack --version 2>/dev/null | grep -q "$WASM_PACK_VERSION"; then
  echo "install-tools: wasm-pack $WASM_PACK_VERSION (~4 min)"
  CARGO_TARGET_DIR="$HOME/.cache/wasm-pack-build" cargo install wasm-pack --version "$WASM_PACK_VERSION"
fi

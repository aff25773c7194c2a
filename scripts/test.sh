#!/usr/bin/env bash
# All tests: native (parity on CPU + wgpu/lavapipe, bad input) and in headless Chromium
# (the wasm build on WebGPU/SwiftShader and on the wasm CPU backend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bge-m3-target}"
if [ ! -d ../shared/fixtures/tiny-m3 ]; then
  echo "test: ../shared/fixtures/tiny-m3 is missing; the parity tests need the shared fixtures beside the clone" >&2
fi
cargo test --release --all-targets 2>&1
bash scripts/build-wasm.sh
node --test --test-concurrency=1 tests/browser/*.test.mjs

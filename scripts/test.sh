#!/usr/bin/env bash
# All tests: native parity (CPU + wgpu on lavapipe) and bad-input tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bge-m3-target}"
if [ ! -d ../shared/fixtures/tiny-m3 ]; then
  echo "test: ../shared/fixtures/tiny-m3 is missing; the parity tests need the shared fixtures beside the clone" >&2
fi
cargo test --release --all-targets 2>&1

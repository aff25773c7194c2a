#!/usr/bin/env bash
# The npm tarball in one command: the wasm package built for release (wasm-opt -O2, ~6 min on 2
# cores), checked, packed.
#   bash scripts/release.sh [OUT_DIR]     (default dist/; writes OUT_DIR/bge-m3-web-VERSION.tgz)
# Checks: the package's parity tests on the optimised module (wasm CPU backend in the worker, WebGPU
# on the calling thread, the default path), then that the tarball holds every listed file and
# exactly the module that was built and tested (scripts/check-release.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
bash scripts/setup.sh
WASM_OPT=1 bash scripts/build-wasm.sh
node scripts/check-release.mjs
node --test --test-concurrency=1 --test-name-pattern='parity|default path' tests/browser/pkg.test.mjs
mkdir -p "$out"
tgz=$(cd pkg && npm pack --silent --pack-destination "$(cd .. && realpath "$out")" | tail -1)
node scripts/check-release.mjs "$out/$tgz"

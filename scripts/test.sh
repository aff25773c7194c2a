#!/usr/bin/env bash
# All tests (what CI runs: .ci/run calls this), in this order:
#  1. cargo fmt --check;
#  2. native: unit tests in src/ and tests/native.rs (parity on the CPU backend and on wgpu via
#     lavapipe, windows, bad input), built with clippy's lints as errors;
#  3. the wasm32 build (clippy too) and `wasm-pack test --headless --chrome --release`
#     (tests/web.rs: the wasm-bindgen API on WebGPU/SwiftShader and on the wasm CPU backend);
#  4. a TypeScript check of pkg/index.d.ts against tests/types/usage.ts;
#  5. the package's JS unit tests under Node (tests/js: the index, its kernels, the portable export);
#  6. the browser tests (tests/browser/*.test.mjs: the package, its index, the demo, a Vite app);
#  7. the portable export loaded into real engines (tests/engines: Qdrant local mode, Milvus Lite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
source scripts/cargo-env.sh
[ -n "${RUSTC_WORKSPACE_WRAPPER:-}" ] || { echo "test: clippy-driver is missing (rustup component add clippy)" >&2; exit 1; }
if [ ! -d ../shared/fixtures/tiny-m3 ]; then
  echo "test: ../shared/fixtures/tiny-m3 is missing; the parity tests need the shared fixtures beside the clone" >&2
fi
step() { echo; echo "== test: $* ($(date +%T))"; }

# wasm-bindgen-cli and wasm-pack (a cold machine builds them, ~8 min) build in the background, on
# the core the native build leaves idle much of the time; the wasm step waits for them.
tools_log="$(mktemp)"
bash scripts/install-tools.sh --test > "$tools_log" 2>&1 &
tools=$!
# The engines' Python clients (pinned, in a reused venv; ~1 min cold) install meanwhile too.
engines_log="$(mktemp)"
bash scripts/engines-setup.sh > "$engines_log" 2>&1 &
engines=$!

step "cargo fmt --check"
cargo fmt --check

step "native tests (clippy -D warnings), crafted model files, mutation fuzzing"
# setup.sh installed lavapipe: a missing wgpu adapter fails the wgpu tests instead of skipping them.
# tests/crafted.rs runs m3 on scripts/crafted_models.py's corpus (python3, prlimit); tests/fuzz.rs
# mutates the fixture's files for M3_FUZZ_SECONDS (longer runs: M3_FUZZ_SECONDS=600 cargo test
# --release --test fuzz).
M3_REQUIRE_WGPU=1 M3_FUZZ_SECONDS="${M3_FUZZ_SECONDS:-30}" cargo test --release --all-targets 2>&1

step "wasm32 build (clippy -D warnings)"
wait "$tools" || { cat "$tools_log"; echo "test: installing wasm-bindgen-cli / wasm-pack failed" >&2; exit 1; }
cat "$tools_log"
bash scripts/build-wasm.sh

step "wasm-pack test --headless --chrome --release"
# The same target dir, profile and features as the build above: only the test crate is compiled.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
XDG_CONFIG_HOME="$scratch" XDG_CACHE_HOME="$scratch" TMPDIR="$scratch" WASM_BINDGEN_TEST_TIMEOUT=900 \
  wasm-pack --log-level warn test --headless --chrome --chromedriver "$(command -v chromedriver)" --release -- --test web 2>&1

step "TypeScript: pkg/index.d.ts against tests/types/usage.ts"
node_modules/.bin/tsc -p tests/types

step "JS unit tests (Node): tests/js"
node --test --test-concurrency=1 tests/js/

step "browser tests"
node --test --test-concurrency=1 tests/browser/*.test.mjs

step "the portable export in Qdrant and Milvus Lite: tests/engines"
wait "$engines" || { cat "$engines_log"; echo "test: installing the engines' Python clients failed" >&2; exit 1; }
node --test --test-concurrency=1 tests/engines/

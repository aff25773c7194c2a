#!/usr/bin/env bash
# Builds the wasm module and its JS bindings into pkg/wasm/ (wasm-bindgen --target web).
# WASM_OPT=1 also runs wasm-opt -O2 (binaryen from npm; ~6 min on 2 cores, so tests skip it).
# Installs the wasm32 target and wasm-bindgen-cli if missing (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cargo-env.sh
bash scripts/install-tools.sh
cargo build --release --target wasm32-unknown-unknown --lib
rm -rf pkg/wasm && mkdir -p pkg/wasm
wasm-bindgen --target web --out-dir pkg/wasm "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/bge_m3_web.wasm"
if [ "${WASM_OPT:-0}" = 1 ]; then
  node_modules/.bin/wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    pkg/wasm/bge_m3_web_bg.wasm -o pkg/wasm/bge_m3_web_bg.opt.wasm && mv pkg/wasm/bge_m3_web_bg.opt.wasm pkg/wasm/bge_m3_web_bg.wasm
fi
raw=$(stat -c %s pkg/wasm/bge_m3_web_bg.wasm); gz=$(gzip -9 -c pkg/wasm/bge_m3_web_bg.wasm | wc -c)
sha=$(sha256sum pkg/wasm/bge_m3_web_bg.wasm | cut -d' ' -f1)
# What was built, for scripts/check-release.mjs (a publish refuses a build without wasm-opt).
printf '{"wasmOpt": %s, "sha256": "%s", "bytes": %s, "gzipBytes": %s}\n' \
  "$([ "${WASM_OPT:-0}" = 1 ] && echo true || echo false)" "$sha" "$raw" "$gz" > pkg/wasm/build.json
echo "build-wasm: pkg/wasm/bge_m3_web_bg.wasm $raw bytes raw, $gz bytes gzip -9"

#!/usr/bin/env bash
# Set-up + main job: builds the wasm package (pkg/wasm/) and serves the demo page (www/): load
# BGE-M3 in the browser, index your documents, search them with dense + sparse + ColBERT scores.
# PORT (default 8080) and HOST (default 127.0.0.1) choose the address. The page with the local
# tiny fixture model (../shared/fixtures/tiny-m3, served at /fixtures/) works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-wasm.sh
export PORT="${PORT:-8080}"
exec node scripts/serve.mjs

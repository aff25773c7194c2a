#!/usr/bin/env bash
# Set-up + main job: builds the m3 CLI and runs it on the tiny fixture model (or on MODEL=DIR,
# e.g. a folder with the real BAAI/bge-m3 files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bge-m3-target}"
MODEL="${MODEL:-../shared/fixtures/tiny-m3}"
cargo build --release --bin m3
M3="$CARGO_TARGET_DIR/release/m3"
echo "== m3 score (dense, sparse, colbert, hybrids) on $MODEL"
cat <<'JSON' | "$M3" score --model "$MODEL"
{"query": "What is BGE M3?", "passage": "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction."}
{"query": "What is BGE M3?", "passage": "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document."}
{"query": "한국어 문장도 검색할 수 있나요?", "passage": "네, 다국어 검색을 지원합니다."}
JSON
echo "== m3 encode (first 300 characters of the output)"
echo '{"text": "BGE M3 runs in the browser."}' | "$M3" encode --model "$MODEL" | cut -c1-300

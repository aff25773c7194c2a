#!/usr/bin/env bash
# Native half of the side-by-side benchmark (scripts/bench_native.py) on a GPU machine that has
# python3 + torch + transformers + tokenizers but no node, Chromium or FlagEmbedding (the lent
# H100 box): `m3` on wgpu (Vulkan) against PyTorch on CUDA running the same checkpoint and texts
# (FlagEmbedding when importable, else plain transformers + torch with FlagEmbedding's heads).
#   M3=path/to/m3 TOKENIZER=path/to/tokenizer.json bash scripts/bench-native-gpu.sh [OUT_DIR]
# Env: BACKENDS (default wgpu; add cpu for m3's CPU backend), FLAG (cuda, cpu or none),
# MODELS (default "small full"), CELLS (default all), M3_PYTHON (default python3).
# Writes OUT_DIR/{texts.json,small,full,native.json} and prints a markdown table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
M3="${M3:-$HOME/.cache/bge-m3-target/release/m3}"
TOKENIZER="${TOKENIZER:-../shared/fixtures/tiny-m3/tokenizer.json}"
OUT="${1:-/tmp/bench-gpu}"
PY="${M3_PYTHON:-python3}"
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES="${VK_DRIVER_FILES:-$ICD}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
mkdir -p "$OUT"
[ -f "$OUT/texts.json" ] || "$PY" "$here/bench_texts.py" --tokenizer "$TOKENIZER" --out "$OUT/texts.json"
args=()
for m in ${MODELS:-small full}; do
  case "$m" in
    small) size=(--hidden 384 --layers 6 --heads 12 --inter 1536) ;;
    full) size=(--hidden 1024 --layers 24 --heads 16 --inter 4096) ;;
    *) echo "unknown model $m (small or full)" >&2; exit 2 ;;
  esac
  [ -f "$OUT/$m/colbert_linear.pt" ] || "$PY" "$here/random_checkpoint.py" "$OUT/$m" --tokenizer "$TOKENIZER" "${size[@]}"
  args+=(--model "$m=$OUT/$m")
done
"$PY" "$here/bench_native.py" "${args[@]}" --texts "$OUT/texts.json" --m3 "$M3" --python "$PY" \
  --backends "${BACKENDS:-wgpu}" --flag "${FLAG:-cuda}" --torch-fallback --cells "${CELLS:-16,512,2048,mixed32,8192}" \
  --cell-timeout "${CELL_TIMEOUT:-300}" --out "$OUT/native.json"

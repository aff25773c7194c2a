#!/usr/bin/env bash
# m3 on wgpu (Vulkan) against PyTorch on CUDA, side by side: the native half of the benchmark
# (scripts/bench_native.py) on a GPU machine that has python3 + torch + transformers + tokenizers
# but no node, Chromium or FlagEmbedding. Both run the same checkpoints and texts (FlagEmbedding
# when importable, else plain transformers + torch with FlagEmbedding's heads).
#   M3=path/to/m3 TOKENIZER=path/to/tokenizer.json bash scripts/bench-gpu-vs-pytorch.sh [OUT_DIR]
# Writes OUT_DIR/{texts.json,small,full,native.json} and prints a markdown table. The random
# checkpoints have HF-like weights (std 0.02): at 0.2 a full-size model is ill-conditioned and the
# cosine column would measure that, not m3. OUT_DIR defaults
# to bench-out/gpu-vs-pytorch in the repository (ignored by git).
# Env: M3 (default $CARGO_TARGET_DIR/release/m3, CARGO_TARGET_DIR defaulting to
# ~/.cache/bge-m3-target), TOKENIZER (default ../shared/fixtures/tiny-m3/tokenizer.json next to the
# repository), BACKENDS (m3 devices, default wgpu; add cpu for m3 on the CPU), FLAG (cuda, cpu or
# none), MODELS (default "small full"), CELLS (default all), CELL_TIMEOUT (default 300 s),
# M3_PYTHON (default python3), M3_FULL_MODEL (a full-size model folder to use as "full"; without it
# a random one is written to OUT_DIR/full), VK_DRIVER_FILES: the Vulkan driver manifest, if the
# Vulkan loader does not find the NVIDIA driver by itself; in NVIDIA containers it is typically the
# nvidia_icd.json of the driver install (a .../share/vulkan/icd.d/nvidia_icd.json path).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/gpu-env.sh" # M3, TOKENIZER, PY; prints the GPU
OUT="${1:-$root/bench-out/gpu-vs-pytorch}"
mkdir -p "$OUT"
[ -f "$OUT/texts.json" ] || "$PY" "$here/bench_texts.py" --tokenizer "$TOKENIZER" --out "$OUT/texts.json"
args=()
for m in ${MODELS:-small full}; do
  case "$m" in
    small) size=(--hidden 384 --layers 6 --heads 12 --inter 1536) ;;
    full) size=(--hidden 1024 --layers 24 --heads 16 --inter 4096) ;;
    *) echo "unknown model $m (small or full)" >&2; exit 2 ;;
  esac
  if [ "$m" = full ] && [ -n "${M3_FULL_MODEL:-}" ]; then
    args+=(--model "full=$M3_FULL_MODEL")
    continue
  fi
  [ -f "$OUT/$m/colbert_linear.pt" ] || "$PY" "$here/random_checkpoint.py" "$OUT/$m" --tokenizer "$TOKENIZER" "${size[@]}" --std 0.02
  args+=(--model "$m=$OUT/$m")
done
"$PY" "$here/bench_native.py" "${args[@]}" --texts "$OUT/texts.json" --m3 "$M3" --python "$PY" \
  --backends "${BACKENDS:-wgpu}" --flag "${FLAG:-cuda}" --torch-fallback --cells "${CELLS:-16,512,2048,mixed32,8192}" \
  --cell-timeout "${CELL_TIMEOUT:-300}" --out "$OUT/native.json"

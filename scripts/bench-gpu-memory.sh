#!/usr/bin/env bash
# GPU memory and speed of native m3 on wgpu (Vulkan) with a full-size model, on a machine with an
# NVIDIA GPU: `m3 bench --device wgpu` at 512, 2048 and 8192 tokens, each while nvidia-smi samples
# the GPU memory in use every 100 ms. The H100 figures of docs/benchmarks.md came from this script.
#   M3=path/to/m3 TOKENIZER=path/to/tokenizer.json bash scripts/bench-gpu-memory.sh [OUT_DIR]
# Prints per length one JSON line from `m3 bench` and one with the peak GPU memory in use (MiB).
# OUT_DIR (default bench-out/gpu-memory in the repository, ignored by git) receives mem-N.txt (the
# nvidia-smi samples) and, unless $M3_FULL_MODEL names a full-size model folder to use instead,
# full/: a random full-size checkpoint (scripts/random_checkpoint.py, 2.3 GB, written once).
# Env: M3 (default $CARGO_TARGET_DIR/release/m3, CARGO_TARGET_DIR defaulting to
# ~/.cache/bge-m3-target), TOKENIZER (default ../shared/fixtures/tiny-m3/tokenizer.json next to the
# repository), M3_FULL_MODEL, M3_PYTHON (default python3, for random_checkpoint.py),
# VK_DRIVER_FILES: the Vulkan driver manifest, if the Vulkan loader does not find the NVIDIA driver
# by itself; in NVIDIA containers it is typically the nvidia_icd.json of the driver install
# (a .../share/vulkan/icd.d/nvidia_icd.json path).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/gpu-env.sh" # M3, TOKENIZER, PY; prints the GPU
command -v nvidia-smi >/dev/null || { echo "bench-gpu-memory: nvidia-smi is needed (it samples the GPU memory)" >&2; exit 1; }
OUT="${1:-$root/bench-out/gpu-memory}"
mkdir -p "$OUT"
if [ -n "${M3_FULL_MODEL:-}" ]; then
  model="$M3_FULL_MODEL"
else
  model="$OUT/full"
  [ -f "$model/colbert_linear.pt" ] || "$PY" "$here/random_checkpoint.py" "$model" --tokenizer "$TOKENIZER" || exit 1
fi
smi=
trap '[ -n "$smi" ] && kill "$smi" 2>/dev/null' EXIT
for n in 512 2048 8192; do
  mem="$OUT/mem-$n.txt"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$mem" &
  smi=$!
  timeout 300 "$M3" bench --model "$model" --device wgpu --tokens "$n" --runs 3
  kill "$smi"; wait "$smi" 2>/dev/null; smi=
  peak="$(sort -n "$mem" | tail -1)"
  echo "{\"tokens\": $n, \"gpu_mem_used_peak_mib\": ${peak:-null}}"
done

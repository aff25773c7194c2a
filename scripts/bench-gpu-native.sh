#!/usr/bin/env bash
# Native m3 on wgpu (Vulkan) with a full-size random model, on a machine with an NVIDIA GPU and
# PyTorch: the H100 figures of the README came from this script.
#   M3=path/to/m3 TOKENIZER=path/to/tokenizer.json bash scripts/bench-gpu-native.sh
# Writes /tmp/full (random checkpoint, 2.3 GB), then per length one JSON line from `m3 bench`
# and one with the peak GPU memory in use seen by nvidia-smi (sampled every 100 ms).
set -u
M3="${M3:-$HOME/.cache/bge-m3-target/release/m3}"
TOKENIZER="${TOKENIZER:-../shared/fixtures/tiny-m3/tokenizer.json}"
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
[ -d /tmp/full ] || python3 "$(dirname "$0")/random_checkpoint.py" /tmp/full --tokenizer "$TOKENIZER"
for n in 512 2048 8192; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem$n.txt &
  smi=$!
  timeout 300 "$M3" bench --model /tmp/full --backend wgpu --tokens $n --runs 3
  kill $smi; sleep 0.2
  echo "{\"tokens\": $n, \"gpu_mem_used_peak_mib\": $(sort -n /tmp/mem$n.txt | tail -1)}"
done

#!/usr/bin/env bash
# Issue 11's GPU target in one command: native m3 on wgpu, f32 against the f16 and int8 packs of the
# same random checkpoints, one N-token text per run (`m3 bench`). For a machine with a real GPU
# (Vulkan); it runs on any wgpu adapter (lavapipe too), and the table names the adapter it ran on.
#   M3=path/to/m3 TOKENIZER=path/to/tokenizer.json bash scripts/bench-gpu-dtypes.sh [OUT_DIR]
# Per model (MODELS, default "small full": 6 x 384 and 24 x 1024, HF-like std 0.02) it writes the
# f32 checkpoint (scripts/random_checkpoint.py; torch, else --numpy), its f16 and int8 packs
# (`m3 convert`), then runs `m3 bench --device wgpu --tokens N --runs RUNS` for each N in TOKENS
# (default "16 512") on:
#   f32            the checkpoint, --kernel auto (ours, register-blocked, f32)
#   f32-burn       the checkpoint, --kernel burn (burn's tiled matmuls)
#   f16            the f16 pack, --kernel auto (ours, halves kept two per u32, widened in registers)
#   f16-burn-f16   the f16 pack, --kernel burn-f16 (burn's, f16 operands, f32 sums; needs
#                  shader-f16: a failed row where the adapter lacks it)
#   int8           the int8 pack, --kernel auto (ours, four per u32, dequantized in registers)
# Prints each run's JSON line (a failed run is reported and the others go on), then a markdown
# table (tok/s of the median warm run, against f32) and whether f16 at 512 tokens reaches 1.7x f32.
# OUT_DIR (default bench-out/gpu-dtypes, ignored by git) keeps the models (written once) and
# results.jsonl.
# Env: M3 (default $CARGO_TARGET_DIR/release/m3), TOKENIZER (default
# ../shared/fixtures/tiny-m3/tokenizer.json next to the repository), MODELS, TOKENS, RUNS (default
# 3), M3_PYTHON (default python3), M3_FULL_MODEL (an f32 full-size folder to use as "full"),
# VK_DRIVER_FILES (the Vulkan driver manifest, where the loader does not find the driver itself).
# On a lent GPU machine without cargo: build m3 here, `strip -o m3 $CARGO_TARGET_DIR/release/m3`
# (about 51 MB) and pass M3=./m3 there; the full model is written there (torch), not carried.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/gpu-env.sh" # M3, TOKENIZER, PY; prints the GPU
OUT="${1:-$root/bench-out/gpu-dtypes}"
RUNS="${RUNS:-3}"
mkdir -p "$OUT"
torch_flag=()
"$PY" -c 'import torch' 2>/dev/null || torch_flag=(--numpy)
results="$OUT/results.jsonl"
: > "$results"
for m in ${MODELS:-small full}; do
  case "$m" in
    small) shape=(--hidden 384 --layers 6 --heads 12 --inter 1536) ;;
    full) shape=() ;;
    *) echo "bench-gpu-dtypes: unknown model $m (small, full)" >&2; exit 1 ;;
  esac
  f32="$OUT/$m"
  if [ "$m" = full ] && [ -n "${M3_FULL_MODEL:-}" ]; then
    f32="$M3_FULL_MODEL"
  elif [ ! -f "$f32/config.json" ]; then
    "$PY" "$here/random_checkpoint.py" "$f32" --tokenizer "$TOKENIZER" "${shape[@]}" --std 0.02 "${torch_flag[@]}"
  fi
  for dtype in f16 int8; do
    [ -f "$OUT/$m-$dtype/m3-pack.json" ] || "$M3" convert --model "$f32" --out "$OUT/$m-$dtype" --dtype "$dtype" > /dev/null
  done
  for n in ${TOKENS:-16 512}; do
    for run in "f32 $f32 auto" "f32-burn $f32 burn" "f16 $OUT/$m-f16 auto" "f16-burn-f16 $OUT/$m-f16 burn-f16" "int8 $OUT/$m-int8 auto"; do
      read -r name dir kernel <<< "$run"
      # A run that fails (a kernel the adapter rejects, out of memory) is a row of the table, not
      # the end of the script: the other runs still report.
      if line="$("$M3" bench --model "$dir" --device wgpu --kernel "$kernel" --tokens "$n" --runs "$RUNS")"; then
        echo "$line"
        echo "{\"model\": \"$m\", \"run\": \"$name\", \"tokens\": $n, \"bench\": $line}" >> "$results"
      else
        status=$?
        echo "bench-gpu-dtypes: $m $name at $n tokens failed (exit $status)" >&2
        echo "{\"model\": \"$m\", \"run\": \"$name\", \"tokens\": $n, \"failed\": $status}" >> "$results"
      fi
    done
  done
done
"$PY" - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ran = [r["bench"] for r in rows if "bench" in r]
adapter = ran[0]["adapter"] if ran else "none (every run failed)"
print(f"\nAdapter: {adapter}\n")
print("| model | tokens | run | weights / compute | kernel ran | tok/s | vs f32 |")
print("|---|---:|---|---|---|---:|---:|")
tps = {(r["model"], r["tokens"], r["run"]): r["tokens"] / r["bench"]["encode_s"] for r in rows if "bench" in r}
for r in rows:
    key = (r["model"], r["tokens"], r["run"])
    if "bench" not in r:
        print(f"| {r['model']} | {r['tokens']} | {r['run']} | failed (exit {r['failed']}) | | | |")
        continue
    b, f32 = r["bench"], tps.get((r["model"], r["tokens"], "f32"))
    ratio = f"{tps[key] / f32:.2f}x" if f32 else "-"
    print(f"| {r['model']} | {r['tokens']} | {r['run']} | {b['weights']} / {b['compute']} | {b['kernel']} | {tps[key]:,.0f} | {ratio} |")
for (model, n, run), t in tps.items():
    if run == "f16" and n == 512 and (model, n, "f32") in tps:
        ratio = t / tps[(model, n, "f32")]
        if ran[0]["adapter_is_cpu"]:
            verdict = "a CPU adapter: the target is for a real GPU"
        else:
            verdict = "met" if ratio >= 1.7 else "not met"
        burn = tps.get((model, n, "f32-burn"))
        vs_burn = f", {t / burn:.2f}x f32 on burn's kernels" if burn else ""
        print(f"\n{model}: f16 at 512 tokens is {ratio:.2f}x f32 on the default kernels{vs_burn} (target >= 1.7x on a real GPU; {verdict})")
EOF

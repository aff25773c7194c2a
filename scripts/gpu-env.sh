# Sourced by the bench-gpu-*.sh scripts, after they set `here` (this folder) and `root` (the
# repository): the m3 binary, the tokenizer and the python they run (each overridable: M3,
# TOKENIZER, M3_PYTHON), and the GPU they run on, printed where nvidia-smi is.
source "$here/cargo-env.sh" # CARGO_TARGET_DIR
M3="${M3:-$CARGO_TARGET_DIR/release/m3}"
TOKENIZER="${TOKENIZER:-$root/../shared/fixtures/tiny-m3/tokenizer.json}"
PY="${M3_PYTHON:-python3}"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; fi

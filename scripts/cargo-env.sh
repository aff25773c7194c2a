# Sourced by build-wasm.sh, release.sh and test.sh: where builds go, and clippy in every build.
# Build outputs live outside the clone, so a fresh clone reuses them (the same burn build for
# tests, the wasm package, `wasm-pack test` and the demo).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bge-m3-target}"
# clippy-driver compiles this crate's own targets (never its dependencies, which plain rustc builds
# and every build shares) with clippy's lints on: clippy for the native and the wasm32 targets
# without a second, check-only build of burn for each. test.sh sets CLIPPY_ARGS to deny warnings.
if command -v clippy-driver >/dev/null 2>&1; then
  export RUSTC_WORKSPACE_WRAPPER=clippy-driver
  export CLIPPY_ARGS="${CLIPPY_ARGS:-}"
fi

#!/usr/bin/env bash
# The Python engines that tests/engines/test_portable.py loads an export into: qdrant-client (its
# local mode, the engine's own client running Qdrant's search in-process) and pymilvus with Milvus
# Lite (a real Milvus server process started by the client). Pinned; installed in a virtual
# environment of their own, reused when it already holds exactly these pins.
#
#   source scripts/engines-setup.sh && engines_setup     # prints the venv's python on stdout
#   bash scripts/engines-setup.sh                        # the same, run as a script
#
# Cost on the 2-core CI VM (measured, docs/portable-export.md): ~25 s and ~0.5 GB the first time
# (wheels only, nothing compiled), nothing (a stamp compared) when the venv is reused.

ENGINES_VENV="${ENGINES_VENV:-$HOME/.cache/bge-m3-engines-venv}"
# One line per pin: the stamp in the venv must equal these lines for the venv to be reused.
ENGINES_PINS="qdrant-client==1.20.0
pymilvus==3.0.2
milvus-lite==3.2.2"

engines_setup() {
  local stamp="$ENGINES_VENV/.bge-m3-pins"
  if [ -x "$ENGINES_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ENGINES_PINS" ]; then
    echo "$ENGINES_VENV/bin/python"
    return 0
  fi
  command -v python3 >/dev/null || { echo "engines-setup: python3 (>= 3.9, with venv) is required" >&2; return 1; }
  echo "engines-setup: installing $(echo $ENGINES_PINS) into $ENGINES_VENV" >&2
  rm -f "$stamp"
  python3 -m venv "$ENGINES_VENV" >&2 || { echo "engines-setup: python3 -m venv failed" >&2; return 1; }
  # shellcheck disable=SC2086
  "$ENGINES_VENV/bin/python" -m pip install --quiet --disable-pip-version-check $ENGINES_PINS >&2 ||
    { echo "engines-setup: pip install failed" >&2; return 1; }
  echo "$ENGINES_PINS" >"$stamp"
  echo "$ENGINES_VENV/bin/python"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  engines_setup
fi

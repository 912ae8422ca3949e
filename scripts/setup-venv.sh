#!/usr/bin/env bash
# Create .venv and install ebas into it (idempotent).
#   bash scripts/setup-venv.sh          ebas and its runtime dependencies only (what `make demo` needs)
#   bash scripts/setup-venv.sh test     also the test extras: pytest, ruff, import-linter, emulators (`make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=${1:-}
target="."
[ -n "$extras" ] && target=".[$extras]"
if ! command -v uv >/dev/null 2>&1; then
  "$PY" -m pip install -q uv >/dev/null 2>&1 || true
fi
if [ ! -x .venv/bin/python ]; then
  if command -v uv >/dev/null 2>&1; then uv venv -q --python "$PY" .venv; else "$PY" -m venv .venv; fi
fi
if command -v uv >/dev/null 2>&1; then
  uv pip install -q --python .venv/bin/python -e "$target"
else
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$target"
fi
# Byte-compile once so start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
.venv/bin/python -m compileall -q src >/dev/null 2>&1 || true

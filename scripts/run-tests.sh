#!/usr/bin/env bash
# The whole test suite: set up, check style (ruff) and layers (import-linter), run pytest with
# coverage, write pytest_results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/deps-cloud.sh
bash scripts/deps-postgres.sh
bash scripts/setup-venv.sh test
# Style and the layer contracts first: either failing fails the run.
.venv/bin/ruff check src tests bench
.venv/bin/lint-imports --no-cache
rm -f .coverage .coverage.*
set +e
.venv/bin/python -m pytest tests -p no:cacheprovider \
  --json-report --json-report-file=pytest_results.json \
  --cov=ebas --cov-report=term:skip-covered --cov-report=json:coverage.json \
  --timeout=600 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no tests were collected"; exit 1; fi
exit "$rc"

#!/usr/bin/env bash
# Installs the services the storage-backend tests start on 127.0.0.1 (they start and stop
# them themselves; nothing is started here). Runs as root on a fresh Debian machine with
# network access to PyPI, npm and Debian packages only. Idempotent.
#
#   S3     moto_server            pip  moto[s3] flask flask-cors   (pyproject.toml, extra "test")
#   GCS    gcp-storage-emulator   pip  gcp-storage-emulator        (pyproject.toml, extra "test")
#   SFTP   asyncssh, in-process   pip  asyncssh                    (pyproject.toml, extra "test")
#   Azure  azurite-blob           npm  azurite, pinned by tests/services/package-lock.json
#
# The Python packages come with the venv (`scripts/setup-venv.sh test` installs ".[test]"); this
# script adds them to an existing venv too, and installs azurite with `npm ci`.
set -uo pipefail
cd "$(dirname "$0")/.."

# -- Node.js and npm for azurite (Debian's packages when the machine has none)
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 ||
      echo "warning: could not install nodejs/npm: the Azure backend tests will fail in CI" >&2
  else
    echo "warning: npm is missing and cannot be installed here: the Azure backend tests will skip" >&2
  fi
fi

# -- azurite, exactly as locked (re-run only when the lock file changed)
services=tests/services
stamp="$services/node_modules/.ebas-lock.sha256"
want=$(sha256sum "$services/package-lock.json" | cut -d' ' -f1)
if command -v npm >/dev/null 2>&1; then
  if [ ! -x "$services/node_modules/.bin/azurite-blob" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if (cd "$services" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      echo "$want" >"$stamp"
    else
      echo "warning: npm ci for azurite failed: the Azure backend tests will fail in CI" >&2
    fi
  fi
fi

# -- the Python side, if the venv already exists (setup-venv.sh installs it otherwise)
if [ -x .venv/bin/python ]; then
  if command -v uv >/dev/null 2>&1; then
    uv pip install -q --python .venv/bin/python -e ".[test]" >/dev/null 2>&1 ||
      echo "warning: could not install the test extras into .venv" >&2
  else
    .venv/bin/python -m pip install -q -e ".[test]" >/dev/null 2>&1 ||
      echo "warning: could not install the test extras into .venv" >&2
  fi
fi
exit 0

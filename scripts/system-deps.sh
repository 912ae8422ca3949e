#!/usr/bin/env bash
# Debian packages the tests use (setfacl/getfattr for ACL and xattr tests). Root only; skipped otherwise.
set -uo pipefail
need=()
command -v setfacl >/dev/null 2>&1 || need+=(acl)
command -v getfattr >/dev/null 2>&1 || need+=(attr)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || echo "warning: could not install ${need[*]}"
fi
exit 0

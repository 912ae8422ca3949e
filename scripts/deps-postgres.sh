#!/usr/bin/env bash
# Installs what the catalog tests and benchmarks need: the PostgreSQL server binaries
# (Debian's `postgresql`, whose server package ships the pg_trgm contrib extension).
# Runs as root on a fresh Debian machine. Nothing is started here: the tests start a
# throwaway cluster themselves (or use a server already answering on 127.0.0.1:5432).
set -uo pipefail
have_server() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
    ls /usr/share/postgresql/*/extension/pg_trgm.control >/dev/null 2>&1
}
if have_server; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: PostgreSQL server binaries are missing and cannot be installed here (need root and apt-get);" \
       "the PostgreSQL catalog tests will fail" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
# policy-rc.d keeps the packaged cluster from being started by the install.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
[ "$had_policy" = 0 ] && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null 2>&1 ||
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 ||
  echo "warning: could not install postgresql" >&2
[ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
have_server || echo "warning: PostgreSQL server binaries or pg_trgm still missing" >&2
exit 0

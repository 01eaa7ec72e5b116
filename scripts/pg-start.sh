#!/usr/bin/env bash
# Starts Debian's PostgreSQL on loopback (installing it if missing, as root) and creates the test
# role and databases. Prints the DATABASE_URL to use. Used by .ci/run; safe to run again.
set -euo pipefail
# Only the URL goes to standard output (callers capture it); everything else goes to standard error.
exec 3>&1 1>&2
if ! command -v pg_lsclusters >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed; run: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r VER NAME _ < <(pg_lsclusters -h | head -n1 || true)
if [ -z "${VER:-}" ]; then
  VER=$(ls /usr/lib/postgresql | sort -n | tail -n1)
  NAME=main
  pg_createcluster "$VER" "$NAME" >/dev/null
fi
pg_ctlcluster "$VER" "$NAME" start 2>/dev/null || true
PORT=$(pg_lsclusters -h | awk -v v="$VER" -v n="$NAME" '$1==v && $2==n {print $3}')
psql_admin() { su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
for _ in $(seq 1 30); do psql_admin 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'rental'")" = 1 ] ||
  psql_admin "CREATE ROLE rental LOGIN CREATEDB PASSWORD 'rental'"
[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'rental_test'")" = 1 ] ||
  psql_admin "CREATE DATABASE rental_test OWNER rental"
echo "postgres://rental:rental@127.0.0.1:$PORT/rental_test" >&3

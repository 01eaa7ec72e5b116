#!/usr/bin/env bash
# Starts Debian's PostgreSQL on loopback (installing it if missing, as root) and creates the test
# role and databases. Prints the DATABASE_URL to use. Used by .ci/run; safe to run again.
set -euo pipefail
# Only the URL goes to standard output (callers capture it with $(...)); everything else goes to
# standard error. The server daemon must not inherit the caller's pipe, or $(...) never returns:
# the setup runs with standard output on standard error, and the server starts with no inherited
# output at all.
setup() {
  if ! command -v pg_lsclusters >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed; run: sudo apt-get install -y postgresql" >&2
      exit 1
    fi
    # The package may start a server; its output goes to a log, never to a stream a caller waits on.
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
      </dev/null >"$log" 2>&1; then
      cat "$log" >&2
      exit 1
    fi
  fi
  read -r VER NAME _ < <(pg_lsclusters -h | head -n1 || true)
  if [ -z "${VER:-}" ]; then
    VER=$(ls /usr/lib/postgresql | sort -n | tail -n1)
    NAME=main
    pg_createcluster "$VER" "$NAME" >/dev/null
  fi
  pg_ctlcluster "$VER" "$NAME" start </dev/null >/dev/null 2>&1 || true
  PORT=$(pg_lsclusters -h | awk -v v="$VER" -v n="$NAME" '$1==v && $2==n {print $3}')
  psql_admin() { su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
  for _ in $(seq 1 30); do psql_admin 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
  [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'rental'")" = 1 ] ||
    psql_admin "CREATE ROLE rental LOGIN CREATEDB PASSWORD 'rental'"
  # Tests drop their databases WITH (FORCE), which must end every session on them, autovacuum's
  # workers too (they belong to no role the test role is a member of).
  psql_admin "GRANT pg_signal_backend TO rental" >/dev/null
  [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'rental_test'")" = 1 ] ||
    psql_admin "CREATE DATABASE rental_test OWNER rental"
  echo "$PORT" >"$PORT_FILE"
}
PORT_FILE=$(mktemp)
trap 'rm -f "$PORT_FILE"' EXIT
setup >&2
echo "postgres://rental:rental@127.0.0.1:$(cat "$PORT_FILE")/rental_test"

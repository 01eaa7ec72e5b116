#!/usr/bin/env bash
# npm run test:pg: the storage contract, the scale-out tests and the integration suites against
# PostgreSQL. DATABASE_URL names a server and a role that may CREATE DATABASE (each test makes its own).
set -euo pipefail
if [ -z "${DATABASE_URL:-}" ]; then
  cat >&2 <<'MSG'
test:pg: DATABASE_URL is not set, so there is no PostgreSQL to test against.
  Start Debian's PostgreSQL on loopback and point at it (as root; it installs postgresql if missing):
    DATABASE_URL=$(bash scripts/pg-start.sh) npm run test:pg
  or set DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DB for a role with CREATEDB.
MSG
  exit 2
fi
if ! [[ "$DATABASE_URL" =~ ^postgres(ql)?://[^[:space:]]+$ ]]; then
  echo "test:pg: DATABASE_URL must be one postgres://USER:PASSWORD@HOST:PORT/DB URL (got: $DATABASE_URL)" >&2
  exit 2
fi
export TEST_DATABASE_URL="$DATABASE_URL"
# The servers under test get their own databases; nothing else may inherit the admin URL.
unset DATABASE_URL
exec node --import tsx --test --test-concurrency=2 test/pg/*.test.ts test/*.integration.test.ts

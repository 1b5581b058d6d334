#!/usr/bin/env bash
# The whole test suite: what README.md's test command and CI run.
# It installs the real clients the end-to-end tests need (cached in
# .cache/bin), then vets and tests every package. Under CI=true a missing
# client fails the run instead of skipping its tests.
# It also starts a throwaway PostgreSQL server (scripts/postgres.sh) for the
# PostgreSQL metadata backend's tests, unless CUSTODY_TEST_POSTGRES already
# names one, and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export CUSTODY_CLIENTS_BIN
CUSTODY_CLIENTS_BIN=$(bash scripts/install-clients.sh)

if [ -z "${CUSTODY_TEST_POSTGRES:-}" ]; then
  echo "== postgres"
  pg_start=$SECONDS
  pg_env=$(bash scripts/postgres.sh start)
  eval "$pg_env"
  trap 'bash scripts/postgres.sh stop "$CUSTODY_POSTGRES_DIR"' EXIT
  echo "PostgreSQL ready in $((SECONDS - pg_start))s"
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

#!/usr/bin/env bash
# The whole test suite: what README.md's test command and CI run.
# It installs the real clients the end-to-end tests need (cached in
# .cache/bin), then vets and tests every package. Under CI=true a missing
# client fails the run instead of skipping its tests.
# It also starts a throwaway PostgreSQL server (scripts/postgres.sh) for the
# PostgreSQL metadata backend's tests, unless CUSTODY_TEST_POSTGRES already
# names one, and a throwaway MinIO server (scripts/minio.sh; its first run
# builds MinIO, which takes minutes) for the S3 blob backend's tests, unless
# CUSTODY_TEST_S3 already names one, and a throwaway SoftHSM2 token
# (scripts/softhsm.sh) for the PKCS #11 key tests, unless
# CUSTODY_TEST_PKCS11_URI already names one, and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# MinIO's first build takes minutes: run it alongside the client builds.
minio_build=""
if [ -z "${CUSTODY_TEST_S3:-}" ]; then
  bash scripts/minio.sh build &
  minio_build=$!
fi

export CUSTODY_CLIENTS_BIN
CUSTODY_CLIENTS_BIN=$(bash scripts/install-clients.sh)
if [ -n "$minio_build" ]; then wait "$minio_build"; fi

# cleanup stops the servers this script started (not ones named by the
# caller's environment).
started_pg="" started_minio="" started_softhsm=""
cleanup() {
  if [ -n "$started_softhsm" ]; then bash scripts/softhsm.sh stop "$started_softhsm"; fi
  if [ -n "$started_minio" ]; then bash scripts/minio.sh stop "$started_minio"; fi
  if [ -n "$started_pg" ]; then bash scripts/postgres.sh stop "$started_pg"; fi
}
trap cleanup EXIT

if [ -z "${CUSTODY_TEST_POSTGRES:-}" ]; then
  echo "== postgres"
  pg_start=$SECONDS
  pg_env=$(bash scripts/postgres.sh start)
  eval "$pg_env"
  started_pg=$CUSTODY_POSTGRES_DIR
  echo "PostgreSQL ready in $((SECONDS - pg_start))s"
fi

if [ -z "${CUSTODY_TEST_S3:-}" ]; then
  echo "== minio"
  minio_start=$SECONDS
  minio_env=$(bash scripts/minio.sh start)
  eval "$minio_env"
  started_minio=$CUSTODY_MINIO_DIR
  echo "MinIO ready in $((SECONDS - minio_start))s"
fi

if [ -z "${CUSTODY_TEST_PKCS11_URI:-}" ]; then
  echo "== softhsm"
  softhsm_start=$SECONDS
  softhsm_env=$(bash scripts/softhsm.sh start)
  eval "$softhsm_env"
  started_softhsm=$CUSTODY_SOFTHSM_DIR
  echo "SoftHSM2 token ready in $((SECONDS - softhsm_start))s"
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

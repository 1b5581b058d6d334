#!/usr/bin/env bash
# The whole test suite: what README.md's test command and CI run.
# It installs the real clients the end-to-end tests need (cached in
# .cache/bin), then vets and tests every package. Under CI=true a missing
# client fails the run instead of skipping its tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CUSTODY_CLIENTS_BIN
CUSTODY_CLIENTS_BIN=$(bash scripts/install-clients.sh)

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

#!/usr/bin/env bash
# The whole test suite: what README.md's test command and CI run.
# It installs the real clients the end-to-end tests need and staticcheck
# (cached in .cache/bin), then vets, runs staticcheck, tests every package,
# runs the concurrent packages' tests again under the race detector, and
# fuzzes every fuzz target for a few seconds. Under CI=true a missing
# client (chromium for the browser tests too) fails the run instead of
# skipping its tests. The browser tests' screenshots land in
# .cache/test-output/screenshots (CUSTODY_TEST_OUTPUT).
# It also starts a throwaway PostgreSQL server (scripts/postgres.sh) for the
# PostgreSQL metadata backend's tests, unless CUSTODY_TEST_POSTGRES already
# names one, and a throwaway MinIO server (scripts/minio.sh; its first run
# builds MinIO, which takes minutes) for the S3 blob backend's tests, unless
# CUSTODY_TEST_S3 already names one, and a throwaway SoftHSM2 token
# (scripts/softhsm.sh) for the PKCS #11 key tests, unless
# CUSTODY_TEST_PKCS11_URI already names one, and stops them on exit.
set -euo pipefail
# Test binaries (and the custody binaries tests build) are linked without
# DWARF: nothing here runs a debugger, panics still name file and line,
# and it halves the link of each of the hundred-odd test binaries a run
# builds (test/e2e: 4.1 -> 1.8 s).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-ldflags=-w"
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

# staticcheck, pinned in scripts/install-clients.sh. It runs every default
# check; the few findings kept on purpose carry a //lint:ignore with the
# reason beside them.
echo "== staticcheck"
staticcheck_start=$SECONDS
"$CUSTODY_CLIENTS_BIN/staticcheck" ./...
echo "staticcheck took $((SECONDS - staticcheck_start))s"

echo "== go test"
# The browser tests (test/browser) save a screenshot of every page here.
export CUSTODY_TEST_OUTPUT="${CUSTODY_TEST_OUTPUT:-$PWD/.cache/test-output/screenshots}"
mkdir -p "$CUSTODY_TEST_OUTPUT"
go test -count=1 -timeout 20m ./...

# The race detector on the packages whose code runs concurrently: the audit
# log, the metadata backends, garbage collection beside pushes and the
# replicas on shared engines, the Object Lock mirror, whole; of the registry and the server, only
# the tests that drive them concurrently (concurrent pushes with kills,
# parallel clients; the background signer, scheduled GC and scrub, Object
# Lock mirroring, the audit log, shutdown, upload purge, the tag race): their other
# tests are sequential and, with race-built servers, would cost many
# minutes of CI for nothing. Tests that start real servers
# (internal/testserver) run race-built ones and fail on a reported race.
echo "== go test -race (concurrent code)"
race_start=$SECONDS
go test -race -count=1 -timeout 20m ./internal/tlog ./internal/meta/... ./internal/gc ./internal/retention/objectlock ./test/replica
# Five crash rounds, not 25: the race run looks for data races in the
# concurrent pushes; crash safety itself is the plain run's job.
CUSTODY_CRASH_ROUNDS=5 go test -race -count=1 -timeout 20m -run 'TestKillDuringPush$|TestGGCRClients$' ./internal/registry
go test -race -count=1 -timeout 20m -run 'TestServerSigning$|TestImmutableTagRace$|TestGCKeeps|TestObjectLockMirrored$|TestAuditAPI$|TestGracefulShutdownFinishesUpload$|TestStaleUploadsPurged$|TestScrubMetrics$' ./internal/server
echo "race tests took $((SECONDS - race_start))s"

# The benchmark harness, as a smoke test (no ratio is asserted: ratios are
# for the report in docs/performance.md): a few small rows, embedded and on
# the PostgreSQL and MinIO above. The peers here are custody itself
# (without its audit log; embedded): building the reference registry would
# add two minutes of a fresh run for a smoke; the reports measure against it.
echo "== benchmark harness smoke"
bench_start=$SECONDS
go run ./bench/cmd/custody-bench -quick -peer custody-audit-off -rows push-1MiB,pull-1MiB,manifest,conc-manifest-push -manifests 50 >/dev/null
go run ./bench/cmd/custody-bench -quick -backend postgres-s3 -peer custody-embedded -rows push-1MiB,manifest-push,conc-manifest-push -manifests 50 >/dev/null
echo "benchmark smoke took $((SECONDS - bench_start))s"

# Every fuzz target, briefly: each runs for $fuzztime beyond its seed corpus
# (the tests above already ran the seeds). Targets are found in the source
# (func FuzzXxx in a _test.go file), which is cheaper than linking every test
# binary for 'go test -list'; each package's fuzzing test binary is built
# once (go test -c -fuzz) and run once per target, from the package's
# directory and with go test's corpus cache, as 'go test -fuzz' would (that
# relinks per target: twice the time). A crash leaves its input under the
# package's testdata/fuzz/ and fails the run.
fuzztime=${CUSTODY_FUZZTIME:-2s}
echo "== fuzz (each target ${fuzztime})"
fuzz_start=$SECONDS
fuzz_dir=$(mktemp -d)
fuzz_cache="$(go env GOCACHE)/fuzz/$(go list -m)"
grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' cmd internal test bench |
  sed 's|^\(.*\)/[^/]*:func \(.*\)$|\1 \2|' | sort -u >"$fuzz_dir/targets"
# The fuzzing binaries are built two at a time before any runs: most of a
# build is its link, which uses one core, while a fuzzing run uses them all.
cut -d' ' -f1 "$fuzz_dir/targets" | uniq |
  xargs -P "${CUSTODY_FUZZ_BUILD_JOBS:-2}" -I{} sh -c 'p={}; go test -c -fuzz=. -o "$1/$(echo "$p" | tr / _).test" "./$p"' _ "$fuzz_dir"
for pkg in $(cut -d' ' -f1 "$fuzz_dir/targets" | uniq); do
  bin="$fuzz_dir/${pkg//\//_}.test"
  for name in $(awk -v p="$pkg" '$1 == p { print $2 }' "$fuzz_dir/targets"); do
    if ! (cd "$pkg" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$fuzztime" \
      -test.fuzzcachedir="$fuzz_cache/$pkg" >"$fuzz_dir/log" 2>&1) &&
      # On a slow machine the engine's own start-up can outlast a short
      # -fuzztime ("context deadline exceeded", no crasher): run it once
      # more for longer. A real failure writes a crasher and fails again.
      ! { grep -q '^    context deadline exceeded$' "$fuzz_dir/log" &&
        (cd "$pkg" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime=10s \
          -test.fuzzcachedir="$fuzz_cache/$pkg" >"$fuzz_dir/log" 2>&1); }; then
      cat "$fuzz_dir/log"
      echo "fuzz: $pkg $name failed" >&2
      exit 1
    fi
  done
done
rm -rf "$fuzz_dir"
echo "fuzzing took $((SECONDS - fuzz_start))s"

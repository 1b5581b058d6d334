#!/usr/bin/env bash
# Runs a throwaway MinIO server for the tests of the S3 blob backend
# (internal/blob/s3).
#
#   eval "$(bash scripts/minio.sh start)"   # exports CUSTODY_TEST_S3 and CUSTODY_MINIO_DIR
#   bash scripts/minio.sh stop "$CUSTODY_MINIO_DIR"
#
# start builds MinIO from the Go module proxy at the pinned version below
# when the cached binary is missing or older (it takes minutes; the binary
# is kept in ${XDG_CACHE_HOME:-$HOME/.cache}/custody/bin for later runs),
# starts `minio server` on a free loopback port with a temporary data
# directory and random root credentials, waits until it is live, creates the
# bucket custody-test with Object Lock enabled (internal/blob/s3/cmd/mkbucket,
# no mc needed) and prints `export` lines for the shell to eval; everything
# else goes to stderr. CUSTODY_TEST_S3 has the form
# http://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET. stop shuts the server down
# and removes the directory.
set -euo pipefail
cd "$(dirname "$0")/.."

# MINIO_VERSION is the pinned MinIO module version (`go list -m
# github.com/minio/minio@latest` names the newest).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
BUCKET=custody-test

log() { echo "minio.sh: $*" >&2; }

bindir="${XDG_CACHE_HOME:-$HOME/.cache}/custody/bin"

# minio_bin prints the path of the pinned MinIO binary, building it if needed.
minio_bin() {
  local bin="$bindir/minio" stamp="$bindir/minio.version" t0=$SECONDS
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
    echo "$bin"
    return
  fi
  mkdir -p "$bindir"
  log "building MinIO $MINIO_VERSION (takes several minutes, once)"
  rm -f "$stamp"
  # Outside the module: MinIO's own go.mod decides its dependencies.
  (cd / && GOBIN="$bindir" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION") >&2
  echo "$MINIO_VERSION" >"$stamp"
  log "built MinIO in $((SECONDS - t0))s"
  echo "$bin"
}

# port_free reports whether nothing accepts connections on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local bin dir port tries user pass pid i t0
  bin=$(minio_bin)
  t0=$SECONDS
  dir=$(mktemp -d "${TMPDIR:-/tmp}/custody-minio.XXXXXX")
  chmod 700 "$dir"
  user=custody
  pass=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

  for tries in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off \
      setsid "$bin" server --quiet --address "127.0.0.1:$port" "$dir/data" \
      >"$dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    for i in $(seq 1 300); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/minio/health/live" 2>/dev/null; then
        break
      fi
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && curl -fsS -o /dev/null "http://127.0.0.1:$port/minio/health/live" 2>/dev/null; then
      if ! AWS_ACCESS_KEY_ID=$user AWS_SECRET_ACCESS_KEY=$pass \
        go run ./internal/blob/s3/cmd/mkbucket -endpoint "127.0.0.1:$port" -bucket "$BUCKET" >&2; then
        stop "$dir"
        return 1
      fi
      log "MinIO $MINIO_VERSION on 127.0.0.1:$port (pid $pid), data in $dir, ready in $((SECONDS - t0))s"
      echo "export CUSTODY_TEST_S3='http://$user:$pass@127.0.0.1:$port/$BUCKET'"
      echo "export CUSTODY_MINIO_DIR='$dir'"
      return 0
    fi
    log "start on port $port failed (try $tries)"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  tail -n 20 "$dir/server.log" >&2 || true
  rm -rf "$dir"
  return 1
}

stop() {
  local dir=${1:-${CUSTODY_MINIO_DIR:-}} pid i
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
  case "$dir" in */custody-minio.*) ;; *) log "refusing to remove $dir"; return 1 ;; esac
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    # Only the server started on this directory, not a reused pid.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/data" && kill "$pid" 2>/dev/null; then
      for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}" in
build) minio_bin >/dev/null ;;
start) start ;;
stop) stop "${2:-}" ;;
*)
  echo "usage: $0 build | start | stop [DIR]" >&2
  exit 2
  ;;
esac

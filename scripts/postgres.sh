#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server for the tests of the PostgreSQL
# metadata backend (internal/meta/postgres).
#
#   eval "$(bash scripts/postgres.sh start)"   # exports CUSTODY_TEST_POSTGRES and CUSTODY_POSTGRES_DIR
#   bash scripts/postgres.sh stop "$CUSTODY_POSTGRES_DIR"
#
# start installs Debian's postgresql package when no initdb is found,
# creates a temporary data directory, starts the server on a free loopback
# port (its unix socket in the same directory), creates the database
# custody_test and prints `export` lines for the shell to eval; everything
# else goes to stderr. stop shuts the server down and removes the directory.
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# postgres system user (created if missing), which owns the directory.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

# pgbin prints the directory holding initdb, installing PostgreSQL if needed.
pgbin() {
  local d
  # initdb may be on PATH as a symlink into the version's bin directory,
  # which holds the other programs too.
  if d=$(command -v initdb 2>/dev/null); then dirname "$(readlink -f "$d")"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  log "installing PostgreSQL (Debian package postgresql)"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  log "initdb not found after installing postgresql"
  return 1
}

# as_owner runs a command as the user that owns the server's files.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# port_free reports whether nothing accepts connections on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local bin dir port tries
  bin=$(pgbin)
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      log "creating the postgres system user"
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
    fi
    # Under /tmp rather than $TMPDIR: the postgres user must reach it.
    dir=$(mktemp -d /tmp/custody-pg.XXXXXX)
    chown postgres: "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/custody-pg.XXXXXX")
  fi
  chmod 700 "$dir"

  # The default collation is ICU's root locale when available, which does
  # not sort by bytes: the backend must ask for COLLATE "C" itself, and the
  # conformance suite's ordering tests then check that it does.
  if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync \
    --locale=C.UTF-8 --locale-provider=icu --icu-locale=und >"$dir/initdb.log" 2>&1; then
    rm -rf "$dir/data"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync \
      --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }
  fi

  for tries in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    # fsync off: the data is thrown away; max_connections: one pool per
    # test, some of them concurrent.
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -F -c max_connections=200 -c shared_buffers=32MB" \
      start >/dev/null 2>&1; then
      if ! as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres custody_test; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$dir"
        return 1
      fi
      echo "$port" >"$dir/port"
      log "$("$bin/postgres" --version) on 127.0.0.1:$port, data in $dir"
      echo "export CUSTODY_TEST_POSTGRES='postgres://postgres@127.0.0.1:$port/custody_test?sslmode=disable'"
      echo "export CUSTODY_POSTGRES_DIR='$dir'"
      return 0
    fi
    log "start on port $port failed (try $tries)"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  done
  tail -n 20 "$dir/server.log" >&2 || true
  rm -rf "$dir"
  return 1
}

stop() {
  local dir=${1:-${CUSTODY_POSTGRES_DIR:-}}
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
  case "$dir" in */custody-pg.*) ;; *) log "refusing to remove $dir"; return 1 ;; esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$(pgbin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
  echo "usage: $0 start | stop [DIR]" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# Sets up a throwaway SoftHSM2 token for the tests of custody's PKCS #11
# keys (internal/key, internal/cli).
#
#   eval "$(bash scripts/softhsm.sh start)"   # exports SOFTHSM2_CONF, CUSTODY_TEST_PKCS11_MODULE,
#                                            # CUSTODY_TEST_PKCS11_URI and CUSTODY_SOFTHSM_DIR
#   bash scripts/softhsm.sh stop "$CUSTODY_SOFTHSM_DIR"
#
# start installs Debian's softhsm2 package when softhsm2-util or the module
# is missing, writes a SoftHSM2 configuration whose token directory is in a
# new temporary directory, initialises a token labelled custody (user PIN
# 1234, SO PIN 5678) and prints `export` lines for the shell to eval;
# everything else goes to stderr. SoftHSM2 is a library, not a server:
# nothing keeps running. CUSTODY_TEST_PKCS11_URI names the token, with its
# module and PIN; tests add object=LABEL for their keys. stop removes the
# directory (the token with it).
set -euo pipefail

log() { echo "softhsm.sh: $*" >&2; }

if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

LABEL=custody
PIN=1234
SO_PIN=5678

# module prints the path of the SoftHSM2 PKCS #11 library, if installed.
module() {
  local m
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    if [ -f "$m" ]; then echo "$m"; return 0; fi
  done
  return 1
}

install() {
  if command -v softhsm2-util >/dev/null 2>&1 && module >/dev/null; then return 0; fi
  log "installing SoftHSM2 (Debian package softhsm2)"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq softhsm2 >/dev/null
  if ! command -v softhsm2-util >/dev/null 2>&1 || ! module >/dev/null; then
    log "softhsm2-util or libsofthsm2.so not found after installing softhsm2"
    return 1
  fi
}

start() {
  local dir mod
  install
  mod=$(module)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/custody-softhsm.XXXXXX")
  chmod 700 "$dir"
  mkdir "$dir/tokens"
  cat >"$dir/softhsm2.conf" <<EOF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
  if ! SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label "$LABEL" \
    --pin "$PIN" --so-pin "$SO_PIN" >"$dir/init.log" 2>&1; then
    cat "$dir/init.log" >&2
    rm -rf "$dir"
    return 1
  fi
  log "$(softhsm2-util --version | head -n 1 | sed 's/^/SoftHSM2 /'): token $LABEL in $dir"
  echo "export SOFTHSM2_CONF='$dir/softhsm2.conf'"
  echo "export CUSTODY_TEST_PKCS11_MODULE='$mod'"
  echo "export CUSTODY_TEST_PKCS11_URI='pkcs11:token=$LABEL?module-path=$mod&pin-value=$PIN'"
  echo "export CUSTODY_SOFTHSM_DIR='$dir'"
}

stop() {
  local dir=${1:-${CUSTODY_SOFTHSM_DIR:-}}
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
  case "$dir" in */custody-softhsm.*) ;; *) log "refusing to remove $dir"; return 1 ;; esac
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

#!/usr/bin/env bash
# Installs the real registry clients the end-to-end tests drive, into
# .cache/bin (kept between runs): crane, regctl and cosign from the Go module proxy
# at pinned versions, skopeo from Debian's packages when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

CRANE_VERSION=v0.22.1
REGCTL_VERSION=v0.11.7
COSIGN_VERSION=v2.6.5
COSIGN3_VERSION=v3.1.3

install_go() { # name module version
  local name=$1 mod=$2 ver=$3 stamp="$bin/.$1-$3"
  if [ -x "$bin/$name" ] && [ -f "$stamp" ]; then return; fi
  echo "installing $name $ver" >&2
  GOBIN="$bin" go install "$mod@$ver"
  touch "$stamp"
}

# The builds run side by side: on a fresh machine most of their time is
# module downloads and linking, which overlap well even on 2 cores.
pids=()
install_go crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" & pids+=($!)
install_go regctl github.com/regclient/regclient/cmd/regctl "$REGCTL_VERSION" & pids+=($!)
# cosign is large: about 5 minutes of build on 2 cores, once per machine.
install_go cosign github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" & pids+=($!)
# cosign v3 as a second binary, cosign3 (its default format differs: Sigstore
# bundles as OCI 1.1 referrers). Another 5-6 minutes of build on 2 cores;
# CUSTODY_SKIP_COSIGN3=1 leaves it out (the v3 tests then skip, even in CI).
if [ -z "${CUSTODY_SKIP_COSIGN3:-}" ] && { [ ! -x "$bin/cosign3" ] || [ ! -f "$bin/.cosign3-$COSIGN3_VERSION" ]; }; then
  (
    echo "installing cosign3 $COSIGN3_VERSION" >&2
    tmp=$(mktemp -d)
    GOBIN="$tmp" go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN3_VERSION"
    mv "$tmp/cosign" "$bin/cosign3"
    rmdir "$tmp"
    touch "$bin/.cosign3-$COSIGN3_VERSION"
  ) & pids+=($!)
fi
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "install-clients.sh: a client build failed" >&2; exit 1; }
done

if ! command -v skopeo >/dev/null 2>&1; then
  echo "installing skopeo (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq skopeo >/dev/null
fi
ln -sf "$(command -v skopeo)" "$bin/skopeo"
echo "$bin"

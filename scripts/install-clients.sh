#!/usr/bin/env bash
# Installs the real registry clients the end-to-end tests drive, into
# .cache/bin (kept between runs): crane, regctl, cosign, helm, oras, notation
# and the OCI distribution-spec conformance suite (as oci-conformance) from the
# Go module proxy at pinned versions, and beside them the pinned static
# analyser scripts/test.sh runs (staticcheck); skopeo, docker (docker.io: dockerd and
# the docker CLI), podman and containerd (ctr), npm (the npm feed's tests), twine and
# python3-pip (the PyPI feed's tests; Debian's python3 is linked as python3), maven with its JDK
# and libmaven-deploy-plugin-java (the Maven feed's tests: mvn deploys with the plugin from Debian's
# /usr/share/maven-repo, never Maven Central), and chromium (the browser tests' headless browser)
# from Debian's packages when they are missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

CRANE_VERSION=v0.22.1
REGCTL_VERSION=v0.11.7
COSIGN_VERSION=v2.6.5
COSIGN3_VERSION=v3.1.3
HELM_VERSION=v4.3.2
ORAS_VERSION=v1.3.6
NOTATION_VERSION=v1.3.2
# The conformance suite has no releases: a pinned pseudo-version of its main
# branch (the suite's current development version).
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
# staticcheck: the release that supports Go 1.26 (scripts/test.sh runs it).
STATICCHECK_VERSION=v0.8.2

# The clients are built without the compiler's optimisations and without
# symbol tables (-N -l, -s -w): the tests only need them to behave, not to be
# fast, and on a fresh 2-core machine this cuts about a quarter of the CPU
# time of building them (cosign twice, helm, notation, oras are most of a
# fresh run). staticcheck, which analyses the whole tree on every run, keeps
# the default build.
client_flags=(-gcflags=all=-N\ -l -ldflags=-s\ -w)

install_go() { # name module version
  local name=$1 mod=$2 ver=$3 stamp="$bin/.$1-$3"
  if [ -x "$bin/$name" ] && [ -f "$stamp" ]; then return; fi
  echo "installing $name $ver" >&2
  GOBIN="$bin" go install "${client_flags[@]}" "$mod@$ver"
  touch "$stamp"
}

# install_go_as builds a command under another name (the module's binary name
# is too generic, or collides with one already installed).
install_go_as() { # name module version
  local name=$1 mod=$2 ver=$3
  if [ -x "$bin/$name" ] && [ -f "$bin/.$name-$ver" ]; then return; fi
  echo "installing $name $ver" >&2
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "${client_flags[@]}" "$mod@$ver"
  mv "$tmp/$(basename "$mod")" "$bin/$name"
  rm -rf "$tmp"
  touch "$bin/.$name-$ver"
}

# install_go_in_module builds a command from inside a scratch module that
# requires it: 'go install pkg@version' also reads the module's version list
# (for deprecation notices), which the proxy refuses for some modules
# (notation), while the version itself is served.
install_go_in_module() { # name module package version
  local name=$1 mod=$2 pkg=$3 ver=$4
  if [ -x "$bin/$name" ] && [ -f "$bin/.$name-$ver" ]; then return; fi
  echo "installing $name $ver" >&2
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    go mod init "build-$name" >/dev/null 2>&1
    # go get lists every module it adds: show that only when it fails.
    go get "$pkg@$ver" >get.log 2>&1 || { cat get.log >&2; exit 1; }
    go build "${client_flags[@]}" -o "$bin/$name" "$pkg"
  )
  rm -rf "$tmp"
  touch "$bin/.$name-$ver"
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
if [ -z "${CUSTODY_SKIP_COSIGN3:-}" ]; then
  install_go_as cosign3 github.com/sigstore/cosign/v3/cmd/cosign "$COSIGN3_VERSION" & pids+=($!)
fi
install_go helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" & pids+=($!)
install_go oras oras.land/oras/cmd/oras "$ORAS_VERSION" & pids+=($!)
install_go_in_module notation github.com/notaryproject/notation \
  github.com/notaryproject/notation/cmd/notation "$NOTATION_VERSION" & pids+=($!)
install_go_as oci-conformance github.com/opencontainers/distribution-spec/conformance "$CONFORMANCE_VERSION" & pids+=($!)
(client_flags=(); install_go staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION") & pids+=($!)
# Debian's packages, in one apt-get run beside the builds: each command and
# the package that brings it.
missing=()
for pair in skopeo:skopeo docker:docker.io dockerd:docker.io podman:podman ctr:containerd containerd:containerd chromium:chromium git:git gpg:gnupg ssh-keygen:openssh-client npm:npm oathtool:oathtool twine:twine mvn:maven; do
  cmd=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ " ${missing[*]} " != *" $pkg "* ]]; then
    missing+=("$pkg")
  fi
done
# maven-deploy-plugin is a jar in Debian's Maven repository, not a command.
if [ ! -d /usr/share/maven-repo/org/apache/maven/plugins/maven-deploy-plugin/3.0.0 ]; then
  missing+=(libmaven-deploy-plugin-java)
fi
# pip is a module of Debian's python3, not a command.
if ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then (
  echo "installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
) & pids+=($!); fi
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "install-clients.sh: a client build or install failed" >&2; exit 1; }
done

for cmd in skopeo docker dockerd podman ctr containerd chromium npm twine mvn; do
  ln -sf "$(command -v "$cmd")" "$bin/$cmd"
done
ln -sf /usr/bin/python3 "$bin/python3"
echo "$bin"

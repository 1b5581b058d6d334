#!/usr/bin/env bash
# Run every Go fuzz target in the module for a while each.
#
#   scripts/fuzz.sh [duration] [package-pattern]
#
# duration is a `go test -fuzztime` value (default 30s; "1000x" runs a fixed
# number of inputs). package-pattern limits the packages searched (default
# ./...). FUZZ_PARALLEL sets -parallel (default: GOMAXPROCS).
# FUZZ_MINIMIZE_TIME sets -fuzzminimizetime (default 5s: the 60s default lets
# a worker of a slow target, such as FuzzManifestPut over SQLite, spend the
# whole run minimizing one input, reported as "0/sec"). New failing
# inputs are written under <package>/testdata/fuzz/<Target>/; commit them so
# plain `go test` replays them. Exits non-zero if any target fails.
set -euo pipefail

duration=${1:-30s}
pattern=${2:-./...}
cd "$(dirname "$0")/.."

minimize=${FUZZ_MINIMIZE_TIME:-5s}
parallel=()
if [[ -n "${FUZZ_PARALLEL:-}" ]]; then
	parallel=(-parallel "$FUZZ_PARALLEL")
fi

failed=()
total=0
while read -r pkg dir; do
	# Fuzz targets are top-level `func FuzzXxx(f *testing.F)` in _test.go files.
	targets=$(grep -hoE '^func Fuzz[A-Za-z0-9_]*\(\w+ \*testing\.F\)' "$dir"/*_test.go 2>/dev/null |
		sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' | sort -u || true)
	for target in $targets; do
		total=$((total + 1))
		echo "=== $pkg $target ($duration)"
		if ! go test "$pkg" -run='^$' -fuzz="^${target}\$" -fuzztime="$duration" -fuzzminimizetime="$minimize" "${parallel[@]}"; then
			failed+=("$pkg $target")
		fi
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' "$pattern")

echo
if ((${#failed[@]} > 0)); then
	echo "fuzz: ${#failed[@]} of $total targets failed:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: all $total targets passed ($duration each)"

GO ?= go
# Extra flags for the comparison harness, e.g. make bench BENCH_FLAGS=-quick
BENCH_FLAGS ?=

.PHONY: build test bench

build:
	$(GO) build ./...
	$(GO) build -o .cache/bin/custody ./cmd/custody

test:
	bash scripts/test.sh

# Compares custody with the reference registry (builds custody, installs the
# reference registry into .cache/bin if missing) and writes the markdown
# table to bench/out/results.md.
# The recipe is not echoed, so `make bench BENCH_FLAGS="-o json" > out.json`
# yields plain JSON.
bench:
	@$(GO) run ./bench/cmd/custody-bench -md bench/out/results.md $(BENCH_FLAGS)

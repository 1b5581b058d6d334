package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// Budgets for what package initialisation may allocate when custody starts.
// Allocation counts are deterministic where wall time is not, so they are
// what is asserted.
const (
	// Every custody package: a few small tables at most (the largest,
	// internal/vuln's, are 26 allocations, 4 KiB). A regular expression, a
	// parsed template, a hash or a key is work to do on first use
	// (sync.OnceValue), not in every command's start-up. The budget is
	// tight because work can be cheap in allocations and dear in time: the
	// bcrypt hash that once cost every command 60-130 ms allocated 35
	// times, 7 KiB.
	initAllocsPerPackage = 32
	initBytesPerPackage  = 6 << 10
	// All packages, dependencies included (about 15,200 allocations and
	// 2.1 MiB since client_golang went, nearly all in dependencies:
	// protobuf registries, cel-go, the S3 client, oras via notation-go): a
	// new dependency that does much at initialisation shows here.
	initAllocsTotal = 17000
	initBytesTotal  = 9 << 18
)

// notLinked are packages custody must not link, each for its cost at
// every start-up, and what to use instead.
var notLinked = []struct{ prefix, instead string }{
	// 54 packages of generated types, protobuf registrations and
	// validation tables (about 3,600 allocations, 10 MB of binary).
	{"k8s.io/api/", "internal/admission's own wire types"},
	{"k8s.io/apimachinery/pkg/apis/", "internal/admission's own wire types"},
	// A second copy of the YAML library under its old import path.
	{"gopkg.in/yaml.v3", "go.yaml.in/yaml/v3"},
	// client_golang's prometheus package registers a default registry with
	// the Go and process collectors (procfs, runtime/metrics) at
	// initialisation: about 0.5 ms, 1,400 allocations and 270 KB per start.
	{"github.com/prometheus/client_golang/", "internal/metrics"},
	{"github.com/prometheus/procfs", "internal/metrics"},
}

// initRecord is one line of GODEBUG=inittrace=1 output:
//
//	init github.com/x/y @1.2 ms, 0.3 ms clock, 4096 bytes, 12 allocs
type initRecord struct {
	pkg           string
	bytes, allocs int64
}

func parseInitTrace(out string) []initRecord {
	var recs []initRecord
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 11 || f[0] != "init" || f[8] != "bytes," || f[10] != "allocs" {
			continue
		}
		b, err1 := strconv.ParseInt(f[7], 10, 64)
		a, err2 := strconv.ParseInt(f[9], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		recs = append(recs, initRecord{pkg: f[1], bytes: b, allocs: a})
	}
	return recs
}

// TestNoWorkAtInit runs the built binary's `custody version` with
// GODEBUG=inittrace=1 and holds every custody package's initialisation, and
// that of all packages together, to an allocation budget: package-level
// work is paid by every command, however small (it once made `custody
// version` take 70 ms: a bcrypt hash computed at initialisation).
func TestNoWorkAtInit(t *testing.T) {
	bin := testserver.Binary(t)
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("custody version: %v\n%s", err, stderr.String())
	}
	recs := parseInitTrace(stderr.String())
	var total initRecord
	own := 0
	for _, r := range recs {
		total.allocs += r.allocs
		total.bytes += r.bytes
		for _, n := range notLinked {
			if strings.HasPrefix(r.pkg, n.prefix) {
				t.Errorf("custody links %s, which does work at every start-up; use %s", r.pkg, n.instead)
			}
		}
		if !strings.HasPrefix(r.pkg, "github.com/custody-dev/custody/") {
			continue
		}
		own++
		if r.allocs > initAllocsPerPackage || r.bytes > initBytesPerPackage {
			t.Errorf("%s allocates %d times (%d bytes) at initialisation, budget %d (%d bytes): make its package-level work lazy (sync.OnceValue)",
				r.pkg, r.allocs, r.bytes, initAllocsPerPackage, initBytesPerPackage)
		}
	}
	if own == 0 {
		t.Fatalf("no custody package in the init trace; output:\n%s", stderr.String())
	}
	if total.allocs > initAllocsTotal || total.bytes > initBytesTotal {
		t.Errorf("initialisation of all %d packages allocates %d times (%d bytes), budget %d (%d bytes): GODEBUG=inittrace=1 custody version shows which",
			len(recs), total.allocs, total.bytes, initAllocsTotal, initBytesTotal)
	}
	t.Logf("%d packages (%d custody) initialised with %d allocations, %d bytes", len(recs), own, total.allocs, total.bytes)
}

func TestParseInitTrace(t *testing.T) {
	got := parseInitTrace("init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs\n" +
		"init github.com/custody-dev/custody/internal/key @18 ms, 1.1 ms clock, 174976 bytes, 2001 allocs\n" +
		"custody v1.0\ninit broken line\n")
	if len(got) != 2 || got[1] != (initRecord{"github.com/custody-dev/custody/internal/key", 174976, 2001}) {
		t.Fatalf("parsed %+v", got)
	}
}

package main

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/custody-dev/custody/bench"
)

// The concurrent rows: -concurrency clients (16 by default) at once, each on
// its own goroutine and connection, against one server (or its replicas in
// turn). conc-push-8MiB pushes 2 distinct 8 MiB blobs per client;
// conc-manifest-push pushes -manifests distinct small manifests spread over
// the clients. The row's value is the aggregate throughput; each
// operation's latency is recorded for the run's p50 and p99. Any error
// fails the run.
const (
	concPushRow     = "conc-push-8MiB"
	concManifestRow = "conc-manifest-push"
	concBlobSize    = 8 << 20
	concBlobsEach   = 2
)

var concRows = []string{concPushRow, concManifestRow}

// latencies collects operation latencies from concurrent clients.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) time(fn func() error) error {
	t := time.Now()
	err := fn()
	el := time.Since(t)
	l.mu.Lock()
	l.d = append(l.d, el)
	l.mu.Unlock()
	return err
}

// percentile returns the p-th percentile (0 < p <= 100, nearest rank) in ms.
func (l *latencies) percentile(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return math.NaN()
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}

// measureConcurrent runs one concurrent row's measured phase on srv with
// client cl and fills s.
func (h *harness) measureConcurrent(row string, srv *server, cl *bench.Client, s *sample) error {
	clients := h.o.concurrency
	var lat latencies
	var op func(i int) error
	var n int
	switch row {
	case concPushRow:
		layers, err := h.payloadCount(concBlobSize, clients*concBlobsEach)
		if err != nil {
			return err
		}
		const repo = "bench/concurrent"
		if err := cl.Warm(repo); err != nil {
			return err
		}
		n = len(layers)
		s.bytes = int64(n) * concBlobSize
		s.unit = "MB/s"
		op = func(i int) error { return lat.time(func() error { return cl.PushLayer(repo, layers[i]) }) }
	case concManifestRow:
		const repo = "bench/concurrent-manifests"
		nonce := fmt.Sprintf("c%d-%d", time.Now().UnixNano(), h.seq)
		ms := make([]bench.RawManifest, h.o.manifests)
		for i := range ms {
			ms[i] = bench.RawManifest(bench.ArtifactManifest(nonce, i))
		}
		if err := cl.Warm(repo); err != nil {
			return err
		}
		n = len(ms)
		s.unit = "ops/s"
		op = func(i int) error {
			return lat.time(func() error { return cl.PutManifest(repo, fmt.Sprintf("m%d", i), ms[i]) })
		}
	default:
		return fmt.Errorf("unknown row %q", row)
	}
	cpu0, ccpu0 := srv.cpuSeconds(), clientCPU()
	start := time.Now()
	if err := parallel(n, clients, op); err != nil {
		return err
	}
	s.seconds = time.Since(start).Seconds()
	s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
	s.clientCPU = clientCPU() - ccpu0
	s.ops = n
	if s.unit == "MB/s" {
		s.value = float64(s.bytes) / 1e6 / s.seconds
	} else {
		s.value = float64(n) / s.seconds
	}
	s.p50, s.p99 = lat.percentile(50), lat.percentile(99)
	return nil
}

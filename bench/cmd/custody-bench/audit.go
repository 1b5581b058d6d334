package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
)

// auditEntries is how many entries one audit-append run appends.
const auditEntries = 50000

// measureAuditAppend appends auditEntries entries to a fresh audit log
// from 8 goroutines (as concurrent requests do) and reports the
// sustained rate, until every entry is durably stored.
func measureAuditAppend(ctx context.Context, dir string, keep bool) (sample, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	st, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		return sample{}, err
	}
	defer st.Close()
	signer, vkey, err := tlog.LoadOrCreateKey(dir, "custody/bench")
	if err != nil {
		return sample{}, err
	}
	l, err := tlog.Open(ctx, st, tlog.Options{Signer: signer, VerifierKey: vkey, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return sample{}, err
	}
	defer l.Close()
	const workers = 8
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < auditEntries; i += workers {
				l.Append(tlog.Entry{
					Action: "manifest.put", Actor: "bench", Auth: "password", Result: "ok",
					Repo: "bench/app", Digest: fmt.Sprintf("sha256:%064x", i), Client: "127.0.0.1:40000",
					RequestID: fmt.Sprintf("%016x", i), Time: tlog.FormatTime(time.Now()),
				})
			}
		}()
	}
	wg.Wait()
	l.Flush()
	secs := time.Since(start).Seconds()
	if got := l.Size(); got != auditEntries {
		return sample{}, fmt.Errorf("audit log holds %d entries, want %d", got, auditEntries)
	}
	return sample{unit: "entries/s", value: auditEntries / secs, ops: auditEntries, seconds: secs}, nil
}

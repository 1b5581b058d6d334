package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// tesseraEntries is how many entries one run of the audit-append row's
// peer appends: the POSIX log fsyncs its tiles for every batch and runs at
// a few hundred entries/s with 8 writers here, so fewer entries than
// custody's keep a run under a minute. Both are steady rates.
const tesseraEntries = 5000

// tesseraBin builds bench/tessera-append (its own module, so custody does
// not depend on Tessera) once, or says why it cannot be built: then the
// audit-append row has no peer.
func (h *harness) tesseraBin() (string, error) {
	if h.tessera != "" || h.tesseraErr != nil {
		return h.tessera, h.tesseraErr
	}
	bin := filepath.Join(h.root, ".cache", "bin", "tessera-append")
	logf("building the Tessera POSIX log peer -> %s", bin)
	if err := goCmd(h.ctx, filepath.Join(h.root, "bench", "tessera-append"), nil, "build", "-o", bin, "."); err != nil {
		h.tesseraErr = fmt.Errorf("%w: %v", errNoPeer, err)
		return "", h.tesseraErr
	}
	h.tessera = bin
	return bin, nil
}

// measureTessera appends tesseraEntries entries to a fresh Tessera POSIX
// log with the same 8 closed-loop writers as measureAuditAppend.
func (h *harness) measureTessera(dir string) (sample, error) {
	bin, err := h.tesseraBin()
	if err != nil {
		return sample{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if !h.o.keep {
		defer os.RemoveAll(dir)
	}
	out, err := exec.CommandContext(h.ctx, bin, "-dir", filepath.Join(dir, "log"), "-entries", fmt.Sprint(tesseraEntries), "-workers", "8").Output()
	if err != nil {
		return sample{}, fmt.Errorf("tessera-append: %w", err)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return sample{}, fmt.Errorf("tessera-append printed %q", out)
	}
	return sample{unit: "entries/s", value: tesseraEntries / secs, ops: tesseraEntries, seconds: secs}, nil
}

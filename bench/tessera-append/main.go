// Command tessera-append is the audit-append row's peer in custody-bench:
// it appends -entries entries to a fresh transparency-dev Tessera log on
// the POSIX driver (tiles and entry bundles in -dir, written with fsync)
// from -workers goroutines, each waiting for its entry's durably assigned
// index before the next, as custody's audit-append row does, and prints
// the seconds that took. It is its own module so custody does not depend
// on Tessera.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	dir := flag.String("dir", "", "log directory (fresh)")
	entries := flag.Int("entries", 50000, "entries to append")
	workers := flag.Int("workers", 8, "concurrent writers")
	batch := flag.Duration("batch-age", 10*time.Millisecond, "longest a batch waits to fill (it is flushed when -workers entries wait)")
	flag.Parse()
	if err := run(*dir, *entries, *workers, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "tessera-append:", err)
		os.Exit(1)
	}
}

func run(dir string, entries, workers int, batchAge time.Duration) error {
	ctx := context.Background()
	skey, _, err := note.GenerateKey(rand.Reader, "custody/bench-tessera")
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	drv, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return err
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithBatching(uint(workers), batchAge).WithCheckpointInterval(time.Second)
	app, shutdown, _, err := tessera.NewAppender(ctx, drv, opts)
	if err != nil {
		return err
	}
	start := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < entries; i += workers {
				e := fmt.Sprintf(`{"action":"manifest.put","actor":"bench","auth":"password","result":"ok","repo":"bench/app","digest":"sha256:%064x","client":"127.0.0.1:40000","request_id":"%016x","time":%q}`,
					i, i, time.Now().UTC().Format(time.RFC3339Nano))
				if _, err := app.Add(ctx, tessera.NewEntry([]byte(e)))(); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if first != nil {
		return first
	}
	if err := shutdown(ctx); err != nil {
		return err
	}
	fmt.Printf("%.6f\n", secs)
	return nil
}

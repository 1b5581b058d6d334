package tlog_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
)

func openLog(t testing.TB, dir string) (*tlog.Log, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := tlog.LoadOrCreateKey(dir, "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(context.Background(), st, tlog.Options{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	return l, st
}

func entry(i int) tlog.Entry {
	return tlog.Entry{Action: "manifest.put", Actor: "anonymous", Auth: "none", Repo: fmt.Sprintf("team/app%d", i%7), Result: "ok", Tag: "v1"}
}

func TestCanonical(t *testing.T) {
	e := tlog.Entry{Action: "tag.move", Actor: "alice", Auth: "basic", Repo: "a/b", Result: "ok", Reason: "<&>", Time: "2026-01-02T03:04:05.000000006Z"}
	got := string(e.Canonical())
	want := `{"action":"tag.move","actor":"alice","auth":"basic","reason":"<&>","repo":"a/b","result":"ok","time":"2026-01-02T03:04:05.000000006Z"}`
	if got != want {
		t.Fatalf("Canonical = %s\nwant        %s", got, want)
	}
	if _, err := tlog.ParseEntry([]byte(want)); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.ParseEntry([]byte(`{"actor":"alice","action":"tag.move","auth":"basic","result":"ok","time":"x"}`)); err == nil {
		t.Fatal("unsorted keys accepted as canonical")
	}
}

func TestProofsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := openLog(t, dir)
	defer st.Close()
	for i := range 300 {
		l.Append(entry(i))
	}
	l.Flush()
	cp1, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp1.Size != 300 {
		t.Fatalf("checkpoint size %d", cp1.Size)
	}
	got, err := tlog.OpenCheckpoint(l.VerifierKey(), cp1.Note)
	if err != nil || got.Size != 300 || !bytes.Equal(got.Root, cp1.Root) {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}
	for i := range 700 {
		l.Append(entry(i))
	}
	l.Close()
	cp2, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := l.Leaves(ctx, 0, 1000)
	if err != nil || len(leaves) != 1000 {
		t.Fatalf("Leaves: %d, %v", len(leaves), err)
	}
	hashes := make([][]byte, len(leaves))
	for i, lf := range leaves {
		hashes[i] = lf.Hash
		if !bytes.Equal(lf.Hash, tlog.LeafHash(lf.Entry)) {
			t.Fatalf("leaf %d hash mismatch", i)
		}
	}
	if root := tlog.RootFromLeafHashes(hashes); !bytes.Equal(root, cp2.Root) {
		t.Fatal("recomputed root differs from checkpoint")
	}
	for _, i := range []uint64{0, 1, 299, 511, 512, 999} {
		p, err := l.InclusionProof(ctx, i, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, 1000, hashes[i], p, cp2.Root); err != nil {
			t.Fatalf("inclusion %d: %v", i, err)
		}
	}
	p, err := l.ConsistencyProof(ctx, 300, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 300, 1000, p, cp1.Root, cp2.Root); err != nil {
		t.Fatal(err)
	}
}

// TestRefusesInconsistentCheckpoint rolls the leaves back behind a signed
// checkpoint and appends different entries: the log must not sign.
func TestRefusesInconsistentCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := openLog(t, dir)
	for i := range 100 {
		l.Append(entry(i))
	}
	l.Close()
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()

	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(dir, "meta.db")}).String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM tlog_leaves WHERE idx >= 50`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	l, st = openLog(t, dir)
	defer st.Close()
	if _, err := l.Checkpoint(ctx); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("checkpoint of a rolled-back log: %v, want ErrInconsistent", err)
	}
	for i := range 80 {
		e := entry(i)
		e.Actor = "mallory"
		l.Append(e)
	}
	l.Close()
	if _, err := l.Checkpoint(ctx); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("checkpoint of a forked log: %v, want ErrInconsistent", err)
	}
}

// BenchmarkAppend measures sustained appends from concurrent appenders
// (queue, group commit).
func BenchmarkAppend(b *testing.B) {
	l, st := openLog(b, b.TempDir())
	defer st.Close()
	e := entry(1)
	e.Digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	e.Client = "127.0.0.1:41234"
	e.RequestID = "0123456789abcdef"
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(e); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	b.StopTimer()
	l.Close()
}

// BenchmarkInclusionProof100k measures proofs in a log of 100,000 entries.
func BenchmarkInclusionProof100k(b *testing.B) {
	ctx := context.Background()
	l, st := openLog(b, b.TempDir())
	defer st.Close()
	appendAll(b, l, 100_000)
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.InclusionProof(ctx, uint64(i*7919%100_000), 100_000); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	l.Close()
}

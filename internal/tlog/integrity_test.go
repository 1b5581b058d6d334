package tlog_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
)

// appendAll appends entries 0..n-1 from 8 goroutines, as concurrent
// requests do.
func appendAll(t testing.TB, l *tlog.Log, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := l.Append(entry(i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// execSQL runs statements on the log's database behind its back. The
// store may be open (TestVerifyEndpoint): its search indexer writes a
// second after appends, so the statements wait for its transaction
// (busy_timeout) instead of failing with SQLITE_BUSY.
func execSQL(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(dir, "meta.db"), RawQuery: "_pragma=busy_timeout(10000)"}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		res, err := db.Exec(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s changed %d rows, want 1", s, n)
		}
	}
}

func countCheckpoints(t *testing.T, st interface {
	TlogLatestCheckpoint(context.Context) (tlog.Checkpoint, error)
}) uint64 {
	t.Helper()
	cp, err := st.TlogLatestCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// TestAppendIsDurable: an entry is in the store when Append returns,
// without Flush or Close, so a crash right after cannot drop it.
func TestAppendIsDurable(t *testing.T) {
	dir := t.TempDir()
	l, st := openLog(t, dir)
	defer st.Close()
	defer l.Close()
	for i := range 5 {
		if err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		n, err := st.TlogSize(context.Background())
		if err != nil || n != uint64(i+1) {
			t.Fatalf("after Append %d returned, the store holds %d entries (%v), want %d", i, n, err, i+1)
		}
	}
	l.Close()
	if err := l.Append(entry(9)); !errors.Is(err, tlog.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

// TestOpenFindsEditedEntries: a log reopened on a store whose newest
// entries were edited (the entry alone, or the entry and its leaf hash)
// reports it in Health and signs no checkpoint; an untouched one is
// healthy.
func TestOpenFindsEditedEntries(t *testing.T) {
	for name, stmts := range map[string][]string{
		"untouched": nil,
		"entry":     {`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 40`},
		"entry and leaf hash": {
			`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 40`,
			"", // the edited entry's leaf hash (fixLeafHash)
		},
		"after the checkpoint": {`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 130`},
		// Entries 128-143 are covered by a stored node (level 4): its
		// hash is of the leaf hashes as appended.
		"entry and leaf hash after the checkpoint": {
			`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 130`,
			"",
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l, st := checkpointedLog(t, dir)
			l.Close()
			st.Close()
			execSQL(t, dir, fixLeafHash(t, dir, stmts)...)

			l, st = openLog(t, dir)
			defer st.Close()
			defer l.Close()
			err := l.Health()
			if stmts == nil {
				if err != nil {
					t.Fatalf("Health of an untouched log: %v", err)
				}
				if _, err := l.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tlog.ErrDamaged) {
				t.Fatalf("Health = %v, want ErrDamaged", err)
			}
			if _, err := l.Checkpoint(ctx); !errors.Is(err, tlog.ErrInconsistent) {
				t.Fatalf("Checkpoint of a tampered log = %v, want ErrInconsistent", err)
			}
			if got := countCheckpoints(t, st); got != 100 {
				t.Fatalf("latest checkpoint has size %d, want the old 100", got)
			}
		})
	}
}

// TestCheckpointSignsNoEditOfTheNewestEntries: an entry after the last
// checkpoint, rewritten with its leaf hash while the log runs, is not what
// the next checkpoint signs (proofs come from the stored tree, which holds
// the leaf hashes as appended), and the next Open finds the edit.
func TestCheckpointSignsNoEditOfTheNewestEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := checkpointedLog(t, dir)
	orig, err := l.Leaves(ctx, 146, 147)
	if err != nil || len(orig) != 1 {
		t.Fatal(orig, err)
	}
	execSQL(t, dir, fixLeafHash(t, dir, []string{
		`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 146`, "",
	})...)
	edited, err := l.Leaves(ctx, 146, 147)
	if err != nil || len(edited) != 1 || bytes.Equal(edited[0].Entry, orig[0].Entry) {
		t.Fatal("the edit did not take", err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.Size != 150 {
		t.Fatalf("Checkpoint = %d, %v", cp.Size, err)
	}
	p, err := l.InclusionProof(ctx, 146, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyInclusion(cp, 146, orig[0].Entry, p); err != nil {
		t.Fatalf("the checkpoint does not include entry 146 as appended: %v", err)
	}
	if err := tlog.VerifyInclusion(cp, 146, edited[0].Entry, p); err == nil {
		t.Fatal("the checkpoint includes the edited entry 146")
	}
	l.Close()
	st.Close()

	l, st = openLog(t, dir)
	defer st.Close()
	defer l.Close()
	if !errors.Is(l.Health(), tlog.ErrDamaged) {
		t.Fatalf("Health after reopening = %v, want ErrDamaged", l.Health())
	}
}

// TestCheckpointRefusesARewrittenTree: an entry after the last checkpoint
// rewritten while the log runs with its leaf hash and its level-0 node in
// the stored tree (a careful attacker) is not signed: the stored tree no
// longer extends the one the log appended.
func TestCheckpointRefusesARewrittenTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := checkpointedLog(t, dir)
	defer st.Close()
	defer l.Close()
	stmts := fixLeafHash(t, dir, []string{
		`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 146`, "",
	})
	// tlog_tree keys node (0, 146) by its post-order position.
	const pos146 = 2*146 - 3 // 2m - popcount(m) for m = 146 (0b10010010)
	hash, _ := strings.CutPrefix(stmts[1], `UPDATE tlog_leaves SET leaf_hash = `)
	hash, _, _ = strings.Cut(hash, ` WHERE`)
	execSQL(t, dir, append(stmts, fmt.Sprintf(`UPDATE tlog_tree SET hash = %s WHERE pos = %d`, hash, pos146))...)
	if _, err := l.Checkpoint(ctx); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("Checkpoint of a log whose entry 146 and its tree were rewritten = %v, want ErrInconsistent", err)
	}
	if !errors.Is(l.Health(), tlog.ErrDamaged) {
		t.Fatalf("Health = %v, want ErrDamaged", l.Health())
	}
	if got := countCheckpoints(t, st); got != 100 {
		t.Fatalf("latest checkpoint has size %d, want the old 100", got)
	}
}

// checkpointedLog opens a log in dir with 150 entries, the first 100
// under a signed checkpoint.
func checkpointedLog(t *testing.T, dir string) (*tlog.Log, *sqlite.Store) {
	t.Helper()
	l, st := openLog(t, dir)
	appendAll(t, l, 100)
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, 50)
	return l, st
}

// fixLeafHash fills in stmts[1]: SQL that sets the stored leaf hash of
// the entry the first statement edits (WHERE idx = N) to the hash of the
// edit, as a careful attacker would.
func fixLeafHash(t *testing.T, dir string, stmts []string) []string {
	t.Helper()
	if len(stmts) < 2 {
		return stmts
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(dir, "meta.db")}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, idx, ok := strings.Cut(stmts[0], "WHERE idx = ")
	if !ok {
		t.Fatalf("%s names no entry", stmts[0])
	}
	var entry string
	if err := db.QueryRow(`SELECT replace(entry, 'anonymous', 'mallory') FROM tlog_leaves WHERE idx = ?`, idx).Scan(&entry); err != nil {
		t.Fatal(err)
	}
	h := tlog.LeafHash([]byte(entry))
	out := append([]string(nil), stmts...)
	out[1] = `UPDATE tlog_leaves SET leaf_hash = x'` + hex.EncodeToString(h) + `' WHERE idx = ` + idx
	return out
}

// TestScrubFindsOldEdits: an entry older than what Open re-hashes, edited
// with its leaf hash, is found by the background pass (Scrub), which then
// stops checkpoints.
func TestScrubFindsOldEdits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := openLog(t, dir)
	n := tlog.TailCheck + 2000
	appendAll(t, l, n)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// A clean pass completes without error.
	for {
		done, err := l.Scrub(ctx)
		if err != nil {
			t.Fatalf("Scrub of an untouched log: %v", err)
		}
		if done {
			break
		}
	}
	l.Close()
	st.Close()
	execSQL(t, dir, fixLeafHash(t, dir, []string{
		`UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 40`, "",
	})...)

	l, st = openLog(t, dir)
	defer st.Close()
	defer l.Close()
	if err := l.Health(); err != nil {
		t.Fatalf("Open re-hashed entry 40 (outside the tail); the test needs a larger log: %v", err)
	}
	var err error
	for done := false; !done; {
		if done, err = l.Scrub(ctx); err != nil {
			break
		}
	}
	if !errors.Is(err, tlog.ErrDamaged) || !errors.Is(l.Health(), tlog.ErrDamaged) {
		t.Fatalf("Scrub = %v, Health = %v; want ErrDamaged", err, l.Health())
	}
	appendAll(t, l, 10)
	if _, err := l.Checkpoint(ctx); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("Checkpoint after a failed pass = %v, want ErrInconsistent", err)
	}
	if got := countCheckpoints(t, st); got != uint64(n) {
		t.Fatalf("latest checkpoint has size %d, want the old %d", got, n)
	}
}

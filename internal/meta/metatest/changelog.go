package metatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/opencontainers/go-digest"
)

// ChangeLogStore is a metadata store that also stores the audit log: a
// change's write can append the change's entries inside its own
// transaction (tlog.WithPending; meta, "Audit entries in the change's
// transaction").
type ChangeLogStore interface {
	meta.Store
	tlog.Store
}

// RunChangeLog is the conformance suite for appends to the audit log
// inside a change's write transaction.
func RunChangeLog(t *testing.T, open Replicas[ChangeLogStore]) {
	runSuite(t, open, []subtest[ChangeLogStore]{
		{"CommitsTogether", testChangeLogCommitsTogether},
		{"FailedWriteStoresNeither", testChangeLogFailedWrite},
		{"WriteWithoutCommit", testChangeLogNoCommit},
		{"OtherWriterFirst", testChangeLogOtherWriterFirst},
		{"Concurrent", testChangeLogConcurrent},
		{"UploadDeletion", testChangeLogUploadDeletion},
	})
}

// changeEntry is the i-th entry of change c.
func changeEntry(c string, i int) tlog.Entry {
	return tlog.Entry{Action: "manifest.put", Actor: "alice", Auth: "password", Repo: "r", Result: "ok",
		Reason: fmt.Sprint(c, "/", i), Time: tlog.FormatTime(time.Date(2031, 1, 2, 3, 4, 5, i, time.UTC))}
}

// pending returns an append of n entries of change c to l, and the
// context carrying it.
func pending(ctx context.Context, l *tlog.Log, c string, n int) (context.Context, *tlog.Pending) {
	p := l.Within(func() []tlog.Entry {
		es := make([]tlog.Entry, n)
		for i := range es {
			es[i] = changeEntry(c, i)
		}
		return es
	})
	return tlog.WithPending(ctx, p), p
}

// wantLog checks that the store holds exactly the entries want, in order,
// and that a checkpoint of l over them verifies.
func wantLog(t *testing.T, s tlog.Store, l *tlog.Log, want ...tlog.Entry) {
	t.Helper()
	ctx := t.Context()
	size, err := s.TlogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size != uint64(len(want)) {
		t.Fatalf("the log has %d entries, want %d", size, len(want))
	}
	leaves, err := s.TlogLeaves(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	for i, lf := range leaves {
		if string(lf.Entry) != string(want[i].Canonical()) {
			t.Fatalf("entry %d = %s, want %s", i, lf.Entry, want[i].Canonical())
		}
	}
	if n := l.Size(); n != size {
		t.Fatalf("the Log's size is %d, the store's %d", n, size)
	}
	verifyLog(t, l, size)
}

// verifyLog signs a checkpoint of l, which must cover size entries, and
// verifies the whole stored log against it.
func verifyLog(t *testing.T, l *tlog.Log, size uint64) {
	t.Helper()
	if size == 0 {
		return
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if cp.Size != size {
		t.Fatalf("checkpoint of size %d, want %d", cp.Size, size)
	}
	v, err := tlog.Verify(t.Context(), l.Source(), tlog.VerifyOptions{Key: l.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() {
		t.Fatalf("the log does not verify: %+v", v.Problems)
	}
}

// testChangeLogCommitsTogether: a write under a pending append stores the
// change and its entries, the Log's tree includes them, and the append is
// made once.
func testChangeLogCommitsTogether(t *testing.T, open Replicas[ChangeLogStore]) {
	s := one(t, open)
	l := openLog(t, s, nil)
	ctx, p := pending(t.Context(), l, "put", 2)
	m := image("r", "img")
	if err := s.PutManifest(ctx, m, []string{"latest"}, nil); err != nil {
		t.Fatalf("PutManifest with entries: %v", err)
	}
	if got, err := s.ResolveTag(t.Context(), "r", "latest"); err != nil || got != m.Digest {
		t.Fatalf("ResolveTag = %s, %v; want %s", got, err, m.Digest)
	}
	// Another write with the same context does not append them again.
	if err := s.LinkBlob(ctx, "r", d("blob"), 3); err != nil {
		t.Fatal(err)
	}
	if !p.Seal() {
		t.Fatal("Seal: the entries were not committed with the change")
	}
	wantLog(t, s, l, changeEntry("put", 0), changeEntry("put", 1))
	// The Log's own writer appends after them.
	if err := l.Append(changeEntry("writer", 0)); err != nil {
		t.Fatal(err)
	}
	wantLog(t, s, l, changeEntry("put", 0), changeEntry("put", 1), changeEntry("writer", 0))
	// A sealed append is made by no later write.
	if err := s.LinkBlob(ctx, "r", d("blob2"), 3); err != nil {
		t.Fatal(err)
	}
	wantLog(t, s, l, changeEntry("put", 0), changeEntry("put", 1), changeEntry("writer", 0))
}

// testChangeLogFailedWrite: a write that fails (a vetoed put, a cancelled
// context) stores neither the change nor its entries, and the Log's tree
// does not grow.
func testChangeLogFailedWrite(t *testing.T, open Replicas[ChangeLogStore]) {
	s := one(t, open)
	l := openLog(t, s, nil)
	ctx, p := pending(t.Context(), l, "veto", 1)
	m := image("r", "img")
	veto := func(tag string, current, next digest.Digest) error { return errVeto }
	if err := s.PutManifest(ctx, m, []string{"latest"}, veto); !errors.Is(err, errVeto) {
		t.Fatalf("vetoed PutManifest with entries: %v, want the veto", err)
	}
	wantNoManifest(t, s, "r", m.Digest)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.LinkBlob(cctx, "r", d("blob"), 3); err == nil {
		t.Fatal("LinkBlob with entries and a cancelled context succeeded")
	}
	_, err := s.BlobSize(t.Context(), "r", d("blob"))
	wantNotFound(t, err, "BlobSize after a cancelled LinkBlob with entries")
	// A failure inside the append (the context ends while the entries
	// are built) rolls the change back too.
	actx, cancelAppend := context.WithCancel(t.Context())
	ap := l.Within(func() []tlog.Entry {
		cancelAppend()
		return []tlog.Entry{changeEntry("cancelled", 0)}
	})
	if err := s.LinkBlob(tlog.WithPending(actx, ap), "r", d("blob"), 3); err == nil {
		t.Fatal("LinkBlob whose append failed succeeded")
	}
	_, err = s.BlobSize(t.Context(), "r", d("blob"))
	wantNotFound(t, err, "BlobSize after a LinkBlob whose append failed")
	if p.Seal() || ap.Seal() {
		t.Fatal("Seal: entries reported committed by failed writes")
	}
	wantLog(t, s, l)
	// The log goes on from where it was.
	if err := l.Append(changeEntry("writer", 0)); err != nil {
		t.Fatal(err)
	}
	wantLog(t, s, l, changeEntry("writer", 0))
}

// testChangeLogNoCommit: a write that returns without committing (the
// deletion of an unknown upload) leaves the entries to the caller, and
// says so; if it commits, they are stored.
func testChangeLogNoCommit(t *testing.T, open Replicas[ChangeLogStore]) {
	s := one(t, open)
	l := openLog(t, s, nil)
	ctx, p := pending(t.Context(), l, "noop", 1)
	err := s.DeleteUpload(ctx, "no-such-upload")
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("DeleteUpload of an unknown upload: %v", err)
	}
	if p.Seal() {
		wantLog(t, s, l, changeEntry("noop", 0))
		return
	}
	wantLog(t, s, l)
	// The caller's fallback.
	if err := l.Append(changeEntry("noop", 0)); err != nil {
		t.Fatal(err)
	}
	wantLog(t, s, l, changeEntry("noop", 0))
}

// testChangeLogOtherWriterFirst: when another writer (this Log's writer,
// or another replica's) appended after the Log last looked, the change's
// entries go on top of the stored log.
func testChangeLogOtherWriterFirst(t *testing.T, open Replicas[ChangeLogStore]) {
	ss := open(t, 2)
	la, lb := openLog(t, ss[0], nil), openLog(t, ss[1], nil)
	var want []tlog.Entry
	add := func(l *tlog.Log, e tlog.Entry) {
		t.Helper()
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	add(lb, changeEntry("b", 0))
	add(lb, changeEntry("b", 1))
	add(la, changeEntry("a", 0))
	add(lb, changeEntry("b", 2))
	ctx, p := pending(t.Context(), la, "change", 2)
	if err := ss[0].LinkBlob(ctx, "r", d("blob"), 3); err != nil {
		t.Fatal(err)
	}
	if !p.Seal() {
		t.Fatal("Seal: the entries were not committed with the change")
	}
	want = append(want, changeEntry("change", 0), changeEntry("change", 1))
	add(lb, changeEntry("b", 3))
	add(la, changeEntry("a", 1))
	wantLog(t, ss[0], la, want...)
	if n := lb.Size(); n != uint64(len(want)) {
		t.Fatalf("the other replica's Log has size %d, want %d", n, len(want))
	}
}

// testChangeLogConcurrent: changes with entries and the Logs' writers
// append at once, through two replicas: every entry is stored once, and
// the log verifies.
func testChangeLogConcurrent(t *testing.T, open Replicas[ChangeLogStore]) {
	ss := open(t, 2)
	logs := []*tlog.Log{openLog(t, ss[0], nil), openLog(t, ss[1], nil)}
	const (
		changers = 3 // goroutines making changes, per replica
		writers  = 2 // goroutines appending through the writer, per replica
		each     = 15
	)
	var (
		mu       sync.Mutex
		errs     []error
		together int // changes whose entries were committed with them
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	concurrently(len(logs)*(changers+writers), func(g int) {
		r, k := g%len(logs), g/len(logs)
		s, l := ss[r], logs[r]
		for i := range each {
			name := fmt.Sprint("g", g, "-", i)
			if k >= changers {
				if err := l.Append(changeEntry(name, 0)); err != nil {
					fail(err)
				}
				continue
			}
			ctx, p := pending(t.Context(), l, name, 2)
			if err := s.LinkBlob(ctx, fmt.Sprint("r", g), d(name), 1); err != nil {
				fail(fmt.Errorf("LinkBlob with entries: %w", err))
				continue
			}
			if p.Seal() {
				mu.Lock()
				together++
				mu.Unlock()
				continue
			}
			// A store may leave the entries of a change that met
			// another append to the caller (tlog.ErrAppendBusy).
			if err := l.Append(changeEntry(name, 0), changeEntry(name, 1)); err != nil {
				fail(err)
			}
		}
	})
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	t.Logf("%d of %d changes committed their entries with them", together, len(logs)*changers*each)
	want := map[string]bool{}
	for g := range len(logs) * (changers + writers) {
		for i := range each {
			name := fmt.Sprint("g", g, "-", i)
			want[string(changeEntry(name, 0).Canonical())] = true
			if g/len(logs) < changers {
				want[string(changeEntry(name, 1).Canonical())] = true
			}
		}
	}
	ctx := t.Context()
	size, err := ss[0].TlogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := ss[0].TlogLeaves(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	for i, lf := range leaves {
		if lf.Index != uint64(i) {
			t.Fatalf("leaf %d has index %d", i, lf.Index)
		}
		if !want[string(lf.Entry)] {
			t.Fatalf("entry %d (%s) stored twice or never appended", i, lf.Entry)
		}
		delete(want, string(lf.Entry))
	}
	if len(want) > 0 {
		t.Fatalf("%d entries missing", len(want))
	}
	for r, l := range logs {
		if n := l.Size(); n != size {
			t.Fatalf("replica %d's Log has size %d, the store %d", r, n, size)
		}
	}
	verifyLog(t, logs[0], size)
}

// testChangeLogUploadDeletion: the deletion of an upload session, the last
// write of a blob upload's change, stores the change's entries in its
// transaction like any other write (the upload's commit relies on it for
// its one durable commit).
func testChangeLogUploadDeletion(t *testing.T, open Replicas[ChangeLogStore]) {
	s := one(t, open)
	l := openLog(t, s, nil)
	now := time.Now()
	if err := s.CreateUpload(t.Context(), meta.Upload{ID: "u1", Repo: "r", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	ctx, p := pending(t.Context(), l, "upload", 1)
	if err := s.DeleteUpload(ctx, "u1"); err != nil {
		t.Fatalf("DeleteUpload with entries: %v", err)
	}
	if !p.Seal() {
		t.Fatal("Seal: the entries were not committed with the upload's deletion")
	}
	wantLog(t, s, l, changeEntry("upload", 0))
	if _, err := s.GetUpload(t.Context(), "u1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetUpload after the deletion: %v", err)
	}
	// Deleting it again deletes nothing: no entries without a change.
	ctx, p = pending(t.Context(), l, "again", 1)
	if err := s.DeleteUpload(ctx, "u1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("DeleteUpload of a deleted upload: %v", err)
	}
	if p.Seal() {
		t.Fatal("Seal: entries were committed with a deletion that deleted nothing")
	}
	wantLog(t, s, l, changeEntry("upload", 0))
}

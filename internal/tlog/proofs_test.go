package tlog_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
)

// TestVerifyProofs checks the offline proof checks evidence bundles use:
// every entry's inclusion, consistency between checkpoints, and refusals
// of a changed entry, a changed proof hash, an uncovered index and a
// forked or shrunk log.
func TestVerifyProofs(t *testing.T) {
	ctx := context.Background()
	l, st := openLog(t, t.TempDir())
	defer st.Close()
	for i := range 37 {
		l.Append(entry(i))
	}
	l.Flush()
	cp1, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		l.Append(entry(100 + i))
	}
	l.Flush()
	cp2, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := l.Leaves(ctx, 0, cp1.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, lf := range leaves {
		p, err := l.InclusionProof(ctx, lf.Index, cp1.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(cp1, lf.Index, lf.Entry, p); err != nil {
			t.Fatalf("entry %d: %v", lf.Index, err)
		}
	}
	p, _ := l.InclusionProof(ctx, 5, cp1.Size)
	changed := []byte(strings.Replace(string(leaves[5].Entry), "actor", "actos", 1))
	if err := tlog.VerifyInclusion(cp1, 5, changed, p); err == nil {
		t.Fatal("a changed entry verified")
	}
	p[0][0] ^= 1
	if err := tlog.VerifyInclusion(cp1, 5, leaves[5].Entry, p); err == nil {
		t.Fatal("a changed proof hash verified")
	}
	if err := tlog.VerifyInclusion(cp1, cp1.Size, leaves[5].Entry, nil); err == nil || !strings.Contains(err.Error(), "not covered") {
		t.Fatalf("an index past the checkpoint: %v", err)
	}
	c, err := l.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyConsistency(cp1, cp2, c); err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyConsistency(cp2, cp1, c); err == nil {
		t.Fatal("a shrinking log verified")
	}
	if err := tlog.VerifyConsistency(cp1, cp1, nil); err != nil {
		t.Fatalf("a checkpoint against itself: %v", err)
	}
	forked := cp1
	forked.Root = append([]byte(nil), cp1.Root...)
	forked.Root[0] ^= 1
	if err := tlog.VerifyConsistency(cp1, forked, nil); err == nil {
		t.Fatal("a fork verified")
	}
	c[0][0] ^= 1
	if err := tlog.VerifyConsistency(cp1, cp2, c); err == nil {
		t.Fatal("a changed consistency proof verified")
	}
}

// TestSignNote signs statements with the log key but never a text that
// reads as one of its checkpoints.
func TestSignNote(t *testing.T) {
	l, st := openLog(t, t.TempDir())
	defer st.Close()
	msg, err := l.SignNote("custody-bundle/v1\nsha256:00\n")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open(msg, note.VerifierList(v)); err != nil || n.Text != "custody-bundle/v1\nsha256:00\n" {
		t.Fatalf("note: %v", err)
	}
	if _, err := l.SignNote(tlog.CheckpointBody(l.Origin(), 1, make([]byte, 32))); err == nil {
		t.Fatal("signed a checkpoint body")
	}
}

package promotion_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestHistoryIsBounded: a digest with more audit entries than one answer
// holds (an image every pod start is admitted with) gets the oldest
// MaxHistoryEvents, in log order, and says it was truncated; the entries
// of the repository's other digests and of the same digest in another
// repository are not read into it.
func TestHistoryIsBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := openAudit(t)
	f.svc.Audit = l
	a := f.signed(t, windowStart).DigestStr()
	other := f.signed(t, windowStart).DigestStr()
	var es []tlog.Entry
	for i := range promotion.MaxHistoryEvents + 10 {
		es = append(es,
			tlog.Entry{Action: promotion.ActionAdmission, Actor: "k8s", Auth: "none", Repo: "apps/web", Digest: a, Result: "ok", Reason: "pod " + string(rune('a'+i%26))},
			tlog.Entry{Action: promotion.ActionAdmission, Actor: "k8s", Auth: "none", Repo: "apps/web", Digest: other, Result: "ok"},
			tlog.Entry{Action: promotion.ActionAdmission, Actor: "k8s", Auth: "none", Repo: "apps/api", Digest: a, Result: "ok"})
	}
	if err := l.Append(es...); err != nil {
		t.Fatal(err)
	}
	h, err := f.svc.History(ctx, "apps/web", a)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != promotion.MaxHistoryEvents || !h.Truncated {
		t.Fatalf("%d events, truncated %v; want %d, truncated", len(h.Events), h.Truncated, promotion.MaxHistoryEvents)
	}
	for i, e := range h.Events {
		if e.Kind != promotion.KindAdmission || e.AuditIndex != uint64(3*i) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	h, err = f.svc.History(ctx, "apps/api", a)
	if err != nil || len(h.Events) != promotion.MaxHistoryEvents || !h.Truncated || h.Events[0].AuditIndex != 2 {
		t.Fatalf("apps/api: %v %d %v", err, len(h.Events), h.Truncated)
	}
}

// openAudit opens an audit log in a SQLite store of its own.
func openAudit(t *testing.T) *tlog.Log {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, vkey, err := tlog.LoadOrCreateKey(dir, "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(context.Background(), st, tlog.Options{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// countingLog counts the entries the audit log's searches return.
type countingLog struct {
	*tlog.Log
	leaves int
}

func (c *countingLog) Search(ctx context.Context, q tlog.Query) ([]tlog.Leaf, error) {
	ls, err := c.Log.Search(ctx, q)
	c.leaves += len(ls)
	return ls, err
}

// TestAtAuditIndexIsBounded: the audit entry of the promotion that
// proves what ran is found without reading every entry about the digest:
// 3000 admission entries before the promotion (the digest ran elsewhere)
// are not read.
func TestAtAuditIndexIsBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := &countingLog{Log: openAudit(t)}
	f.svc.Audit = l
	t1 := windowStart.Add(24 * time.Hour)
	f.svc.Now = func() time.Time { return t1 }
	d := f.signed(t, windowStart.Add(time.Hour))
	var es []tlog.Entry
	for range 3000 {
		es = append(es, tlog.Entry{Action: promotion.ActionAdmission, Actor: "k8s", Auth: "none", Repo: "apps/web", Digest: d.DigestStr(), Result: "ok", Time: tlog.FormatTime(t1.Add(-time.Hour))})
	}
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	es = append(es, tlog.Entry{Action: "promote", Actor: "rel", Auth: "basic", Repo: "apps/web", Digest: d.DigestStr(), Tag: "dev", Result: "ok",
		Reason: promotion.PromotedReason("dev", "", "release"), Time: tlog.FormatTime(t1.Add(time.Millisecond))})
	if err := l.Append(es...); err != nil {
		t.Fatal(err)
	}
	dep, err := f.svc.At(ctx, "apps/web", "dev", t1.Add(time.Hour))
	if err != nil || dep.Digest != d.DigestStr() || dep.AuditIndex == nil || *dep.AuditIndex != 3000 {
		t.Fatalf("%v %+v", err, dep)
	}
	if l.leaves > 10 {
		t.Fatalf("finding one audit entry read %d", l.leaves)
	}
}

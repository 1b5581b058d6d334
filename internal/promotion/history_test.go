package promotion_test

import (
	"context"
	"path/filepath"
	"testing"

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
	l, err := tlog.Open(ctx, st, tlog.Options{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
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

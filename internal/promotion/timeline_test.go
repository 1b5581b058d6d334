package promotion_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/promotion"
)

// TestAt: what dev ran at an instant comes from the promotion and
// rollback records that count: a -> dev at t1, b at t2, back to a at t3;
// a record by a key that does not record promotions changes nothing.
func TestAt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t1 := windowStart.Add(24 * time.Hour)
	t2, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour)
	var now time.Time
	f.svc.Now = func() time.Time { return now }
	a, b := f.signed(t, windowStart.Add(time.Hour)), f.signed(t, windowStart.Add(time.Hour))
	now = t1
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: a.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	now = t2
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: b.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	now = t3
	if _, err := f.svc.Rollback(ctx, "apps/web", "dev", []string{a.DigestStr(), b.DigestStr()}, "rel", "error rate"); err != nil {
		t.Fatal(err)
	}
	// A promotion record signed by a trusted key that is not the
	// server's, claiming a entered dev between t2 and t3: not counted.
	evidencetest.Attest(t, a, f.ci, evidence.PredicatePromotion, evidence.Record{Environment: "dev", Repository: "apps/web", Digest: a.DigestStr(), By: "ci", At: t2.Add(time.Minute)})

	for _, c := range []struct {
		at       time.Time
		want     string
		since    time.Time
		rollback bool
	}{
		{t1.Add(-time.Second), "", time.Time{}, false},
		{t1, a.DigestStr(), t1, false},
		{t1.Add(30 * time.Minute), a.DigestStr(), t1, false},
		{t2.Add(30 * time.Minute), b.DigestStr(), t2, false},
		{t3.Add(-time.Nanosecond), b.DigestStr(), t2, false},
		{t3.Add(time.Hour), a.DigestStr(), t3, true},
	} {
		dep, err := f.svc.At(ctx, "apps/web", "dev", c.at)
		if err != nil {
			t.Fatalf("at %s: %v", c.at, err)
		}
		if dep.Digest != c.want || !dep.Since.Equal(c.since) || dep.Repository != "apps/web" || dep.Environment != "dev" {
			t.Fatalf("at %s: got %s since %s, want %s since %s", c.at, dep.Digest, dep.Since, c.want, c.since)
		}
		if c.want == "" {
			if dep.Record != nil {
				t.Fatalf("at %s: a record proves nothing ran: %+v", c.at, dep.Record)
			}
			continue
		}
		if dep.Record == nil || dep.Record.Digest != c.want || dep.Record.Rollback != c.rollback || dep.Record.By != "rel" {
			t.Fatalf("at %s: record %+v", c.at, dep.Record)
		}
	}

	deps, err := f.svc.EnvironmentAt(ctx, "", "dev", t2)
	if err != nil || len(deps) != 1 || deps[0].Digest != b.DigestStr() {
		t.Fatalf("project-wide: %v %+v", err, deps)
	}
	if _, err := f.svc.EnvironmentAt(ctx, "other", "dev", t2); !errors.Is(err, promotion.ErrNoProject) {
		t.Fatalf("unknown project: %v", err)
	}
	if _, err := f.svc.At(ctx, "apps/web", "staging", t2); !errors.Is(err, promotion.ErrNoEnv) {
		t.Fatalf("unknown environment: %v", err)
	}
}

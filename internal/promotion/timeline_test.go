package promotion_test

import (
	"context"
	"errors"
	"strings"
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

// TestParseTime: the forms custody env --at and the environments API take.
func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)
	for _, s := range []string{"2026-03-03T14:00:00Z", "2026-03-03T15:00:00+01:00", "2026-03-03 14:00", "2026-03-03 14:00:00", "2026-03-03T14:00:00.000000000Z"} {
		got, err := promotion.ParseTime(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if got, err := promotion.ParseTime("2026-03-03"); err != nil || !got.Equal(want.Add(-14*time.Hour)) {
		t.Errorf("date only: %v %v", got, err)
	}
	for _, s := range []string{"", "yesterday", "2026-03-03 14", "2026-13-01 00:00", "2026-03-03T14:00:00", "1741010400", " 2026-03-03 14:00"} {
		if got, err := promotion.ParseTime(s); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("%q parsed as %v (%v)", s, got, err)
		}
	}
}

// FuzzParseTime: any input parses to a UTC instant that reads back the
// same, or is refused with the formats named; nothing panics.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-03-03T14:00:00Z", "2026-03-03T15:00:00+01:00", "2026-03-03 14:00", "2026-03-03 14:00:05", "2026-03-03",
		"0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999999-23:59", "2026-02-30 10:00", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := promotion.ParseTime(s)
		if err != nil {
			if !strings.Contains(err.Error(), "RFC 3339") || len(err.Error()) > 300 {
				t.Fatalf("%q: unclear error %v", s, err)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: %v is not UTC", s, got)
		}
		if y := got.Year(); y >= 0 && y <= 9999 {
			back, err := promotion.ParseTime(got.Format(time.RFC3339Nano))
			if err != nil || !back.Equal(got) {
				t.Fatalf("%q: %v reads back as %v (%v)", s, got, back, err)
			}
		}
	})
}

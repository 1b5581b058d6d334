package firewall_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/firewall"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/vuln"
)

// fixture is a firewall over a real vulnerability database and a real
// store, with a clock the test moves.
type fixture struct {
	fw      *firewall.Firewall
	waivers *firewall.Waivers
	clock   *atomic.Int64 // unix nanoseconds
	feed    config.Feed
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	db, err := vuln.Open(filepath.Join(dir, "vulndb.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	adv := filepath.Join(dir, "adv.json")
	if err := os.WriteFile(adv, []byte(advisory("GHSA-unit-0001", "npm", "lib", "0", "2.0.0", "HIGH")), 0o600); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Import(context.Background(), adv); err != nil {
		tb.Fatal(err)
	}
	blobs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	md, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { md.Close() })
	clock := &atomic.Int64{}
	clock.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	w := firewall.NewWaivers(feed.NewStore(blobs, md, registry.Options{Now: now}))
	return &fixture{fw: firewall.New(db, w, now), waivers: w, clock: clock,
		feed: config.Feed{Name: "npmf", Ecosystem: config.FeedEcosystemNPM, Kind: config.FeedKindHosted, Firewall: config.FeedFirewall{BlockSeverity: "high"}}}
}

func (f *fixture) now() time.Time { return time.Unix(0, f.clock.Load()).UTC() }

func (f *fixture) waive(tb testing.TB, pkg, expires string) {
	tb.Helper()
	body := `{"package":"` + pkg + `","advisory":"GHSA-unit-0001","expires":"` + expires + `","reason":"reviewed"}`
	req, exp, err := firewall.ParseWaiverRequest(strings.NewReader(body), f.feed, f.now())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.waivers.Add(context.Background(), nil, f.feed, req, exp, "tester", f.now()); err != nil {
		tb.Fatal(err)
	}
}

func blocked(err error) bool {
	var b *feed.Blocked
	return errors.As(err, &b)
}

// TestAdmitWaiverLifecycle: a waiver of every version lets them through
// until its expiry (judged with the server's clock at each request, past
// the decision cache); a later, shorter waiver replaces it (the most
// recent statement decides); another feed's waivers do not count.
func TestAdmitWaiverLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.fw.Admit(ctx, f.feed, "lib", "1.0.0"); !blocked(err) {
		t.Fatalf("lib@1.0.0 not blocked: %v", err)
	}
	if err := f.fw.Admit(ctx, f.feed, "lib", "2.0.0"); err != nil {
		t.Fatalf("the fixed version: %v", err)
	}
	f.waive(t, "pkg:npm/lib", "2027-01-01")
	for _, v := range []string{"1.0.0", "1.5.0"} {
		if err := f.fw.Admit(ctx, f.feed, "lib", v); err != nil {
			t.Errorf("lib@%s with a waiver of every version: %v", v, err)
		}
	}
	other := f.feed
	other.Name = "otherf"
	if err := f.fw.Admit(ctx, other, "lib", "1.0.0"); !blocked(err) {
		t.Errorf("another feed's waiver let lib through: %v", err)
	}
	f.clock.Add(int64(time.Hour))
	f.waive(t, "pkg:npm/lib", f.now().Add(time.Hour).Format(time.RFC3339))
	if err := f.fw.Admit(ctx, f.feed, "lib", "1.0.0"); err != nil {
		t.Errorf("during the short waiver: %v", err)
	}
	f.clock.Add(int64(time.Hour))
	if err := f.fw.Admit(ctx, f.feed, "lib", "1.0.0"); !blocked(err) {
		t.Errorf("after the most recent waiver expired: %v", err)
	}
	ws, err := f.waivers.List(ctx, f.feed.Name, f.now())
	if err != nil || len(ws) != 2 || ws[0].Expired || !ws[1].Expired {
		t.Errorf("waivers: %+v %v", ws, err)
	}
}

// TestAdmitUnpinned: only feeds with blockUnpinned refuse unpinned
// queries, with no waiver to offer.
func TestAdmitUnpinned(t *testing.T) {
	f := newFixture(t)
	if err := f.fw.AdmitUnpinned(context.Background(), f.feed, "lib", "@latest"); err != nil {
		t.Errorf("without blockUnpinned: %v", err)
	}
	f.feed.Firewall.BlockUnpinned = true
	err := f.fw.AdmitUnpinned(context.Background(), f.feed, "lib", "@latest")
	var b *feed.Blocked
	if !errors.As(err, &b) || b.Waive != "" || !strings.Contains(b.Error(), "lib@latest") {
		t.Errorf("with blockUnpinned: %v", err)
	}
}

// BenchmarkAdmit measures a decision once the database's findings are
// cached: a clean version, and a blocked version set aside by a waiver.
func BenchmarkAdmit(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	f.waive(b, "pkg:npm/lib@1.0.0", "2027-01-01")
	for _, c := range []struct{ name, pkg, version string }{{"clean", "other", "1.0.0"}, {"waived", "lib", "1.0.0"}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := f.fw.Admit(ctx, f.feed, c.pkg, c.version); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAdmitConcurrent: decisions in parallel with a waiver being added
// and the database's cache being filled (run with -race).
func TestAdmitConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				err := f.fw.Admit(ctx, f.feed, "lib", []string{"1.0.0", "1.1.0", "2.0.0"}[i%3])
				if err != nil && !blocked(err) {
					errs <- err
					return
				}
			}
		}()
	}
	f.waive(t, "pkg:npm/lib", "2027-01-01")
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := f.fw.Admit(ctx, f.feed, "lib", "1.0.0"); err != nil {
		t.Errorf("after the waiver: %v", err)
	}
}

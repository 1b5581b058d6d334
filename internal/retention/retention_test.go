package retention_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/veto"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type fixture struct {
	ctx     context.Context
	clock   *clock
	md      *sqlite.Store
	checker *retention.Checker
	events  []retention.Event
	layer   digest.Digest
	index   digest.Digest
	child   digest.Digest
}

// newFixture stores, in repo "r", an image manifest (child) referencing a
// layer and an index referencing the child.
func newFixture(t *testing.T, allowBypass bool) *fixture {
	t.Helper()
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	f := &fixture{ctx: context.Background(), clock: &clock{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, md: md}
	f.checker = &retention.Checker{
		Store: md, Meta: md, Now: f.clock.now,
		Permissions: retention.ConfigPermissions{AllowGovernanceBypass: allowBypass},
		Audit:       func(_ context.Context, e retention.Event) { f.events = append(f.events, e) },
	}
	f.layer = digest.FromString("layer")
	f.child = digest.FromString("child")
	f.index = digest.FromString("index")
	if err := md.LinkBlob(f.ctx, "r", f.layer, 5); err != nil {
		t.Fatal(err)
	}
	for _, m := range []meta.Manifest{
		{Repo: "r", Digest: f.child, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Blobs: []digest.Digest{f.layer}, Created: f.clock.t},
		{Repo: "r", Digest: f.index, MediaType: "application/vnd.oci.image.index.v1+json", Size: 1, Manifests: []digest.Digest{f.child}, Created: f.clock.t},
	} {
		if err := md.PutManifest(f.ctx, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func locked(t *testing.T, err error, contains string) {
	t.Helper()
	if !errors.Is(err, retention.ErrLocked) || !errors.Is(err, veto.ErrDenied) || !strings.Contains(err.Error(), contains) {
		t.Fatalf("want a retention refusal containing %q, got %v", contains, err)
	}
}

func TestLockCoversReferences(t *testing.T) {
	f := newFixture(t, false)
	if _, err := f.checker.SetRetention(f.ctx, "r", f.index, retention.Compliance, f.clock.t.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	locked(t, f.checker.CheckDeleteManifest(f.ctx, "r", f.index), "compliance")
	locked(t, f.checker.CheckDeleteManifest(f.ctx, "r", f.child), "protected by r@"+f.index.String())
	locked(t, f.checker.CheckDeleteBlob(f.ctx, "r", f.layer), "compliance")
	guarded := retention.GuardBlobs(mustFS(t), f.checker)
	locked(t, guarded.Delete(f.ctx, f.layer), "compliance")
	// Another repository's link is not protected by r's lock.
	if err := f.checker.CheckDeleteBlob(f.ctx, "other", f.layer); err != nil {
		t.Fatal(err)
	}
	// After expiry (server clock), deletion is allowed.
	f.clock.t = f.clock.t.Add(time.Hour)
	if err := f.checker.CheckDeleteBlob(f.ctx, "r", f.layer); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := guarded.Delete(f.ctx, f.layer); err == nil || errors.Is(err, retention.ErrLocked) {
		t.Fatalf("after expiry the guard passes through (absent blob): %v", err)
	}
}

func mustFS(t *testing.T) *fs.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLegalHoldOutlivesRetention(t *testing.T) {
	f := newFixture(t, true)
	if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Governance, f.clock.t.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.checker.SetHold(f.ctx, "r", f.child, true); err != nil {
		t.Fatal(err)
	}
	bypass := retention.WithBypass(f.ctx, "audit request")
	locked(t, f.checker.CheckDeleteManifest(bypass, "r", f.child), "legal hold")
	f.clock.t = f.clock.t.Add(24 * time.Hour) // retention expired
	locked(t, f.checker.CheckDeleteManifest(bypass, "r", f.child), "legal hold")
	locked(t, f.checker.CheckDeleteBlob(f.ctx, "r", f.layer), "legal hold")
	l, err := f.md.GetLock(f.ctx, "r", f.child)
	if err != nil || !l.LegalHold || l.Mode != retention.Governance {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	if _, err := f.checker.SetHold(f.ctx, "r", f.child, false); err != nil {
		t.Fatal(err)
	}
	if err := f.checker.CheckDeleteManifest(f.ctx, "r", f.child); err != nil {
		t.Fatalf("after hold cleared and expiry: %v", err)
	}
}

func TestGovernanceBypass(t *testing.T) {
	for _, allow := range []bool{false, true} {
		f := newFixture(t, allow)
		until := f.clock.t.Add(time.Hour)
		if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Governance, until); err != nil {
			t.Fatal(err)
		}
		locked(t, f.checker.CheckDeleteManifest(f.ctx, "r", f.child), "X-Custody-Bypass-Governance")
		_, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Governance, until.Add(-time.Minute))
		locked(t, err, "shorten")
		bypass := retention.WithBypass(f.ctx, "JIRA-7")
		err = f.checker.CheckDeleteManifest(bypass, "r", f.child)
		_, serr := f.checker.SetRetention(bypass, "r", f.child, retention.Governance, until.Add(-time.Minute))
		if !allow {
			locked(t, err, "bypass permission")
			locked(t, serr, "bypass permission")
			continue
		}
		if err != nil || serr != nil {
			t.Fatalf("with bypass and permission: %v, %v", err, serr)
		}
		var audited bool
		for _, e := range f.events {
			audited = audited || (e.Action == "retention.bypass" && strings.Contains(e.Reason, "JIRA-7"))
		}
		if !audited {
			t.Fatalf("bypass not audited: %+v", f.events)
		}
		// Extending never needs a bypass; governance to compliance does.
		if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Governance, until.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, err = f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, until.Add(2*time.Hour))
		locked(t, err, "change the mode")
	}
}

func TestComplianceRules(t *testing.T) {
	f := newFixture(t, true)
	until := f.clock.t.Add(time.Hour)
	if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, until); err != nil {
		t.Fatal(err)
	}
	bypass := retention.WithBypass(f.ctx, "admin")
	_, err := f.checker.SetRetention(bypass, "r", f.child, retention.Compliance, until.Add(-time.Second))
	locked(t, err, "cannot shorten compliance")
	_, err = f.checker.SetRetention(bypass, "r", f.child, retention.Governance, until.Add(time.Hour))
	locked(t, err, "change the mode")
	l, _ := f.md.GetLock(f.ctx, "r", f.child)
	if !l.RetainUntil.Equal(until) || l.Mode != retention.Compliance {
		t.Fatalf("lock changed: %+v", l)
	}
	if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, until.Add(time.Hour)); err != nil {
		t.Fatalf("extend: %v", err)
	}
	if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, f.clock.t.Add(-time.Second)); !errors.Is(err, retention.ErrInvalid) {
		t.Fatalf("past date: %v", err)
	}
	// Expired: anything goes again.
	f.clock.t = f.clock.t.Add(3 * time.Hour)
	if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Governance, f.clock.t.Add(time.Minute)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestDefaultAppliesAtCreation(t *testing.T) {
	f := newFixture(t, false)
	f.checker.Defaults = func(string) *policy.DefaultRetention {
		return &policy.DefaultRetention{Mode: retention.Compliance, Period: policy.Duration(48 * time.Hour)}
	}
	created := f.clock.t.Add(-time.Hour)
	d := digest.FromString("new")
	if err := f.checker.CheckManifest(f.ctx, meta.Manifest{Repo: "r", Digest: d, Created: created}); err != nil {
		t.Fatal(err)
	}
	l, err := f.md.GetLock(f.ctx, "r", d)
	if err != nil || !l.RetainUntil.Equal(created.Add(48*time.Hour)) || l.Mode != retention.Compliance {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	// Existing manifests are not touched.
	if err := f.checker.CheckManifest(f.ctx, meta.Manifest{Repo: "r", Digest: f.child, Created: f.clock.t}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.md.GetLock(f.ctx, "r", f.child); !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("existing manifest got a lock: %v", err)
	}
}

// TestFarFutureRetention: a compliance lock until 2300 (beyond what int64
// nanoseconds hold) is stored, returned and audited as asked and refuses
// deletion; a date after meta.MaxTime is refused as invalid and nothing
// changes; returned and audited times are exactly the stored ones.
func TestFarFutureRetention(t *testing.T) {
	f := newFixture(t, true)
	y2300 := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, y2300)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.md.GetLock(f.ctx, "r", f.child)
	if err != nil || !stored.RetainUntil.Equal(y2300) || stored != l {
		t.Fatalf("stored lock = %+v, %v; returned %+v; want both until %s", stored, err, l, y2300)
	}
	if e := f.events[len(f.events)-1]; e.Action != "retention.set" || e.Reason != "compliance until 2300-01-01T00:00:00Z" {
		t.Fatalf("audit = %+v, want retention.set, compliance until 2300-01-01T00:00:00Z", e)
	}
	locked(t, f.checker.CheckDeleteManifest(f.ctx, "r", f.child), "compliance retention until 2300-01-01T00:00:00Z")

	events := len(f.events)
	for _, bad := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), meta.MaxTime.Add(time.Microsecond)} {
		if _, err := f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, bad); !errors.Is(err, retention.ErrInvalid) || !errors.Is(err, meta.ErrTimeRange) {
			t.Fatalf("SetRetention until %s: %v, want ErrInvalid and meta.ErrTimeRange", bad, err)
		}
	}
	if after, err := f.md.GetLock(f.ctx, "r", f.child); err != nil || after != stored || len(f.events) != events {
		t.Fatalf("after refusals lock = %+v, %v, %d new audit events; want %+v and none", after, err, len(f.events)-events, stored)
	}

	// The last instant stored is accepted, and sub-microsecond digits are
	// dropped in the store, the answer and the audit alike.
	end := meta.MaxTime.Add(999 * time.Nanosecond)
	l, err = f.checker.SetRetention(f.ctx, "r", f.child, retention.Compliance, end)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ = f.md.GetLock(f.ctx, "r", f.child)
	if stored != l || !l.RetainUntil.Equal(meta.MaxTime) {
		t.Fatalf("stored %+v, returned %+v; want both until %s", stored, l, meta.MaxTime)
	}
	if e := f.events[len(f.events)-1]; e.Reason != "compliance until 9999-12-31T23:59:59.999999Z" {
		t.Fatalf("audit reason = %q", e.Reason)
	}
}

// TestDefaultRetentionFarFuture: a default period of 2500000h (285 years,
// near the longest a duration holds) gives the right date, past 2262.
func TestDefaultRetentionFarFuture(t *testing.T) {
	f := newFixture(t, false)
	period := 2500000 * time.Hour
	f.checker.Defaults = func(string) *policy.DefaultRetention {
		return &policy.DefaultRetention{Mode: retention.Compliance, Period: policy.Duration(period)}
	}
	d := digest.FromString("new")
	if err := f.checker.CheckManifest(f.ctx, meta.Manifest{Repo: "r", Digest: d, Created: f.clock.t}); err != nil {
		t.Fatal(err)
	}
	want := f.clock.t.Add(period)
	if want.Year() != 2315 {
		t.Fatalf("test premise: %s", want)
	}
	l, err := f.md.GetLock(f.ctx, "r", d)
	if err != nil || !l.RetainUntil.Equal(want) {
		t.Fatalf("lock = %+v, %v; want until %s", l, err, want)
	}
	if e := f.events[len(f.events)-1]; e.Action != "retention.default" || e.Reason != "compliance until "+want.Format(time.RFC3339) {
		t.Fatalf("audit = %+v, want retention.default until %s", e, want.Format(time.RFC3339))
	}
}

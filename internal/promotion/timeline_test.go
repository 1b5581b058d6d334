package promotion_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/gate/spec"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/sign"
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

// TestRecordOfAnotherRepository: a promotion record copied, with the
// attestation image that holds it, from apps/web to apps/api, which
// holds the same digest, proves nothing about apps/api: its gate does
// not see the digest as promoted to dev (promoted_to_previous fails),
// and its point-in-time answer is nothing, while apps/web's is the
// record.
func TestRecordOfAnotherRepository(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := f.signed(t, windowStart.Add(time.Hour))
	now := windowStart.Add(24 * time.Hour)
	f.svc.Now = func() time.Time { return now }
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	other, err := name.NewDigest(f.host+"/apps/api@"+d.DigestStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(other, img); err != nil {
		t.Fatal(err)
	}
	evidencetest.MoveAttestations(t, d, other)

	facts, err := f.svc.Gather(ctx, "apps/api", d.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	if len(facts.Evidence.Promotions) != 1 {
		t.Fatalf("the copied record was not read at all: %+v", facts.Evidence.Promotions)
	}
	if len(facts.Promotions) != 0 || len(facts.Input.Promotions) != 0 {
		t.Fatalf("apps/web's record counts for apps/api: %+v %+v", facts.Promotions, facts.Input.Promotions)
	}
	g, err := gate.Compile(spec.Gate{Rules: []spec.Rule{{Use: gate.RulePromotedToPrevious}}})
	if err != nil {
		t.Fatal(err)
	}
	facts.Input.Environment = gate.Environment{Name: "prod", Previous: "dev"}
	if res := g.Evaluate(ctx, facts.Input); res.Pass {
		t.Fatalf("apps/api skips dev with apps/web's record: %+v", res)
	}
	web, err := f.svc.Gather(ctx, "apps/web", d.DigestStr())
	if err != nil || len(web.Input.Promotions) != 1 {
		t.Fatalf("apps/web's own record: %v %+v", err, web.Input.Promotions)
	}
	if dep, err := f.svc.At(ctx, "apps/web", "dev", now); err != nil || dep.Digest != d.DigestStr() {
		t.Fatalf("apps/web at %s: %v %+v", now, err, dep)
	}
}

// TestApprovalOfAnotherRepository: rel1's approval of the digest for
// apps/web's prod, copied with its attestation image to apps/api (same
// digest), is not an approval for apps/api's prod: rel2 approving there
// leaves the promotion pending, and prod of apps/api does not move.
func TestApprovalOfAnotherRepository(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := f.signed(t, windowStart.Add(time.Hour))
	out, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "prod"}, "rel1")
	if err != nil || !out.Pending {
		t.Fatalf("first approval: %v %+v", err, out)
	}
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	other, err := name.NewDigest(f.host+"/apps/api@"+d.DigestStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(other, img); err != nil {
		t.Fatal(err)
	}
	evidencetest.MoveAttestations(t, d, other)
	// The CI signature is about the digest: copying it is fair.
	sig, err := remote.Image(sign.TagFor(d, sign.SignatureSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sign.TagFor(other, sign.SignatureSuffix), sig); err != nil {
		t.Fatal(err)
	}
	out, err = f.svc.Promote(ctx, promotion.Request{Repository: "apps/api", Digest: d.DigestStr(), Environment: "prod"}, "rel2")
	if err != nil || out.Promoted || !out.Pending || len(out.Approvers) != 1 || out.Approvers[0] != "rel2" {
		t.Fatalf("apps/web's approval counted for apps/api: %v %+v", err, out)
	}
	if cur, _ := f.svc.Current(ctx, "apps/api", "prod"); cur != "" {
		t.Fatalf("prod of apps/api moved to %s", cur)
	}
	// In apps/web, rel1's approval counts: rel2 completes it.
	out, err = f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "prod"}, "rel2")
	if err != nil || !out.Promoted {
		t.Fatalf("apps/web: %v %+v", err, out)
	}
}

// TestAtEqualTimes: records with the same instant (a clock that did not
// tick) are ordered by their chain: a -> dev, then b, then a rollback to
// a, all at t; at t dev ran a, by the rollback.
func TestAtEqualTimes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	at := windowStart.Add(24 * time.Hour)
	f.svc.Now = func() time.Time { return at }
	a, b := f.signed(t, windowStart.Add(time.Hour)), f.signed(t, windowStart.Add(time.Hour))
	for _, d := range []name.Digest{a, b} {
		if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel"); err != nil {
			t.Fatal(err)
		}
	}
	dep, err := f.svc.At(ctx, "apps/web", "dev", at)
	if err != nil || dep.Digest != b.DigestStr() {
		t.Fatalf("after a then b: %v %+v", err, dep)
	}
	if _, err := f.svc.Rollback(ctx, "apps/web", "dev", []string{a.DigestStr(), b.DigestStr()}, "rel", "error rate"); err != nil {
		t.Fatal(err)
	}
	dep, err = f.svc.At(ctx, "apps/web", "dev", at)
	if err != nil || dep.Digest != a.DigestStr() || dep.Record == nil || !dep.Record.Rollback {
		t.Fatalf("after the rollback to a, at the same instant: %v %+v", err, dep)
	}
	if cur := f.current(t, "dev"); cur != a.DigestStr() {
		t.Fatalf("dev runs %s", cur)
	}
}

// attReads counts the requests for cosign attestation tags: one per
// digest whose evidence is read.
type attReads struct {
	mu sync.Mutex
	n  int
}

func (c *attReads) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".att") {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *attReads) reset() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// TestAtReadsFewDigests: what dev runs now, after ten promotions an hour
// apart, is answered from the evidence of the last digest or so, not of
// all ten; an instant in the past reads back only as far as it needs,
// and every answer is the one the whole record set gives.
func TestAtReadsFewDigests(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reads := &attReads{}
	f.svc.Remote = []remote.Option{remote.WithTransport(reads)}
	// The service's clock runs ahead of the tag moves' real times, in
	// the same order: promotions an hour apart.
	base := time.Now().UTC().Add(time.Hour)
	var now time.Time
	f.svc.Now = func() time.Time { return now }
	var digests []string
	var times []time.Time
	for i := range 10 {
		d := f.signed(t, windowStart.Add(time.Hour))
		now = base.Add(time.Duration(i) * time.Hour)
		if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel"); err != nil {
			t.Fatal(err)
		}
		digests, times = append(digests, d.DigestStr()), append(times, now)
	}
	reads.reset()
	dep, err := f.svc.At(ctx, "apps/web", "dev", now.Add(time.Minute))
	if err != nil || dep.Digest != digests[9] {
		t.Fatalf("now: %v %+v", err, dep)
	}
	if n := reads.reset(); n > 4 {
		t.Fatalf("what runs now read the evidence of %d digests", n)
	}
	for i, at := range times {
		dep, err := f.svc.At(ctx, "apps/web", "dev", at.Add(30*time.Minute))
		if err != nil || dep.Digest != digests[i] || !dep.Since.Equal(at) {
			t.Fatalf("at %s: %v %+v, want %s", at, err, dep, digests[i])
		}
	}
	if dep, err := f.svc.At(ctx, "apps/web", "dev", base.Add(-time.Second)); err != nil || dep.Digest != "" {
		t.Fatalf("before the first promotion: %v %+v", err, dep)
	}
}

// clockedTags is the fixture's tag history with the moves stamped by the
// service's clock (a second after each record), as one server stamps
// both in production.
type clockedTags struct {
	promotion.TagHistories
	moves []time.Time
}

func (c *clockedTags) TagHistory(ctx context.Context, repo, tag string) ([]builds.TagEvent, error) {
	hist, err := c.TagHistories.TagHistory(ctx, repo, tag)
	if err != nil || len(hist) != len(c.moves) {
		return hist, err
	}
	for i := range hist {
		hist[i].At = c.moves[i]
	}
	return hist, nil
}

// TestAtWithReturningDigests: with the tag's moves and the records on
// one clock, promotions hours apart and digests that come back (a
// rollback, a promotion of an older digest), every instant is answered
// as from the whole record set, reading no more than it needs.
func TestAtWithReturningDigests(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reads := &attReads{}
	f.svc.Remote = []remote.Option{remote.WithTransport(reads)}
	tags := &clockedTags{TagHistories: f.svc.Tags}
	f.svc.Tags = tags
	var now time.Time
	f.svc.Now = func() time.Time { return now }
	at := func(i int) time.Time { return windowStart.Add(time.Duration(i) * 3 * time.Hour) }
	a, b, c := f.signed(t, windowStart), f.signed(t, windowStart), f.signed(t, windowStart)
	promote := func(i int, d name.Digest) {
		t.Helper()
		now = at(i)
		if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel"); err != nil {
			t.Fatal(err)
		}
		tags.moves = append(tags.moves, now.Add(time.Second))
	}
	promote(1, a)
	promote(2, b)
	promote(3, c)
	now = at(4)
	if _, err := f.svc.Rollback(ctx, "apps/web", "dev", []string{a.DigestStr(), b.DigestStr(), c.DigestStr()}, "rel", "error rate"); err != nil {
		t.Fatal(err)
	}
	tags.moves = append(tags.moves, now.Add(time.Second)) // back to b
	promote(5, a)
	want := []name.Digest{1: a, 2: b, 3: c, 4: b, 5: a}
	for i := 1; i <= 5; i++ {
		for _, when := range []time.Time{at(i), at(i).Add(time.Hour)} {
			dep, err := f.svc.At(ctx, "apps/web", "dev", when)
			if err != nil || dep.Digest != want[i].DigestStr() || !dep.Since.Equal(at(i)) || dep.Record.Rollback != (i == 4) {
				t.Fatalf("at %s: %v %+v, want %s since %s", when, err, dep, want[i].DigestStr(), at(i))
			}
		}
	}
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at(1).Add(-time.Nanosecond)); err != nil || dep.Digest != "" {
		t.Fatalf("before the first promotion: %v %+v", err, dep)
	}
	reads.reset()
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at(6)); err != nil || dep.Digest != a.DigestStr() {
		t.Fatalf("now: %v %+v", err, dep)
	}
	if n := reads.reset(); n != 3 {
		// a, b and c come back within one batch of four: all three are
		// read, and no more.
		t.Fatalf("read %d digests' evidence", n)
	}
}

// blobReads counts the blobs read from the registry (attestation layers
// and bundles among them).
type blobReads struct {
	mu sync.Mutex
	n  int
}

func (c *blobReads) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *blobReads) reset() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// TestAtRemembersVerdictsUnderOneTrust: a service with Verdicts reads and
// verifies a promotion record once; the next answer only lists the
// digest's attestations (a new record still counts), and once the
// recording key is revoked the remembered verdict is not reused: the
// record stops counting on the very next answer. Answers given
// concurrently, with a cache too small to hold them all, agree.
func TestAtRemembersVerdictsUnderOneTrust(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reads := &blobReads{}
	f.svc.Remote = []remote.Option{remote.WithTransport(reads)}
	f.svc.Verdicts = evidence.NewVerdicts(64)
	base := time.Now().UTC().Add(time.Hour)
	var now time.Time
	f.svc.Now = func() time.Time { return now }
	a, b := f.signed(t, windowStart.Add(time.Hour)), f.signed(t, windowStart.Add(time.Hour))
	now = base
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: a.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Hour)
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != a.DigestStr() {
		t.Fatalf("first answer: %v %+v", err, dep)
	}
	if f.svc.Verdicts.Len() == 0 {
		t.Fatal("no verdict remembered")
	}
	reads.reset()
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != a.DigestStr() || dep.Record == nil || dep.Record.By != "rel" {
		t.Fatalf("second answer: %v %+v", err, dep)
	}
	if n := reads.reset(); n != 0 {
		t.Fatalf("the second answer read %d blobs; the records were known", n)
	}

	// A record made since is listed, read and counted.
	now = base.Add(time.Minute)
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: b.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != b.DigestStr() {
		t.Fatalf("after a new promotion: %v %+v", err, dep)
	}

	// Concurrent answers, a cache of one verdict: each is the same.
	f.svc.Verdicts = evidence.NewVerdicts(1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			dep, err := f.svc.At(ctx, "apps/web", "dev", at)
			if err == nil && dep.Digest != b.DigestStr() {
				err = errors.New("concurrent answer " + dep.Digest)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The server key is revoked: the trust root no longer holds it, and
	// records it signed count for nothing, remembered or not.
	f.svc.Verdicts = evidence.NewVerdicts(64)
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != b.DigestStr() {
		t.Fatalf("before the revocation: %v %+v", err, dep)
	}
	before := f.svc.Trust.Fingerprint()
	revoked, err := evidence.NewTrust(evidencetest.Root(f.ci))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := revoked.ExplainRevoked([]key.TrustedKey{f.server.Trusted}); err != nil {
		t.Fatal(err)
	}
	f.svc.Trust = revoked.RecordsOnlyBy(f.server.ID())
	if f.svc.Trust.Fingerprint() == before {
		t.Fatal("the revocation left the trust's fingerprint unchanged")
	}
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != "" || dep.Record != nil {
		t.Fatalf("after the revocation: %v %+v", err, dep)
	}
	remembered := f.svc.Verdicts.Len()
	if dep, err := f.svc.At(ctx, "apps/web", "dev", at); err != nil || dep.Digest != "" {
		t.Fatalf("after the revocation, again: %v %+v", err, dep)
	}
	if f.svc.Verdicts.Len() != remembered {
		t.Fatalf("verdicts under the new trust were not reused: %d -> %d", remembered, f.svc.Verdicts.Len())
	}
}

// TestAtSharesReadingsAcrossEnvironments: under ShareReadings, the
// answers for dev and prod read a digest both hold once between them,
// and each answer is still its own environment's record; without it,
// each answer reads the digest again.
func TestAtSharesReadingsAcrossEnvironments(t *testing.T) {
	f := newFixture(t)
	f.svc.Projects[0].Environments[1].Approvals = 0
	reads := &attReads{}
	f.svc.Remote = []remote.Option{remote.WithTransport(reads)}
	base := time.Now().UTC().Add(time.Hour)
	var now time.Time
	f.svc.Now = func() time.Time { return now }
	a := f.signed(t, windowStart.Add(time.Hour))
	for i, env := range []string{"dev", "prod"} {
		now = base.Add(time.Duration(i) * time.Second)
		if _, err := f.svc.Promote(context.Background(), promotion.Request{Repository: "apps/web", Digest: a.DigestStr(), Environment: env}, "rel"); err != nil {
			t.Fatal(err)
		}
	}
	at := base.Add(time.Minute)
	answer := func(ctx context.Context) int {
		t.Helper()
		reads.reset()
		for i, env := range []string{"dev", "prod"} {
			dep, err := f.svc.At(ctx, "apps/web", env, at)
			if err != nil || dep.Digest != a.DigestStr() || dep.Record == nil || dep.Record.Environment != env || !dep.Since.Equal(base.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("%s: %v %+v", env, err, dep)
			}
		}
		return reads.reset()
	}
	if n := answer(promotion.ShareReadings(context.Background())); n != 1 {
		t.Fatalf("sharing readings, dev and prod read the digest's attestations %d times", n)
	}
	if n := answer(context.Background()); n != 2 {
		t.Fatalf("without sharing, dev and prod read the digest's attestations %d times", n)
	}
}

package metatest

import (
	"errors"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/retention"
)

// Stored instants: a store keeps every instant from meta.MinTime to
// meta.MaxTime exactly as meta.Instant returns it (UTC, to the
// microsecond), and refuses any other with an error wrapping
// meta.ErrTimeRange, storing nothing. Instants used to be nanoseconds in
// an int64, which wrapped a retention date of 2300 around to 1715.

// keep returns tm as a store keeps it (meta.Instant); the zero time stays
// the zero time, and an instant out of range is returned unchanged (a
// comparison with what a store returns then fails).
func keep(tm time.Time) time.Time {
	if tm.IsZero() {
		return tm
	}
	i, err := meta.Instant(tm)
	if err != nil {
		return tm
	}
	return i
}

var (
	// y2300 lies beyond the last instant int64 nanoseconds can hold
	// (2262-04-11).
	y2300 = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	// y10000 lies beyond meta.MaxTime.
	y10000 = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	// y0 lies before meta.MinTime.
	y0 = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)
)

func wantTimeRange(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, meta.ErrTimeRange) {
		t.Fatalf("%s: %v, want an error wrapping meta.ErrTimeRange", call, err)
	}
}

func testFarFutureInstants(t *testing.T, s meta.Store) {
	ctx := t.Context()
	for i, at := range []time.Time{y2300, meta.MaxTime, time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC)} {
		m := image("r", string(rune('a'+i)))
		m.Created = at
		put(t, s, m, "t")
		got, err := s.GetManifest(ctx, "r", m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Created.Equal(keep(at)) {
			t.Fatalf("manifest created %s reads back as %s", keep(at), got.Created)
		}
	}

	far := meta.Upload{ID: "far", Repo: "r", Created: y2300, Updated: meta.MaxTime}
	old := meta.Upload{ID: "old", Repo: "r", Created: y2300.Add(-time.Hour), Updated: y2300.Add(-time.Hour)}
	for _, u := range []meta.Upload{far, old} {
		if err := s.CreateUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetUpload(ctx, "far")
	if err != nil {
		t.Fatal(err)
	}
	sameUpload(t, "GetUpload of a far-future upload", got, far)
	stale, err := s.StaleUploads(ctx, y2300)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0].ID != "old" {
		t.Fatalf("StaleUploads(2300) = %+v, want only the upload updated before 2300", stale)
	}
	if stale, err := s.StaleUploads(ctx, time.Now()); err != nil || len(stale) != 0 {
		t.Fatalf("StaleUploads(now) = %+v, %v; want none (all are updated in the future)", stale, err)
	}

	// Out of range: refused, nothing stored.
	for _, at := range []time.Time{y10000, y0} {
		m := image("out", "m")
		m.Created = at
		wantTimeRange(t, "PutManifest created "+at.String(), s.PutManifest(ctx, m, []string{"t"}, nil))
		wantNoManifest(t, s, "out", m.Digest)
		wantTimeRange(t, "CreateUpload created "+at.String(), s.CreateUpload(ctx, meta.Upload{ID: "out", Repo: "out", Created: at}))
		_, err := s.GetUpload(ctx, "out")
		wantNotFound(t, err, "GetUpload of a refused upload")
		_, err = s.StaleUploads(ctx, at)
		wantTimeRange(t, "StaleUploads before "+at.String(), err)
	}
}

// testFarFutureLock: a compliance lock until 2300 (and until the last
// instant stored) reads back as set and keeps protecting the artifact.
func testFarFutureLock(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	ctx := t.Context()
	now := time.Now()
	m := image("team/app", "m")
	put(t, s, m, "v1")
	l := retention.Lock{Repo: "team/app", Digest: m.Digest, Mode: "compliance", RetainUntil: y2300, Updated: now}
	setLock(t, s, l)
	got, err := s.GetLock(ctx, "team/app", m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	sameLock(t, "GetLock of a lock until 2300", got, l)
	if !got.Retained(now) {
		t.Fatalf("lock until 2300 = %+v is not running now", got)
	}
	locks, err := s.Protecting(ctx, m.Blobs[0], "")
	if err != nil || len(locks) != 1 {
		t.Fatalf("Protecting(blob of the locked manifest) = %+v, %v; want the lock", locks, err)
	}
	sameLock(t, "Protecting", locks[0], l)
	if !locks[0].Retained(now) {
		t.Fatalf("Protecting returns %+v, not running now", locks[0])
	}

	// Extended to the last instant stored, with a legal hold updated in
	// 2300: every field reads back.
	l = retention.Lock{Repo: "team/app", Digest: m.Digest, Mode: "compliance", RetainUntil: meta.MaxTime, LegalHold: true, Updated: y2300}
	setLock(t, s, l)
	ls, err := s.ListLocks(ctx, "team/app")
	if err != nil || len(ls) != 1 {
		t.Fatalf("ListLocks = %+v, %v", ls, err)
	}
	sameLock(t, "ListLocks of a lock until the end of year 9999", ls[0], l)
}

// testLockTimeOutOfRange: a lock with a time a store cannot keep is
// refused and the lock stays as it was.
func testLockTimeOutOfRange(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	ctx := t.Context()
	now := time.Now()
	m := image("team/app", "m")
	put(t, s, m)
	l := retention.Lock{Repo: "team/app", Digest: m.Digest, Mode: "governance", RetainUntil: y2300, Updated: now}
	setLock(t, s, l)
	for _, bad := range []retention.Lock{
		{Repo: "team/app", Digest: m.Digest, Mode: "compliance", RetainUntil: y10000, Updated: now},
		{Repo: "team/app", Digest: m.Digest, Mode: "compliance", RetainUntil: y0, Updated: now},
		{Repo: "team/app", Digest: m.Digest, Mode: "compliance", RetainUntil: y2300, Updated: y10000},
	} {
		err := s.SetLock(ctx, bad.Repo, bad.Digest, func(*retention.Lock) (retention.Lock, error) { return bad, nil })
		wantTimeRange(t, "SetLock "+bad.RetainUntil.String()+" updated "+bad.Updated.String(), err)
		got, err := s.GetLock(ctx, "team/app", m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		sameLock(t, "GetLock after a refused SetLock", got, l)
	}
}

// testAccountsFarFuture: token and user times beyond 2262 read back as
// stored; times out of range are refused and change nothing.
func testAccountsFarFuture(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	now := time.Now()
	u := account.User{Name: "alice", Groups: []string{}, Created: y2300}
	if err := s.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t1 := account.Token{ID: "t1", Hash: "11", Owner: "alice", Name: "far", Created: now, Expires: y2300}
	t2 := account.Token{ID: "t2", Hash: "22", Owner: "alice", Name: "end", Created: y2300, Expires: meta.MaxTime}
	for _, tok := range []account.Token{t1, t2} {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken(%s): %v", tok.ID, err)
		}
	}
	if err := s.RevokeToken(ctx, "t2", y2300.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	t2.Revoked = y2300.Add(time.Hour)
	st := authState(t, s)
	if len(st.Users) != 1 || !sameUser(st.Users[0], u) {
		t.Fatalf("users = %+v, want %+v", st.Users, u)
	}
	if len(st.Tokens) != 2 || !sameToken(st.Tokens[0], t1) || !sameToken(st.Tokens[1], t2) {
		t.Fatalf("tokens =\n%+v\nwant\n%+v", st.Tokens, []account.Token{t1, t2})
	}

	gen := st.Generation
	for _, bad := range []account.Token{
		{ID: "t3", Hash: "33", Owner: "alice", Created: now, Expires: y10000},
		{ID: "t3", Hash: "33", Owner: "alice", Created: y0, Expires: now},
	} {
		wantTimeRange(t, "PutToken expiring "+bad.Expires.String(), s.PutToken(ctx, bad))
	}
	wantTimeRange(t, "PutUser created in year 10000", s.PutUser(ctx, account.User{Name: "bob", Created: y10000}))
	wantTimeRange(t, "RevokeToken in year 10000", s.RevokeToken(ctx, "t1", y10000))
	after := authState(t, s)
	if after.Generation != gen || len(after.Users) != 1 || len(after.Tokens) != 2 || !after.Tokens[0].Revoked.IsZero() {
		t.Fatalf("after refused writes, state = %+v; want it unchanged (generation %d)", after, gen)
	}
}

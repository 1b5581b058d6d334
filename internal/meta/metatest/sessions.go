package metatest

import (
	"reflect"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
)

// sameSession compares sessions, times by instant (b's as the store
// keeps them, see keep).
func sameSession(a, b account.Session) bool {
	return a.Hash == b.Hash && a.Subject == b.Subject && a.Method == b.Method && reflect.DeepEqual(a.Groups, b.Groups) &&
		reflect.DeepEqual(a.Scopes, b.Scopes) && a.CSRF == b.CSRF && a.Created.Equal(keep(b.Created)) && a.LastSeen.Equal(keep(b.LastSeen)) &&
		a.Factor == b.Factor && (a.FactorAt.IsZero() && b.FactorAt.IsZero() || a.FactorAt.Equal(keep(b.FactorAt)))
}

func getSession(t *testing.T, s account.Store, hash string) account.Session {
	t.Helper()
	se, err := s.GetSession(t.Context(), hash)
	if err != nil {
		t.Fatalf("GetSession(%s): %v", hash, err)
	}
	return se
}

// testSessions: a session is stored once, read back whole, touched
// forward only, deleted once; none of it changes the generation.
func testSessions(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 987654321, time.UTC)
	gen := authGen(t, s)
	local := account.Session{Hash: "aa11", Subject: "alice", Method: "password", CSRF: "c1", Created: t0, LastSeen: t0, Factor: "totp", FactorAt: t0}
	oidc := account.Session{Hash: "bb22", Subject: "gh:octocat", Method: "oidc", Groups: []string{"dev", "ops"}, CSRF: "c2",
		Scopes:  []account.Scope{{Role: account.RoleReader, Repositories: []string{"team/**"}}},
		Created: t0.Add(time.Minute), LastSeen: t0.Add(2 * time.Minute)}
	for _, se := range []account.Session{local, oidc} {
		if err := s.PutSession(ctx, se); err != nil {
			t.Fatalf("PutSession(%s): %v", se.Hash, err)
		}
	}
	for _, se := range []account.Session{local, oidc} {
		if got := getSession(t, s, se.Hash); !sameSession(got, se) {
			t.Fatalf("GetSession(%s) =\n%+v\nwant\n%+v", se.Hash, got, se)
		}
	}
	_, err := s.GetSession(ctx, "nope")
	wantAccountNotFound(t, "GetSession of an unknown session", err)

	// A hash is stored once: the first session stays.
	dup := account.Session{Hash: "aa11", Subject: "mallory", Method: "password", CSRF: "x", Created: t0, LastSeen: t0}
	if err := s.PutSession(ctx, dup); err == nil {
		t.Fatal("PutSession with the hash of a stored session succeeded")
	}
	if got := getSession(t, s, "aa11"); !sameSession(got, local) {
		t.Fatalf("a refused PutSession changed the session: %+v", got)
	}

	// LastSeen moves forward only.
	later := t0.Add(10 * time.Minute)
	if err := s.TouchSession(ctx, "aa11", later); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	if err := s.TouchSession(ctx, "aa11", t0.Add(time.Minute)); err != nil {
		t.Fatalf("TouchSession with an earlier time: %v", err)
	}
	touched := local
	touched.LastSeen = later
	if got := getSession(t, s, "aa11"); !sameSession(got, touched) {
		t.Fatalf("after TouchSession, session = %+v; want last seen %v (the latest)", got, later)
	}
	wantAccountNotFound(t, "TouchSession of an unknown session", s.TouchSession(ctx, "nope", later))

	if err := s.DeleteSession(ctx, "aa11"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	_, err = s.GetSession(ctx, "aa11")
	wantAccountNotFound(t, "GetSession of a deleted session", err)
	wantAccountNotFound(t, "DeleteSession of a deleted session", s.DeleteSession(ctx, "aa11"))
	if got := getSession(t, s, "bb22"); !sameSession(got, oidc) {
		t.Fatalf("DeleteSession of another session changed %+v", got)
	}
	if g := authGen(t, s); g != gen {
		t.Fatalf("writing sessions changed the generation from %d to %d; sessions are no part of the state", gen, g)
	}
}

// testSessionsPurge: sessions idle since before idleBefore, or created
// before createdBefore, go; the others stay.
func testSessionsPurge(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(hash string, created, seen time.Time) account.Session {
		return account.Session{Hash: hash, Subject: "u", Method: "password", CSRF: "c", Created: created, LastSeen: seen}
	}
	sessions := []account.Session{
		mk("fresh", t0.Add(-time.Hour), t0.Add(-time.Minute)),
		mk("idle", t0.Add(-time.Hour), t0.Add(-31*time.Minute)),
		mk("old", t0.Add(-13*time.Hour), t0.Add(-time.Second)),
		mk("edge", t0.Add(-12*time.Hour), t0.Add(-30*time.Minute)), // exactly at both limits: stays
	}
	for _, se := range sessions {
		if err := s.PutSession(ctx, se); err != nil {
			t.Fatalf("PutSession(%s): %v", se.Hash, err)
		}
	}
	n, err := s.PurgeSessions(ctx, t0.Add(-30*time.Minute), t0.Add(-12*time.Hour))
	if err != nil {
		t.Fatalf("PurgeSessions: %v", err)
	}
	if n != 2 {
		t.Fatalf("PurgeSessions removed %d sessions, want 2 (idle, old)", n)
	}
	for _, h := range []string{"idle", "old"} {
		_, err := s.GetSession(ctx, h)
		wantAccountNotFound(t, "GetSession of purged session "+h, err)
	}
	for _, h := range []string{"fresh", "edge"} {
		getSession(t, s, h)
	}
	if n, err := s.PurgeSessions(ctx, t0.Add(-30*time.Minute), t0.Add(-12*time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeSessions again = %d, %v; want 0", n, err)
	}
}

// testSessionsReplicas: a session signed in on one replica is known,
// touched and ended on the other.
func testSessionsReplicas(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	se := account.Session{Hash: "cc33", Subject: "bob", Method: "password", CSRF: "c", Created: t0, LastSeen: t0}
	if err := ss[0].PutSession(ctx, se); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	if got := getSession(t, ss[1], "cc33"); !sameSession(got, se) {
		t.Fatalf("the other replica reads %+v, want %+v", got, se)
	}
	if err := ss[1].TouchSession(ctx, "cc33", t0.Add(time.Minute)); err != nil {
		t.Fatalf("TouchSession on the other replica: %v", err)
	}
	if got := getSession(t, ss[0], "cc33"); !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after a touch on the other replica, last seen = %v", got.LastSeen)
	}
	if err := ss[1].DeleteSession(ctx, "cc33"); err != nil {
		t.Fatalf("DeleteSession on the other replica: %v", err)
	}
	_, err := ss[0].GetSession(ctx, "cc33")
	wantAccountNotFound(t, "GetSession after sign-out on the other replica", err)
}

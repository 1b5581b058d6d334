package metatest

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
)

// sameChallenge compares challenges, times by instant (b's as the store
// keeps them, see keep).
func sameChallenge(a, b account.Challenge) bool {
	return a.Kind == b.Kind && a.Key == b.Key && a.User == b.User && bytes.Equal(a.Data, b.Data) && a.Expires.Equal(keep(b.Expires))
}

// testChallenges: a challenge is read by its kind, key and user only,
// replaced by a put of the same kind and key, taken once, refused once
// expired (taking an expired one removes it), and none of it changes the
// generation.
func testChallenges(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 987654321, time.UTC)
	gen := authGen(t, s)
	reg := account.Challenge{Kind: "webauthn.register", Key: "c1", User: "alice", Data: []byte(`{"challenge":"x"}`), Expires: t0.Add(5 * time.Minute)}
	login := account.Challenge{Kind: "webauthn.login", Key: "c1", User: "alice", Data: []byte{0, 1, 2}, Expires: t0.Add(5 * time.Minute)}
	for _, c := range []account.Challenge{reg, login} {
		if err := s.PutChallenge(ctx, c); err != nil {
			t.Fatalf("PutChallenge(%s/%s): %v", c.Kind, c.Key, err)
		}
	}
	for _, c := range []account.Challenge{reg, login} {
		got, err := s.GetChallenge(ctx, c.Kind, c.Key, c.User, t0)
		if err != nil || !sameChallenge(got, c) {
			t.Fatalf("GetChallenge(%s/%s) = %+v, %v; want %+v", c.Kind, c.Key, got, err, c)
		}
	}
	// Another user's challenge is not found, and stays.
	_, err := s.GetChallenge(ctx, reg.Kind, reg.Key, "mallory", t0)
	wantAccountNotFound(t, "GetChallenge as another user", err)
	_, err = s.TakeChallenge(ctx, reg.Kind, reg.Key, "mallory", t0)
	wantAccountNotFound(t, "TakeChallenge as another user", err)
	_, err = s.GetChallenge(ctx, "webauthn.register", "nope", "alice", t0)
	wantAccountNotFound(t, "GetChallenge of an unknown challenge", err)

	// Up to its expiry it counts; after, it is not found.
	if _, err := s.GetChallenge(ctx, reg.Kind, reg.Key, reg.User, reg.Expires); err != nil {
		t.Fatalf("GetChallenge at its expiry: %v", err)
	}
	_, err = s.GetChallenge(ctx, reg.Kind, reg.Key, reg.User, reg.Expires.Add(time.Second))
	wantAccountNotFound(t, "GetChallenge after its expiry", err)

	// A put of the same kind and key replaces it (starting again).
	again := reg
	again.Data, again.Expires = []byte("second"), t0.Add(10*time.Minute)
	if err := s.PutChallenge(ctx, again); err != nil {
		t.Fatalf("PutChallenge again: %v", err)
	}
	got, err := s.TakeChallenge(ctx, reg.Kind, reg.Key, reg.User, t0)
	if err != nil || !sameChallenge(got, again) {
		t.Fatalf("TakeChallenge = %+v, %v; want the replacement %+v", got, err, again)
	}
	// Taken once: gone for Get and Take; the other kind stays.
	_, err = s.TakeChallenge(ctx, reg.Kind, reg.Key, reg.User, t0)
	wantAccountNotFound(t, "TakeChallenge of a taken challenge", err)
	_, err = s.GetChallenge(ctx, reg.Kind, reg.Key, reg.User, t0)
	wantAccountNotFound(t, "GetChallenge of a taken challenge", err)
	if got, err := s.GetChallenge(ctx, login.Kind, login.Key, login.User, t0); err != nil || !sameChallenge(got, login) {
		t.Fatalf("taking one kind changed another: %+v, %v", got, err)
	}

	// An expired challenge is refused by Take, and removed.
	_, err = s.TakeChallenge(ctx, login.Kind, login.Key, login.User, login.Expires.Add(time.Microsecond))
	wantAccountNotFound(t, "TakeChallenge after its expiry", err)
	_, err = s.TakeChallenge(ctx, login.Kind, login.Key, login.User, t0)
	wantAccountNotFound(t, "TakeChallenge of a challenge an expired take removed", err)

	if g := authGen(t, s); g != gen {
		t.Fatalf("writing challenges changed the generation from %d to %d; they are no part of the state", gen, g)
	}
}

// testChallengesPurge: challenges that expired before the time go; the
// others (one expiring exactly then included) stay.
func testChallengesPurge(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for key, exp := range map[string]time.Time{"gone": t0.Add(-time.Second), "edge": t0, "fresh": t0.Add(time.Minute)} {
		if err := s.PutChallenge(ctx, account.Challenge{Kind: "k", Key: key, User: "u", Expires: exp}); err != nil {
			t.Fatalf("PutChallenge(%s): %v", key, err)
		}
	}
	if n, err := s.PurgeChallenges(ctx, t0); err != nil || n != 1 {
		t.Fatalf("PurgeChallenges = %d, %v; want 1 (gone)", n, err)
	}
	_, err := s.GetChallenge(ctx, "k", "gone", "u", t0.Add(-time.Hour))
	wantAccountNotFound(t, "GetChallenge of a purged challenge", err)
	for _, key := range []string{"edge", "fresh"} {
		if _, err := s.GetChallenge(ctx, "k", key, "u", t0); err != nil {
			t.Fatalf("PurgeChallenges removed %s: %v", key, err)
		}
	}
	if n, err := s.PurgeChallenges(ctx, t0); err != nil || n != 0 {
		t.Fatalf("PurgeChallenges again = %d, %v; want 0", n, err)
	}
}

// testChallengesConcurrentTake: a challenge started on one replica is
// read on the other, and of many takes at once through both replicas
// exactly one gets it (a ceremony answered twice counts once).
func testChallengesConcurrentTake(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const rounds, takers = 20, 8
	for r := range rounds {
		c := account.Challenge{Kind: "webauthn.login", Key: fmt.Sprintf("c%d", r), User: "bob", Data: []byte("session"), Expires: t0.Add(time.Minute)}
		if err := ss[0].PutChallenge(ctx, c); err != nil {
			t.Fatalf("PutChallenge: %v", err)
		}
		if got, err := ss[1].GetChallenge(ctx, c.Kind, c.Key, c.User, t0); err != nil || !sameChallenge(got, c) {
			t.Fatalf("the other replica reads %+v, %v; want %+v", got, err, c)
		}
		var won atomic.Int32
		errs := make(chan error, takers)
		concurrently(takers, func(i int) {
			got, err := ss[i%2].TakeChallenge(ctx, c.Kind, c.Key, c.User, t0)
			switch {
			case err == nil:
				won.Add(1)
				if !sameChallenge(got, c) {
					errs <- fmt.Errorf("TakeChallenge = %+v, want %+v", got, c)
				}
			case !errors.Is(err, account.ErrNotFound):
				errs <- fmt.Errorf("TakeChallenge: %v, want ErrNotFound for a taken challenge", err)
			}
		})
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d concurrent takes got the challenge, want exactly 1", r, n, takers)
		}
	}
}

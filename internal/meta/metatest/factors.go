package metatest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
)

// testFactors: a user's factors are stored, read back whole, replaced
// (keeping the claimed TOTP step), deleted; a TOTP step is claimed once
// and never an earlier one; a recovery code is used once; none of it
// changes the generation.
func testFactors(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	gen := authGen(t, s)
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)
	if _, err := s.GetFactors(ctx, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("GetFactors(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.ClaimTOTPStep(ctx, "alice", 5); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("ClaimTOTPStep(unknown) = %v, want ErrNotFound", err)
	}
	f := account.Factors{User: "alice", TOTPSecret: "JBSWY3DPEHPK3PXP", RecoveryHashes: []string{"aa", "bb", "cc"}, Updated: t0}
	if err := s.PutFactors(ctx, f); err != nil {
		t.Fatalf("PutFactors: %v", err)
	}
	got, err := s.GetFactors(ctx, "alice")
	if err != nil || got.TOTPSecret != f.TOTPSecret || got.TOTPConfirmed || !slices.Equal(got.RecoveryHashes, f.RecoveryHashes) || !got.Updated.Equal(t0) {
		t.Fatalf("GetFactors = %+v, %v; want %+v", got, err, f)
	}
	f.TOTPConfirmed = true
	if err := s.PutFactors(ctx, f); err != nil {
		t.Fatalf("PutFactors(confirm): %v", err)
	}
	if got, _ := s.GetFactors(ctx, "alice"); !got.TOTPConfirmed {
		t.Fatal("PutFactors did not replace the factors")
	}
	for _, c := range []struct {
		step int64
		want error
	}{{100, nil}, {100, account.ErrReplayed}, {99, account.ErrReplayed}, {101, nil}} {
		if err := s.ClaimTOTPStep(ctx, "alice", c.step); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Fatalf("ClaimTOTPStep(%d) = %v, want %v", c.step, err, c.want)
		}
	}
	// Re-enrolling keeps the last claimed step.
	if err := s.PutFactors(ctx, f); err != nil {
		t.Fatalf("PutFactors(again): %v", err)
	}
	if err := s.ClaimTOTPStep(ctx, "alice", 101); !errors.Is(err, account.ErrReplayed) {
		t.Fatalf("ClaimTOTPStep after re-enrolment = %v, want ErrReplayed", err)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "bb"); err != nil {
		t.Fatalf("UseRecoveryCode: %v", err)
	}
	for _, c := range []struct{ user, hash string }{{"alice", "bb"}, {"alice", "zz"}, {"bob", "aa"}} {
		if err := s.UseRecoveryCode(ctx, c.user, c.hash); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("UseRecoveryCode(%s, %s) = %v, want ErrNotFound", c.user, c.hash, err)
		}
	}
	if got, _ := s.GetFactors(ctx, "alice"); !slices.Equal(got.RecoveryHashes, []string{"aa", "cc"}) {
		t.Fatalf("recovery codes after one use = %v, want [aa cc]", got.RecoveryHashes)
	}
	if g := authGen(t, s); g != gen {
		t.Fatalf("factors changed the generation: %d -> %d", gen, g)
	}
	// A sign-in token keeps its mark.
	tok := account.Token{ID: "t1", Hash: "h1", Owner: "alice", Name: "custody login", SignIn: true,
		Scopes: []account.Scope{{Role: account.RoleReader, Repositories: []string{"**"}}}, Created: t0, Expires: t0.Add(time.Hour)}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	if st := authState(t, s); len(st.Tokens) != 1 || !st.Tokens[0].SignIn {
		t.Fatalf("stored tokens %+v, want one sign-in token", st.Tokens)
	}
	if err := s.DeleteFactors(ctx, "alice"); err != nil {
		t.Fatalf("DeleteFactors: %v", err)
	}
	if err := s.DeleteFactors(ctx, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("DeleteFactors twice = %v, want ErrNotFound", err)
	}
	if _, err := s.GetFactors(ctx, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("GetFactors after delete = %v, want ErrNotFound", err)
	}
}

// testFactorsConcurrent: of concurrent uses of one TOTP step or one
// recovery code, on two replicas, exactly one succeeds.
func testFactorsConcurrent(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	a, b := ss[0], ss[1]
	ctx := t.Context()
	if err := a.PutFactors(ctx, account.Factors{User: "carol", TOTPSecret: "X", TOTPConfirmed: true, RecoveryHashes: []string{"r1"}, Updated: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		steps, rc int
	)
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			okStep := s.ClaimTOTPStep(ctx, "carol", 7) == nil
			okCode := s.UseRecoveryCode(ctx, "carol", "r1") == nil
			mu.Lock()
			defer mu.Unlock()
			if okStep {
				steps++
			}
			if okCode {
				rc++
			}
		})
	}
	wg.Wait()
	if steps != 1 || rc != 1 {
		t.Fatalf("concurrent uses: %d TOTP claims and %d recovery codes succeeded, want 1 and 1", steps, rc)
	}
}

// testSessionStepUp: a session records the latest second factor, never
// moving its time back.
func testSessionStepUp(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := s.PutSession(ctx, account.Session{Hash: "cc33", Subject: "alice", Method: "session", CSRF: "c", Created: t0, LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
	if se := getSession(t, s, "cc33"); se.Factor != "" || !se.FactorAt.IsZero() {
		t.Fatalf("new session has factor %q at %v, want none", se.Factor, se.FactorAt)
	}
	if err := s.StepUpSession(ctx, "cc33", "totp", t0.Add(time.Minute)); err != nil {
		t.Fatalf("StepUpSession: %v", err)
	}
	if err := s.StepUpSession(ctx, "cc33", "recovery", t0); err != nil {
		t.Fatalf("StepUpSession: %v", err)
	}
	if se := getSession(t, s, "cc33"); se.Factor != "recovery" || !se.FactorAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("session factor %q at %v, want recovery at %v", se.Factor, se.FactorAt, t0.Add(time.Minute))
	}
	if err := s.StepUpSession(ctx, "nope", "totp", t0); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("StepUpSession(unknown) = %v, want ErrNotFound", err)
	}
}

// testWebAuthnKeys: keys are stored and read back whole, per user, oldest
// first; a credential ID is registered once; a use must raise the
// signature counter (a counter at or below the stored one, as a cloned key
// shows, is refused and changes nothing; authenticators that keep no
// counter send 0 every time); a key is deleted alone, or with the other
// factors by DeleteFactors; none of it changes the generation.
func testWebAuthnKeys(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	gen := authGen(t, s)
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)
	if keys, err := s.WebAuthnKeys(ctx, "alice"); err != nil || len(keys) != 0 {
		t.Fatalf("WebAuthnKeys(none) = %v, %v; want none", keys, err)
	}
	k1 := account.WebAuthnKey{User: "alice", ID: "a1", Name: "YubiKey", Record: []byte(`{"publicKey":"x"}`), SignCount: 5, Created: t0}
	k2 := account.WebAuthnKey{User: "alice", ID: "a2", Name: "laptop", Record: []byte(`{}`), Created: t0.Add(time.Second)}
	for _, k := range []account.WebAuthnKey{k2, k1, {User: "bob", ID: "b1", Name: "b", Record: []byte(`{}`), Created: t0}} {
		if err := s.PutWebAuthnKey(ctx, k); err != nil {
			t.Fatalf("PutWebAuthnKey(%s): %v", k.ID, err)
		}
	}
	if err := s.PutWebAuthnKey(ctx, account.WebAuthnKey{User: "bob", ID: "a1", Name: "again", Record: []byte(`{}`), Created: t0}); !errors.Is(err, account.ErrExists) {
		t.Fatalf("PutWebAuthnKey(registered ID) = %v, want ErrExists", err)
	}
	keys, err := s.WebAuthnKeys(ctx, "alice")
	if err != nil || len(keys) != 2 || keys[0].ID != "a1" || keys[1].ID != "a2" || keys[0].Name != "YubiKey" || string(keys[0].Record) != `{"publicKey":"x"}` ||
		keys[0].SignCount != 5 || !keys[0].Created.Equal(t0) || !keys[0].LastUsed.IsZero() || keys[0].User != "alice" {
		t.Fatalf("WebAuthnKeys(alice) = %+v, %v", keys, err)
	}
	t1 := t0.Add(time.Hour)
	for _, c := range []struct {
		user, id string
		count    uint32
		want     error
	}{
		{"alice", "a1", 6, nil}, {"alice", "a1", 6, account.ErrReplayed}, {"alice", "a1", 3, account.ErrReplayed},
		{"alice", "a2", 0, nil}, {"alice", "a2", 0, nil}, // no counter
		{"bob", "a1", 9, account.ErrNotFound}, {"alice", "zz", 1, account.ErrNotFound},
	} {
		if err := s.UseWebAuthnKey(ctx, c.user, c.id, c.count, t1); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Fatalf("UseWebAuthnKey(%s, %s, %d) = %v, want %v", c.user, c.id, c.count, err, c.want)
		}
	}
	keys, _ = s.WebAuthnKeys(ctx, "alice")
	if keys[0].SignCount != 6 || !keys[0].LastUsed.Equal(t1) {
		t.Fatalf("after uses: %+v; want counter 6, last used %v", keys[0], t1)
	}
	if err := s.DeleteWebAuthnKey(ctx, "bob", "a2"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("DeleteWebAuthnKey(another's) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteWebAuthnKey(ctx, "alice", "a2"); err != nil {
		t.Fatalf("DeleteWebAuthnKey: %v", err)
	}
	if keys, _ := s.WebAuthnKeys(ctx, "alice"); len(keys) != 1 || keys[0].ID != "a1" {
		t.Fatalf("after deleting a2: %+v", keys)
	}
	// DeleteFactors takes the keys along, even without TOTP.
	if err := s.DeleteFactors(ctx, "alice"); err != nil {
		t.Fatalf("DeleteFactors(keys only): %v", err)
	}
	if keys, _ := s.WebAuthnKeys(ctx, "alice"); len(keys) != 0 {
		t.Fatalf("keys after DeleteFactors: %+v", keys)
	}
	if err := s.DeleteFactors(ctx, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("DeleteFactors(nothing left) = %v, want ErrNotFound", err)
	}
	if keys, _ := s.WebAuthnKeys(ctx, "bob"); len(keys) != 1 {
		t.Fatalf("bob's keys after alice's went: %+v", keys)
	}
	if g := authGen(t, s); g != gen {
		t.Fatalf("keys changed the generation: %d -> %d", gen, g)
	}
}

// testWebAuthnConcurrent: of concurrent uses of one key with the same
// counter value, on two replicas, exactly one succeeds.
func testWebAuthnConcurrent(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	if err := ss[0].PutWebAuthnKey(ctx, account.WebAuthnKey{User: "carol", ID: "c1", Name: "k", Record: []byte(`{}`), SignCount: 1, Created: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for i := range 8 {
		s := ss[i%2]
		wg.Go(func() {
			if s.UseWebAuthnKey(ctx, "carol", "c1", 2, time.Unix(60, 0)) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("concurrent uses with one counter value: %d succeeded, want 1", ok)
	}
}

package metatest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
)

// RunAccounts is the conformance suite for account.Store: every method and
// its errors (browser sessions and started sign-in ceremonies included), the generation (which must grow with every write, as
// internal/auth relies on to notice changes made here or on another
// replica), one-snapshot reads, and two replicas writing at once.
func RunAccounts(t *testing.T, open Replicas[account.Store]) {
	runSuite(t, open, []subtest[account.Store]{
		{"Empty", testAccountsEmpty},
		{"Users", testAccountsUsers},
		{"UsersDisabled", testAccountsUsersDisabled},
		{"Grants", testAccountsGrants},
		{"Tokens", testAccountsTokens},
		{"GenerationSeenByReplica", testAccountsGenerationReplica},
		{"ConcurrentWriters", testAccountsConcurrent},
		{"FarFutureTokens", testAccountsFarFuture},
		{"Sessions", testSessions},
		{"SessionsPurge", testSessionsPurge},
		{"SessionsSeenByReplica", testSessionsReplicas},
		{"Factors", testFactors},
		{"FactorsConcurrentUse", testFactorsConcurrent},
		{"SessionStepUp", testSessionStepUp},
		{"WebAuthnKeys", testWebAuthnKeys},
		{"WebAuthnKeysConcurrentUse", testWebAuthnConcurrent},
		{"Challenges", testChallenges},
		{"ChallengesPurge", testChallengesPurge},
		{"ChallengesConcurrentTake", testChallengesConcurrentTake},
	})
}

// authState reads the state, failing t on error.
func authState(t *testing.T, s account.Store) account.State {
	t.Helper()
	st, err := s.AuthState(t.Context())
	if err != nil {
		t.Fatalf("AuthState: %v", err)
	}
	return st
}

// authGen reads the generation, failing t on error.
func authGen(t *testing.T, s account.Store) int64 {
	t.Helper()
	g, err := s.AuthGeneration(t.Context())
	if err != nil {
		t.Fatalf("AuthGeneration: %v", err)
	}
	return g
}

// wantAccountNotFound checks that err wraps account.ErrNotFound.
func wantAccountNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("%s: %v, want an error wrapping account.ErrNotFound", what, err)
	}
}

// sameUser compares users, times by instant.
// b's as the store keeps them (see keep).
func sameUser(a, b account.User) bool {
	return a.Name == b.Name && a.PasswordHash == b.PasswordHash && reflect.DeepEqual(a.Groups, b.Groups) && a.Created.Equal(keep(b.Created))
}

// sameToken compares tokens, times by instant.
// b's as the store keeps them (see keep).
func sameToken(a, b account.Token) bool {
	return a.ID == b.ID && a.Hash == b.Hash && a.Owner == b.Owner && a.Name == b.Name && reflect.DeepEqual(a.Scopes, b.Scopes) &&
		a.Created.Equal(keep(b.Created)) && a.Expires.Equal(keep(b.Expires)) && a.Revoked.Equal(keep(b.Revoked))
}

func testAccountsEmpty(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	st := authState(t, s)
	if len(st.Users) != 0 || len(st.Grants) != 0 || len(st.Tokens) != 0 {
		t.Fatalf("AuthState of an empty store = %+v", st)
	}
	if g := authGen(t, s); g != st.Generation {
		t.Fatalf("AuthGeneration = %d, AuthState's generation = %d; want the same with no write between", g, st.Generation)
	}
}

// testAccountsUsersDisabled: disabling a user records when, ends its
// sessions (and only its), survives PutUser replacing the user, keeps
// the first time when repeated, and is undone by enabling; every change
// moves the generation; an unknown user is ErrNotFound and changes
// nothing.
func testAccountsUsersDisabled(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, u := range []account.User{{Name: "alice", PasswordHash: "$2a$10$a", Created: t0}, {Name: "bob", Created: t0}} {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	sessions := []account.Session{
		{Hash: "s-alice-1", Subject: "alice", Method: "session", CSRF: "c", Created: t0, LastSeen: t0},
		{Hash: "s-alice-2", Subject: "alice", Method: "session", CSRF: "c", Created: t0, LastSeen: t0},
		{Hash: "s-bob", Subject: "bob", Method: "session", CSRF: "c", Created: t0, LastSeen: t0},
	}
	for _, se := range sessions {
		if err := s.PutSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	user := func(name string) account.User {
		t.Helper()
		for _, u := range authState(t, s).Users {
			if u.Name == name {
				return u
			}
		}
		t.Fatalf("no user %s", name)
		return account.User{}
	}
	if u := user("alice"); !u.Disabled.IsZero() {
		t.Fatalf("a new user is disabled: %+v", u)
	}
	gen := authGen(t, s)
	at := t0.Add(time.Hour)
	if err := s.SetUserDisabled(ctx, "alice", at); err != nil {
		t.Fatalf("SetUserDisabled(alice): %v", err)
	}
	if g := authGen(t, s); g <= gen {
		t.Fatalf("generation %d after disabling, was %d; want it to grow", g, gen)
	}
	if u := user("alice"); !u.Disabled.Equal(at) || u.PasswordHash != "$2a$10$a" {
		t.Fatalf("after disabling alice: %+v; want disabled at %v, password kept", u, at)
	}
	if u := user("bob"); !u.Disabled.IsZero() {
		t.Fatalf("disabling alice disabled bob: %+v", u)
	}
	for _, h := range []string{"s-alice-1", "s-alice-2"} {
		_, err := s.GetSession(ctx, h)
		wantAccountNotFound(t, "GetSession of a disabled user's session "+h, err)
	}
	getSession(t, s, "s-bob")

	// Again: the first time stays. Replacing the user keeps it disabled.
	if err := s.SetUserDisabled(ctx, "alice", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, account.User{Name: "alice", PasswordHash: "$2a$10$new", Created: t0}); err != nil {
		t.Fatal(err)
	}
	if u := user("alice"); !u.Disabled.Equal(at) || u.PasswordHash != "$2a$10$new" {
		t.Fatalf("after disabling again and replacing alice: %+v; want still disabled at %v", u, at)
	}

	// Enabling clears it; the sessions that ended stay ended.
	gen = authGen(t, s)
	if err := s.SetUserDisabled(ctx, "alice", time.Time{}); err != nil {
		t.Fatalf("SetUserDisabled(alice, zero): %v", err)
	}
	if g := authGen(t, s); g <= gen {
		t.Fatalf("generation %d after enabling, was %d; want it to grow", g, gen)
	}
	if u := user("alice"); !u.Disabled.IsZero() {
		t.Fatalf("after enabling alice: %+v", u)
	}
	_, err := s.GetSession(ctx, "s-alice-1")
	wantAccountNotFound(t, "GetSession after enabling", err)

	// A user created disabled is stored so.
	if err := s.PutUser(ctx, account.User{Name: "carol", Created: t0, Disabled: at}); err != nil {
		t.Fatal(err)
	}
	if u := user("carol"); !u.Disabled.Equal(at) {
		t.Fatalf("user created disabled: %+v", u)
	}

	// An unknown user: ErrNotFound, nothing changes.
	before := authState(t, s)
	wantAccountNotFound(t, "SetUserDisabled of an unknown user", s.SetUserDisabled(ctx, "nobody", at))
	wantAccountNotFound(t, "SetUserDisabled(zero) of an unknown user", s.SetUserDisabled(ctx, "nobody", time.Time{}))
	if after := authState(t, s); after.Generation != before.Generation || len(after.Users) != len(before.Users) {
		t.Fatalf("a refused SetUserDisabled changed the state: %+v -> %+v", before, after)
	}
	getSession(t, s, "s-bob")
}

func testAccountsUsers(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	// A zone other than UTC and nanoseconds: times must round-trip as
	// instants.
	created := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	alice := account.User{Name: "alice", PasswordHash: "$2a$10$abc", Groups: []string{"dev", "ops"}, Created: created}
	bob := account.User{Name: "bob", Created: created.Add(time.Hour)} // tokens only, no groups
	for _, u := range []account.User{bob, alice} {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatalf("PutUser(%s): %v", u.Name, err)
		}
	}
	st := authState(t, s)
	if len(st.Users) != 2 || !sameUser(st.Users[0], alice) {
		t.Fatalf("AuthState users = %+v; want alice then bob, alice = %+v", st.Users, alice)
	}
	if got := st.Users[1]; got.Name != "bob" || got.PasswordHash != "" || len(got.Groups) != 0 || !got.Created.Equal(keep(bob.Created)) {
		t.Fatalf("user bob = %+v, want %+v", got, bob)
	}
	if st.Users[0].Created.Location() != time.UTC {
		t.Fatalf("user created time has location %v, want UTC", st.Users[0].Created.Location())
	}

	// Replacing a user changes its password and groups and keeps its
	// creation time.
	repl := account.User{Name: "alice", PasswordHash: "$2a$10$new", Groups: []string{"admins"}, Created: created.Add(48 * time.Hour)}
	if err := s.PutUser(ctx, repl); err != nil {
		t.Fatalf("PutUser replacing alice: %v", err)
	}
	st = authState(t, s)
	want := account.User{Name: "alice", PasswordHash: "$2a$10$new", Groups: []string{"admins"}, Created: created}
	if len(st.Users) != 2 || !sameUser(st.Users[0], want) {
		t.Fatalf("after replacing alice, users = %+v; want alice = %+v (creation time kept)", st.Users, want)
	}

	// Deleting a user keeps its grants and tokens; creating it again
	// finds them.
	g := account.Grant{Subject: "user:alice", Role: account.RoleWriter, Repository: "team/**"}
	tok := account.Token{ID: "tok-alice", Hash: "aa11", Owner: "alice", Name: "ci", Created: created, Expires: created.Add(24 * time.Hour)}
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatalf("DeleteUser(alice): %v", err)
	}
	st = authState(t, s)
	if len(st.Users) != 1 || st.Users[0].Name != "bob" {
		t.Fatalf("after DeleteUser(alice), users = %+v; want bob only", st.Users)
	}
	if len(st.Grants) != 1 || len(st.Tokens) != 1 {
		t.Fatalf("after DeleteUser(alice), grants = %+v, tokens = %+v; want both kept", st.Grants, st.Tokens)
	}
	wantAccountNotFound(t, "DeleteUser of a deleted user", s.DeleteUser(ctx, "alice"))
	wantAccountNotFound(t, "DeleteUser of an unknown user", s.DeleteUser(ctx, "nobody"))
	if err := s.PutUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	st = authState(t, s)
	if len(st.Users) != 2 || !sameUser(st.Users[0], alice) || len(st.Grants) != 1 || st.Grants[0].Subject != "user:alice" ||
		len(st.Tokens) != 1 || st.Tokens[0].Owner != "alice" {
		t.Fatalf("after creating alice again, state = %+v; want her grant and token back", st)
	}
}

func testAccountsGrants(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	grants := []account.Grant{
		{Subject: "user:bob", Role: account.RoleReader, Repository: "**"},
		{Subject: "group:dev", Role: account.RoleWriter, Repository: "team/*"},
		{Subject: "group:dev", Role: account.RolePromoter, Repository: "team/*"},
		{Subject: "group:dev", Role: account.RoleWriter, Repository: "Team/*"},
		{Subject: account.SubjectAnonymous, Role: account.RoleReader, Repository: "public/**"},
	}
	for _, g := range grants {
		if err := s.PutGrant(ctx, g); err != nil {
			t.Fatalf("PutGrant(%+v): %v", g, err)
		}
	}
	// Storing a grant that exists is a no-op, not an error.
	before := authGen(t, s)
	if err := s.PutGrant(ctx, grants[1]); err != nil {
		t.Fatalf("PutGrant of an existing grant: %v, want a no-op", err)
	}
	if g := authGen(t, s); g < before {
		t.Fatalf("generation went back from %d to %d", before, g)
	}
	st := authState(t, s)
	// Sorted by subject, role, repository, byte order.
	want := []account.Grant{
		{Subject: account.SubjectAnonymous, Role: account.RoleReader, Repository: "public/**", Source: "api"},
		{Subject: "group:dev", Role: account.RolePromoter, Repository: "team/*", Source: "api"},
		{Subject: "group:dev", Role: account.RoleWriter, Repository: "Team/*", Source: "api"},
		{Subject: "group:dev", Role: account.RoleWriter, Repository: "team/*", Source: "api"},
		{Subject: "user:bob", Role: account.RoleReader, Repository: "**", Source: "api"},
	}
	if !reflect.DeepEqual(st.Grants, want) {
		t.Fatalf("AuthState grants =\n%+v\nwant (each once, sorted, source api)\n%+v", st.Grants, want)
	}

	if err := s.DeleteGrant(ctx, grants[1]); err != nil {
		t.Fatalf("DeleteGrant: %v", err)
	}
	wantAccountNotFound(t, "DeleteGrant of a deleted grant", s.DeleteGrant(ctx, grants[1]))
	// Every field selects: another role, repository or subject is
	// another grant.
	for _, g := range []account.Grant{
		{Subject: "user:bob", Role: account.RoleWriter, Repository: "**"},
		{Subject: "user:bob", Role: account.RoleReader, Repository: "*"},
		{Subject: "user:alice", Role: account.RoleReader, Repository: "**"},
	} {
		wantAccountNotFound(t, fmt.Sprintf("DeleteGrant(%+v)", g), s.DeleteGrant(ctx, g))
	}
	st = authState(t, s)
	if !reflect.DeepEqual(st.Grants, append(want[:3:3], want[4])) {
		t.Fatalf("after DeleteGrant, grants = %+v", st.Grants)
	}
}

func testAccountsTokens(t *testing.T, open Replicas[account.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 987654321, time.UTC)
	t1 := account.Token{ID: "t1", Hash: "11aa", Owner: "alice", Name: "ci", Created: t0, Expires: t0.Add(30 * 24 * time.Hour),
		Scopes: []account.Scope{{Role: account.RoleWriter, Repositories: []string{"team/*", "other/**"}}, {Role: account.RoleReader, Repositories: []string{"**"}}}}
	t2 := account.Token{ID: "t2", Hash: "22bb", Owner: "bob", Name: "laptop", Created: t0.Add(-time.Minute), Expires: t0.Add(time.Hour),
		Scopes: []account.Scope{{Role: account.RoleReader, Repositories: []string{"**"}}}}
	t3 := account.Token{ID: "t0", Hash: "33cc", Owner: "bob", Name: "same time", Created: t0, Expires: t0.Add(time.Hour)}
	for _, tok := range []account.Token{t1, t2, t3} {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken(%s): %v", tok.ID, err)
		}
	}
	st := authState(t, s)
	// Sorted by creation time, then ID.
	if len(st.Tokens) != 3 || !sameToken(st.Tokens[0], t2) || !sameToken(st.Tokens[1], t3) || !sameToken(st.Tokens[2], t1) {
		t.Fatalf("AuthState tokens =\n%+v\nwant t2, t0, t1:\n%+v", st.Tokens, []account.Token{t2, t3, t1})
	}
	if !st.Tokens[2].Revoked.IsZero() {
		t.Fatalf("a new token has revocation time %v", st.Tokens[2].Revoked)
	}

	// A token ID or secret hash is stored once.
	dupID := account.Token{ID: "t1", Hash: "ffff", Owner: "mallory", Name: "dup", Created: t0, Expires: t0.Add(time.Hour)}
	if err := s.PutToken(ctx, dupID); err == nil {
		t.Fatal("PutToken with the ID of a stored token succeeded")
	}
	dupHash := account.Token{ID: "t9", Hash: "11aa", Owner: "mallory", Name: "dup", Created: t0, Expires: t0.Add(time.Hour)}
	if err := s.PutToken(ctx, dupHash); err == nil {
		t.Fatal("PutToken with the hash of a stored token succeeded")
	}
	if st2 := authState(t, s); len(st2.Tokens) != 3 || !sameToken(st2.Tokens[2], t1) {
		t.Fatalf("refused PutTokens changed the tokens: %+v", st2.Tokens)
	}

	// A token is revoked once.
	at := t0.Add(2 * time.Hour).In(time.FixedZone("X", -7200))
	if err := s.RevokeToken(ctx, "t1", at); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	wantAccountNotFound(t, "RevokeToken of a revoked token", s.RevokeToken(ctx, "t1", at.Add(time.Hour)))
	wantAccountNotFound(t, "RevokeToken of an unknown token", s.RevokeToken(ctx, "nope", at))
	st = authState(t, s)
	revoked := t1
	revoked.Revoked = at
	if len(st.Tokens) != 3 || !sameToken(st.Tokens[2], revoked) || !st.Tokens[1].Revoked.IsZero() {
		t.Fatalf("after RevokeToken, tokens = %+v; want t1 revoked at %v (the first revocation), the others not", st.Tokens, at)
	}
}

// testAccountsGenerationReplica writes through one replica and checks,
// after each write, that the other sees the generation grow and the
// change in its state.
func testAccountsGenerationReplica(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g := account.Grant{Subject: "group:dev", Role: account.RoleReader, Repository: "**"}
	tok := account.Token{ID: "t", Hash: "aa", Owner: "u", Name: "n", Created: t0, Expires: t0.Add(time.Hour)}
	writes := []struct {
		name  string
		do    func(s account.Store) error
		check func(st account.State) bool
	}{
		{"PutUser", func(s account.Store) error { return s.PutUser(ctx, account.User{Name: "u", Created: t0}) },
			func(st account.State) bool { return len(st.Users) == 1 && st.Users[0].PasswordHash == "" }},
		{"PutUser (replace)", func(s account.Store) error {
			return s.PutUser(ctx, account.User{Name: "u", PasswordHash: "h", Created: t0})
		}, func(st account.State) bool { return len(st.Users) == 1 && st.Users[0].PasswordHash == "h" }},
		{"PutGrant", func(s account.Store) error { return s.PutGrant(ctx, g) },
			func(st account.State) bool { return len(st.Grants) == 1 }},
		{"PutToken", func(s account.Store) error { return s.PutToken(ctx, tok) },
			func(st account.State) bool { return len(st.Tokens) == 1 && st.Tokens[0].Revoked.IsZero() }},
		{"RevokeToken", func(s account.Store) error { return s.RevokeToken(ctx, "t", t0) },
			func(st account.State) bool { return len(st.Tokens) == 1 && st.Tokens[0].Revoked.Equal(t0) }},
		{"DeleteGrant", func(s account.Store) error { return s.DeleteGrant(ctx, g) },
			func(st account.State) bool { return len(st.Grants) == 0 }},
		{"DeleteUser", func(s account.Store) error { return s.DeleteUser(ctx, "u") },
			func(st account.State) bool { return len(st.Users) == 0 }},
	}
	prev := authGen(t, ss[1])
	for i, w := range writes {
		writer, reader := ss[i%2], ss[1-i%2]
		if err := w.do(writer); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		g := authGen(t, reader)
		if g <= prev {
			t.Fatalf("after %s on one replica, the other's AuthGeneration = %d, was %d; want it to grow", w.name, g, prev)
		}
		st := authState(t, reader)
		if st.Generation != g || !w.check(st) {
			t.Fatalf("after %s on one replica, the other's AuthState = %+v (generation %d); want the change, generation %d", w.name, st, st.Generation, g)
		}
		prev = g
	}
}

// testAccountsConcurrent has several writers on two replicas write at
// once while a reader takes snapshots: no write is lost, the generation
// grows at least once per write, and two snapshots with one generation
// hold the same state (a snapshot is one state, and no two states share a
// generation).
func testAccountsConcurrent(t *testing.T, open Replicas[account.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	const (
		writers = 4 // per replica
		each    = 8 // users per writer; each user also gets a grant and a revoked token
	)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	start := authGen(t, ss[0])
	var (
		mu    sync.Mutex
		errs  []error
		seen  = map[int64]string{}
		reads int
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	stop := make(chan struct{})
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		var last int64
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			st, err := ss[i%2].AuthState(ctx)
			if err != nil {
				fail(fmt.Errorf("AuthState while writing: %w", err))
				return
			}
			if st.Generation < last {
				fail(fmt.Errorf("AuthState generation went back from %d to %d", last, st.Generation))
			}
			last = st.Generation
			gen := st.Generation
			st.Generation = 0
			fp := fmt.Sprintf("%+v", st)
			mu.Lock()
			reads++
			if prev, ok := seen[gen]; ok && prev != fp {
				errs = append(errs, fmt.Errorf("two snapshots of generation %d hold different states:\n%s\n%s", gen, prev, fp))
			}
			seen[gen] = fp
			mu.Unlock()
		}
	}()
	concurrently(2*writers, func(k int) {
		s := ss[k%2]
		for i := range each {
			name := fmt.Sprintf("w%d-u%d", k, i)
			id := "tok-" + name
			if err := s.PutUser(ctx, account.User{Name: name, Groups: []string{"g"}, Created: t0}); err != nil {
				fail(err)
				return
			}
			if err := s.PutGrant(ctx, account.Grant{Subject: "user:" + name, Role: account.RoleReader, Repository: "**"}); err != nil {
				fail(err)
				return
			}
			if err := s.PutToken(ctx, account.Token{ID: id, Hash: "h-" + name, Owner: name, Name: "n", Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
				fail(err)
				return
			}
			if err := s.RevokeToken(ctx, id, t0.Add(time.Minute)); err != nil {
				fail(err)
				return
			}
		}
	})
	close(stop)
	<-reading
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	const n = 2 * writers * each
	for r, s := range ss {
		st := authState(t, s)
		if len(st.Users) != n || len(st.Grants) != n || len(st.Tokens) != n {
			t.Fatalf("replica %d: %d users, %d grants, %d tokens after the writes; want %d of each", r, len(st.Users), len(st.Grants), len(st.Tokens), n)
		}
		for _, tok := range st.Tokens {
			if !tok.Revoked.Equal(t0.Add(time.Minute)) {
				t.Fatalf("replica %d: token %s not revoked: the revocation was lost", r, tok.ID)
			}
		}
		if got := st.Generation - start; got < 4*n {
			t.Fatalf("replica %d: the generation grew by %d over %d writes; want at least one step per write (no lost increment)", r, got, 4*n)
		}
	}
	t.Logf("%d writes by %d writers on 2 replicas; %d snapshots read meanwhile", 4*n, 2*writers, reads)
}

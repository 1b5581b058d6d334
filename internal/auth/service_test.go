package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
)

// fixture is a Service over a real SQLite store with a clock the test
// moves.
type fixture struct {
	t   testing.TB
	s   *Service
	st  *sqlite.Store
	now time.Time
}

const testPassword = "correct horse battery staple"

// testHash is bcrypt(testPassword) at the lowest cost: bcrypt is slow by
// design, and more so under -race. (HashPassword's own cost is tested in
// TestHashPasswordBounds.)
var testHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func newFixture(t testing.TB, tweak func(*Options)) *fixture {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	f := &fixture{t: t, st: st, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	opts := Options{Store: st, SigningKey: key, Now: func() time.Time { return f.now }}
	if tweak != nil {
		tweak(&opts)
	}
	if f.s, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return f
}

// user stores a user (with testPassword when password is set) and grants.
func (f *fixture) user(name string, password bool, groups []string, grants ...Grant) {
	f.t.Helper()
	u := User{Name: name, Groups: groups, Created: f.now}
	if password {
		u.PasswordHash = testHash
	}
	if err := f.st.PutUser(context.Background(), u); err != nil {
		f.t.Fatal(err)
	}
	f.grant(grants...)
}

func (f *fixture) grant(grants ...Grant) {
	f.t.Helper()
	for _, g := range grants {
		if err := f.st.PutGrant(context.Background(), g); err != nil {
			f.t.Fatal(err)
		}
	}
}

// token stores an API token of owner and returns its secret and ID.
func (f *fixture) token(owner string, life time.Duration, scopes ...Scope) (string, string) {
	f.t.Helper()
	secret, id := newSecret()
	sum := sha256.Sum256([]byte(secret))
	t := Token{ID: id, Hash: hex.EncodeToString(sum[:]), Owner: owner, Name: "test", Scopes: scopes, Created: f.now, Expires: f.now.Add(life)}
	if err := f.st.PutToken(context.Background(), t); err != nil {
		f.t.Fatal(err)
	}
	return secret, id
}

func request(method, target, authz string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func scope(role Role, repos ...string) Scope { return Scope{Role: role, Repositories: repos} }

func TestNewRefuses(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	for name, o := range map[string]Options{
		"no store":           {SigningKey: key},
		"no key":             {Store: st},
		"short key":          {Store: st, SigningKey: key[:32]},
		"invalid conf grant": {Store: st, SigningKey: key, Grants: []Grant{{Subject: "alice", Role: RoleReader, Repository: "**"}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAuthenticate covers Authenticate's branches: no credentials, Basic
// (password, API token under the names clients use, malformed), Bearer
// (API token, malformed, untrusted issuer), unsupported schemes.
func TestAuthenticate(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil, Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"})
	f.user("bob", true, nil)
	secret, _ := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	foreign := "eyJhbGciOiJFZERTQSJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"elsewhere"}`)) + ".c2ln"
	cases := []struct {
		name, authz   string
		subject, meth string // want; subject "" means refused
		why           string // substring of the refusal
	}{
		{"none", "", "anonymous", "none", ""},
		{"password", basic("alice", testPassword), "alice", "password", ""},
		{"wrong password", basic("alice", testPassword+"x"), "", "", "unknown user or wrong password"},
		{"unknown user", basic("mallory", testPassword), "", "", "unknown user or wrong password"},
		{"token as token", basic("token", secret), "alice", "token", ""},
		{"token as oauth2accesstoken", basic("oauth2accesstoken", secret), "alice", "token", ""},
		{"token as __token__ (pip, twine)", basic("__token__", secret), "alice", "token", ""},
		{"token as its owner", basic("alice", secret), "alice", "token", ""},
		{"token as someone else", basic("bob", secret), "", "", "belongs to alice, not bob"},
		{"token without prefix is a password", basic("alice", strings.TrimPrefix(secret, tokenPrefix)), "", "", "wrong password"},
		{"unknown token", basic("token", tokenPrefix+"nope"), "", "", "unknown API token"},
		{"malformed basic", "Basic !!!", "", "", "malformed Basic"},
		{"bearer token", "Bearer " + secret, "alice", "token", ""},
		{"bearer unknown token", "Bearer " + tokenPrefix + "x", "", "", "unknown API token"},
		{"bearer garbage", "Bearer abc", "", "", "malformed bearer token"},
		{"bearer bad payload", "Bearer a.!!.c", "", "", "malformed token payload"},
		{"bearer untrusted issuer", "Bearer " + foreign, "", "", `issuer "elsewhere" is not trusted`},
		{"digest", "Digest x", "", "", "unsupported Authorization scheme"},
	}
	for _, c := range cases {
		p, err := f.s.Authenticate(request("GET", "/v2/", c.authz))
		switch {
		case c.subject == "":
			if err == nil {
				t.Errorf("%s: signed in as %s/%s", c.name, p.Subject, p.Method)
			} else if !errors.Is(err, registry.ErrUnauthenticated) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s: error %v, want ErrUnauthenticated with %q", c.name, err, c.why)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case p.Subject != c.subject || p.Method != c.meth:
			t.Errorf("%s: %s/%s, want %s/%s", c.name, p.Subject, p.Method, c.subject, c.meth)
		}
	}
}

// TestAPITokenStates covers tokenPrincipal: a token signs in until its
// expiry (exclusive), not after, not once revoked, not once its owner is
// gone; its principal carries the token's ID and fixed scope.
func TestAPITokenStates(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", false, nil, Grant{Subject: "user:alice", Role: RoleMaintainer, Repository: "**"})
	f.user("carol", false, nil)
	secret, id := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	revoked, rid := f.token("alice", time.Hour, scope(RoleReader, "**"))
	orphan, _ := f.token("carol", time.Hour, scope(RoleReader, "**"))
	if err := f.st.RevokeToken(context.Background(), rid, f.now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteUser(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	start := f.now
	cases := []struct {
		name   string
		secret string
		at     time.Time
		why    string // "" signs in
	}{
		{"fresh", secret, start, ""},
		{"just before expiry", secret, start.Add(time.Hour - time.Microsecond), ""},
		{"at expiry", secret, start.Add(time.Hour), "expired"},
		{"after expiry", secret, start.Add(2 * time.Hour), "expired"},
		{"revoked", revoked, start, "was revoked"},
		{"owner deleted", orphan, start, "no longer exists"},
	}
	for _, c := range cases {
		f.now = c.at
		p, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+c.secret))
		if c.why == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if p.TokenID != id || len(p.TokenScopes()) != 1 || p.Can("other", PermPull) || !p.Can("team/app", PermPull) || p.Can("team/app", PermPush) {
				t.Errorf("%s: principal %+v does not carry the token's scope", c.name, p)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.why)
		}
	}
}

// TestTokenSecretFormat covers newSecret and the stored hash: the prefix
// that makes leaks recognisable, 256 random bits, a 12-hex-digit ID, and
// only SHA-256(secret) identifying it.
func TestTokenSecretFormat(t *testing.T) {
	re := regexp.MustCompile(`^cst_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 50 {
		s, id := newSecret()
		if !re.MatchString(s) || len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("secret %q id %q", s, id)
		}
		if seen[s] || seen[id] {
			t.Fatal("repeated secret or ID")
		}
		seen[s], seen[id] = true, true
	}
	// A token is found by the SHA-256 of the secret, not the secret.
	f := newFixture(t, nil)
	f.user("alice", false, nil)
	secret, _ := f.token("alice", time.Hour, scope(RoleReader, "**"))
	st, err := f.st.AuthState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if len(st.Tokens) != 1 || st.Tokens[0].Hash != hex.EncodeToString(sum[:]) || strings.Contains(st.Tokens[0].Hash, secret) {
		t.Fatalf("stored %+v", st.Tokens)
	}
	// The hash itself is no credential.
	if _, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+tokenPrefix+st.Tokens[0].Hash)); err == nil {
		t.Fatal("the stored hash signed in")
	}
}

func TestHashPasswordBounds(t *testing.T) {
	for _, c := range []struct {
		n  int
		ok bool
	}{{0, false}, {11, false}, {12, true}, {72, true}, {73, false}} {
		h, err := HashPassword(strings.Repeat("p", c.n))
		if (err == nil) != c.ok {
			t.Errorf("HashPassword(%d bytes): %v, want ok=%v", c.n, err, c.ok)
		}
		if c.ok && (!strings.HasPrefix(h, "$2") || c.n == 12 && bcrypt.CompareHashAndPassword([]byte(h), []byte(strings.Repeat("p", c.n))) != nil) {
			t.Errorf("hash %q is not bcrypt", h)
		}
	}
}

// TestDummyHashCost: the hash an unknown name's password is compared with
// costs what a real account's does (HashPassword's cost), so the time of a
// failed sign-in does not say whether the name exists.
func TestDummyHashCost(t *testing.T) {
	real, err := HashPassword("a real password")
	if err != nil {
		t.Fatal(err)
	}
	want, err := bcrypt.Cost([]byte(real))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bcrypt.Cost(dummyHash); err != nil || got != want {
		t.Fatalf("dummy hash cost %d (%v), want %d", got, err, want)
	}
	if err := bcrypt.CompareHashAndPassword(dummyHash, []byte("custody-dummy-password")); err != nil {
		t.Fatalf("dummy hash is not a well-formed bcrypt hash: %v", err)
	}
}

// TestLoginLimits covers the limiter as Service.basic applies it: a name
// is locked out after LoginFailures, even with the right password, and
// only that name; an address is throttled (429) after LoginAddressFailures
// while a right password of an unlocked name still signs in from it; token
// failures count against the address only; the window frees both.
func TestLoginLimits(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LoginFailures, o.LoginAddressFailures, o.LoginWindow = 2, 5, time.Minute })
	f.user("alice", true, nil)
	f.user("bob", true, nil)
	from := func(addr, authz string) error {
		r := request("GET", "/v2/", authz)
		r.RemoteAddr = addr + ":1234"
		_, err := f.s.Authenticate(r)
		return err
	}
	limited := func(err error) bool { return errors.Is(err, registry.ErrTooManyRequests) }
	// A success forgets the name's failures: fail, succeed, fail stays
	// below the lockout of 2.
	f.user("carol", true, nil)
	for _, pass := range []string{"wrong password!", testPassword, "wrong password!"} {
		from("10.0.0.9", basic("carol", pass))
	}
	if d := f.s.limiter.nameBlocked("carol"); d != 0 {
		t.Fatalf("a success did not reset the name's failures: locked for %v", d)
	}
	for range 2 {
		if err := from("10.0.0.1", basic("alice", "wrong password!")); err == nil || limited(err) {
			t.Fatalf("failure %v", err)
		}
	}
	if err := from("10.0.0.2", basic("alice", testPassword)); !limited(err) {
		t.Fatalf("locked name signed in from another address: %v", err)
	}
	if err := from("10.0.0.1", basic("bob", testPassword)); err != nil {
		t.Fatalf("alice's failures locked out bob: %v", err)
	}
	// Token failures: the address counts them, no name does ("token" is
	// shared).
	for range 3 {
		if err := from("10.0.0.1", basic("bob", tokenPrefix+"wrong")); err == nil || limited(err) {
			t.Fatalf("token failure %v", err)
		}
	}
	if d := f.s.limiter.nameBlocked("bob"); d != 0 {
		t.Fatalf("token failures locked the name: %v", d)
	}
	// 5 failures from 10.0.0.1: its next failure is answered 429 ...
	err := from("10.0.0.1", basic("nobody", "wrong password!"))
	var ae *authError
	if !limited(err) || !errors.As(err, &ae) || ae.limited <= 0 || ae.limited > time.Minute {
		t.Fatalf("address not throttled: %v", err)
	}
	// ... but a right password of an unlocked account still signs in.
	if err := from("10.0.0.1", basic("bob", testPassword)); err != nil {
		t.Fatalf("throttled address refused a right password: %v", err)
	}
	f.now = f.now.Add(time.Minute)
	if err := from("10.0.0.2", basic("alice", testPassword)); err != nil {
		t.Fatalf("lock outlived the window: %v", err)
	}
	if err := from("10.0.0.1", basic("nobody", "wrong password!")); limited(err) {
		t.Fatalf("throttle outlived the window: %v", err)
	}
}

// TestGrantSubjects covers grantsFor: anonymous requests get anonymous'
// grants only; signed-in ones add authenticated's, their user's, their
// groups' and the configuration file's; a change in the store takes effect
// on the next request (the generation moved).
func TestGrantSubjects(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Grants = []Grant{{Subject: "group:ops", Role: RoleMaintainer, Repository: "ops/**"}}
	})
	f.user("alice", false, []string{"ops"}, Grant{Subject: "user:alice", Role: RoleWriter, Repository: "alice/*"})
	f.user("bob", false, nil)
	f.grant(
		Grant{Subject: "anonymous", Role: RoleReader, Repository: "public/**"},
		Grant{Subject: "authenticated", Role: RoleReader, Repository: "internal/**"},
		Grant{Subject: "group:ops", Role: RoleAuditor, Repository: "**"},
	)
	alice, _ := f.token("alice", time.Hour, scope(RoleAdmin, "**"))
	bob, _ := f.token("bob", time.Hour, scope(RoleAdmin, "**"))
	type check struct {
		repo string
		perm Perm
		want bool
	}
	cases := []struct {
		who    string
		authz  string
		checks []check
	}{
		{"anonymous", "", []check{
			{"public/x", PermPull, true}, {"public/x", PermPush, false}, {"internal/x", PermPull, false},
			{"alice/x", PermPull, false}, {"", PermAudit, false},
		}},
		{"bob (no groups)", "Bearer " + bob, []check{
			{"public/x", PermPull, true}, {"internal/x", PermPull, true}, {"alice/x", PermPull, false},
			{"ops/x", PermPull, false}, {"", PermAudit, false}, {"", PermAdmin, false},
		}},
		{"alice (group ops)", "Bearer " + alice, []check{
			{"public/x", PermPull, true}, {"internal/x", PermPull, true}, {"alice/x", PermPush, true},
			{"alice/x", PermMoveTag, false}, {"ops/a/b", PermDelete, true}, {"", PermAudit, true},
			{"", PermAdmin, false}, {"other", PermPull, false},
		}},
	}
	for _, c := range cases {
		p, err := f.s.Authenticate(request("GET", "/v2/", c.authz))
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		for _, k := range c.checks {
			if got := p.Can(k.repo, k.perm); got != k.want {
				t.Errorf("%s: Can(%q, %s) = %v, want %v", c.who, k.repo, k.perm, got, k.want)
			}
		}
	}
	// Leaving the group takes effect on the next request.
	f.user("alice", false, nil)
	p, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+alice))
	if err != nil {
		t.Fatal(err)
	}
	if p.Can("", PermAudit) || p.Can("ops/x", PermPull) || !p.Can("alice/x", PermPush) {
		t.Fatal("group grants outlived the membership")
	}
}

// TestLoginLockoutHoldsUnderConcurrency: wrong passwords sent all at
// once must not all pass the lockout check before any of them counts
// (a password check takes bcrypt's time: a wide window).
func TestLoginLockoutHoldsUnderConcurrency(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LoginFailures, o.LoginAddressFailures, o.LoginWindow = 3, 1000, time.Minute })
	// At the real cost, as a server stores it.
	h, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutUser(context.Background(), User{Name: "alice", PasswordHash: h, Created: f.now}); err != nil {
		t.Fatal(err)
	}
	const guesses = 32
	errs := make(chan error, guesses)
	var wg sync.WaitGroup
	for range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.s.Authenticate(request("GET", "/v2/", basic("alice", "wrong password!")))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	judged := 0
	for err := range errs {
		switch {
		case errors.Is(err, registry.ErrTooManyRequests):
		case errors.Is(err, registry.ErrUnauthenticated):
			judged++
		default:
			t.Fatalf("a wrong password: %v", err)
		}
	}
	if judged > 3 {
		t.Fatalf("%d concurrent wrong passwords were judged, want at most 3 (auth.loginFailures)", judged)
	}
	// The right password still signs in once the window has passed.
	f.now = f.now.Add(time.Minute)
	if _, err := f.s.Authenticate(request("GET", "/v2/", basic("alice", testPassword))); err != nil {
		t.Fatal(err)
	}
}

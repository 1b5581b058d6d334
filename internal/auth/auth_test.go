package auth

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
)

func TestPrincipalCan(t *testing.T) {
	p := newPrincipal("alice", "password", nil, []Scope{
		{Role: RoleWriter, Repositories: []string{"team/*"}},
		{Role: RoleReader, Repositories: []string{"public/**"}},
		{Role: RoleAuditor, Repositories: []string{"**"}},
	})
	cases := []struct {
		repo string
		perm Perm
		want bool
	}{
		{"team/app", PermPull, true},
		{"team/app", PermPush, true},
		{"team/app", PermPull | PermPush, true},
		{"team/app", PermMoveTag, false},
		{"team/app", PermDelete, false},
		{"team/a/b", PermPull, false}, // '*' is one segment
		{"public/x/y", PermPull, true},
		{"public/x/y", PermPush, false},
		{"other", PermPull, false},
		{"", PermAudit, true},
		{"team/app", PermAudit, true}, // global: repo ignored
		{"", PermAdmin, false},
		{"", PermPull, false}, // the catalog needs pull on "**"
		{"team/app", 0, false},
	}
	for _, c := range cases {
		if got := p.Can(c.repo, c.perm); got != c.want {
			t.Errorf("Can(%q, %s) = %v, want %v", c.repo, c.perm, got, c.want)
		}
	}
	// A limit (token scope) narrows, never widens.
	p.TokenID, p.tokenRules = "t1", rules(Scope{Role: RoleMaintainer, Repositories: []string{"team/app"}})
	if !p.Can("team/app", PermPush) || p.Can("team/other", PermPull) || p.Can("team/app", PermDelete) {
		t.Fatal("limit did not intersect")
	}
	var nilP *Principal
	if nilP.Can("x", PermPull) || !nilP.Anonymous() {
		t.Fatal("nil principal")
	}
	// Permissions split across grants combine bit by bit.
	q := newPrincipal("bob", "password", nil, []Scope{{Role: RoleReader, Repositories: []string{"a"}}, {Role: RoleWriter, Repositories: []string{"a"}}})
	if !q.Can("a", PermPull|PermPush) {
		t.Fatal("split grants")
	}
}

func TestShortfall(t *testing.T) {
	// alice writes team/**; her API token reads team/one; the registry
	// token (JWT) carries pull on team/one and the catalog.
	p := newPrincipal("alice", "jwt/token", nil, []Scope{{Role: RoleWriter, Repositories: []string{"team/**"}}, {Role: RoleReader, Repositories: []string{"**"}}})
	p.TokenID = "t1"
	p.tokenScopes = []Scope{{Role: RoleReader, Repositories: []string{"team/**"}}, {Role: RoleReader, Repositories: []string{"**"}}}
	p.tokenRules = scopeRules(p.tokenScopes)
	p.jwt, p.jwtAccess = true, []rule{{perm: PermPull, pattern: "team/one"}, {perm: PermPull, pattern: catalogOnly}}
	cases := []struct {
		repo string
		perm Perm
		want shortfall
	}{
		{"team/one", PermPull, allowed},
		{"", PermPull, allowed},                 // the catalog
		{"team/two", PermPull, lacksJWTAccess},  // a new JWT may carry it
		{"other", PermPull, lacksJWTAccess},     // the catalog access is not pull on everything
		{"team/one", PermPush, lacksTokenScope}, // alice may, her token may not
		{"team/one", PermDelete, lacksGrant},    // alice may not
		{"", PermBypassGovernance, lacksGrant},  // nor bypass
		{"team/one", PermPull | PermPush, lacksTokenScope},
	}
	for _, c := range cases {
		if got := p.check(c.repo, c.perm); got != c.want {
			t.Errorf("check(%q, %s) = %d, want %d", c.repo, c.perm, got, c.want)
		}
	}
	if err := p.denial(lacksTokenScope, "push team/one"); !strings.Contains(err.Error(), "API token t1 is limited to reader on team/**; reader on ** and may not push team/one (alice itself may") {
		t.Errorf("token denial: %v", err)
	}
	if err := p.denial(lacksGrant, "delete team/one"); !strings.Contains(err.Error(), "alice may not delete team/one") {
		t.Errorf("grant denial: %v", err)
	}
}

func TestRolesNest(t *testing.T) {
	chain := []Role{RoleReader, RoleWriter, RolePromoter, RoleMaintainer, RoleAdmin}
	for i := 1; i < len(chain); i++ {
		lo, hi := chain[i-1].Perms(), chain[i].Perms()
		if hi&lo != lo || hi == lo {
			t.Errorf("%s does not strictly include %s", chain[i], chain[i-1])
		}
	}
	if RoleAuditor.Perms() != PermAudit {
		t.Error("auditor holds more than the audit log")
	}
	// The governance bypass is its own role's alone.
	for _, r := range account.Roles {
		if got := r.Perms()&PermBypassGovernance != 0; got != (r == RoleGovernanceBypass) {
			t.Errorf("%s holds the governance bypass: %v", r, got)
		}
	}
	if RoleGovernanceBypass.Perms() != PermBypassGovernance || !PermBypassGovernance.Global() {
		t.Error("governance-bypass must hold the global bypass permission and nothing else")
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(3, 10, time.Minute, func() time.Time { return now })
	for range 3 {
		if l.nameBlocked("alice") > 0 || l.addrBlocked("1.2.3.4") > 0 {
			t.Fatal("blocked too early")
		}
		l.fail("1.2.3.4", "alice")
	}
	if w := l.nameBlocked("alice"); w != time.Minute {
		t.Fatalf("name not locked: %v", w)
	}
	// Failures for one name never lock another, nor the address at the
	// name's count.
	if l.nameBlocked("bob") != 0 || l.addrBlocked("1.2.3.4") != 0 {
		t.Fatal("alice's failures locked out bob or the address")
	}
	// The address counts every failure, tokens' too (name ""), and trips
	// at its own, higher count.
	for i := range 7 {
		l.fail("1.2.3.4", []string{"", "x", "y"}[i%3])
	}
	if w := l.addrBlocked("1.2.3.4"); w != time.Minute {
		t.Fatalf("address not throttled after 10 failures: %v", w)
	}
	if l.addrBlocked("5.6.7.8") != 0 || l.nameBlocked("x") != 0 {
		t.Fatal("throttling spilled over")
	}
	now = now.Add(61 * time.Second)
	if l.nameBlocked("alice") != 0 || l.addrBlocked("1.2.3.4") != 0 {
		t.Fatal("still blocked after the window")
	}
	l.fail("9.9.9.9", "carol")
	l.succeed("carol")
	if len(l.names.fails["carol"]) != 0 || len(l.addrs.fails["9.9.9.9"]) != 1 {
		t.Fatal("success must forget the name's failures, not the address's")
	}
}

func TestParseScope(t *testing.T) {
	for s, want := range map[string]string{
		"repository:team/app:pull,push":                    "repository team/app pull,push",
		"repository:localhost/x:pull":                      "repository localhost/x pull",
		"registry:catalog:*":                               "registry catalog *",
		"repository(plugin):team/app:pull":                 "repository team/app pull",
		"repository:team/app:*":                            "repository team/app *",
		"repository:Team/App:pull":                         "",
		"repository::pull":                                 "",
		"repository:team/app":                              "",
		"registry:other:*":                                 "",
		"nonsense":                                         "",
		"repository:a/../b:pull":                           "",
		"repository:" + strings.Repeat("a", 600) + ":pull": "",
	} {
		a, err := ParseScope(s)
		got := ""
		if err == nil {
			got = a.Type + " " + a.Name + " " + strings.Join(a.Actions, ",")
		}
		if got != want {
			t.Errorf("ParseScope(%q) = %q (%v), want %q", s, got, err, want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:team/app:pull,push", "registry:catalog:*", "repository(x):a:b", "::", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseScope(s)
		if err != nil {
			return
		}
		if a.Type != "repository" && a.Type != "registry" {
			t.Fatalf("type %q", a.Type)
		}
		if a.Type == "repository" && !registry.ValidName(a.Name) {
			t.Fatalf("invalid name %q accepted", a.Name)
		}
	})
}

// newTestService returns a Service over a real SQLite store.
func newTestService(t testing.TB) (*Service, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := New(Options{Store: st, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// FuzzAuthenticate feeds arbitrary Authorization headers to a Service
// holding one account: no input may panic or sign in as anyone.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{
		"", "Basic YWRtaW46cGFzc3dvcmQ=", "Basic !!!", "Bearer cst_abc", "Bearer a.b.c",
		"Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJjdXN0b2R5Iiwic3ViIjoiYWRtaW4ifQ.",
		"Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJjdXN0b2R5In0.c2ln", "Digest x", "Bearer " + strings.Repeat("A.", 3),
	} {
		f.Add(s)
	}
	s, st := newTestService(f)
	hash, err := HashPassword("correct horse battery staple")
	if err != nil {
		f.Fatal(err)
	}
	if err := st.PutUser(context.Background(), User{Name: "admin", PasswordHash: hash}); err != nil {
		f.Fatal(err)
	}
	s.limiter = newLimiter(1<<30, 1<<30, time.Minute, time.Now) // never lock the fuzzer out
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		p, err := s.Authenticate(r)
		if err == nil && !p.Anonymous() {
			t.Fatalf("%q signed in as %s", h, p.Subject)
		}
	})
}

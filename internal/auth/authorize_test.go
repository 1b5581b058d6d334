package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/registry"
)

func TestPermOf(t *testing.T) {
	for a, want := range map[registry.Action]Perm{
		registry.ActionPull:    PermPull,
		registry.ActionCatalog: PermPull,
		registry.ActionPush:    PermPush,
		registry.ActionDelete:  PermDelete,
		"frobnicate":           PermAdmin, // unknown actions need everything
		"":                     PermAdmin,
	} {
		if got := permOf(a); got != want {
			t.Errorf("permOf(%q) = %s, want %s", a, got, want)
		}
	}
}

// TestAuthorize covers Authorize's outcomes: allowed; the /v2/ base probe
// of an anonymous caller (401 with a challenge); anonymous lacking a grant
// (401, challenge with the scope); signed-in lacking a grant or token scope
// (403, no challenge); a registry token lacking access its holder has (401
// insufficient_scope); the catalog; bad credentials (invalid_token) and
// rate limiting (Retry-After).
func TestAuthorize(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LoginFailures = 1 })
	f.user("alice", true, nil,
		Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"},
		Grant{Subject: "user:alice", Role: RoleReader, Repository: "**"})
	f.user("bob", false, nil, Grant{Subject: "user:bob", Role: RoleReader, Repository: "team/**"})
	f.grant(Grant{Subject: "anonymous", Role: RoleReader, Repository: "public/**"})
	full, _ := f.token("alice", time.Hour, scope(RoleWriter, "team/**"), scope(RoleReader, "**"))
	narrow, narrowID := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	bob, _ := f.token("bob", time.Hour, scope(RoleReader, "**"))
	jwtPull := f.jwt(basic("token", full), "repository:team/app:pull")
	need := func(action registry.Action, repo string) []registry.Access {
		return []registry.Access{{Repo: repo, Action: action}}
	}
	pushNeed := []registry.Access{{Repo: "team/app", Action: registry.ActionPull}, {Repo: "team/app", Action: registry.ActionPush}}
	cases := []struct {
		name      string
		authz     string
		need      []registry.Access
		wantErr   error  // nil: allowed
		challenge string // substring of WWW-Authenticate; "-" none
		why       string // substring of the error
	}{
		{"anonymous base", "", nil, registry.ErrUnauthenticated, `Bearer realm="http://example.com/auth/token",service="custody"`, "sign in to use this registry"},
		{"anonymous allowed", "", need(registry.ActionPull, "public/x"), nil, "-", ""},
		{"anonymous lacks grant", "", pushNeed, registry.ErrUnauthenticated, `scope="repository:team/app:pull,push"`, "sign in to push to team/app"},
		{"signed-in base", "Bearer " + full, nil, nil, "-", ""},
		{"signed-in allowed", "Bearer " + full, pushNeed, nil, "-", ""},
		{"signed-in lacks grant", "Bearer " + full, need(registry.ActionDelete, "team/app"), registry.ErrDenied, "-", "alice may not delete team/app"},
		{"token scope lacks", "Bearer " + narrow, pushNeed, registry.ErrDenied, "-", "API token " + narrowID + " is limited to reader on team/**"},
		{"catalog with reader on **", "Bearer " + full, need(registry.ActionCatalog, ""), nil, "-", ""},
		{"catalog without **", "Bearer " + bob, need(registry.ActionCatalog, ""), registry.ErrDenied, "-", "may not list the repository catalog"},
		{"jwt carries it", "Bearer " + jwtPull, need(registry.ActionPull, "team/app"), nil, "-", ""},
		{"jwt lacks push", "Bearer " + jwtPull, pushNeed, registry.ErrUnauthenticated, `scope="repository:team/app:pull,push",error="insufficient_scope"`, "does not cover push team/app"},
		{"jwt lacks repo", "Bearer " + jwtPull, need(registry.ActionPull, "team/other"), registry.ErrUnauthenticated, `error="insufficient_scope"`, "pull team/other"},
		{"jwt holder lacks grant", "Bearer " + jwtPull, need(registry.ActionDelete, "team/app"), registry.ErrDenied, "-", "may not delete team/app"},
		{"bad credentials", basic("alice", "wrong password!"), need(registry.ActionPull, "team/app"), registry.ErrUnauthenticated, `error="invalid_token"`, ""},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		_, err := f.s.Authorize(w, request("GET", "/v2/", c.authz), c.need)
		switch {
		case c.wantErr == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != nil && !errors.Is(err, c.wantErr):
			t.Errorf("%s: error %v, want %v", c.name, err, c.wantErr)
		case c.wantErr != nil && !strings.Contains(err.Error(), c.why):
			t.Errorf("%s: error %q lacks %q", c.name, err, c.why)
		}
		h := w.Header().Get("WWW-Authenticate")
		if c.challenge == "-" && h != "" || c.challenge != "-" && !strings.Contains(h, c.challenge) {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, h, c.challenge)
		}
	}
	// alice is now locked out (LoginFailures 1): 429 with Retry-After, no challenge.
	w := httptest.NewRecorder()
	_, err := f.s.Authorize(w, request("GET", "/v2/", basic("alice", testPassword)), need(registry.ActionPull, "team/app"))
	if !errors.Is(err, registry.ErrTooManyRequests) || w.Header().Get("Retry-After") != "61" || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("locked out: %v, headers %v", err, w.Header())
	}
}

// TestChallengeRealm covers the realm: the configured one, else the
// request's scheme and host.
func TestChallengeRealm(t *testing.T) {
	f := newFixture(t, nil)
	r := request("GET", "https://reg.example:5000/v2/", "")
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	f.s.Authorize(w, r, nil)
	if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="https://reg.example:5000/auth/token",service="custody"`) {
		t.Errorf("TLS realm: %q", h)
	}
	g := newFixture(t, func(o *Options) { o.Realm, o.Service = "https://auth.example/token", "reg" })
	w = httptest.NewRecorder()
	g.s.Authorize(w, request("GET", "/v2/", ""), nil)
	if h := w.Header().Get("WWW-Authenticate"); h != `Bearer realm="https://auth.example/token",service="reg"` {
		t.Errorf("configured realm: %q", h)
	}
}

func TestChallengeScope(t *testing.T) {
	cases := []struct {
		need []registry.Access
		want string
	}{
		{nil, ""},
		{[]registry.Access{{Repo: "a", Action: "pull"}}, "repository:a:pull"},
		{[]registry.Access{{Repo: "a", Action: "pull"}, {Repo: "b", Action: "pull"}, {Repo: "a", Action: "push"}}, "repository:a:pull,push repository:b:pull"},
		{[]registry.Access{{Action: "catalog"}}, "registry:catalog:*"},
		{[]registry.Access{{Repo: "a", Action: "delete"}, {Action: "catalog"}}, "registry:catalog:* repository:a:delete"},
	}
	for _, c := range cases {
		if got := challengeScope(c.need); got != c.want {
			t.Errorf("challengeScope(%v) = %q, want %q", c.need, got, c.want)
		}
	}
}

func TestSignInFor(t *testing.T) {
	cases := []struct {
		need []registry.Access
		want string
	}{
		{[]registry.Access{{Repo: "a", Action: "pull"}}, "pull a"},
		{[]registry.Access{{Repo: "a", Action: "pull"}, {Repo: "a", Action: "push"}}, "push to a"},
		{[]registry.Access{{Repo: "a", Action: "delete"}, {Repo: "a", Action: "pull"}}, "delete in a"},
		{[]registry.Access{{Action: "catalog"}}, "list the repository catalog"},
		{[]registry.Access{{Repo: "a", Action: "pull"}, {Repo: "c", Action: "push"}}, "pull a and push to c"},
		{[]registry.Access{{Repo: "a", Action: "odd"}}, "odd a"},
	}
	for _, c := range cases {
		if got := signInFor(c.need); got != c.want {
			t.Errorf("signInFor(%v) = %q, want %q", c.need, got, c.want)
		}
	}
}

// TestTagPolicy covers CheckTag: creating a tag or re-pointing it at the
// same digest needs nothing more; moving it needs move-tag (promoter),
// narrowed by an API token's scope; a registry token's push covers the
// move as far as the JWT goes; no principal (authentication off) allows.
func TestTagPolicy(t *testing.T) {
	f := newFixture(t, nil)
	f.user("wendy", false, nil, Grant{Subject: "user:wendy", Role: RoleWriter, Repository: "team/**"})
	f.user("pat", false, nil, Grant{Subject: "user:pat", Role: RolePromoter, Repository: "team/**"})
	wendy, _ := f.token("wendy", time.Hour, scope(RoleWriter, "team/**"))
	pat, _ := f.token("pat", time.Hour, scope(RolePromoter, "team/**"))
	patWriter, _ := f.token("pat", time.Hour, scope(RoleWriter, "team/**"))
	patJWT := f.jwt(basic("token", pat), "repository:team/app:pull,push")
	patPullJWT := f.jwt(basic("token", pat), "repository:team/app:pull")
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	cases := []struct {
		name      string
		authz     string // "-": no principal in the context
		cur, next digest.Digest
		why       string // "" allowed
	}{
		{"writer creates", "Bearer " + wendy, "", d1, ""},
		{"writer re-points to the same digest", "Bearer " + wendy, d1, d1, ""},
		{"writer moves", "Bearer " + wendy, d1, d2, "wendy may not move tag v1 of team/app, which already points at " + d1.String() + " (moving a tag needs the promoter role"},
		{"promoter moves", "Bearer " + pat, d1, d2, ""},
		{"promoter's writer token moves", "Bearer " + patWriter, d1, d2, "API token"},
		{"promoter's push JWT moves", "Bearer " + patJWT, d1, d2, ""},
		{"promoter's pull JWT moves", "Bearer " + patPullJWT, d1, d2, "registry token"},
		{"authentication off", "-", d1, d2, ""},
	}
	for _, c := range cases {
		ctx := context.Background()
		if c.authz != "-" {
			p, err := f.s.Authenticate(request("GET", "/v2/", c.authz))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			ctx = WithPrincipal(ctx, p)
		}
		err := TagPolicy{}.CheckTag(ctx, "team/app", "v1", c.cur, c.next)
		switch {
		case c.why == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.why != "" && (!errors.Is(err, registry.ErrDenied) || !strings.Contains(err.Error(), c.why)):
			t.Errorf("%s: error %v, want ErrDenied with %q", c.name, err, c.why)
		}
	}
}

// TestCanBypassGovernance covers the bypass decision: only the
// governance-bypass role on "**" holds it (admin does not; a narrower
// pattern does not), an API token must carry it too, and no principal
// (authentication off) does not.
func TestCanBypassGovernance(t *testing.T) {
	f := newFixture(t, nil)
	f.user("root", false, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	f.user("ops", false, nil, Grant{Subject: "user:ops", Role: RoleGovernanceBypass, Repository: "**"}, Grant{Subject: "user:ops", Role: RoleMaintainer, Repository: "**"})
	f.user("team", false, nil, Grant{Subject: "user:team", Role: RoleGovernanceBypass, Repository: "team/**"})
	root, _ := f.token("root", time.Hour, scope(RoleAdmin, "**"))
	ops, _ := f.token("ops", time.Hour, scope(RoleGovernanceBypass, "**"))
	opsMaint, _ := f.token("ops", time.Hour, scope(RoleMaintainer, "**"))
	team, _ := f.token("team", time.Hour, scope(RoleGovernanceBypass, "team/**"))
	cases := []struct {
		name  string
		authz string
		want  bool
	}{
		{"admin", "Bearer " + root, false},
		{"governance-bypass on **", "Bearer " + ops, true},
		{"its maintainer-only token", "Bearer " + opsMaint, false},
		{"governance-bypass on team/**", "Bearer " + team, false},
		{"anonymous", "", false},
		{"no principal", "-", false},
	}
	for _, c := range cases {
		ctx := context.Background()
		if c.authz != "-" {
			p, err := f.s.Authenticate(request("GET", "/v2/", c.authz))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			ctx = WithPrincipal(ctx, p)
		}
		if got := f.s.CanBypassGovernance(ctx); got != c.want {
			t.Errorf("%s: CanBypassGovernance = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRequire covers the account API's gate: perm 0 asks for any signed-in
// caller; anonymous callers get 401, signed-in ones lacking perm 403, an
// API token narrower than its owner 403 naming the token.
func TestRequire(t *testing.T) {
	f := newFixture(t, nil)
	f.user("root", false, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	f.user("bob", false, nil)
	root, _ := f.token("root", time.Hour, scope(RoleAdmin, "**"))
	rootRead, _ := f.token("root", time.Hour, scope(RoleReader, "**"))
	bob, _ := f.token("bob", time.Hour, scope(RoleReader, "**"))
	cases := []struct {
		name  string
		authz string
		perm  Perm
		code  int // 0: allowed
	}{
		{"anonymous, any caller", "", 0, 401},
		{"anonymous, admin", "", PermAdmin, 401},
		{"bob, any caller", "Bearer " + bob, 0, 0},
		{"bob, admin", "Bearer " + bob, PermAdmin, 403},
		{"root, admin", "Bearer " + root, PermAdmin, 0},
		{"root's reader token, admin", "Bearer " + rootRead, PermAdmin, 403},
		{"bad token", "Bearer " + tokenPrefix + "x", PermAdmin, 401},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		_, p, ok := f.s.Require(w, request("GET", "/api/v1/x", c.authz), "test", "", c.perm)
		if ok != (c.code == 0) || (ok && p == nil) {
			t.Errorf("%s: ok %v", c.name, ok)
		}
		if c.code != 0 && w.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.code)
		}
		if c.code == http.StatusForbidden && c.name == "root's reader token, admin" && !strings.Contains(w.Body.String(), "API token") {
			t.Errorf("%s: refusal does not name the token: %s", c.name, w.Body)
		}
	}
}

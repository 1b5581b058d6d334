package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/registry"
)

// signIn creates a session for name through POST /api/v1/sessions.
func (f *fixture) signIn(mux *http.ServeMux, name string) CreatedSession {
	f.t.Helper()
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Authorization", basic(name, testPassword))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		f.t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	var c CreatedSession
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func withSession(r *http.Request, secret string) *http.Request {
	r.AddCookie(&http.Cookie{Name: SessionCookieName(false), Value: secret})
	return r
}

// sessions counts the stored sessions by trying the given secrets.
func (f *fixture) sessionExists(secret string) bool {
	f.t.Helper()
	_, err := f.st.GetSession(context.Background(), sessionHash(secret))
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func TestSessionSignsIn(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, []string{"dev"}, Grant{Subject: "user:alice", Role: RoleReader, Repository: "team/**"})
	mux := http.NewServeMux()
	f.s.Register(mux)
	c := f.signIn(mux, "alice")
	if c.Subject != "alice" || c.Method != MethodSession || len(c.Secret) < 43 || len(c.CSRF) < 43 || c.MaxAge != int((12*time.Hour).Seconds()) {
		t.Fatalf("created session = %+v", c)
	}
	// Only the hash is stored.
	se, err := f.st.GetSession(context.Background(), sessionHash(c.Secret))
	if err != nil || se.Subject != "alice" || se.CSRF != c.CSRF || strings.Contains(se.Hash, c.Secret) {
		t.Fatalf("stored session = %+v, %v", se, err)
	}
	p, err := f.s.Authenticate(withSession(request("GET", "/v2/team/app/tags/list", ""), c.Secret))
	if err != nil || p.Subject != "alice" || p.Method != MethodSession || !p.Can("team/app", PermPull) || p.Can("team/app", PermPush) {
		t.Fatalf("Authenticate with the cookie = %+v, %v", p, err)
	}
	// The user's grants are read per request: a new grant counts at once.
	f.grant(Grant{Subject: "group:dev", Role: RoleWriter, Repository: "team/**"})
	if p, err = f.s.Authenticate(withSession(request("GET", "/", ""), c.Secret)); err != nil || !p.Can("team/app", PermPush) {
		t.Fatalf("after a new grant: %+v, %v", p, err)
	}
	// An Authorization header wins over the cookie.
	if p, err = f.s.Authenticate(withSession(request("GET", "/", basic("alice", "wrong password!")), c.Secret)); err == nil {
		t.Fatalf("a wrong password with a valid cookie authenticated as %+v", p)
	}
	// An unknown secret is refused (401), not anonymous.
	_, err = f.s.Authenticate(withSession(request("GET", "/", ""), "not-a-session"))
	if !errors.Is(err, registry.ErrUnauthenticated) {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestSessionSignInRefusals(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil)
	secret, _ := f.token("alice", time.Hour, scope(RoleReader, "**"))
	mux := http.NewServeMux()
	f.s.Register(mux)
	cases := []struct {
		name, authz, site, body string
		code                    int
	}{
		{"wrong password", basic("alice", "wrong password!"), "same-origin", `{}`, 401},
		{"no credentials", "", "same-origin", `{}`, 401},
		{"an API token", "Bearer " + secret, "same-origin", `{}`, 401},
		{"an API token as Basic", basic("alice", secret), "same-origin", `{}`, 401},
		{"from another site", basic("alice", testPassword), "cross-site", `{}`, 403},
		{"malformed body", basic("alice", testPassword), "same-origin", `{"x":1}`, 400},
		{"unknown OIDC issuer", "", "same-origin", `{"oidc":{"issuer":"0","code":"c","verifier":"v","nonce":"n"}}`, 401},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(tc.body))
		if tc.authz != "" {
			r.Header.Set("Authorization", tc.authz)
		}
		r.Header.Set("Sec-Fetch-Site", tc.site)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d: %s", tc.name, w.Code, tc.code, w.Body)
		}
		if n, err := f.st.PurgeSessions(context.Background(), f.now.Add(time.Hour), f.now.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("%s: a refused sign-in stored %d sessions (%v)", tc.name, n, err)
		}
	}
}

// TestSessionTimeouts: a session ends after the idle timeout without a
// request and after the absolute timeout whatever it does; requests keep
// it alive until then.
func TestSessionTimeouts(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.SessionIdle, o.SessionAbsolute = 10*time.Minute, time.Hour })
	f.user("alice", true, nil)
	mux := http.NewServeMux()
	f.s.Register(mux)
	auth := func(secret string) error {
		_, err := f.s.Authenticate(withSession(request("GET", "/", ""), secret))
		return err
	}
	idle := f.signIn(mux, "alice")
	busy := f.signIn(mux, "alice")
	// Active every 9 minutes: the busy session lives on, the idle one
	// ends once 10 minutes pass without a request.
	for range 6 {
		f.now = f.now.Add(9 * time.Minute)
		if err := auth(busy.Secret); err != nil {
			t.Fatalf("a session active every 9 minutes ended at %v: %v", f.now, err)
		}
	}
	if err := auth(idle.Secret); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("a session idle for 54 minutes: %v, want an idle expiry", err)
	}
	if f.sessionExists(idle.Secret) {
		t.Fatal("an idle-expired session is still stored")
	}
	// 54 minutes in: still within the absolute timeout; at an hour, no more.
	f.now = f.now.Add(6 * time.Minute)
	if err := auth(busy.Secret); err == nil || !strings.Contains(err.Error(), "signed in more than") {
		t.Fatalf("a session an hour old: %v, want an absolute expiry", err)
	}
	if f.sessionExists(busy.Secret) {
		t.Fatal("an expired session is still stored")
	}
	// PurgeSessions removes timed-out sessions nobody uses any more.
	stale := f.signIn(mux, "alice")
	f.now = f.now.Add(11 * time.Minute)
	if n, err := f.s.PurgeSessions(context.Background()); err != nil || n != 1 || f.sessionExists(stale.Secret) {
		t.Fatalf("PurgeSessions = %d, %v", n, err)
	}
}

// TestSessionCSRF: an unsafe request with the session cookie needs the
// session's CSRF token and a same-origin browser; a refused one changes
// nothing.
func TestSessionCSRF(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil, Grant{Subject: "user:alice", Role: RoleReader, Repository: "**"})
	mux := http.NewServeMux()
	f.s.Register(mux)
	c := f.signIn(mux, "alice")
	other := f.signIn(mux, "alice")
	tokens := func() int {
		st, err := f.st.AuthState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Tokens)
	}
	body := `{"name":"ui","scopes":[{"role":"reader","repositories":["**"]}]}`
	cases := []struct {
		name, csrf, site, origin string
		code                     int
	}{
		{"no token", "", "same-origin", "", 403},
		{"wrong token", otherFirst(c.CSRF), "same-origin", "", 403},
		{"another session's token", other.CSRF, "same-origin", "", 403},
		{"from another site", c.CSRF, "cross-site", "", 403},
		{"from another origin", c.CSRF, "", "https://evil.example", 403},
		{"same origin with the token", c.CSRF, "same-origin", "", 201},
	}
	for _, tc := range cases {
		before := tokens()
		r := withSession(httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(body)), c.Secret)
		if tc.csrf != "" {
			r.Header.Set(CSRFHeader, tc.csrf)
		}
		if tc.site != "" {
			r.Header.Set("Sec-Fetch-Site", tc.site)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d: %s", tc.name, w.Code, tc.code, w.Body)
		}
		want := before
		if tc.code == 201 {
			want++
		}
		if got := tokens(); got != want {
			t.Errorf("%s: %d tokens, want %d", tc.name, got, want)
		}
	}
	// Safe methods need no token.
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, withSession(httptest.NewRequest("GET", "/api/v1/whoami", nil), c.Secret))
	var who Whoami
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &who) != nil || who.Method != MethodSession || who.Session == nil || who.Session.CSRF != c.CSRF {
		t.Fatalf("whoami with the cookie: %d %s", w.Code, w.Body)
	}
}

func TestSessionSignOut(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil)
	mux := http.NewServeMux()
	f.s.Register(mux)
	c := f.signIn(mux, "alice")
	keep := f.signIn(mux, "alice")
	del := func(csrf string) int {
		r := withSession(httptest.NewRequest("DELETE", "/api/v1/sessions/current", nil), c.Secret)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		if csrf != "" {
			r.Header.Set(CSRFHeader, csrf)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	if code := del(""); code != 403 || !f.sessionExists(c.Secret) {
		t.Fatalf("sign-out without the CSRF token: %d, session kept %v", code, f.sessionExists(c.Secret))
	}
	if code := del(c.CSRF); code != 204 || f.sessionExists(c.Secret) {
		t.Fatalf("sign-out: %d, session kept %v", code, f.sessionExists(c.Secret))
	}
	if !f.sessionExists(keep.Secret) {
		t.Fatal("signing one session out ended another")
	}
	if code := del(c.CSRF); code != 401 {
		t.Fatalf("signing an ended session out: %d, want 401", code)
	}
	// A password sign-in with a token is not a session: nothing to end.
	tok, _ := f.token("alice", time.Hour, scope(RoleReader, "**"))
	r := request("DELETE", "/api/v1/sessions/current", "Bearer "+tok)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("sign-out with a token: %d", w.Code)
	}
}

// TestSessionOfDeletedUser: deleting a user ends its sessions.
func TestSessionOfDeletedUser(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil)
	mux := http.NewServeMux()
	f.s.Register(mux)
	c := f.signIn(mux, "alice")
	if err := f.st.DeleteUser(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Authenticate(withSession(request("GET", "/", ""), c.Secret)); err == nil {
		t.Fatal("the session of a deleted user still authenticates")
	}
	if f.sessionExists(c.Secret) {
		t.Fatal("the session of a deleted user is still stored")
	}
}

// otherFirst returns tok with its first character changed (never equal to
// tok, whatever random token it is).
func otherFirst(tok string) string {
	if tok[0] == 'x' {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}

package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/audit"
)

// TestDisabledUser: an admin disables an account; from then on its
// password, its API tokens, a registry token issued to it before and its
// browser sessions are refused (the sessions are gone), until an admin
// enables it again; each change is audited. Disabling is admin-only, not
// of one's own account, and a refused or unknown request changes nothing.
func TestDisabledUser(t *testing.T) {
	var (
		mu     sync.Mutex
		events []audit.Event
	)
	f := newFixture(t, func(o *Options) {
		o.Auditor = audit.Func(func(_ context.Context, e audit.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		})
	})
	f.user("root", true, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	f.user("alice", true, nil, Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"})
	f.user("bob", true, nil, Grant{Subject: "user:bob", Role: RoleMaintainer, Repository: "**"})
	mux := http.NewServeMux()
	f.s.Register(mux)
	tok, _ := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	jwtTok := f.jwt(basic("alice", testPassword), "repository:team/app:pull")
	c := f.signIn(mux, "alice")

	call := func(authz, method, path string) *httptest.ResponseRecorder {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, request(method, path, authz))
		return w
	}
	disabled := func() time.Time {
		t.Helper()
		st, err := f.st.AuthState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range st.Users {
			if u.Name == "alice" {
				return u.Disabled
			}
		}
		t.Fatal("alice is gone")
		return time.Time{}
	}
	signsIn := map[string]func() error{
		"password": func() error {
			_, err := f.s.Authenticate(request("GET", "/", basic("alice", testPassword)))
			return err
		},
		"API token": func() error {
			_, err := f.s.Authenticate(request("GET", "/", "Bearer "+tok))
			return err
		},
		"API token as Basic": func() error { _, err := f.s.Authenticate(request("GET", "/", basic("alice", tok))); return err },
		"registry token":     func() error { _, err := f.s.Authenticate(request("GET", "/", "Bearer "+jwtTok)); return err },
		"session": func() error {
			_, err := f.s.Authenticate(withSession(request("GET", "/", ""), c.Secret))
			return err
		},
	}
	for what, try := range signsIn {
		if err := try(); err != nil {
			t.Fatalf("before disabling, alice's %s: %v", what, err)
		}
	}

	// Refused: not an admin, one's own account, an unknown user. Nothing changes.
	for _, r := range []struct {
		name, authz, path string
		code              int
	}{
		{"a maintainer", basic("bob", testPassword), "/api/v1/users/alice/disable", 403},
		{"the user itself", basic("alice", testPassword), "/api/v1/users/alice/disable", 403},
		{"anonymous", "", "/api/v1/users/alice/disable", 401},
		{"one's own account", basic("root", testPassword), "/api/v1/users/root/disable", 400},
		{"an unknown user", basic("root", testPassword), "/api/v1/users/nobody/disable", 404},
	} {
		if w := call(r.authz, "POST", r.path); w.Code != r.code {
			t.Fatalf("%s disabling: %d %s, want %d", r.name, w.Code, w.Body, r.code)
		}
		if !disabled().IsZero() {
			t.Fatalf("%s disabling was refused, yet alice is disabled", r.name)
		}
		if err := signsIn["session"](); err != nil {
			t.Fatalf("%s disabling was refused, yet alice's session ended: %v", r.name, err)
		}
	}

	if w := call(basic("root", testPassword), "POST", "/api/v1/users/alice/disable"); w.Code != 200 || !answer[User](t, w).Disabled.Equal(f.now) {
		t.Fatalf("disable: %d %s", w.Code, w.Body)
	}
	for what, try := range signsIn {
		if err := try(); err == nil {
			t.Errorf("alice's %s still signs in after she was disabled", what)
		}
	}
	if f.sessionExists(c.Secret) {
		t.Fatal("a disabled user's session is still stored")
	}
	if w := call(basic("root", testPassword), "GET", "/api/v1/users"); !slices.ContainsFunc(answer[[]User](t, w), func(u User) bool {
		return u.Name == "alice" && u.Disabled.Equal(f.now)
	}) {
		t.Fatalf("the user list does not show alice disabled: %s", w.Body)
	}
	// A new session is refused too.
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Authorization", basic("alice", testPassword))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("a disabled user's sign-in: %d %s", w.Code, w.Body)
	}

	f.now = f.now.Add(time.Minute)
	if w := call(basic("root", testPassword), "POST", "/api/v1/users/alice/enable"); w.Code != 200 || !answer[User](t, w).Disabled.IsZero() {
		t.Fatalf("enable: %d %s", w.Code, w.Body)
	}
	for what, try := range signsIn {
		if what == "session" {
			continue // ended for good
		}
		if err := try(); err != nil {
			t.Errorf("alice's %s after she was enabled again: %v", what, err)
		}
	}
	if err := signsIn["session"](); err == nil {
		t.Fatal("enabling alice brought her ended session back")
	}

	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range events {
		if strings.HasPrefix(e.Action, "user.") {
			got = append(got, e.Action+" "+e.Result)
		}
	}
	want := []string{"user.disable denied", "user.disable denied", "user.disable denied", "user.disable invalid", "user.disable ok", "user.enable ok"}
	if !slices.Equal(got, want) {
		t.Fatalf("audited %q, want %q", got, want)
	}
	if !slices.ContainsFunc(events, func(e audit.Event) bool {
		return e.Action == "login" && e.Result == "denied" && strings.Contains(e.Reason, "alice is disabled")
	}) {
		t.Fatal("no refused sign-in audited with the reason that alice is disabled")
	}
}

func answer[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return v
}

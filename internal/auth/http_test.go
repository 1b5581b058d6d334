package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCreateToken covers POST /api/v1/tokens' checks: a name, 1 to 32
// scopes of known roles on valid patterns, an expiry that is positive and
// at most maxTokenLife (default 30 days), and no scope beyond what its
// owner holds. Every refusal stores nothing.
func TestCreateToken(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", false, nil, Grant{Subject: "user:alice", Role: RoleMaintainer, Repository: "team/**"})
	owner, _ := f.token("alice", time.Hour, scope(RoleMaintainer, "team/**"))
	narrow, _ := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	mux := http.NewServeMux()
	f.s.Register(mux)
	ok := `"scopes":[{"role":"reader","repositories":["team/app"]}]`
	many := `"scopes":[` + strings.TrimSuffix(strings.Repeat(`{"role":"reader","repositories":["team/a"]},`, 33), ",") + `]`
	cases := []struct {
		name  string
		authz string
		body  string
		code  int
		life  time.Duration // on success
	}{
		{"default expiry", owner, `{"name":"ci",` + ok + `}`, 201, 30 * 24 * time.Hour},
		{"longest expiry", owner, `{"name":"ci",` + ok + `,"expiresIn":"8784h"}`, 201, maxTokenLife},
		{"short expiry", owner, `{"name":"ci",` + ok + `,"expiresIn":"1m"}`, 201, time.Minute},
		{"maintainer scope", owner, `{"name":"ci","scopes":[{"role":"maintainer","repositories":["team/**"]}]}`, 201, 30 * 24 * time.Hour},
		{"too long", owner, `{"name":"ci",` + ok + `,"expiresIn":"8784h1s"}`, 400, 0},
		{"zero expiry", owner, `{"name":"ci",` + ok + `,"expiresIn":"0s"}`, 400, 0},
		{"negative expiry", owner, `{"name":"ci",` + ok + `,"expiresIn":"-1h"}`, 400, 0},
		{"unparsable expiry", owner, `{"name":"ci",` + ok + `,"expiresIn":"30d"}`, 400, 0},
		{"no name", owner, `{` + ok + `}`, 400, 0},
		{"long name", owner, `{"name":"` + strings.Repeat("n", 101) + `",` + ok + `}`, 400, 0},
		{"no scopes", owner, `{"name":"ci","scopes":[]}`, 400, 0},
		{"33 scopes", owner, `{"name":"ci",` + many + `}`, 400, 0},
		{"unknown role", owner, `{"name":"ci","scopes":[{"role":"root","repositories":["team/app"]}]}`, 400, 0},
		{"no repositories", owner, `{"name":"ci","scopes":[{"role":"reader","repositories":[]}]}`, 400, 0},
		{"bad pattern", owner, `{"name":"ci","scopes":[{"role":"reader","repositories":["Team/App"]}]}`, 400, 0},
		{"unknown field", owner, `{"name":"ci",` + ok + `,"owner":"bob"}`, 400, 0},
		{"beyond the owner's role", owner, `{"name":"ci","scopes":[{"role":"admin","repositories":["team/**"]}]}`, 403, 0},
		{"beyond the owner's repositories", owner, `{"name":"ci","scopes":[{"role":"reader","repositories":["**"]}]}`, 403, 0},
		{"beyond the creating token's scope", narrow, `{"name":"ci","scopes":[{"role":"writer","repositories":["team/app"]}]}`, 403, 0},
		{"anonymous", "", `{"name":"ci",` + ok + `}`, 401, 0},
	}
	count := func() int {
		st, err := f.st.AuthState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Tokens)
	}
	for _, c := range cases {
		before := count()
		r := httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(c.body))
		if c.authz != "" {
			r.Header.Set("Authorization", "Bearer "+c.authz)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.code)
			continue
		}
		if c.code != 201 {
			if n := count(); n != before {
				t.Errorf("%s: refused, yet %d tokens stored", c.name, n-before)
			}
			continue
		}
		var ct struct {
			ID      string    `json:"id"`
			Secret  string    `json:"secret"`
			Owner   string    `json:"owner"`
			Hash    string    `json:"hash"`
			Created time.Time `json:"created"`
			Expires time.Time `json:"expires"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &ct); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ct.Secret, tokenPrefix) || ct.Owner != "alice" || ct.Hash != "" || ct.Expires.Sub(ct.Created) != c.life {
			t.Errorf("%s: answer %s", c.name, w.Body)
		}
		st, _ := f.st.AuthState(context.Background())
		sum := sha256.Sum256([]byte(ct.Secret))
		var found bool
		for _, tk := range st.Tokens {
			found = found || tk.ID == ct.ID && tk.Hash == hex.EncodeToString(sum[:])
		}
		if !found {
			t.Errorf("%s: token %s not stored under the secret's SHA-256", c.name, ct.ID)
		}
		if p, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+ct.Secret)); err != nil || p.TokenID != ct.ID {
			t.Errorf("%s: the new token does not sign in: %v", c.name, err)
		}
	}
}

func TestValidUserName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"a.b-c_d", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a:b", false}, {"a b", false}, {"a/b", false},
		{"a@b", false}, {"a\tb", false}, {"a\nb", false}, {"anonymous", false}, {"authenticated", false},
	}
	for _, c := range cases {
		if err := validUserName(c.name); (err == nil) != c.ok {
			t.Errorf("validUserName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	for _, gs := range [][]string{{""}, {"a:b"}, {"a b"}, {strings.Repeat("g", 65)}} {
		if validGroups(gs) == nil {
			t.Errorf("validGroups(%q) accepted", gs)
		}
	}
	if err := validGroups([]string{"ops", "dev-team"}); err != nil {
		t.Error(err)
	}
}

// TestUpdateUserWho covers updateUser's decision: an admin changes anyone;
// a user signed in with its password changes only its own password (not
// its groups, not with an API token); anonymous callers sign in first.
// Every refusal leaves the account unchanged.
func TestUpdateUserWho(t *testing.T) {
	f := newFixture(t, nil)
	f.user("root", false, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	f.user("alice", true, []string{"dev"})
	f.user("bob", true, nil)
	root, _ := f.token("root", time.Hour, scope(RoleAdmin, "**"))
	aliceTok, _ := f.token("alice", time.Hour, scope(RoleReader, "**"))
	mux := http.NewServeMux()
	f.s.Register(mux)
	newPass := `{"password":"another long password"}`
	cases := []struct {
		name, authz, target, body string
		code                      int
	}{
		{"anonymous", "", "alice", newPass, 401},
		{"own password with a token", "Bearer " + aliceTok, "alice", newPass, 403},
		{"own groups", basic("alice", testPassword), "alice", `{"groups":["ops"]}`, 403},
		{"someone else's password", basic("alice", testPassword), "bob", newPass, 403},
		{"short password", basic("alice", testPassword), "alice", `{"password":"short"}`, 400},
		{"nothing to change", basic("alice", testPassword), "alice", `{}`, 400},
		{"admin: unknown user", "Bearer " + root, "nobody", newPass, 404},
		{"admin: bad group", "Bearer " + root, "alice", `{"groups":["a b"]}`, 400},
		{"admin: groups", "Bearer " + root, "bob", `{"groups":["ops"]}`, 200},
		{"own password", basic("alice", testPassword), "alice", newPass, 200},
	}
	state := func() string {
		st, err := f.st.AuthState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st.Users)
		var hashes []string
		for _, u := range st.Users {
			hashes = append(hashes, u.PasswordHash)
		}
		return string(b) + strings.Join(hashes, ",")
	}
	for _, c := range cases {
		before := state()
		r := httptest.NewRequest("PUT", "/api/v1/users/"+c.target, strings.NewReader(c.body))
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.code)
		}
		if changed := state() != before; changed != (c.code == 200) {
			t.Errorf("%s: answered %d, account changed: %v", c.name, w.Code, changed)
		}
	}
	// The new password signs in, the old one no longer does.
	if _, err := f.s.Authenticate(request("GET", "/v2/", basic("alice", "another long password"))); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := f.s.Authenticate(request("GET", "/v2/", basic("alice", testPassword))); err == nil {
		t.Error("old password still signs in")
	}
}

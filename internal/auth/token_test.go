package auth

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/custody-dev/custody/internal/registry"
)

// jwt asks the token endpoint for a registry token with the given
// credentials and scopes.
func (f *fixture) jwt(authz string, scopes ...string) string {
	f.t.Helper()
	w := f.serveToken("GET", authz, url.Values{"scope": scopes}, nil)
	if w.Code != http.StatusOK {
		f.t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	var tr TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		f.t.Fatal(err)
	}
	return tr.Token
}

func (f *fixture) serveToken(method, authz string, query url.Values, form url.Values) *httptest.ResponseRecorder {
	target := TokenPath
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	f.s.ServeToken(w, r)
	return w
}

func accessString(as []Access) string {
	if len(as) == 0 {
		return ""
	}
	return describeAccess(as)
}

// TestGrantAccess covers grant: each requested action is kept only when
// the principal may do it; "*" expands to what it may; unknown actions and
// duplicates drop; the catalog needs pull on "**"; entries with nothing
// granted are left out.
func TestGrantAccess(t *testing.T) {
	alice := newPrincipal("alice", "password", nil, []Scope{scope(RoleWriter, "team/**"), scope(RoleReader, "**")})
	bob := newPrincipal("bob", "password", nil, []Scope{scope(RoleMaintainer, "team/app")})
	cases := []struct {
		name string
		p    *Principal
		want []string // scopes requested
		got  string
	}{
		{"pull and push", alice, []string{"repository:team/app:pull,push"}, "repository:team/app:pull,push"},
		{"push beyond grant", alice, []string{"repository:other:pull,push"}, "repository:other:pull"},
		{"delete not held", alice, []string{"repository:team/app:delete"}, ""},
		{"star", alice, []string{"repository:team/app:*"}, "repository:team/app:pull,push"},
		{"star for maintainer", bob, []string{"repository:team/app:*"}, "repository:team/app:pull,push,delete"},
		{"duplicates and unknown actions", alice, []string{"repository:team/app:pull,pull,frob,push"}, "repository:team/app:pull,push"},
		{"catalog with **", alice, []string{"registry:catalog:*"}, "registry:catalog:*"},
		{"catalog without **", bob, []string{"registry:catalog:*"}, ""},
		{"several", bob, []string{"repository:team/app:pull", "repository:team/other:pull", "registry:catalog:*"}, "repository:team/app:pull"},
		{"nil principal-free anonymous", newPrincipal("anonymous", "none", nil, nil), []string{"repository:team/app:pull"}, ""},
	}
	for _, c := range cases {
		var want []Access
		for _, s := range c.want {
			a, err := ParseScope(s)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, a)
		}
		if got := accessString(grant(c.p, want)); got != c.got {
			t.Errorf("%s: granted %q, want %q", c.name, got, c.got)
		}
	}
}

// TestServeToken covers the token endpoint's requests and answers: GET
// with Basic credentials or none, POST's password grant, the refusals
// (method, service, scope, grant type, credentials), and what the issued
// token carries (issuer, audience, subject, access, lifetime).
func TestServeToken(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TokenTTL = 10 * time.Minute })
	f.user("alice", true, nil, Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"})
	f.grant(Grant{Subject: "anonymous", Role: RoleReader, Repository: "public/**"})
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	many := url.Values{}
	for i := range 65 {
		many.Add("scope", "repository:r"+strings.Repeat("x", i%5)+":pull")
	}
	cases := []struct {
		name        string
		method      string
		authz       string
		query       url.Values
		code        int
		errCode     string // the OAuth error, on refusals
		sub, access string // on success
	}{
		{"password", "GET", basic("alice", testPassword), q("service", "custody", "scope", "repository:team/app:pull,push"), 200, "", "alice", "repository:team/app:pull,push"},
		{"several scopes in one parameter", "GET", basic("alice", testPassword), q("scope", "repository:team/a:pull repository:team/b:push"), 200, "", "alice", "repository:team/a:pull repository:team/b:push"},
		{"beyond grants", "GET", basic("alice", testPassword), q("scope", "repository:other:pull,push"), 200, "", "alice", "no scope"},
		{"offline_token ignored", "GET", basic("alice", testPassword), q("scope", "repository:team/app:pull", "offline_token", "true", "client_id", "docker"), 200, "", "alice", "repository:team/app:pull"},
		{"anonymous", "GET", "", q("scope", "repository:public/x:pull,push"), 200, "", "anonymous", "repository:public/x:pull"},
		{"post password grant", "POST", "", nil, 200, "", "alice", "repository:team/app:push"},
		{"post other grant", "POST", "", nil, 400, "unsupported_grant_type", "", ""},
		{"method", "PUT", "", nil, 405, "invalid_request", "", ""},
		{"other service", "GET", "", q("service", "elsewhere"), 400, "invalid_request", "", ""},
		{"invalid scope", "GET", "", q("scope", "repository:Bad:pull"), 400, "invalid_scope", "", ""},
		{"too many scopes", "GET", "", many, 400, "invalid_scope", "", ""},
		{"wrong password", "GET", basic("alice", "wrong password!"), nil, 401, "invalid_grant", "", ""},
	}
	for _, c := range cases {
		var form url.Values
		switch c.name {
		case "post password grant":
			form = q("grant_type", "password", "username", "alice", "password", testPassword, "scope", "repository:team/app:push")
		case "post other grant":
			form = q("grant_type", "refresh_token", "refresh_token", "x")
		}
		w := f.serveToken(c.method, c.authz, c.query, form)
		if w.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.code)
			continue
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.name, w.Header().Get("Cache-Control"))
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.code != 200 {
			if body["error"] != c.errCode {
				t.Errorf("%s: error %v, want %s", c.name, body["error"], c.errCode)
			}
			if c.code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: no Basic challenge", c.name)
			}
			if c.code == 405 && w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("%s: Allow %q", c.name, w.Header().Get("Allow"))
			}
			continue
		}
		if _, ok := body["refresh_token"]; ok {
			t.Errorf("%s: a refresh token was issued", c.name)
		}
		if body["token"] != body["access_token"] || body["expires_in"] != float64(600) {
			t.Errorf("%s: answer %v", c.name, body)
		}
		var cl claims
		tok, err := jwt.ParseWithClaims(body["token"].(string), &cl, func(*jwt.Token) (any, error) { return f.s.opts.SigningKey.Public(), nil },
			jwt.WithTimeFunc(func() time.Time { return f.now }))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		aud, _ := cl.GetAudience()
		if tok.Method.Alg() != "EdDSA" || cl.Issuer != "custody" || !reflect.DeepEqual([]string(aud), []string{"custody"}) ||
			cl.Subject != c.sub || !cl.ExpiresAt.Time.Equal(f.now.Add(10*time.Minute)) || cl.Access == nil {
			t.Errorf("%s: claims %+v", c.name, cl)
		}
		if got := describeAccess(cl.Access); got != c.access {
			t.Errorf("%s: access %q, want %q", c.name, got, c.access)
		}
	}
}

// TestServeTokenLimited covers the token endpoint's 429: a locked-out name
// gets too_many_requests and Retry-After, not 401.
func TestServeTokenLimited(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LoginFailures = 1 })
	f.user("alice", true, nil)
	if w := f.serveToken("GET", basic("alice", "wrong password!"), nil, nil); w.Code != 401 {
		t.Fatalf("first failure: %d", w.Code)
	}
	w := f.serveToken("GET", basic("alice", testPassword), nil, nil)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "too_many_requests") {
		t.Fatalf("locked out: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// TestOwnToken covers ownToken's verification (EdDSA only, this Service's
// key, issuer, audience, expiry required, iat and nbf) and the principal
// it rebuilds from the current state for each custody_method.
func TestOwnToken(t *testing.T) {
	f := newFixture(t, nil)
	f.user("alice", true, nil, Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"})
	_, tid := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	_, rid := f.token("alice", time.Hour, scope(RoleReader, "team/**"))
	_, otherKey, _ := ed25519.GenerateKey(nil)
	now := f.now
	base := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "custody", "aud": "custody", "sub": "alice", "custody_method": "password",
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(),
			"access": []any{map[string]any{"type": "repository", "name": "team/app", "actions": []string{"pull"}}},
		}
	}
	with := func(kv ...any) jwt.MapClaims {
		c := base()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ours := f.s.opts.SigningKey
	pub := []byte(ours.Public().(ed25519.PublicKey))
	noneTok := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base(), "")
	cases := []struct {
		name string
		tok  string
		sub  string // "" refused
		why  string
	}{
		{"valid", sign(jwt.SigningMethodEdDSA, ours, base(), ""), "alice", ""},
		{"kid does not pick the key", sign(jwt.SigningMethodEdDSA, otherKey, base(), "custody"), "", "signature is invalid"},
		{"another key", sign(jwt.SigningMethodEdDSA, otherKey, base(), ""), "", "signature is invalid"},
		{"HS256 keyed with the public key", sign(jwt.SigningMethodHS256, pub, base(), ""), "", "signing method HS256 is invalid"},
		{"alg none", noneTok, "", "signing method none is invalid"},
		{"other audience", sign(jwt.SigningMethodEdDSA, ours, with("aud", "elsewhere"), ""), "", "audience"},
		{"no audience", sign(jwt.SigningMethodEdDSA, ours, with("aud", nil), ""), "", "aud claim is required"},
		{"other issuer", sign(jwt.SigningMethodEdDSA, ours, with("iss", "elsewhere"), ""), "", "not trusted"},
		{"expired", sign(jwt.SigningMethodEdDSA, ours, with("exp", now.Add(-time.Second).Unix()), ""), "", "expired"},
		{"no expiry", sign(jwt.SigningMethodEdDSA, ours, with("exp", nil), ""), "", "exp claim is required"},
		{"issued in the future", sign(jwt.SigningMethodEdDSA, ours, with("iat", now.Add(time.Hour).Unix()), ""), "", "used before issued"},
		{"not yet valid", sign(jwt.SigningMethodEdDSA, ours, with("nbf", now.Add(time.Hour).Unix()), ""), "", "not valid yet"},
		{"user gone", sign(jwt.SigningMethodEdDSA, ours, with("sub", "ghost"), ""), "", "no longer exists"},
		{"unknown method", sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "root"), ""), "", "unknown kind"},
		{"api token", sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "token", "custody_tid", tid), ""), "alice", ""},
		{"api token of another owner", sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "token", "custody_tid", tid, "sub", "bob"), ""), "", "unknown"},
		{"revoked api token", sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "token", "custody_tid", rid), ""), "", "revoked"},
		{"anonymous", sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "none", "sub", "anonymous"), ""), "anonymous", ""},
	}
	if err := f.st.RevokeToken(t.Context(), rid, now); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		p, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+c.tok))
		if c.sub == "" {
			if err == nil || !errors.Is(err, registry.ErrUnauthenticated) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.why)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if p.Subject != c.sub || !strings.HasPrefix(p.Method, "jwt/") || !p.jwt {
			t.Errorf("%s: principal %s/%s", c.name, p.Subject, p.Method)
		}
	}
	// The JWT narrows: pull on team/app only, although alice writes team/**.
	p, err := f.s.Authenticate(request("GET", "/v2/", "Bearer "+sign(jwt.SigningMethodEdDSA, ours, base(), "")))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Can("team/app", PermPull) || p.check("team/app", PermPush) != lacksJWTAccess || p.check("team/b", PermPull) != lacksJWTAccess || p.check("team/app", PermDelete) != lacksGrant {
		t.Error("the JWT's access does not narrow the grants")
	}
	// Through an API token the token's scope narrows too; the anonymous
	// JWT is anonymous.
	p, _ = f.s.Authenticate(request("GET", "/v2/", "Bearer "+sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "token", "custody_tid", tid,
		"access", []any{map[string]any{"type": "repository", "name": "team/app", "actions": []string{"pull", "push"}}}), "")))
	if p == nil || p.TokenID != tid || p.check("team/app", PermPush) != lacksTokenScope {
		t.Errorf("JWT of an API token: %+v", p)
	}
	p, _ = f.s.Authenticate(request("GET", "/v2/", "Bearer "+sign(jwt.SigningMethodEdDSA, ours, with("custody_method", "none", "sub", "anonymous"), "")))
	if p == nil || !p.Anonymous() || p.Method != "jwt/none" {
		t.Errorf("anonymous JWT: %+v", p)
	}
}

// TestOwnTokenRoundTrip covers issue and ownToken together: a token from
// the endpoint signs in until TokenTTL has passed, and a removed grant
// takes effect at once, not when the JWT expires.
func TestOwnTokenRoundTrip(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TokenTTL = time.Minute })
	g := Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/**"}
	f.user("alice", true, nil, g, Grant{Subject: "user:alice", Role: RoleReader, Repository: "**"})
	tok := f.jwt(basic("alice", testPassword), "repository:team/app:pull,push", "registry:catalog:*")
	use := func() (*Principal, error) { return f.s.Authenticate(request("GET", "/v2/", "Bearer "+tok)) }
	p, err := use()
	// Push in the JWT covers moving tags as far as the JWT goes; alice's
	// writer role still refuses the move.
	if err != nil || p.Method != "jwt/password" || !p.Can("team/app", PermPush) || p.check("team/app", PermMoveTag) != lacksGrant || !p.Can("", PermPull) {
		t.Fatalf("fresh token: %v %+v", err, p)
	}
	// The catalog access is no pull on every repository.
	if p.check("team/other", PermPull) != lacksJWTAccess {
		t.Error("catalog access widened to repositories")
	}
	if err := f.st.DeleteGrant(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if p, err = use(); err != nil || p.check("team/app", PermPush) != lacksGrant || !p.Can("team/app", PermPull) {
		t.Fatalf("removed grant still honoured: %v", err)
	}
	f.now = f.now.Add(time.Minute + time.Second)
	if _, err := use(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}

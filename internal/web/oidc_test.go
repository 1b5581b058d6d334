package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
)

// idp is an OIDC identity provider on loopback: discovery, an
// authorization endpoint that signs its user straight in, a token
// endpoint that checks the client, the redirect URI and the PKCE verifier
// (S256) and issues real ES256-signed ID tokens, and its JWKS.
type idp struct {
	t      *testing.T
	hs     *httptest.Server
	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	codes  map[string]grantReq
	claims map[string]any // added to (or replacing) the ID token's claims
}

type grantReq struct{ nonce, challenge, redirect string }

const (
	idpClient   = "custody-web"
	idpSecret   = "s3cret-of-the-client"
	idpRedirect = "http://custody.test/signin/oidc/callback"
)

func newIDP(t *testing.T) *idp {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{t: t, key: key, codes: map[string]grantReq{}, claims: map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.hs.URL, "jwks_uri": p.hs.URL + "/jwks",
			"authorization_endpoint": p.hs.URL + "/authorize", "token_endpoint": p.hs.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"code_challenge_methods_supported":      []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != idpClient || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("redirect_uri") != idpRedirect ||
			!strings.Contains(q.Get("scope"), "openid") {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := base64.RawURLEncoding.EncodeToString(sha256.New().Sum([]byte(q.Get("state"))))[:20]
		p.mu.Lock()
		p.codes[code] = grantReq{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		p.mu.Lock()
		g, known := p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code")) // a code is used once
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case id != idpClient || secret != idpSecret:
			tokenErr(w, "invalid_client")
			return
		case !known || r.PostFormValue("grant_type") != "authorization_code" || r.PostFormValue("redirect_uri") != g.redirect:
			tokenErr(w, "invalid_grant")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			tokenErr(w, "invalid_grant") // the PKCE verifier does not match
			return
		}
		now := time.Now()
		c := jwt.MapClaims{"iss": p.hs.URL, "aud": idpClient, "sub": "u-1234", "preferred_username": "octocat",
			"email": "octocat@example.com", "nonce": g.nonce, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		p.mu.Lock()
		for k, v := range p.claims {
			c[k] = v
		}
		p.mu.Unlock()
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = "k1"
		raw, err := tok.SignedString(p.key)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": raw})
	})
	p.hs = httptest.NewServer(mux)
	t.Cleanup(p.hs.Close)
	return p
}

func tokenErr(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (p *idp) set(k string, v any) {
	p.mu.Lock()
	p.claims[k] = v
	p.mu.Unlock()
}

// oidcSite is a server trusting p for browser sign-in: octocat becomes
// "idp:octocat" in group "dev", reader on team/**.
func oidcSite(t *testing.T, p *idp) *site {
	secret := t.TempDir() + "/client-secret"
	if err := writeFile(secret, idpSecret+"\n"); err != nil {
		t.Fatal(err)
	}
	return newSite(t, true, func(c *config.Config) {
		c.Auth.OIDC = []config.OIDCIssuer{{Issuer: p.hs.URL, Name: "Example ID", ClientID: idpClient, ClientSecretFile: secret, RedirectURL: idpRedirect,
			Rules: []config.OIDCRule{{Claims: map[string]string{"preferred_username": "*"}, Subject: "idp:{preferred_username}", Groups: []string{"dev"},
				Grants: []config.RoleGrant{{Role: "reader", Repositories: []string{"team/**"}}}}}}}
	})
}

// oidcSignIn walks the browser through the sign-in up to the callback and
// returns the callback's answer. tamper may change the callback's query.
func (b *browser) oidcSignIn(tamper func(url.Values)) (*http.Response, string) {
	b.t.Helper()
	_, page := b.do("GET", "/signin?next=/repositories", nil)
	if !strings.Contains(page, `href="/signin/oidc/0?next=%2frepositories"`) || !strings.Contains(page, "Sign in with Example ID") {
		b.t.Fatalf("the sign-in page offers no OIDC sign-in:\n%s", page)
	}
	resp, _ := b.do("GET", "/signin/oidc/0?next=/repositories", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "/authorize?") {
		b.t.Fatalf("start: %d %q", resp.StatusCode, loc)
	}
	// The provider signs the user in and sends the browser back.
	r, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	r.Body.Close()
	back, err := url.Parse(r.Header.Get("Location"))
	if err != nil || r.StatusCode != http.StatusFound {
		b.t.Fatalf("authorize: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	q := back.Query()
	if tamper != nil {
		tamper(q)
	}
	return b.do("GET", "/signin/oidc/callback?"+q.Encode(), nil)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookieName(false) && c.MaxAge >= 0 && c.Value != "" {
			return c
		}
	}
	return nil
}

func TestOIDCSignIn(t *testing.T) {
	p := newIDP(t)
	s := oidcSite(t, p)
	b := s.browser()
	resp, body := b.oidcSignIn(nil)
	if resp.StatusCode != 200 || sessionCookie(resp) == nil || !strings.Contains(body, `content="0;url=/repositories"`) {
		t.Fatalf("callback: %d, cookie %v\n%s", resp.StatusCode, sessionCookie(resp), body)
	}
	checkSecurityHeaders(t, "/signin/oidc/callback", resp.Header)
	resp, body = b.do("GET", "/repositories", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Signed in as <strong>idp:octocat</strong>") || strings.Contains(body, `href="/admin"`) {
		t.Fatalf("signed in with OIDC: %d\n%s", resp.StatusCode, body)
	}
	// The API sees the identity the rule gave, as a session.
	req, _ := http.NewRequest("GET", s.url+"/api/v1/whoami", nil)
	for _, c := range b.jar.Cookies(mustURL(s.url)) {
		req.AddCookie(c)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var who auth.Whoami
	if err := json.NewDecoder(r.Body).Decode(&who); err != nil || who.Subject != "idp:octocat" || who.Method != auth.MethodSessionOIDC ||
		len(who.Groups) != 1 || who.Groups[0] != "dev" || len(who.Grants) != 1 || who.Grants[0].Role != "reader" {
		t.Fatalf("whoami = %+v, %v", who, err)
	}
}

func TestOIDCSignInRefusals(t *testing.T) {
	p := newIDP(t)
	s := oidcSite(t, p)
	cases := []struct {
		name   string
		claims map[string]any
		tamper func(url.Values)
		code   int
	}{
		{"another sign-in's state", nil, func(q url.Values) { q.Set("state", "forged") }, http.StatusBadRequest},
		{"no state", nil, func(q url.Values) { q.Del("state") }, http.StatusBadRequest},
		{"a made-up code", nil, func(q url.Values) { q.Set("code", "made-up") }, http.StatusUnauthorized},
		{"the provider refused", nil, func(q url.Values) { q.Set("error", "access_denied") }, http.StatusUnauthorized},
		{"a token for another client", map[string]any{"aud": "someone-else"}, nil, http.StatusUnauthorized},
		{"a token with another nonce", map[string]any{"nonce": "replayed"}, nil, http.StatusUnauthorized},
		{"a token of another issuer", map[string]any{"iss": "https://evil.example"}, nil, http.StatusUnauthorized},
		{"an expired token", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}, nil, http.StatusUnauthorized},
		{"no rule matches", map[string]any{"preferred_username": nil}, nil, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.mu.Lock()
			p.claims = map[string]any{}
			p.mu.Unlock()
			for k, v := range tc.claims {
				p.set(k, v)
			}
			b := s.browser()
			b.t = t
			resp, body := b.oidcSignIn(tc.tamper)
			if resp.StatusCode != tc.code || sessionCookie(resp) != nil {
				t.Fatalf("%d, session cookie %v, want %d and none\n%s", resp.StatusCode, sessionCookie(resp), tc.code, body)
			}
			if resp, _ := b.do("GET", "/repositories", nil); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("after a refused sign-in, /repositories: %d, want the sign-in redirect", resp.StatusCode)
			}
		})
	}
	// A code is good once: replaying the callback signs nobody in.
	p.mu.Lock()
	p.claims = map[string]any{}
	p.mu.Unlock()
	b := s.browser()
	var replay url.Values
	if resp, _ := b.oidcSignIn(func(q url.Values) {
		replay = url.Values{}
		for k, v := range q {
			replay[k] = v
		}
	}); sessionCookie(resp) == nil {
		t.Fatal("the sign-in before the replay failed")
	}
	if resp, _ := s.browser().do("GET", "/signin/oidc/callback?"+replay.Encode(), nil); resp.StatusCode != http.StatusBadRequest || sessionCookie(resp) != nil {
		t.Fatalf("replayed callback in another browser: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

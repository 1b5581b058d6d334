package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tlog"
)

// authServer is a server with authentication on (the default), served on
// loopback.
type authServer struct {
	t     *testing.T
	srv   *server.Server
	hs    *httptest.Server
	host  string
	admin string // the admin password
	data  string
}

func newAuthServer(t *testing.T, mutate func(*config.Config)) *authServer {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	// Tests sign in with passwords alone unless they turn the MFA policy on.
	cfg.Auth.MFA.Roles = nil
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	pw, err := os.ReadFile(filepath.Join(cfg.Data, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	return &authServer{t: t, srv: s, hs: hs, host: strings.TrimPrefix(hs.URL, "http://"), admin: strings.TrimSpace(string(pw)), data: cfg.Data}
}

// call sends an API request with credentials ("user:pass" for Basic, or a
// bearer token) and returns the status and body.
func (a *authServer) call(method, path, cred string, body any) (int, string, http.Header) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.hs.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if user, pass, ok := strings.Cut(cred, ":"); ok {
		req.SetBasicAuth(user, pass)
	} else if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (a *authServer) must(method, path, cred string, body any, want int) string {
	a.t.Helper()
	code, b, _ := a.call(method, path, cred, body)
	if code != want {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// user creates an account with a password and groups, and grants.
func (a *authServer) user(name string, groups []string, grants ...auth.Grant) string {
	a.t.Helper()
	pw := name + "-password-0123"
	a.must("POST", "/api/v1/users", "admin:"+a.admin, auth.UserRequest{Name: name, Password: pw, Groups: &groups}, http.StatusCreated)
	for _, g := range grants {
		a.must("POST", "/api/v1/grants", "admin:"+a.admin, g, http.StatusCreated)
	}
	return name + ":" + pw
}

func (a *authServer) token(cred string, role auth.Role, expires string, repos ...string) auth.CreatedToken {
	a.t.Helper()
	b := a.must("POST", "/api/v1/tokens", cred, auth.TokenRequest{Name: "test", Scopes: []auth.Scope{{Role: role, Repositories: repos}}, ExpiresIn: expires}, http.StatusCreated)
	var t auth.CreatedToken
	if err := json.Unmarshal([]byte(b), &t); err != nil {
		a.t.Fatal(err)
	}
	return t
}

func basic(cred string) authn.Authenticator {
	u, p, _ := strings.Cut(cred, ":")
	return &authn.Basic{Username: u, Password: p}
}

// push writes a random image to repo:tag through the Docker token flow.
func (a *authServer) push(repo, tag string, au authn.Authenticator) (v1.Image, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		a.t.Fatal(err)
	}
	ref, err := name.ParseReference(a.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		a.t.Fatal(err)
	}
	return img, remote.Write(ref, img, remote.WithAuth(au))
}

func (a *authServer) digestOf(repo, tag string) string {
	a.t.Helper()
	ref, _ := name.ParseReference(a.host+"/"+repo+":"+tag, name.Insecure)
	d, err := remote.Head(ref, remote.WithAuth(basic("admin:"+a.admin)))
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return ""
		}
		a.t.Fatal(err)
	}
	return d.Digest.String()
}

// audited reports whether the audit log holds an entry with action and
// result whose JSON contains every one of subs.
func (a *authServer) audited(action, result string, subs ...string) bool {
	a.t.Helper()
	l := a.srv.AuditLog()
	l.Flush()
	leaves, err := l.Leaves(context.Background(), 0, l.Size())
	if err != nil {
		a.t.Fatal(err)
	}
next:
	for _, lf := range leaves {
		e, err := tlog.ParseEntry(lf.Entry)
		if err != nil {
			a.t.Fatal(err)
		}
		if e.Action != action || e.Result != result {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(string(lf.Entry), s) {
				continue next
			}
		}
		return true
	}
	return false
}

func (a *authServer) mustAudit(action, result string, subs ...string) {
	a.t.Helper()
	if !a.audited(action, result, subs...) {
		a.t.Fatalf("no audit entry %s/%s with %q", action, result, subs)
	}
}

// awaitAudit is mustAudit for entries a background worker writes after the
// effect a test can observe (signing on push stores the signature, then
// audits it): it polls until the entry appears or 10 s pass.
func (a *authServer) awaitAudit(action, result string, subs ...string) {
	a.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !a.audited(action, result, subs...); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			a.t.Fatalf("no audit entry %s/%s with %q", action, result, subs)
		}
	}
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestAuthOnByDefault(t *testing.T) {
	a := newAuthServer(t, nil)
	st, err := os.Stat(filepath.Join(a.data, "admin-password"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password: %v %v", err, st.Mode())
	}
	code, _, h := a.call("GET", "/v2/", "", nil)
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="http://`+a.host+`/auth/token",service="custody"`) {
		t.Fatalf("anonymous /v2/: %d %q", code, h.Get("WWW-Authenticate"))
	}
	code, _, h = a.call("GET", "/v2/team/app/tags/list", "", nil)
	if code != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `scope="repository:team/app:pull"`) {
		t.Fatalf("anonymous tags: %d %q", code, h.Get("WWW-Authenticate"))
	}
	if code, _, _ := a.call("GET", "/api/v1/audit/entries", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous audit read: %d", code)
	}
	// The admin pushes through the token flow, and the push is audited
	// under its name.
	if _, err := a.push("team/app", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	a.mustAudit("manifest.put", "ok", `"actor":"admin"`, `"auth":"jwt/password"`)
	a.mustAudit("login", "ok", `"actor":"admin"`, "repository:team/app:")
	// Basic directly on /v2/ works too (curl-style).
	a.must("GET", "/v2/team/app/tags/list", "admin:"+a.admin, nil, http.StatusOK)
	// A second start keeps the account and its password.
	if err := a.srv.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data = a.data
	cfg.Auth.MFA.Roles = nil
	s2, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	pw, _ := os.ReadFile(filepath.Join(a.data, "admin-password"))
	if strings.TrimSpace(string(pw)) != a.admin {
		t.Fatal("second start changed the admin password")
	}
}

func TestAuthNoneOnlyOnLoopback(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Addr = "0.0.0.0:5000"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("auth none on 0.0.0.0: %v", err)
	}
	cfg.Addr = "[::1]:5000"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// forged builds a JWT with the given header and claims; sign signs the
// "header.payload" string.
func forged(header, claims map[string]any, sign func(string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign(in))
}

func tokenKey(t *testing.T, data string) ed25519.PrivateKey {
	b, err := os.ReadFile(filepath.Join(data, "token-key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

func TestForgedTokensRefused(t *testing.T) {
	a := newAuthServer(t, nil)
	if _, err := a.push("team/app", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	before := a.digestOf("team/app", "v1")
	now := time.Now()
	claims := map[string]any{
		"iss": "custody", "aud": "custody", "sub": "admin", "custody_method": "password",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Hour).Unix(),
		"access": []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"pull", "push", "delete"}}},
	}
	key := tokenKey(t, a.data)
	pub := key.Public().(ed25519.PublicKey)
	expired := map[string]any{}
	for k, v := range claims {
		expired[k] = v
	}
	expired["exp"] = now.Add(-time.Minute).Unix()
	expired["iat"] = now.Add(-10 * time.Minute).Unix()
	validExpired, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(expired)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	pemPub, _ := x509.MarshalPKIXPublicKey(pub)
	hs256pem, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pemPub}))
	// An attacker's own Ed25519 key, embedded as a JWK in the header.
	apub, apriv, _ := ed25519.GenerateKey(nil)
	embedded := forged(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "custody",
		"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(apub)}},
		claims, func(in string) []byte { return ed25519.Sign(apriv, []byte(in)) })
	cases := map[string]string{
		"alg none":             forged(map[string]any{"alg": "none", "typ": "JWT"}, claims, func(string) []byte { return nil }),
		"alg none, uppercase":  forged(map[string]any{"alg": "NONE", "typ": "JWT"}, claims, func(string) []byte { return nil }),
		"HS256 with raw pub":   hs256,
		"HS256 with PEM pub":   hs256pem,
		"embedded JWK":         embedded,
		"expired":              validExpired,
		"garbage":              "a.b.c",
		"unknown API token":    "cst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"untrusted issuer JWT": forged(map[string]any{"alg": "EdDSA"}, map[string]any{"iss": "https://evil.example", "sub": "admin"}, func(in string) []byte { return ed25519.Sign(apriv, []byte(in)) }),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodDelete, a.hs.URL+"/v2/team/app/manifests/"+before, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "UNAUTHORIZED") {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if a.digestOf("team/app", "v1") != before {
				t.Fatal("the forged token changed something")
			}
		})
	}
	a.mustAudit("login", "denied", "invalid token")
	a.mustAudit("login", "denied", "unknown API token")
	a.mustAudit("login", "denied", "not trusted")
	// The genuine article works, for contrast.
	good, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	a.must("GET", "/v2/team/app/tags/list", good, nil, http.StatusOK)
}

func TestTokensScopedRevokedExpired(t *testing.T) {
	a := newAuthServer(t, nil)
	alice := a.user("alice", nil, auth.Grant{Subject: "user:alice", Role: auth.RoleWriter, Repository: "**"})
	if _, err := a.push("b/app", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	bDigest := a.digestOf("b/app", "v1")
	img, err := a.push("a/app", "v1", basic(alice))
	if err != nil {
		t.Fatal(err)
	}
	// A token limited to repository a/**.
	tokA := a.token(alice, auth.RoleWriter, "1h", "a/**")
	if _, err := a.push("a/app", "v2", &authn.Basic{Username: "alice", Password: tokA.Secret}); err != nil {
		t.Fatalf("token on its own repository: %v", err)
	}
	// ... used on repository b: refused, nothing written.
	if _, err := a.push("b/app", "v2", &authn.Basic{Username: "token", Password: tokA.Secret}); statusOf(err) != http.StatusForbidden && statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("token for a/** pushing to b/app: %v", err)
	}
	if a.digestOf("b/app", "v2") != "" {
		t.Fatal("b/app:v2 exists")
	}
	a.mustAudit("authorize", "denied", `"actor":"alice"`, `"repo":"b/app"`)
	// ... and via a cross-repository mount into a/ from b/ (needs pull on b).
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	code, body, _ := a.call("POST", "/v2/a/app/blobs/uploads/?mount="+bDigest+"&from=b/app", tokA.Secret, nil)
	if code != http.StatusForbidden {
		t.Fatalf("mount from b with an a/** token: %d %s", code, body)
	}
	a.mustAudit("authorize", "denied", `"repo":"a/app"`, "may not pull b/app")
	_ = ld
	// A token cannot hold more than its owner.
	if code, body, _ := a.call("POST", "/api/v1/tokens", alice, auth.TokenRequest{Name: "x", Scopes: []auth.Scope{{Role: auth.RoleAdmin, Repositories: []string{"**"}}}}); code != http.StatusForbidden {
		t.Fatalf("token beyond its owner: %d %s", code, body)
	}
	a.mustAudit("token.create", "denied", `"actor":"alice"`)
	// Revoked: refused on the next request, also through a JWT issued
	// while it was valid.
	tr := &authn.Basic{Username: "token", Password: tokA.Secret}
	ref, _ := name.ParseReference(a.host+"/a/app:v1", name.Insecure)
	rt, err := transport.NewWithContext(context.Background(), ref.Context().Registry, tr, http.DefaultTransport, []string{ref.Scope(transport.PullScope)})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}
	get := func() int {
		resp, err := hc.Get(a.hs.URL + "/v2/a/app/tags/list")
		if err != nil {
			// On a 401 the client asks the token endpoint again, which
			// refuses the revoked token.
			if strings.Contains(err.Error(), "401") && strings.Contains(err.Error(), "revoked") {
				return http.StatusUnauthorized
			}
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != http.StatusOK {
		t.Fatalf("JWT before revocation: %d", c)
	}
	a.must("DELETE", "/api/v1/tokens/"+tokA.ID, alice, nil, http.StatusNoContent)
	a.mustAudit("token.revoke", "ok", tokA.ID)
	if c := get(); c != http.StatusUnauthorized {
		t.Fatalf("JWT of a revoked token: %d", c)
	}
	if code, _, _ := a.call("GET", "/v2/a/app/tags/list", tokA.Secret, nil); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
	a.mustAudit("login", "denied", "was revoked")
	// Expired.
	short := a.token(alice, auth.RoleReader, "1s", "a/**")
	time.Sleep(1100 * time.Millisecond)
	if code, _, _ := a.call("GET", "/v2/a/app/tags/list", short.Secret, nil); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}
	a.mustAudit("login", "denied", "expired")
	// The list shows the revoked one, never a secret.
	b := a.must("GET", "/api/v1/tokens", alice, nil, http.StatusOK)
	if strings.Contains(b, tokA.Secret) || strings.Contains(b, tokA.Secret[4:]) || !strings.Contains(b, `"revoked"`) {
		t.Fatalf("token list: %s", b)
	}
}

func TestCreateOnlyCannotMoveTags(t *testing.T) {
	a := newAuthServer(t, nil)
	w := a.user("writer1", nil, auth.Grant{Subject: "user:writer1", Role: auth.RoleWriter, Repository: "apps/*"})
	p := a.user("promoter1", nil, auth.Grant{Subject: "user:promoter1", Role: auth.RolePromoter, Repository: "apps/*"})
	for _, tag := range []string{"latest", "prod"} {
		if _, err := a.push("apps/web", tag, basic(w)); err != nil {
			t.Fatalf("creating %s: %v", tag, err)
		}
		before := a.digestOf("apps/web", tag)
		_, err := a.push("apps/web", tag, basic(w))
		if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "promoter") {
			t.Fatalf("writer moving %s: %v", tag, err)
		}
		if a.digestOf("apps/web", tag) != before {
			t.Fatalf("tag %s moved", tag)
		}
		a.mustAudit("tag.move", "denied", `"actor":"writer1"`, `"tag":"`+tag+`"`)
		// A promoter may.
		if _, err := a.push("apps/web", tag, basic(p)); err != nil {
			t.Fatalf("promoter moving %s: %v", tag, err)
		}
		if a.digestOf("apps/web", tag) == before {
			t.Fatalf("promoter did not move %s", tag)
		}
	}
	// Writers may not delete.
	d := a.digestOf("apps/web", "latest")
	if code, _, _ := a.call("DELETE", "/v2/apps/web/manifests/"+d, w, nil); code != http.StatusForbidden {
		t.Fatalf("writer delete: %d", code)
	}
	if a.digestOf("apps/web", "latest") != d {
		t.Fatal("deleted")
	}
}

func TestNoSelfGrantedAdmin(t *testing.T) {
	a := newAuthServer(t, nil)
	m := a.user("mallory", nil, auth.Grant{Subject: "user:mallory", Role: auth.RoleMaintainer, Repository: "**"})
	grants := a.must("GET", "/api/v1/grants", "admin:"+a.admin, nil, http.StatusOK)
	for _, try := range []func() (int, string, http.Header){
		func() (int, string, http.Header) {
			return a.call("POST", "/api/v1/grants", m, auth.Grant{Subject: "user:mallory", Role: auth.RoleAdmin, Repository: "**"})
		},
		func() (int, string, http.Header) {
			return a.call("PUT", "/api/v1/users/mallory", m, map[string]any{"groups": []string{"admins"}})
		},
		func() (int, string, http.Header) {
			return a.call("POST", "/api/v1/users", m, auth.UserRequest{Name: "mallory2", Password: "long-enough-password"})
		},
		func() (int, string, http.Header) {
			return a.call("DELETE", "/api/v1/grants?subject=user:admin&role=admin&repository=**", m, nil)
		},
	} {
		if code, body, _ := try(); code != http.StatusForbidden {
			t.Fatalf("escalation: %d %s", code, body)
		}
	}
	if now := a.must("GET", "/api/v1/grants", "admin:"+a.admin, nil, http.StatusOK); now != grants {
		t.Fatalf("grants changed:\n%s\n%s", grants, now)
	}
	a.mustAudit("grant.create", "denied", `"actor":"mallory"`)
	a.mustAudit("user.update", "denied", `"actor":"mallory"`)
	// Her own password she may change.
	a.must("PUT", "/api/v1/users/mallory", m, auth.UserRequest{Password: "a-new-long-password"}, http.StatusOK)
	a.must("GET", "/api/v1/whoami", "mallory:a-new-long-password", nil, http.StatusOK)
}

func TestBruteForceRateLimited(t *testing.T) {
	a := newAuthServer(t, func(c *config.Config) { c.Auth.LoginFailures = 5; c.Auth.LoginWindow = config.Duration(time.Minute) })
	for i := range 5 {
		code, _, _ := a.call("GET", "/v2/", fmt.Sprintf("admin:wrong-%d", i), nil)
		if code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	// Locked out now, even with the right password, and at the token
	// endpoint too.
	code, body, h := a.call("GET", "/v2/", "admin:"+a.admin, nil)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, "TOOMANYREQUESTS") {
		t.Fatalf("after 5 failures: %d %s %v", code, body, h)
	}
	if code, _, _ := a.call("GET", "/auth/token?service=custody", "admin:"+a.admin, nil); code != http.StatusTooManyRequests {
		t.Fatalf("token endpoint after 5 failures: %d", code)
	}
	a.mustAudit("login", "denied", `"actor":"admin"`, "wrong password")
	a.mustAudit("login", "denied", "too many failed sign-ins")
}

func TestRemovedGroupHonouredNextRequest(t *testing.T) {
	a := newAuthServer(t, nil)
	a.must("POST", "/api/v1/grants", "admin:"+a.admin, auth.Grant{Subject: "group:dev", Role: auth.RoleWriter, Repository: "dev/**"}, http.StatusCreated)
	bob := a.user("bob", []string{"dev"})
	if _, err := a.push("dev/app", "v1", basic(bob)); err != nil {
		t.Fatal(err)
	}
	// A JWT issued while bob was in dev.
	ref, _ := name.ParseReference(a.host+"/dev/app:v1", name.Insecure)
	rt, err := transport.NewWithContext(context.Background(), ref.Context().Registry, basic(bob), http.DefaultTransport, []string{ref.Scope(transport.PushScope)})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}
	resp, err := hc.Get(a.hs.URL + "/v2/dev/app/tags/list")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %v %v", err, resp)
	}
	resp.Body.Close()
	a.must("PUT", "/api/v1/users/bob", "admin:"+a.admin, map[string]any{"groups": []string{}}, http.StatusOK)
	a.mustAudit("user.update", "ok", "bob", "groups []")
	resp, err = hc.Get(a.hs.URL + "/v2/dev/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after removal, same JWT: %d", resp.StatusCode)
	}
	if _, err := a.push("dev/app", "v2", basic(bob)); statusOf(err) != http.StatusForbidden {
		t.Fatalf("push after removal: %v", err)
	}
	a.mustAudit("authorize", "denied", `"actor":"bob"`, "dev/app")
}

func TestAnonymousReadOptIn(t *testing.T) {
	a := newAuthServer(t, func(c *config.Config) {
		c.Auth.Grants = []config.Grant{{Subjects: []string{"anonymous"}, Role: "reader", Repositories: []string{"public/**"}}}
	})
	if _, err := a.push("public/tool", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.push("private/tool", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(a.host+"/public/tool:v1", name.Insecure)
	if _, err := remote.Image(ref, remote.WithAuth(authn.Anonymous)); err != nil {
		t.Fatalf("anonymous pull of public: %v", err)
	}
	ref, _ = name.ParseReference(a.host+"/private/tool:v1", name.Insecure)
	if _, err := remote.Image(ref, remote.WithAuth(authn.Anonymous)); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous pull of private: %v", err)
	}
	if _, err := a.push("public/tool", "v2", authn.Anonymous); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous push: %v", err)
	}
}

func TestAPIPermissions(t *testing.T) {
	a := newAuthServer(t, nil)
	r := a.user("reader1", nil, auth.Grant{Subject: "user:reader1", Role: auth.RoleReader, Repository: "**"})
	au := a.user("auditor1", nil, auth.Grant{Subject: "user:auditor1", Role: auth.RoleAuditor, Repository: "**"})
	if _, err := a.push("team/app", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	d := a.digestOf("team/app", "v1")
	if code, _, _ := a.call("GET", "/api/v1/audit/entries", r, nil); code != http.StatusForbidden {
		t.Fatalf("reader reads audit: %d", code)
	}
	a.must("GET", "/api/v1/audit/entries", au, nil, http.StatusOK)
	a.must("GET", "/api/v1/audit/key", "", nil, http.StatusOK)
	if code, _, _ := a.call("PUT", "/api/v1/hold/team/app/@"+d, r, nil); code != http.StatusForbidden {
		t.Fatalf("reader places hold: %d", code)
	}
	a.mustAudit("hold", "denied", `"actor":"reader1"`)
	if code, _, _ := a.call("POST", "/api/v1/gc", au, nil); code != http.StatusForbidden {
		t.Fatalf("auditor runs gc: %d", code)
	}
	if code, _, _ := a.call("GET", "/api/v1/nonexistent", r, nil); code != http.StatusForbidden {
		t.Fatalf("unknown endpoint: %d", code)
	}
	a.must("PUT", "/api/v1/hold/team/app/@"+d, "admin:"+a.admin, nil, http.StatusOK)
	var who auth.Whoami
	if err := json.Unmarshal([]byte(a.must("GET", "/api/v1/whoami", r, nil, http.StatusOK)), &who); err != nil || who.Subject != "reader1" || len(who.Grants) != 1 {
		t.Fatalf("whoami: %v %+v", err, who)
	}
}

// TestInvalidRepositoryPatternRefused: a grant or token scope whose
// pattern has no meaning (internal/repopattern) is refused with 400 naming
// the fix, and nothing is stored.
func TestInvalidRepositoryPatternRefused(t *testing.T) {
	a := newAuthServer(t, nil)
	grants := a.must("GET", "/api/v1/grants", "admin:"+a.admin, nil, http.StatusOK)
	tokens := a.must("GET", "/api/v1/tokens", "admin:"+a.admin, nil, http.StatusOK)
	for pat, want := range map[string]string{
		"team/[ab]": "not allowed",
		"Team/*":    "not allowed",
		"team/a**":  "whole path segment",
		"team//a":   "empty path segment",
	} {
		code, body, _ := a.call("POST", "/api/v1/grants", "admin:"+a.admin, auth.Grant{Subject: "user:bob", Role: auth.RoleReader, Repository: pat})
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("grant on %q: %d %s, want 400 saying %q", pat, code, body, want)
		}
		code, body, _ = a.call("POST", "/api/v1/tokens", "admin:"+a.admin, map[string]any{"name": "x", "scopes": []map[string]any{{"role": "reader", "repositories": []string{pat}}}})
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("token scope %q: %d %s, want 400 saying %q", pat, code, body, want)
		}
	}
	if now := a.must("GET", "/api/v1/grants", "admin:"+a.admin, nil, http.StatusOK); now != grants {
		t.Errorf("grants changed by refused requests:\n%s\nwas\n%s", now, grants)
	}
	if now := a.must("GET", "/api/v1/tokens", "admin:"+a.admin, nil, http.StatusOK); now != tokens {
		t.Errorf("tokens changed by refused requests:\n%s\nwas\n%s", now, tokens)
	}
}

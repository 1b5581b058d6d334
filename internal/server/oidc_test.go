package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/custody-dev/custody/internal/auth/oidctest"
	"github.com/custody-dev/custody/internal/config"
)

// fakeIssuer is an OIDC issuer on loopback: discovery document and JWKS,
// like a CI system's workload-identity token service.
type fakeIssuer struct {
	hs  *httptest.Server
	key *ecdsa.PrivateKey
	kid string
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	o := oidctest.New(t, "ci-key-1")
	return &fakeIssuer{hs: o.Server, key: o.Key, kid: o.KeyID}
}

func (f *fakeIssuer) claims(extra map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": f.hs.URL, "aud": "custody", "sub": "repo:org/app:ref:refs/heads/main",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(10 * time.Minute).Unix(),
		"repository": "org/app", "ref": "refs/heads/main", "workflow_ref": "org/app/.github/workflows/release.yml@refs/heads/main",
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func (f *fakeIssuer) sign(t *testing.T, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = f.kid
	s, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCWorkloadIdentity(t *testing.T) {
	iss := newFakeIssuer(t)
	a := newAuthServer(t, func(c *config.Config) {
		c.Auth.OIDC = []config.OIDCIssuer{{
			Issuer: iss.hs.URL,
			Rules: []config.OIDCRule{{
				Claims:  map[string]string{"repository": "org/*", "ref": "refs/heads/main"},
				Subject: "ci:{repository}@{ref}",
				Groups:  []string{"ci"},
				Grants:  []config.RoleGrant{{Role: "writer", Repositories: []string{"apps/{repository}", "apps/app"}}},
			}},
		}}
	})
	good := iss.sign(t, iss.claims(nil))
	// The job pushes with its own token and no stored secret, through the
	// Docker token flow (the token as the password of user "token").
	if _, err := a.push("apps/app", "v1", &authn.Basic{Username: "token", Password: good}); err != nil {
		t.Fatalf("push with the workload identity token: %v", err)
	}
	a.mustAudit("manifest.put", "ok", `"actor":"ci:org/app@refs/heads/main"`, `"auth":"jwt/oidc"`)
	// And directly as a bearer token.
	a.must("GET", "/v2/apps/app/tags/list", good, nil, http.StatusOK)
	// Outside its grants: denied.
	if _, err := a.push("other/app", "v1", &authn.Basic{Username: "token", Password: good}); statusOf(err) != http.StatusForbidden {
		t.Fatalf("push outside the rule's grants: %v", err)
	}

	// Attacks, each refused with 401 and audited.
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	embedded := jwt.NewWithClaims(jwt.SigningMethodES256, iss.claims(nil))
	embedded.Header["kid"] = iss.kid // the trusted key's kid ...
	embedded.Header["jwk"] = jose.JSONWebKey{Key: &attacker.PublicKey, KeyID: iss.kid, Algorithm: "ES256"}
	embeddedTok, err := embedded.SignedString(attacker) // ... but the attacker's signature
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&iss.key.PublicKey)
	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, iss.claims(nil))
	hmac.Header["kid"] = iss.kid
	hmacTok, _ := hmac.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	h, _ := json.Marshal(map[string]any{"alg": "none", "kid": iss.kid})
	c, _ := json.Marshal(iss.claims(nil))
	noneTok := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
	cases := map[string]string{
		"embedded JWK with trusted kid": embeddedTok,
		"HS256 with the public key":     hmacTok,
		"alg none":                      noneTok,
		"expired":                       iss.sign(t, iss.claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-time.Hour).Unix()})),
		"wrong audience":                iss.sign(t, iss.claims(map[string]any{"aud": "someone-else"})),
		"no rule matches (branch)":      iss.sign(t, iss.claims(map[string]any{"ref": "refs/heads/feature"})),
		"no rule matches (repository)":  iss.sign(t, iss.claims(map[string]any{"repository": "evil/app"})),
		// The claim glob "org/*" admits the value "org/*", but a claim
		// value is literal in "apps/{repository}": no grant of apps/org/*.
		"claim value holding a wildcard": iss.sign(t, iss.claims(map[string]any{"repository": "org/*"})),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if code, body, _ := a.call("GET", "/v2/apps/app/tags/list", tok, nil); code != http.StatusUnauthorized {
				t.Fatalf("bearer: %d %s", code, body)
			}
			if _, err := a.push("apps/app", "v1", &authn.Basic{Username: "token", Password: tok}); statusOf(err) != http.StatusUnauthorized {
				t.Fatalf("token flow: %v", err)
			}
		})
	}
	if a.digestOf("apps/app", "v1") == "" {
		t.Fatal("lost apps/app:v1")
	}
	a.mustAudit("login", "denied", "invalid OIDC token")
	a.mustAudit("login", "denied", "no rule of issuer")
	// The identity can't hold API tokens: its token is the credential.
	if code, body, _ := a.call("POST", "/api/v1/tokens", good, map[string]any{"name": "x", "scopes": []map[string]any{{"role": "reader", "repositories": []string{"apps/app"}}}}); code != http.StatusForbidden || !strings.Contains(body, "OIDC") {
		t.Fatalf("OIDC identity creating a token: %d %s", code, body)
	}
}

// Package oidctest is an OIDC issuer on loopback for tests: discovery and
// a JWKS with one ES256 key, so tokens signed with Key verify as a CI
// system's workload-identity tokens do.
package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a running issuer: its URL is Server.URL, its signing key Key,
// published under the key ID it was started with.
type Issuer struct {
	Server *httptest.Server
	Key    *ecdsa.PrivateKey
	// KeyID is the key ID Key is published under; Sign puts it in the
	// token's header.
	KeyID string
}

// New starts an issuer publishing a new P-256 key as kid; it stops with t.
func New(t testing.TB, kid string) *Issuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{Key: k, KeyID: kid}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.Server.URL, "jwks_uri": iss.Server.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	})
	iss.Server = httptest.NewServer(mux)
	t.Cleanup(iss.Server.Close)
	return iss
}

// Sign returns claims as a compact ES256 JWT signed with the issuer's key
// under its key ID.
func (iss *Issuer) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = iss.KeyID
	s, err := tok.SignedString(iss.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// GitHubJob is the claim set of a GitHub Actions job's ID token from this
// issuer for repository (owner/name), audience aud, running
// .github/workflows/release.yml on refs/heads/main of a private repository
// on a GitHub-hosted runner, valid for five minutes from now. Tests change
// or add claims on the map it returns.
func (iss *Issuer) GitHubJob(repository, aud string) jwt.MapClaims {
	now := time.Now()
	owner, _, _ := strings.Cut(repository, "/")
	workflow := repository + "/.github/workflows/release.yml@refs/heads/main"
	const sha = "0123456789abcdef0123456789abcdef01234567"
	return jwt.MapClaims{
		"iss": iss.Server.URL, "aud": aud, "sub": "repo:" + repository + ":ref:refs/heads/main",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(5 * time.Minute).Unix(),
		"repository": repository, "repository_owner": owner, "repository_id": "42", "repository_owner_id": "7",
		"ref": "refs/heads/main", "sha": sha, "event_name": "push",
		"workflow": "release", "workflow_ref": workflow, "workflow_sha": sha,
		"job_workflow_ref": workflow, "job_workflow_sha": sha,
		"runner_environment": "github-hosted", "run_id": "1001", "run_attempt": "1", "repository_visibility": "private",
	}
}

// Workflow is the signing identity custody certifies for a GitHubJob
// token of repository: the workflow under the issuer's own origin (only
// GitHub's own issuer names workflows on github.com).
func (iss *Issuer) Workflow(repository string) string {
	return iss.Server.URL + "/" + repository + "/.github/workflows/release.yml@refs/heads/main"
}

package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/custody-dev/custody/internal/ctlog"
)

func testCA(t testing.TB) *CA {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := CreateRoot(k, "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(k, []*x509.Certificate{root}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIdentityGitLab: a GitLab CI token gets GitLab's layout of Fulcio's
// extensions, as sigstore-go reads them.
func TestIdentityGitLab(t *testing.T) {
	id, err := IdentityOf(map[string]string{
		"iss": "https://gitlab.example.org", "sub": "project_path:platform/app:ref_type:branch:ref:main",
		"ci_config_ref_uri": "gitlab.example.org/platform/app//.gitlab-ci.yml@refs/heads/main", "ci_config_sha": "abc",
		"project_path": "platform/app", "namespace_path": "platform", "project_id": "5", "namespace_id": "2",
		"sha": "def", "ref": "main", "ref_type": "branch", "pipeline_source": "push", "job_id": "99",
		"runner_environment": "self-hosted", "project_visibility": "internal",
	})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := testCA(t).Issue(id, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := certificate.ParseExtensions(chain[0].Extensions)
	if err != nil {
		t.Fatal(err)
	}
	signer := "https://gitlab.example.org/platform/app//.gitlab-ci.yml@refs/heads/main"
	want := certificate.Extensions{
		Issuer: "https://gitlab.example.org", BuildSignerURI: signer, BuildSignerDigest: "abc", RunnerEnvironment: "self-hosted",
		SourceRepositoryURI: "https://gitlab.example.org/platform/app", SourceRepositoryDigest: "def", SourceRepositoryRef: "refs/heads/main",
		SourceRepositoryIdentifier: "5", SourceRepositoryOwnerURI: "https://gitlab.example.org/platform", SourceRepositoryOwnerIdentifier: "2",
		BuildConfigURI: signer, BuildConfigDigest: "abc", BuildTrigger: "push", RunInvocationURI: "https://gitlab.example.org/platform/app/-/jobs/99",
		SourceRepositoryVisibilityAtSigning: "internal",
	}
	if ext != want {
		t.Errorf("extensions\n got %+v\nwant %+v", ext, want)
	}
	if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != signer {
		t.Errorf("SAN %v", chain[0].URIs)
	}
}

// TestIdentityKinds: email tokens are named by their verified email (the
// proof signs it), others by a URI subject; anything else is refused.
func TestIdentityKinds(t *testing.T) {
	id, err := IdentityOf(map[string]string{"iss": "https://id.example", "sub": "123", "email": "dev@example.org", "email_verified": "true"})
	if err != nil || id.Email != "dev@example.org" || id.Subject != "dev@example.org" || id.URI != "" {
		t.Errorf("email token: %+v %v", id, err)
	}
	if _, err := IdentityOf(map[string]string{"iss": "https://id.example", "sub": "123", "email": "dev@example.org"}); err == nil {
		t.Error("an unverified email was accepted")
	}
	id, err = IdentityOf(map[string]string{"iss": "https://k8s.example", "sub": "https://k8s.example/ns/ci/sa/builder"})
	if err != nil || id.URI != "https://k8s.example/ns/ci/sa/builder" || id.Subject != id.URI {
		t.Errorf("URI subject: %+v %v", id, err)
	}
	for _, c := range []map[string]string{
		{"iss": "https://id.example", "sub": "opaque-123"},
		{"iss": "https://id.example"},
		{"sub": "https://x.example/y"},
	} {
		if _, err := IdentityOf(c); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
	// GitHub Enterprise Server: the server is the issuer's host.
	id, err = IdentityOf(map[string]string{"iss": "https://ghe.example/_services/token", "sub": "x", "job_workflow_ref": "o/r/.github/workflows/b.yml@refs/heads/main"})
	if err != nil || id.URI != "https://ghe.example/o/r/.github/workflows/b.yml@refs/heads/main" {
		t.Errorf("GHES: %+v %v", id, err)
	}
	// A claim value is never read as a template.
	id, _ = IdentityOf(map[string]string{"iss": "https://i", "sub": "x", "job_workflow_ref": "{sub}"})
	if id.URI != "https://github.com/{sub}" {
		t.Errorf("claim value expanded: %s", id.URI)
	}
}

// TestIssueValidity: certificates last the configured validity and never
// outlive the CA certificate.
func TestIssueValidity(t *testing.T) {
	c := testCA(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := Identity{Issuer: "https://i", URI: "https://i/x"}
	chain, err := c.Issue(id, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if d := chain[0].NotAfter.Sub(chain[0].NotBefore); d != DefaultValidity || chain[0].IsCA {
		t.Errorf("validity %s, CA %v", d, chain[0].IsCA)
	}
	c.now = func() time.Time { return time.Now().Add(59 * time.Minute) }
	if _, err := c.Issue(id, &k.PublicKey); err == nil || !strings.Contains(err.Error(), "renew") {
		t.Errorf("issued beyond the CA's validity: %v", err)
	}
	if _, err := New(k, c.Chain(), 0); err == nil {
		t.Error("a CA certificate for another key was accepted")
	}
}

// TestRequestProof: the proof of possession must sign the subject with
// the requested key; a CSR proves it by its own signature.
func TestRequestProof(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := v2Body(t, k, "repo:acme/app", "tok")
	r, err := ParseRequestV2(body, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify("repo:acme/app"); err != nil {
		t.Errorf("good proof: %v", err)
	}
	if _, err := r.Verify("repo:acme/other"); err == nil {
		t.Error("a proof over another subject was accepted")
	}
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	v1, _ := json.Marshal(map[string]any{"certificateSigningRequest": csr})
	r, err = ParseRequestV1(v1, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify("anything"); err != nil {
		t.Errorf("CSR: %v", err)
	}
	der[len(der)-3] ^= 1 // break the CSR's signature
	bad, _ := json.Marshal(map[string]any{"certificateSigningRequest": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if r, err := ParseRequestV1(bad, "tok"); err == nil {
		if _, err := r.Verify("anything"); err == nil {
			t.Error("a CSR with a broken signature was accepted")
		}
	}
	if _, err := ParseRequestV1(v1, ""); err == nil {
		t.Error("a request without a token was accepted")
	}
}

func v2Body(t testing.TB, k *ecdsa.PrivateKey, subject, token string) []byte {
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	h := sha256.Sum256([]byte(subject))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	b, err := json.Marshal(map[string]any{
		"credentials": map[string]string{"oidcIdentityToken": token},
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]string{"algorithm": "ECDSA", "content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
			"proofOfPossession": base64.StdEncoding.EncodeToString(sig),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseRequest: the certificate request parsers never panic, and
// whatever they accept has a token and either a supported key with a
// proof or a CSR.
func FuzzParseRequest(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(v2Body(f, k, "sub", "tok"), "")
	f.Add([]byte(`{"publicKey":{"content":"AAAA"},"signedEmailAddress":"AAAA"}`), "tok")
	f.Add([]byte(`{"certificateSigningRequest":"LS0tLS1CRUdJTg=="}`), "tok")
	f.Add([]byte(`{"credentials":{},"publicKeyRequest":{"publicKey":null}}`), "")
	f.Add([]byte(`null`), "tok")
	f.Fuzz(func(t *testing.T, body []byte, bearer string) {
		for _, parse := range []func([]byte, string) (*Request, error){ParseRequestV1, ParseRequestV2} {
			r, err := parse(body, bearer)
			if err != nil {
				continue
			}
			if r.Token == "" || (r.CSR == nil && (r.PublicKey == nil || len(r.Proof) == 0)) {
				t.Fatalf("accepted an incomplete request: %+v", r)
			}
			if r.CSR == nil {
				if err := checkKey(r.PublicKey); err != nil {
					t.Fatalf("accepted an unsupported key: %v", err)
				}
			}
			_, _ = r.Verify("sub")
		}
	})
}

// FuzzIdentityOf: claims never panic the identity mapping.
func FuzzIdentityOf(f *testing.F) {
	f.Add("https://i", "x", "o/r/.github/workflows/b.yml@refs/heads/main", "", "")
	f.Add("https://gitlab.example", "x", "", "gitlab.example/a//b.yml@x", "")
	f.Add("https://i", "x", "{", "}", "a@b")
	f.Fuzz(func(t *testing.T, iss, sub, jwr, gl, email string) {
		_, _ = IdentityOf(map[string]string{"iss": iss, "sub": sub, "job_workflow_ref": jwr, "ci_config_ref_uri": gl, "email": email, "email_verified": "true"})
	})
}

// BenchmarkIssue measures issuing one certificate (identity mapping,
// proof of possession check, signing) with a file key.
func BenchmarkIssue(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchmarkIssue(b, testCA(b)) })
	// With a CT log: a precertificate, its SCT, then the certificate.
	b.Run("sct", func(b *testing.B) {
		c := testCA(b)
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		l, err := ctlog.New(k)
		if err != nil {
			b.Fatal(err)
		}
		benchmarkIssue(b, c.WithCTLog(l))
	})
}

func benchmarkIssue(b *testing.B, c *CA) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := v2Body(b, k, "repo:acme/app", "tok")
	claims := map[string]string{"iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app",
		"job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main", "repository": "acme/app", "sha": "abc", "ref": "refs/heads/main"}
	for b.Loop() {
		r, err := ParseRequestV2(body, "")
		if err != nil {
			b.Fatal(err)
		}
		id, err := IdentityOf(claims)
		if err != nil {
			b.Fatal(err)
		}
		pub, err := r.Verify(id.Subject)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Issue(id, pub); err != nil {
			b.Fatal(err)
		}
	}
}

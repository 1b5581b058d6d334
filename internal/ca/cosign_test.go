package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/custody-dev/custody/internal/auth/oidctest"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
)

// githubClaims are a GitHub Actions job's token claims for acme/app
// (audience sigstore, as cosign asks), with extra set on top.
func githubClaims(iss *oidctest.Issuer, extra map[string]any) jwt.MapClaims {
	c := iss.GitHubJob("acme/app", "sigstore")
	for k, v := range extra {
		c[k] = v
	}
	return c
}

type caServer struct {
	srv      *testserver.Server
	base     string
	caPEM    string
	ctlogPub string
	issuer   *oidctest.Issuer
	dir      string
}

const (
	caPassword  = "ca passphrase for tests"
	keyPassword = "ring passphrase for tests"
)

// custody runs the custody command with the CA's and the ring's passphrases.
func custody(t *testing.T, args ...string) string {
	t.Helper()
	c := exec.Command(testserver.Binary(t), args...)
	c.Env = append(os.Environ(), "CUSTODY_CA_PASSWORD="+caPassword, "CUSTODY_KEY_PASSWORD="+keyPassword)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startCA runs a real custody serve with a CA created by 'custody ca
// create', its CT log ('custody ca ctlog create'), a key ring with a
// time-stamp authority, and the issuer trusted (audience sigstore, as
// cosign requests). extraCA is appended to the ca: section.
func startCA(t *testing.T, extraCA ...string) *caServer {
	s := testserver.StartSigstore(t, testserver.SigstoreOptions{CTLog: true, CAExtra: strings.Join(extraCA, "")})
	return &caServer{srv: s.Server, base: s.Base, caPEM: s.CACert, ctlogPub: s.CTLogPub, issuer: s.Issuer, dir: s.Dir}
}

// TestCosignKeylessSignAndVerify: cosign v2 gets a certificate from
// custody's CA with a workload's token, signs an image with it, and
// cosign verify accepts the signature for the workflow identity and
// issuer with the CA chain and the CT log's key, SCT checked (no
// --insecure-ignore-sct), and with the server's trusted_root.json (cosign
// v2 and v3); it refuses another identity and another CT log's key.
// cosign v3 signs with the server's signing_config.json (CA and TSA) and
// verifies that bundle with the trusted root.
func TestCosignKeylessSignAndVerify(t *testing.T) {
	cosign := testserver.Client(t, "cosign")
	s := startCA(t)
	admin := &authn.Basic{Username: "admin", Password: s.srv.AdminPassword()}
	ref, err := name.ParseReference(s.srv.Host()+"/apps/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithAuth(admin)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	image := s.srv.Host() + "/apps/app@" + d.String()
	docker := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + s.srv.AdminPassword()))
	if err := os.WriteFile(filepath.Join(docker, "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, s.srv.Host(), auth), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+docker, "TUF_ROOT="+t.TempDir(), "SIGSTORE_NO_CACHE=true")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The token in a file: cosign takes a long argument for a path.
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(s.issuer.Sign(t, githubClaims(s.issuer, nil))), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("sign", "--fulcio-url", s.base, "--identity-token", tok, "--tlog-upload=false", "--insecure-skip-verify", "--allow-insecure-registry", "--yes", image); err != nil {
		t.Fatalf("cosign sign: %v\n%s\n%s", err, out, s.srv.Logs())
	}
	// The SCT is checked, against the CT log key given (cosign v2's
	// SIGSTORE_CT_LOG_PUBLIC_KEY_FILE) or the trusted root's ctlogs.
	trustedRoot := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trustedRoot, []byte(custody(t, "key", "trust-root", "--format", "sigstore", "--server", s.base)), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(identity string, extra ...string) (string, error) {
		args := append([]string{"verify", "--certificate-identity", identity, "--certificate-oidc-issuer", s.issuer.Server.URL,
			"--insecure-ignore-tlog", "--allow-insecure-registry"}, extra...)
		return run(append(args, image)...)
	}
	env = append(env, "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE="+s.ctlogPub)
	out, err := verify(s.issuer.Workflow("acme/app"), "--certificate-chain", s.caPEM)
	if err != nil {
		t.Fatalf("cosign verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, "acme/app") {
		t.Errorf("cosign verify output lacks the workflow's claims:\n%s", out)
	}
	if out, err := verify("https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-chain", s.caPEM); err == nil {
		t.Fatalf("cosign verify accepted another identity:\n%s", out)
	}
	// Another CT log's key: the SCT does not verify, cosign refuses.
	other := filepath.Join(t.TempDir(), "other.pub")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&otherKey.PublicKey)
	if err := os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	env[len(env)-1] = "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + other
	if out, err := verify(s.issuer.Workflow("acme/app"), "--certificate-chain", s.caPEM); err == nil || !strings.Contains(out, "ctfe public key") {
		t.Fatalf("cosign verify with another CT log's key: %v\n%s", err, out)
	}
	env = env[:len(env)-1]
	// The server's trusted_root.json alone: cosign v2 and v3.
	if out, err := verify(s.issuer.Workflow("acme/app"), "--trusted-root", trustedRoot); err != nil {
		t.Fatalf("cosign verify --trusted-root: %v\n%s", err, out)
	}
	cosign3 := testserver.Client(t, "cosign3")
	cmd := exec.Command(cosign3, "verify", "--trusted-root", trustedRoot, "--certificate-identity", s.issuer.Workflow("acme/app"),
		"--certificate-oidc-issuer", s.issuer.Server.URL, "--insecure-ignore-tlog", "--allow-insecure-registry", image)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign v3 verify --trusted-root: %v\n%s", err, out)
	}
	// cosign v3 signs with the server's signing_config.json: the
	// certificate from its CA, the time-stamp from its TSA.
	signingConfig := filepath.Join(t.TempDir(), "signing_config.json")
	if err := os.WriteFile(signingConfig, []byte(custody(t, "key", "signing-config", "--server", s.base)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(cosign3, "sign", "--signing-config", signingConfig, "--trusted-root", trustedRoot, "--identity-token", tok,
		"--allow-insecure-registry", "--yes", image)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign v3 sign --signing-config: %v\n%s", err, out)
	}
	// ...and verifies that bundle (certificate, SCT, time-stamp) with the
	// trusted root; only the transparency log is still missing.
	cmd = exec.Command(cosign3, "verify", "--trusted-root", trustedRoot, "--certificate-identity", s.issuer.Workflow("acme/app"),
		"--certificate-oidc-issuer", s.issuer.Server.URL, "--insecure-ignore-tlog", "--new-bundle-format", "--allow-insecure-registry", image)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign v3 verify of its own keyless bundle: %v\n%s", err, out)
	}
	s.mustAudit(t, "ok", s.issuer.Workflow("acme/app"))
}

// TestSigningCertRefusals: refused requests get 4xx, no certificate, and
// an audit entry each; a good request over the same API is issued with
// Fulcio's extensions, which sigstore-go reads back.
func TestSigningCertRefusals(t *testing.T) {
	s := startCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := githubClaims(s.issuer, nil)
	sub := claims["sub"].(string)
	good := s.issuer.Sign(t, claims)
	stranger := oidctest.New(t, "k1")
	cases := []struct {
		name, token, subject string
		status               int
		reason               string
	}{
		{"unconfigured issuer", stranger.Sign(t, githubClaims(stranger, nil)), sub, 401, "is not trusted"},
		{"expired token", s.issuer.Sign(t, githubClaims(s.issuer, map[string]any{"iat": time.Now().Add(-time.Hour).Unix(), "nbf": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-30 * time.Minute).Unix()})), sub, 401, "expired"},
		{"wrong audience", s.issuer.Sign(t, githubClaims(s.issuer, map[string]any{"aud": "custody"})), sub, 401, "audience"},
		{"wrong proof of possession", good, "someone-else", 400, "proof of possession"},
		{"forged token", (&oidctest.Issuer{Server: s.issuer.Server, Key: key, KeyID: "k1"}).Sign(t, githubClaims(s.issuer, nil)), sub, 401, "invalid OIDC token"},
	}
	for _, c := range cases {
		status, body := s.requestV2(t, c.token, key, c.subject)
		if status != c.status || strings.Contains(body, "BEGIN CERTIFICATE") {
			t.Errorf("%s: %d %s, want %d and no certificate", c.name, status, body, c.status)
		}
		s.mustAudit(t, map[int]string{400: "invalid", 401: "denied"}[c.status], c.reason)
	}
	if n := s.count(t, "ok"); n != 0 {
		t.Fatalf("%d certificates issued for refused requests", n)
	}

	status, body := s.requestV2(t, good, key, sub)
	if status != http.StatusOK {
		t.Fatalf("good request: %d %s", status, body)
	}
	var resp struct {
		SignedCertificateEmbeddedSct struct {
			Chain struct{ Certificates []string }
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.SignedCertificateEmbeddedSct.Chain.Certificates) != 2 {
		t.Fatalf("response %s: %v", body, err)
	}
	chain, err := ca.ParseChain([]byte(strings.Join(resp.SignedCertificateEmbeddedSct.Chain.Certificates, "")))
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != ca.DefaultValidity {
		t.Errorf("validity %s, want %s", got, ca.DefaultValidity)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != s.issuer.Workflow("acme/app") {
		t.Errorf("SAN %v, want %s", leaf.URIs, s.issuer.Workflow("acme/app"))
	}
	if !samePublicKey(leaf.PublicKey, &key.PublicKey) {
		t.Error("the certificate is not for the requested key")
	}
	ext, err := certificate.ParseExtensions(leaf.Extensions)
	if err != nil {
		t.Fatal(err)
	}
	want := certificate.Extensions{
		Issuer:                              s.issuer.Server.URL,
		GithubWorkflowTrigger:               "push",
		GithubWorkflowSHA:                   "0123456789abcdef0123456789abcdef01234567",
		GithubWorkflowName:                  "release",
		GithubWorkflowRepository:            "acme/app",
		GithubWorkflowRef:                   "refs/heads/main",
		BuildSignerURI:                      s.issuer.Workflow("acme/app"),
		BuildSignerDigest:                   "0123456789abcdef0123456789abcdef01234567",
		RunnerEnvironment:                   "github-hosted",
		SourceRepositoryURI:                 s.issuer.Server.URL + "/acme/app",
		SourceRepositoryDigest:              "0123456789abcdef0123456789abcdef01234567",
		SourceRepositoryRef:                 "refs/heads/main",
		SourceRepositoryIdentifier:          "42",
		SourceRepositoryOwnerURI:            s.issuer.Server.URL + "/acme",
		SourceRepositoryOwnerIdentifier:     "7",
		BuildConfigURI:                      s.issuer.Workflow("acme/app"),
		BuildConfigDigest:                   "0123456789abcdef0123456789abcdef01234567",
		BuildTrigger:                        "push",
		RunInvocationURI:                    s.issuer.Server.URL + "/acme/app/actions/runs/1001/attempts/1",
		SourceRepositoryVisibilityAtSigning: "private",
	}
	if ext != want {
		t.Errorf("extensions\n got %+v\nwant %+v", ext, want)
	}
	// The trust bundle is the CA chain, and the certificate chains to it.
	res, err := http.Get(s.base + "/api/v2/trustBundle")
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	caPEM, _ := os.ReadFile(s.caPEM)
	if !strings.Contains(string(tb), strings.TrimSpace(strings.ReplaceAll(string(caPEM), "\n", `\n`))) {
		t.Errorf("trust bundle %s lacks the CA certificate", tb)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, CurrentTime: leaf.NotBefore}); err != nil {
		t.Errorf("the certificate does not chain to the CA: %v", err)
	}
	s.mustAudit(t, "ok", s.issuer.Workflow("acme/app"))
}

func samePublicKey(a, b crypto.PublicKey) bool {
	x, _ := x509.MarshalPKIXPublicKey(a)
	y, _ := x509.MarshalPKIXPublicKey(b)
	return bytes.Equal(x, y)
}

// requestV2 asks for a certificate over Fulcio's v2 API, proving
// possession by signing subject.
func (s *caServer) requestV2(t *testing.T, token string, key *ecdsa.PrivateKey, subject string) (int, string) {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	h := sha256.Sum256([]byte(subject))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	body, _ := json.Marshal(map[string]any{
		"credentials": map[string]string{"oidcIdentityToken": token},
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]string{"algorithm": "ECDSA", "content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
			"proofOfPossession": base64.StdEncoding.EncodeToString(sig),
		},
	})
	res, err := http.Post(s.base+"/api/v2/signingCert", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// entries returns the audit log's ca.issue entries with result.
func (s *caServer) entries(t *testing.T, result string) []tlog.Entry {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/audit/entries", nil)
	req.SetBasicAuth("admin", s.srv.AdminPassword())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out tlog.EntriesResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	var es []tlog.Entry
	for _, x := range out.Entries {
		e, err := tlog.ParseEntry([]byte(x.Entry))
		if err != nil {
			t.Fatal(err)
		}
		if e.Action == "ca.issue" && e.Result == result {
			es = append(es, e)
		}
	}
	return es
}

func (s *caServer) count(t *testing.T, result string) int { return len(s.entries(t, result)) }

// mustAudit polls (the audit log is written after the answer) until an
// entry ca.issue/result whose reason contains reason appears.
func (s *caServer) mustAudit(t *testing.T, result, reason string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, e := range s.entries(t, result) {
			if strings.Contains(e.Reason, reason) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry ca.issue/%s with %q", result, reason)
		}
	}
}

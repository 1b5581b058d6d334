package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
)

// get fetches path without credentials.
func (s *caServer) get(t *testing.T, path string) []byte {
	t.Helper()
	res, err := http.Get(s.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s %s", path, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return b
}

// TestTrustDocuments: a server with authentication on serves
// trusted_root.json and signing_config.json without credentials (and
// 'custody key trust-root --format sigstore' / 'custody key
// signing-config' print the same); sigstore-go reads both. After a CA
// rotation (the old certificate in ca.retired) and a TSA replacement, the
// old CA is there with its window closed at the rotation and both TSA
// chains with theirs; the signing configuration names the current CA and
// TSA at the server's URL. A certificate the server issues carries an SCT
// that sigstore-go verifies against the served root, and its SHA-256 is
// in the audit log.
func TestTrustDocuments(t *testing.T) {
	oldDir := t.TempDir()
	oldKey, oldCert := filepath.Join(oldDir, "ca.key"), filepath.Join(oldDir, "ca.pem")
	custody(t, "ca", "create", "--key", oldKey, "--cert", oldCert, "--name", "retired CA")
	rotated := time.Now().UTC().Truncate(time.Second)
	s := startCA(t, fmt.Sprintf("  retired:\n    - certificate: %s\n      until: %s\n", oldCert, rotated.Format(time.RFC3339)))
	// A second TSA chain: the ring keeps the first.
	if err := s.srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	custody(t, "key", "tsa", "create", "--keys", filepath.Join(s.srv.Data, "keys"))
	s.srv.Restart()
	s.base = "http://" + s.srv.Host()

	trJSON := s.get(t, "/api/v1/trust/trusted_root.json")
	scJSON := s.get(t, "/api/v1/trust/signing_config.json")
	if cli := custody(t, "key", "trust-root", "--format", "sigstore", "--server", s.base); strings.TrimSpace(cli) != strings.TrimSpace(string(trJSON)) {
		t.Errorf("custody key trust-root --format sigstore printed\n%s\nnot the served\n%s", cli, trJSON)
	}
	if cli := custody(t, "key", "signing-config", "--server", s.base); strings.TrimSpace(cli) != strings.TrimSpace(string(scJSON)) {
		t.Errorf("custody key signing-config printed\n%s\nnot the served\n%s", cli, scJSON)
	}
	tr, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatalf("sigstore-go refused trusted_root.json: %v\n%s", err, trJSON)
	}
	var doc map[string]any
	if err := json.Unmarshal(trJSON, &doc); err != nil || doc["mediaType"] != "application/vnd.dev.sigstore.trustedroot+json;version=0.1" {
		t.Fatalf("media type %v, %v", doc["mediaType"], err)
	}
	cas := tr.FulcioCertificateAuthorities()
	if len(cas) != 2 {
		t.Fatalf("%d CAs, want the retired and the current one", len(cas))
	}
	retired, current := cas[0].(*root.FulcioCertificateAuthority), cas[1].(*root.FulcioCertificateAuthority)
	if retired.Root.Subject.CommonName != "retired CA" || !retired.ValidityPeriodEnd.Equal(rotated) {
		t.Errorf("retired CA %s until %s, want until %s", retired.Root.Subject.CommonName, retired.ValidityPeriodEnd, rotated)
	}
	if !current.ValidityPeriodEnd.IsZero() || current.URI != s.base {
		t.Errorf("current CA until %s at %q", current.ValidityPeriodEnd, current.URI)
	}
	if n := len(tr.TimestampingAuthorities()); n != 2 {
		t.Errorf("%d TSAs, want both chains", n)
	}
	for _, ta := range tr.TimestampingAuthorities() {
		sta := ta.(*root.SigstoreTimestampingAuthority)
		if sta.ValidityPeriodStart.IsZero() || sta.ValidityPeriodEnd.IsZero() {
			t.Errorf("TSA window %s..%s not closed", sta.ValidityPeriodStart, sta.ValidityPeriodEnd)
		}
	}
	if n := len(tr.CTLogs()); n != 1 {
		t.Errorf("%d CT logs, want 1", n)
	}

	sc, err := root.NewSigningConfigFromJSON(scJSON)
	if err != nil {
		t.Fatalf("sigstore-go refused signing_config.json: %v\n%s", err, scJSON)
	}
	caSvc, err := root.SelectService(sc.FulcioCertificateAuthorityURLs(), []uint32{1}, time.Now())
	if err != nil || caSvc.URL != s.base {
		t.Errorf("CA service %+v, %v; want %s", caSvc, err, s.base)
	}
	tsas, err := root.SelectServices(sc.TimestampAuthorityURLs(), sc.TimestampAuthorityURLsConfig(), []uint32{1}, time.Now())
	if err != nil || len(tsas) != 1 || tsas[0].URL != s.base+"/api/v1/timestamp" {
		t.Errorf("TSA services %+v, %v", tsas, err)
	}

	// A certificate issued now (Fulcio v2 API) embeds an SCT that
	// sigstore-go verifies with the served trusted root.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, body := s.requestV2(t, s.issuer.Sign(t, githubClaims(s.issuer, nil)), k, "repo:acme/app:ref:refs/heads/main")
	if status != http.StatusOK {
		t.Fatalf("signingCert: %d %s", status, body)
	}
	var resp struct {
		SCT struct {
			Chain struct {
				Certificates []string `json:"certificates"`
			} `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	chain, err := ca.ParseChain([]byte(strings.Join(resp.SCT.Chain.Certificates, "")))
	if err != nil || len(chain) != 2 {
		t.Fatalf("chain: %v (%d certificates)", err, len(chain))
	}
	if err := verify.VerifySignedCertificateTimestamp([][]*x509.Certificate{chain}, 1, tr); err != nil {
		t.Fatalf("the issued certificate's SCT does not verify with the served trusted root: %v", err)
	}
	// The certificate is on record in the tamper-evident audit log.
	s.mustAudit(t, "ok", fmt.Sprintf("sha256 %x", sha256.Sum256(chain[0].Raw)))
}

// TestCTLogCreateRefusals: 'custody ca ctlog create' replaces no key and no
// public key file, and needs a passphrase; a refusal leaves nothing behind.
func TestCTLogCreateRefusals(t *testing.T) {
	dir := t.TempDir()
	run := func(env []string, args ...string) (string, error) {
		c := exec.Command(testserver.Binary(t), append([]string{"ca", "ctlog", "create"}, args...)...)
		c.Env = append(os.Environ(), env...)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	withPass := []string{"CUSTODY_CA_PASSWORD=" + caPassword}
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh")
	for _, tc := range []struct {
		name, want string
		env        []string
		args       []string
	}{
		{"no key", "give one of --key or --pkcs11", withPass, nil},
		{"both", "give one of --key or --pkcs11", withPass, []string{"--key", fresh + ".key", "--pkcs11", "pkcs11:object=x"}},
		{"no passphrase", "CUSTODY_CA_PASSWORD", []string{"CUSTODY_CA_PASSWORD="}, []string{"--key", fresh + ".key", "--public", fresh + ".pub"}},
		{"existing key", "file exists", withPass, []string{"--key", existing, "--public", fresh + ".pub"}},
		{"existing public key", "refusing to replace", withPass, []string{"--key", fresh + ".key", "--public", existing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.env, tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("got %v\n%s\nwant a refusal mentioning %q", err, out, tc.want)
			}
			if b, _ := os.ReadFile(existing); string(b) != "keep me" {
				t.Fatal("an existing file was replaced")
			}
			for _, f := range []string{fresh + ".key", fresh + ".pub"} {
				if _, err := os.Stat(f); err == nil {
					t.Fatalf("%s was written by a refused command", f)
				}
			}
		})
	}
	// And it works: a P-256 public key is printed.
	out, err := run(withPass, "--key", fresh+".key")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pub, err := key.ParsePublicKey([]byte(out))
	if err != nil {
		t.Fatalf("the printed public key: %v\n%s", err, out)
	}
	if ec, ok := pub.(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("public key %T", pub)
	}
}

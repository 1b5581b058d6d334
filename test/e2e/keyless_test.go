package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/auth/oidctest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/timestamp"
)

// keylessPath is the workflow every keyless test signs as. Its identity
// is on the issuer's own origin: only GitHub's real issuer is certified as
// https://github.com/... (internal/ca binds identities to their issuer's
// host), and the test issuer runs on loopback.
const keylessPath = "/acme/app/.github/workflows/release.yml@refs/heads/main"

// keylessEnv is a running custody serve with a key ring, a time-stamp
// authority and a certificate authority, a loopback OIDC issuer whose
// tokens it trusts (audience sigstore), and a trust root holding the
// ring's keys, its TSA and the CA.
type keylessEnv struct {
	srv       *testserver.Server
	bin       string
	base      string
	issuer    *oidctest.Issuer
	caPEM     string // the CA chain file
	tsaPEM    string // the TSA chain file
	trustRoot string // custody's trust-root file with certificateAuthorities
	home      string // cosign's HOME, with docker credentials for the admin
	work      string
}

func startKeyless(t *testing.T) *keylessEnv {
	t.Helper()
	work := t.TempDir()
	e := &keylessEnv{bin: testserver.Binary(t), issuer: oidctest.New(t, "k1"), work: work, home: t.TempDir()}
	iss := e.issuer.Server.URL
	s := testserver.StartSigstore(t, testserver.SigstoreOptions{Issuer: e.issuer, Config: fmt.Sprintf(`projects:
  - repositories: "apps/**"
    environments:
      - name: dev
        gate:
          rules:
            - use: signed_by_identity
              params:
                identity: %s
                issuer: %s
                repository: %s/acme/app
            - name: hosted-runner
              expr: "signatures.exists(s, s.certificate[?'runnerEnvironment'].orValue('') == 'github-hosted')"
              message: signed on a GitHub-hosted runner
`, iss+keylessPath, iss, iss)})
	e.srv, e.base, e.caPEM = s.Server, s.Base, s.CACert
	// cosign reads registry credentials from its docker config.
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + e.srv.AdminPassword()))
	if err := os.MkdirAll(filepath.Join(e.home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.home, ".docker", "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, e.srv.Host(), auth), 0o600); err != nil {
		t.Fatal(err)
	}
	// The server's trust root lists its keys, its TSA and its CA.
	b := e.get(t, "/api/v1/keys")
	tr, err := key.ParseTrustRoot(b)
	if err != nil || len(tr.CertificateAuthorities) != 1 || len(tr.TimestampAuthorities) != 1 {
		t.Fatalf("trust root %v: %s", err, b)
	}
	e.trustRoot = filepath.Join(work, "trust-root.json")
	if err := os.WriteFile(e.trustRoot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.tsaPEM = filepath.Join(work, "tsa.pem")
	if err := os.WriteFile(e.tsaPEM, e.get(t, timestamp.ChainPath), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *keylessEnv) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(e.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// token is a GitHub Actions job's ID token for acme/<repo> (audience
// sigstore), signed by the loopback issuer.
func (e *keylessEnv) token(t *testing.T, repo string) string {
	t.Helper()
	return e.issuer.Sign(t, e.issuer.GitHubJob("acme/"+repo, "sigstore"))
}

// push pushes a random image to apps/<repo> as the admin.
func (e *keylessEnv) push(t *testing.T, repo string) name.Digest {
	t.Helper()
	img, _ := random.Image(256, 1)
	h, _ := img.Digest()
	d, err := name.NewDigest(e.srv.Host()+"/apps/"+repo+"@"+h.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: e.srv.AdminPassword()})); err != nil {
		t.Fatal(err)
	}
	return d
}

// custody runs the custody client as a CI job would: the job's OIDC
// token is both its registry credential (CUSTODY_TOKEN) and its signing
// identity (SIGSTORE_ID_TOKEN).
func (e *keylessEnv) custody(t *testing.T, token string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(e.bin, args...)
	c.Env = append(os.Environ(), "HOME="+e.work, "DOCKER_CONFIG="+filepath.Join(e.work, ".docker"), "CUSTODY_TOKEN="+token, "SIGSTORE_ID_TOKEN="+token)
	out, err := c.CombinedOutput()
	return string(out), err
}

func (e *keylessEnv) mustCustody(t *testing.T, token string, args ...string) string {
	t.Helper()
	out, err := e.custody(t, token, args...)
	if err != nil {
		t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// verify runs custody verify against the trust root with identity
// constraints.
func (e *keylessEnv) verify(t *testing.T, d name.Digest, extra ...string) (string, error) {
	t.Helper()
	return e.custody(t, e.token(t, "reader"), append([]string{"verify", d.String(), "--trust-root", e.trustRoot}, extra...)...)
}

func identityFlags(identity, issuer string) []string {
	return []string{"--certificate-identity", identity, "--certificate-oidc-issuer", issuer}
}

// TestKeylessCustodySign: a CI job signs and attests with custody sign
// --keyless and custody attest --keyless using only its OIDC token;
// cosign v2 verifies the signature and the attestation with the CA chain
// and the identity, custody verify accepts them for that identity and
// refuses another one, and without constraints relies on neither.
func TestKeylessCustodySign(t *testing.T) {
	e := startKeyless(t)
	keylessWorkflow := e.issuer.Server.URL + keylessPath
	cosign := client(t, "cosign")
	tok := e.token(t, "app")
	iss := e.issuer.Server.URL

	d := e.push(t, "app")
	out := e.mustCustody(t, tok, "sign", "--keyless", d.String())
	if !strings.Contains(out, "keyless as "+keylessWorkflow) || !strings.Contains(out, "not logged (the server has no transparency log)") {
		t.Fatalf("custody sign --keyless said:\n%s", out)
	}
	e.mustCustody(t, tok, "attest", "test-result", "--keyless", d.String(), "--result", "PASSED")

	out, err := e.verify(t, d, append(identityFlags(keylessWorkflow, iss), "--certificate-github-workflow-repository", "acme/app",
		"--certificate-repository", e.issuer.Server.URL+"/acme/app", "--certificate-ref", "refs/heads/main", "-o", "json")...)
	if err != nil {
		t.Fatalf("custody verify: %v\n%s", err, out)
	}
	if strings.Count(out, `"identity": "`+keylessWorkflow+`"`) != 3 || strings.Count(out, `"timeSource": "timestamp"`) != 2 {
		t.Fatalf("custody verify did not report two keyless signatures at the time-stamp and the attestation:\n%s", out)
	}
	for _, c := range [][]string{
		identityFlags(e.issuer.Server.URL+"/evil/app/.github/workflows/release.yml@refs/heads/main", iss),
		identityFlags(keylessWorkflow, "https://token.actions.githubusercontent.com"),
		append(identityFlags(keylessWorkflow, iss), "--certificate-ref", "refs/heads/feature"),
		nil, // no constraints: a keyless signature is not relied upon
	} {
		if out, err := e.verify(t, d, c...); err == nil {
			t.Fatalf("custody verify %v accepted:\n%s", c, out)
		}
	}
	if out, err := e.verify(t, d, "--certificate-identity-regexp", "^http://127\\.0\\.0\\.1:[0-9]+/acme/", "--certificate-oidc-issuer-regexp", "^http://127"); err != nil {
		t.Fatalf("custody verify with regexps: %v\n%s", err, out)
	}

	// cosign v2 verifies custody's keyless signature (the .sig tag: with
	// a bundle referrer present, cosign v2.6 wants a Sigstore trusted
	// root) and attestation, with the CA chain and the TSA chain.
	dt := e.push(t, "app-tag")
	e.mustCustody(t, tok, "sign", "--keyless", "--storage", "tag", dt.String())
	cosignVerify := []string{"--certificate-chain", e.caPEM, "--certificate-identity", keylessWorkflow, "--certificate-oidc-issuer", iss,
		"--insecure-ignore-tlog", "--insecure-ignore-sct", "--use-signed-timestamps", "--timestamp-certificate-chain", e.tsaPEM, "--allow-insecure-registry"}
	out = mustCosign(t, e.home, cosign, "", append(append([]string{"verify"}, cosignVerify...), dt.String())...)
	if !strings.Contains(out, "acme/app") {
		t.Fatalf("cosign verify output lacks the workflow's claims:\n%s", out)
	}
	// cosign v3 verifies custody's keyless bundle referrer against the
	// server's trusted_root.json (CA and TSA; this server runs no CT log).
	cosign3Bin := cosign3(t)
	trusted := filepath.Join(e.work, "trusted_root.json")
	if err := os.WriteFile(trusted, e.get(t, "/api/v1/trust/trusted_root.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCosign(t, e.home, cosign3Bin, "", "verify", "--trusted-root", trusted, "--certificate-identity", keylessWorkflow, "--certificate-oidc-issuer", iss,
		"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-insecure-registry", d.String())
	mustFail(t, e.home, cosign, "none of the expected identities matched", "verify", "--certificate-chain", e.caPEM,
		"--certificate-identity", e.issuer.Server.URL+"/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", iss,
		"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-insecure-registry", dt.String())
}

// TestKeylessCosignSign: cosign v2 and v3 sign keyless with custody's CA
// and TSA; custody verify accepts their signatures for the workload's
// identity and refuses: another identity, a signature with no time-stamp
// (its certificate expired minutes later, and nothing shows it was used
// in time), a time-stamp from an authority outside the trust root.
func TestKeylessCosignSign(t *testing.T) {
	e := startKeyless(t)
	keylessWorkflow := e.issuer.Server.URL + keylessPath
	iss := e.issuer.Server.URL
	tokFile := filepath.Join(e.work, "token")
	if err := os.WriteFile(tokFile, []byte(e.token(t, "app")), 0o600); err != nil {
		t.Fatal(err)
	}
	tsaURL := e.base + timestamp.Path
	good := identityFlags(keylessWorkflow, iss)
	other := identityFlags(e.issuer.Server.URL+"/evil/app/.github/workflows/release.yml@refs/heads/main", iss)

	t.Run("cosign v2", func(t *testing.T) {
		cosign := client(t, "cosign")
		d := e.push(t, "cosign2")
		mustCosign(t, e.home, cosign, "", "sign", "--fulcio-url", e.base, "--identity-token", tokFile, "--tlog-upload=false",
			"--insecure-skip-verify", "--allow-insecure-registry", "--yes", "--timestamp-server-url", tsaURL, d.String())
		if out, err := e.verify(t, d, good...); err != nil || !strings.Contains(out, "(trusted time-stamp)") {
			t.Fatalf("custody verify: %v\n%s", err, out)
		}
		if out, err := e.verify(t, d, other...); err == nil {
			t.Fatalf("custody verify accepted another identity:\n%s", out)
		}
	})

	t.Run("cosign v3", func(t *testing.T) {
		cosign := cosign3(t)
		d := e.push(t, "cosign3")
		mustCosign(t, e.home, cosign, "", "sign", "--fulcio-url", e.base, "--identity-token", tokFile, "--tlog-upload=false",
			"--use-signing-config=false", "--insecure-skip-verify", "--allow-insecure-registry", "--yes", "--timestamp-server-url", tsaURL, d.String())
		if out, err := e.verify(t, d, good...); err != nil || !strings.Contains(out, "(trusted time-stamp)") {
			t.Fatalf("custody verify: %v\n%s", err, out)
		}
		if out, err := e.verify(t, d, other...); err == nil {
			t.Fatalf("custody verify accepted another identity:\n%s", out)
		}
	})

	t.Run("no time-stamp", func(t *testing.T) {
		cosign := client(t, "cosign")
		d := e.push(t, "untimed")
		mustCosign(t, e.home, cosign, "", "sign", "--fulcio-url", e.base, "--identity-token", tokFile, "--tlog-upload=false",
			"--insecure-skip-verify", "--allow-insecure-registry", "--yes", d.String())
		out, err := e.verify(t, d, good...)
		if err == nil || !strings.Contains(out, "no time-stamp from a trusted authority") {
			t.Fatalf("custody verify of a keyless signature without a time-stamp: %v\n%s", err, out)
		}
	})

	t.Run("untrusted time-stamp authority", func(t *testing.T) {
		cosign := client(t, "cosign")
		signer, err := key.Generate(key.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := timestamp.NewChain(signer, "someone else's TSA", time.Now().Add(-time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		a, err := timestamp.New(timestamp.Config{Signer: signer, Chain: chain})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("POST "+timestamp.Path, a.Serve(nil))
		other := httptest.NewServer(mux)
		defer other.Close()
		d := e.push(t, "stranger-tsa")
		mustCosign(t, e.home, cosign, "", "sign", "--fulcio-url", e.base, "--identity-token", tokFile, "--tlog-upload=false",
			"--insecure-skip-verify", "--allow-insecure-registry", "--yes", "--timestamp-server-url", other.URL+timestamp.Path, d.String())
		out, err := e.verify(t, d, good...)
		if err == nil || !strings.Contains(out, "time-stamp not from a trusted authority") {
			t.Fatalf("custody verify accepted a time-stamp from an untrusted authority: %v\n%s", err, out)
		}
	})
}

// TestKeylessGate: the promotion gate's signed_by_identity rule passes an
// artifact signed keyless by the release workflow of acme/app and refuses
// one signed by acme/other's (nothing promoted); a custom CEL rule reads
// the certificate's claims.
func TestKeylessGate(t *testing.T) {
	e := startKeyless(t)
	admin := func(args ...string) (string, error) {
		c := exec.Command(e.bin, append(args, "--server", e.base)...)
		c.Env = append(os.Environ(), "HOME="+e.home, "DOCKER_CONFIG="+filepath.Join(e.home, ".docker"))
		out, err := c.CombinedOutput()
		return string(out), err
	}
	current := func() string {
		out, err := admin("env", "dev", "apps/app", "-o", "json")
		if err != nil {
			t.Fatalf("custody env: %v\n%s", err, out)
		}
		var st struct{ Current string }
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		return st.Current
	}
	other := e.push(t, "app")
	e.mustCustody(t, e.token(t, "other"), "sign", "--keyless", other.String())
	if out, err := admin("promote", other.String(), "--to", "dev"); err == nil || !strings.Contains(out, "FAIL signed_by_identity") {
		t.Fatalf("an artifact signed by another workflow passed the identity rule: %v\n%s", err, out)
	}
	if got := current(); got != "" {
		t.Fatalf("dev runs %q after a refused promotion", got)
	}
	release := e.push(t, "app")
	e.mustCustody(t, e.token(t, "app"), "sign", "--keyless", release.String())
	if out, err := admin("promote", release.String(), "--to", "dev"); err != nil {
		t.Fatalf("custody promote: %v\n%s", err, out)
	}
	if got := current(); got != release.DigestStr() {
		t.Fatalf("dev runs %q, want %s", got, release.DigestStr())
	}
}

// TestKeylessGitHubActionsFlow runs docs/keyless.md's GitHub Actions job
// with only custody: custody login --oidc and custody sign/attest
// --keyless get the job's token from the Actions token service (audience
// sigstore, the request token as bearer), and custody verify accepts the
// result for the workflow's identity.
func TestKeylessGitHubActionsFlow(t *testing.T) {
	e := startKeyless(t)
	keylessWorkflow := e.issuer.Server.URL + keylessPath
	tok := e.token(t, "app")
	var asked []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer request-token" || r.URL.Query().Get("audience") != "sigstore" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		asked = append(asked, r.URL.Query().Get("audience"))
		_ = json.NewEncoder(w).Encode(map[string]string{"value": tok})
	}))
	defer svc.Close()
	home := t.TempDir()
	job := func(args ...string) string {
		t.Helper()
		c := exec.Command(e.bin, args...)
		c.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "CUSTODY_TOKEN=", "SIGSTORE_ID_TOKEN=",
			"ACTIONS_ID_TOKEN_REQUEST_URL="+svc.URL+"/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN=request-token")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	job("login", e.srv.Host(), "--oidc")
	file := filepath.Join(home, "app.tar.gz")
	if err := os.WriteFile(file, []byte("the build"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := e.srv.Host() + "/apps/app:1.0.0"
	job("push", file, ref)
	job("sign", "--keyless", ref)
	job("attest", "test-result", "--keyless", ref, "--result", "PASSED")
	out := job("verify", ref, "--trust-root", e.trustRoot, "--certificate-identity", keylessWorkflow,
		"--certificate-oidc-issuer", e.issuer.Server.URL, "--certificate-github-workflow-repository", "acme/app")
	if !strings.Contains(out, "verified") || strings.Count(out, "by "+keylessWorkflow) != 3 {
		t.Fatalf("custody verify:\n%s", out)
	}
	if len(asked) != 3 { // login, sign, attest; verify reads with the stored login
		t.Fatalf("the token service was asked %d times", len(asked))
	}
}

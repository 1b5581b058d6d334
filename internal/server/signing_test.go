package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/verification"
)

// TestServerSigning: the trust root at a stable URL, signatures on push,
// and SLSA provenance written by the server from a CI job's verified OIDC
// token (the job never sees the key, and cannot choose what it says).
func TestServerSigning(t *testing.T) {
	iss := newFakeIssuer(t)
	data := t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "ring-pass")
	a := newAuthServer(t, func(c *config.Config) {
		c.Data = data
		c.Signing.OnPush = []string{"apps/**"}
		c.Signing.SBOMOnPush = true
		c.Signing.BuilderID = "https://custody.example/platform"
		c.Auth.OIDC = []config.OIDCIssuer{{Issuer: iss.hs.URL, Rules: []config.OIDCRule{{
			Claims: map[string]string{"repository": "org/*"}, Subject: "ci:{repository}",
			Grants: []config.RoleGrant{{Role: "writer", Repositories: []string{"apps/**"}}},
		}}}}
	})

	// The trust root and each public key, without credentials.
	var tr key.TrustRoot
	if err := json.Unmarshal([]byte(a.must("GET", "/api/v1/keys", "", nil, http.StatusOK)), &tr); err != nil || len(tr.Keys) != 1 {
		t.Fatalf("trust root: %v %+v", err, tr)
	}
	if pem := a.must("GET", "/api/v1/keys/"+tr.Keys[0].ID, "", nil, http.StatusOK); !strings.Contains(pem, "BEGIN PUBLIC KEY") {
		t.Fatalf("public key: %s", pem)
	}
	a.must("GET", "/api/v1/keys/0000000000000000", "", nil, http.StatusNotFound)

	// Signed on push: a tag set in apps/ gets the server's signature.
	if _, err := a.push("apps/web", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	dg := a.digestOf("apps/web", "v1")
	ref, _ := name.NewDigest(a.host+"/apps/web@"+dg, name.Insecure)
	v, err := verification.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	o := sign.Options{Remote: []remote.Option{remote.WithAuth(basic("admin:" + a.admin))}}
	var rep verification.Report
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		// The signature is stored two ways (the .sig tag and a referrer)
		// one after the other: wait for both, not just the first.
		if rep = v.Run(context.Background(), ref.String(), ref, o); rep.OK && len(rep.Signatures) == 2 {
			break
		}
	}
	if !rep.OK || len(rep.Signatures) != 2 {
		l := a.srv.AuditLog()
		l.Flush()
		leaves, _ := l.Leaves(context.Background(), 0, l.Size())
		for _, lf := range leaves {
			t.Log(string(lf.Entry))
		}
		t.Fatalf("signature on push: %+v", rep)
	}
	a.awaitAudit("sign", "ok", `"actor":"custody"`, `"repo":"apps/web"`)
	// And the SBOM generated on push.
	v.Require = []string{"sbom"}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if rep = v.Run(context.Background(), ref.String(), ref, o); rep.OK {
			break
		}
	}
	if !rep.OK {
		t.Fatalf("SBOM on push: %+v", rep)
	}
	a.awaitAudit("sbom", "ok", `"repo":"apps/web"`)
	v.Require = nil
	// Outside onPush: not signed.
	if _, err := a.push("other/web", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	od, _ := name.NewDigest(a.host+"/other/web@"+a.digestOf("other/web", "v1"), name.Insecure)
	// The push's tag event reached the signer before the push returned, and
	// the signer works in order: once a later push in apps/ is signed, the
	// signer has passed other/web's.
	if _, err := a.push("apps/after", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	a.awaitAudit("sign", "ok", `"repo":"apps/after"`)
	if rep := v.Run(context.Background(), od.String(), od, o); rep.OK {
		t.Fatal("other/web was signed")
	}
	if a.audited("sign", "ok", `"repo":"other/web"`) || a.audited("sign", "error", `"repo":"other/web"`) {
		t.Fatal("the signer acted on other/web")
	}

	// Platform provenance from the job's OIDC token.
	tok := iss.sign(t, iss.claims(map[string]any{
		"sha": "6f8e2c1d3b4a59687766554433221100ffeeddcc", "run_id": "42", "run_attempt": "1",
		"workflow_ref": "org/app/.github/workflows/release.yml@refs/heads/main",
	}))
	// A password is not a workload identity.
	if code, body, _ := a.call("POST", "/api/v1/provenance/apps/web/@"+dg, "admin:"+a.admin, nil); code != http.StatusForbidden {
		t.Fatalf("provenance with a password: %d %s", code, body)
	}
	// The job may only describe what it may push.
	if code, _, _ := a.call("POST", "/api/v1/provenance/other/web/@"+od.DigestStr(), tok, nil); code != http.StatusForbidden {
		t.Fatalf("provenance outside the job's repositories: %d", code)
	}
	env := a.must("POST", "/api/v1/provenance/apps/web/@"+dg, tok, nil, http.StatusCreated)
	if !strings.Contains(env, "payloadType") {
		t.Fatalf("envelope: %s", env)
	}
	a.mustAudit("provenance", "ok", "ci:org/app")
	v.Builder, v.Source, v.Require = "https://custody.example/platform", "https://github.com/org/app", []string{"provenance"}
	if rep := v.Run(context.Background(), ref.String(), ref, o); !rep.OK {
		t.Fatalf("verify with platform provenance: %+v", rep)
	}
	// A builder other than the server's fails.
	v.Builder = "https://github.com/actions/runner/github-hosted"
	if rep := v.Run(context.Background(), ref.String(), ref, o); rep.OK {
		t.Fatal("wrong builder passed")
	}
}

// TestProjectsWithoutServerKeyHint: promotions are signed by the server,
// so a server started with projects but no unlocked key says at start
// what to do (create the key; give its passphrase), and says nothing when
// the key is ready.
func TestProjectsWithoutServerKeyHint(t *testing.T) {
	start := func(t *testing.T, data string) string {
		t.Helper()
		cfg := config.Default()
		cfg.Auth.MFA.Roles = nil // passwords alone in these tests
		cfg.Data = data
		cfg.Projects = []config.Project{{Repositories: "apps/**", Environments: []config.Environment{{Name: "dev"}}}}
		var buf bytes.Buffer
		s, err := server.New(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return buf.String()
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "")
	os.Unsetenv("CUSTODY_KEY_PASSWORD")
	data := t.TempDir()
	if out := start(t, data); !strings.Contains(out, "promotions, rollbacks, revocations and scans will be refused") ||
		!strings.Contains(out, "custody key create --keys "+filepath.Join(data, "keys")) {
		t.Fatalf("no key:\n%s", out)
	}
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass"))
	if err != nil {
		t.Fatal(err)
	}
	if out := start(t, data); !strings.Contains(out, "its key "+info.ID+" is locked") || !strings.Contains(out, "CUSTODY_KEY_PASSWORD") {
		t.Fatalf("locked key:\n%s", out)
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "ring-pass")
	if out := start(t, data); strings.Contains(out, "will be refused") {
		t.Fatalf("ready key:\n%s", out)
	}
}

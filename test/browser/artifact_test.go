package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
)

// sbomWithLicences is an SPDX document listing two packages with licences.
const sbomWithLicences = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app",
"documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: test"]},
"packages":[
 {"SPDXID":"SPDXRef-a","name":"golang.org/x/text","versionInfo":"v0.14.0","licenseConcluded":"BSD-3-Clause",
  "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/text@v0.14.0"}]},
 {"SPDXID":"SPDXRef-b","name":"zlib","versionInfo":"1.3","licenseDeclared":"Zlib",
  "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:generic/zlib@1.3"}]}
]}`

// TestArtifactPage opens a signed, attested and promoted artifact: its
// signature verifies now, its provenance reads as a chain from the source
// commit to the environment it entered, and the page passes axe-core, at
// 1280 px and 375 px.
func TestArtifactPage(t *testing.T) {
	data, work := t.TempDir(), t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("server-passphrase")); err != nil {
		t.Fatal(err)
	}
	ci := evidencetest.NewKey(t, time.Now().Add(-time.Hour), time.Time{})
	root, _ := json.Marshal(evidencetest.Root(ci))
	rootFile := filepath.Join(work, "ci-trust-root.json")
	cfg := filepath.Join(work, "custody.yaml")
	conf := fmt.Sprintf("projects:\n  - repositories: \"apps/**\"\n    environments:\n      - name: dev\npromotion:\n  trustRoot: %q\n", rootFile)
	if os.WriteFile(rootFile, root, 0o600) != nil || os.WriteFile(cfg, []byte(conf), 0o600) != nil {
		t.Fatal("writing the configuration failed")
	}
	h := newHarness(t, options{Data: data, Args: []string{"--config", cfg}, Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})

	// apps/web:1.0: pushed, signed and attested by CI, promoted to dev.
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"org.opencontainers.image.version": "1.0",
		"org.opencontainers.image.source": "https://github.com/acme/app"}).(v1.Image)
	dg, _ := img.Digest()
	ref, err := name.NewDigest(h.srv.Host()+"/apps/web@"+dg.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	o := sign.Options{Remote: []remote.Option{remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: h.srv.AdminPassword()}))}}
	tag, _ := name.NewTag(h.srv.Host()+"/apps/web:1.0", name.Insecure)
	if err := remote.Write(tag, img, o.Remote...); err != nil {
		t.Fatal(err)
	}
	so := o
	so.Annotations = map[string]string{evidencetest.SignedAtAnnotation: time.Now().UTC().Format(time.RFC3339), "signer": "release-bot@acme"}
	if _, err := sign.Sign(context.Background(), ref, ci, so); err != nil {
		t.Fatal(err)
	}
	for typ, pred := range map[string]string{attest.PredicateSLSAProvenanceV1: evidencetest.Provenance, attest.PredicateSPDX: sbomWithLicences} {
		stmt, err := attest.StatementFor("apps/web", dg.String(), typ, []byte(pred))
		if err != nil {
			t.Fatal(err)
		}
		env, err := attest.Sign(context.Background(), ci, "", stmt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Attach(context.Background(), ref, env, typ, o); err != nil {
			t.Fatal(err)
		}
	}
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": dg.String(), "environment": "dev", "reason": "release 1.0"}, http.StatusOK)

	h.signIn("admin", h.srv.AdminPassword())
	page := "/artifacts/apps/web@" + dg.String()
	h.page(page, "artifact")
	if got := h.text("main h1"); !strings.HasPrefix(got, "apps/web@sha256:") {
		t.Fatalf("artifact page heading %q", got)
	}
	if n := h.count(`#signatures + .table-wrap .badge.ok`); n == 0 {
		t.Fatal("no verified signature shown")
	}
	if n := h.count(`#signatures + .table-wrap .badge.bad`); n != 0 {
		t.Fatalf("%d signatures shown as not counting", n)
	}
	chain := h.text("ol.chain")
	for _, want := range []string{"Source", "https://github.com/acme/app", "0123456789abcdef0123456789abcdef01234567",
		"Builder", "https://github.com/actions/runner/github-hosted", "Artifact", dg.String(), "Environments", "dev"} {
		if !strings.Contains(chain, want) {
			t.Errorf("the provenance chain lacks %q:\n%s", want, chain)
		}
	}
	// The SBOM's packages are searchable, without script.
	h.run("searching the packages", chromedp.SetValue(chromedp.ID("pkg"), "zlib"), chromedp.Submit(chromedp.ID("pkg")))
	waitFor(t, "the package search", 10*time.Second, func() bool { return strings.Contains(h.location(), "pkg=zlib") })
	h.run("waiting for the packages", chromedp.WaitReady(chromedp.CSS("main")))
	if n := h.count(`#sbom ~ .table-wrap[aria-label="Packages"] tbody tr`); n != 1 {
		t.Fatalf("search zlib: %d packages, want 1", n)
	}
	h.axe("artifact-packages")
	h.visit(page)
	// The copy buttons are live with script, and copy the pull command.
	if n := h.count(`button.copy:not([hidden])`); n < 2 {
		t.Fatalf("%d visible copy buttons, want the digest's and the pull command's", n)
	}
	pull := eval[string](h, `document.querySelectorAll("button.copy")[1].dataset.copy`)
	if pull != "docker pull "+h.srv.Host()+"/apps/web@"+dg.String() {
		t.Fatalf("pull command copied: %q", pull)
	}
	// A copy says what happened in a live region (a screen reader hears
	// it), whether or not the browser lets the page write the clipboard.
	h.run("copying the digest", chromedp.Click(chromedp.CSS("button.copy")))
	waitFor(t, "the copy's announcement", 10*time.Second, func() bool {
		return eval[string](h, `(document.querySelector('main .copy-status[role="status"]') || {}).textContent || ""`) != ""
	})
	// From the repository page, its tag leads to the artifact.
	h.visit("/repositories/apps/web")
	if h.count(`main a[href="`+page+`"]`) == 0 {
		t.Fatal("the repository page does not link the artifact")
	}
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page(page, "artifact-375")
}

package browser

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/key"
)

// TestEnvironmentsApprove: prod needs two promoters; the first approval
// is recorded through the API, the second promoter approves on the
// Environments page and sees prod run the digest.
func TestEnvironmentsApprove(t *testing.T) {
	data := t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(cfg, []byte(`projects:
  - name: shop
    repositories: "apps/**"
    environments:
      - name: dev
      - name: prod
        approvals: 2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, options{Data: data, Args: []string{"--config", cfg}, Env: []string{"CUSTODY_KEY_PASSWORD=ring-pass"}})
	h.user("rel2", "rel2-long-passphrase", "promoter", "apps/**")

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(h.srv.Host()+"/apps/web:1.0.0", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: h.srv.AdminPassword()}))); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": d.String(), "environment": "dev"}, http.StatusOK)
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": d.String(), "environment": "prod"}, http.StatusAccepted)

	h.signIn("rel2", "rel2-long-passphrase")
	h.page("/environments", "environments")
	page := "/environments/apps/web?project=shop"
	h.page(page, "environment-repository")
	if n := h.count(`form[action="/environments/approve"]`); n != 1 {
		t.Fatalf("%d approvals to decide, want 1", n)
	}
	h.run("approving", chromedp.Click(chromedp.CSS(`form[action="/environments/approve"] button:not([formaction])`)))
	waitFor(t, "the page after approving", 30*time.Second, func() bool { return strings.Contains(h.location(), "done=") })
	h.run("waiting for the page", chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if got := h.text(`p.notice[role="status"]`); !strings.Contains(got, "promoted to prod") {
		t.Fatalf("notice after approving: %q", got)
	}
	if got := h.text(`#env-prod + dl dd`); !strings.Contains(got, d.String()) {
		t.Fatalf("prod runs %q, want %s", got, d)
	}
	if h.count(`form[action="/environments/approve"]`) != 0 {
		t.Fatal("an approval is still pending")
	}
	h.axe("environment-approved")
	h.screenshot("environment-approved")
	var st struct {
		Current string `json:"current"`
	}
	b := h.api("GET", "/api/v1/environments?"+url.Values{"repository": {"apps/web"}, "environment": {"prod"}}.Encode(), nil, http.StatusOK)
	if err := json.Unmarshal(b, &st); err != nil || st.Current != d.String() {
		t.Fatalf("the API says prod runs %q (%v)", st.Current, err)
	}
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page(page, "environment-repository-375")
	h.page("/environments", "environments-375")
}

package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// promotionHarness starts custody with a signing key and project shop
// over apps/**: dev (anything), strict (a gate needing an SBOM and
// passed QA), prod (two approvals); rel2 is a promoter, rita a reader.
// apps/web:1.0.0 is pushed; its digest is returned.
func promotionHarness(t *testing.T) (*harness, string) {
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
      - name: strict
        gate:
          rules:
            - use: sbom_present
            - use: passed_qa
            - use: not_revoked
      - name: prod
        approvals: 2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, options{Data: data, Args: []string{"--config", cfg}, Env: []string{"CUSTODY_KEY_PASSWORD=ring-pass"}})
	h.user("rel2", "rel2-long-passphrase", "promoter", "apps/**")
	h.user("rita", "reader-password-1234", "reader", "apps/**")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(h.srv.Host()+"/apps/web:1.0.0", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: h.srv.AdminPassword()}))); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return h, d.String()
}

// envState is what the API says of one environment of apps/web.
type envState struct {
	Current string `json:"current"`
	Pending []struct {
		Digest    string   `json:"digest"`
		Approvers []string `json:"approvers"`
	} `json:"pending"`
	History []json.RawMessage `json:"history"`
}

func (h *harness) envState(env string) envState {
	h.t.Helper()
	var st envState
	b := h.api("GET", "/api/v1/environments?"+url.Values{"repository": {"apps/web"}, "environment": {env}}.Encode(), nil, http.StatusOK)
	if err := json.Unmarshal(b, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// TestEnvironmentsApprove: prod needs two promoters; the first approval
// is recorded through the API, the second promoter approves on the
// Environments page and sees prod run the digest.
func TestEnvironmentsApprove(t *testing.T) {
	h, digest := promotionHarness(t)
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": digest, "environment": "dev"}, http.StatusOK)
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": digest, "environment": "prod"}, http.StatusAccepted)

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
	if got := h.text(`#env-prod + dl dd`); !strings.Contains(got, digest) {
		t.Fatalf("prod runs %q, want %s", got, digest)
	}
	if h.count(`form[action="/environments/approve"]`) != 0 {
		t.Fatal("an approval is still pending")
	}
	h.axe("environment-approved")
	h.screenshot("environment-approved")
	if st := h.envState("prod"); st.Current != digest {
		t.Fatalf("the API says prod runs %q", st.Current)
	}
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page(page, "environment-repository-375")
	h.page("/environments", "environments-375")
}

// TestEnvironmentsRefusedPromotionShows: a promoter promotes a digest
// into strict on the page; the gate refuses it and the page shows every
// rule of the gate with its result and reason, each failing rule as the
// API's gate evaluation has it; strict is unchanged.
func TestEnvironmentsRefusedPromotionShowsRules(t *testing.T) {
	h, digest := promotionHarness(t)
	var want struct {
		Gate struct {
			Rules []struct {
				Name    string `json:"name"`
				Pass    bool   `json:"pass"`
				Message string `json:"message"`
			} `json:"rules"`
		} `json:"gate"`
	}
	b := h.api("POST", "/api/v1/gate", map[string]any{"repository": "apps/web", "digest": digest, "environment": "strict"}, http.StatusOK)
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	failing := 0
	for _, r := range want.Gate.Rules {
		if !r.Pass {
			failing++
		}
	}
	if failing != 2 || len(want.Gate.Rules) != 3 {
		t.Fatalf("the gate's evaluation: %s; want sbom_present and passed_qa failing, not_revoked passing", b)
	}

	h.signIn("rel2", "rel2-long-passphrase")
	h.visit("/environments/apps/web?project=shop")
	h.run("promoting into strict",
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="env-strict"] details summary`)),
		chromedp.SetValue(chromedp.ID("digest-strict"), digest),
		chromedp.SetValue(chromedp.ID("preason-strict"), "release 1.0.0"),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="env-strict"] form[action="/environments/promote"] button:not([formaction])`)),
	)
	waitFor(t, "the refusal", 30*time.Second, func() bool { return h.location() == "/environments/promote" && h.count(`table.gate-rules`) == 1 })
	if got := h.text(`p.notice.error[role="alert"]`); !strings.Contains(got, "Promotion refused, nothing changed") {
		t.Fatalf("refusal notice: %q", got)
	}
	rows := eval[[][]string](h, `[...document.querySelectorAll("table.gate-rules tbody tr")].map(tr => [...tr.cells].map(td => td.textContent.trim()))`)
	if len(rows) != len(want.Gate.Rules) {
		t.Fatalf("the page shows %d rules, the gate has %d: %q", len(rows), len(want.Gate.Rules), rows)
	}
	for i, r := range want.Gate.Rules {
		result := "pass"
		if !r.Pass {
			result = "fail"
		}
		if rows[i][0] != r.Name || rows[i][1] != result || !strings.Contains(rows[i][2], r.Message) || (!r.Pass && r.Message == "") {
			t.Errorf("rule %d on the page: %q; the gate says %s %s %q", i, rows[i], r.Name, result, r.Message)
		}
	}
	if st := h.envState("strict"); st.Current != "" || len(st.History) != 0 {
		t.Fatalf("the refused promotion changed strict: %+v", st)
	}
	h.axe("environment-refused")
	h.screenshot("environment-refused")
}

// TestEnvironmentsReaderForgesApproval: a reader's page offers no
// Approve; a form the reader builds by hand, with its own session's valid
// CSRF token, posting the approval anyway is refused by the API, and so
// is the same request from a script: prod and its pending approval are
// unchanged.
func TestEnvironmentsReaderForgesApproval(t *testing.T) {
	h, digest := promotionHarness(t)
	h.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": digest, "environment": "prod"}, http.StatusAccepted)
	before := h.envState("prod")
	if before.Current != "" || len(before.Pending) != 1 || len(before.Pending[0].Approvers) != 1 {
		t.Fatalf("prod before: %+v", before)
	}

	h.signIn("rita", "reader-password-1234")
	h.visit("/environments/apps/web?project=shop")
	if h.count(`form[action="/environments/approve"]`) != 0 || h.count(`form[action="/environments/promote"]`) != 0 {
		t.Fatal("a reader's page offers Approve or Promote")
	}
	if got := h.text(`section[aria-labelledby="env-prod"]`); !strings.Contains(got, "admin") {
		t.Fatalf("the reader's page does not show the pending approval: %q", got)
	}
	eval[bool](h, fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = "/environments/approve";
		const fields = {csrf: document.querySelector('.user input[name="csrf"]').value,
			repository: "apps/web", project: "shop", environment: "prod", digest: %q};
		for (const [k, v] of Object.entries(fields)) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v;
			f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
		return true;
	})()`, digest))
	h.waitLocation("the refusal page", func(l string) bool { return l == "/environments/approve" })
	h.run("waiting for the refusal", chromedp.WaitVisible(chromedp.CSS("main h1")))
	if got := h.text("main"); !strings.Contains(got, "rita may not") {
		t.Errorf("the forged approval's page says %q; want the API's refusal", got)
	}
	h.screenshot("environment-forged-approval")
	status := eval[int](h, fmt.Sprintf(`fetch("/api/v1/promotions", {method: "POST",
		headers: {"Content-Type": "application/json", "X-CSRF-Token": document.querySelector('.user input[name="csrf"]').value},
		body: JSON.stringify({repository: "apps/web", digest: %q, environment: "prod"})}).then(r => r.status)`, digest))
	if status != http.StatusForbidden {
		t.Fatalf("the reader's scripted approval with its CSRF token: %d, want 403", status)
	}
	after := h.envState("prod")
	if after.Current != "" || len(after.Pending) != 1 || after.Pending[0].Digest != digest ||
		!slices.Equal(after.Pending[0].Approvers, before.Pending[0].Approvers) || len(after.History) != len(before.History) {
		t.Fatalf("the reader's forgeries changed prod: before %+v, after %+v", before, after)
	}
}

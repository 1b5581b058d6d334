package browser

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/custody-dev/custody/internal/bundle"
)

// TestAuditBrowseAndVerify: the Audit page lists the log newest first,
// filters it with its form, shows the latest signed checkpoint, and Verify
// shows the server's verification of the log.
func TestAuditBrowseAndVerify(t *testing.T) {
	h := newHarness(t, options{})
	pushRepos(t, h, 3)
	h.api("POST", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	h.signIn("admin", h.srv.AdminPassword())
	h.page("/audit", "audit")
	if h.count("main tbody tr") == 0 || h.count(`main dl.facts dd code.mono`) < 2 {
		t.Fatal("the audit page shows no entries or no checkpoint")
	}
	h.run("filtering by action and repository",
		chromedp.SetValue(chromedp.ID("action"), "tag.set"),
		chromedp.SetValue(chromedp.ID("repo"), "team/svc-01"),
		chromedp.Submit(chromedp.ID("repo")))
	waitFor(t, "the filtered log", 10*time.Second, func() bool { return strings.Contains(h.location(), "action=tag.set") })
	h.run("waiting for the filtered log", chromedp.WaitReady(chromedp.CSS("main tbody")))
	if n := h.count("main tbody tr"); n != 1 {
		t.Fatalf("tag.set on team/svc-01: %d rows, want 1", n)
	}
	if got := h.text("main tbody tr"); !strings.Contains(got, "tag.set") || !strings.Contains(got, "team/svc-01") {
		t.Fatalf("filtered row: %q", got)
	}
	h.axe("audit-filtered")
	h.screenshot("audit-filtered")

	h.run("verifying the log",
		chromedp.Click(chromedp.CSS(`form[action="/audit/verify"] button`)))
	// The verdict is the page's notice (the copy buttons' live region is
	// a status too).
	h.waitLocation("the verification", func(l string) bool { return strings.HasPrefix(l, "/audit/verify") })
	h.run("waiting for the verdict", chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if got := h.text(`p.notice[role="status"]`); !strings.Contains(got, "OK") || !strings.Contains(got, "entries match the signed checkpoint") {
		t.Fatalf("verification shows %q", got)
	}
	h.page("/audit/verify", "audit-verify")
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page("/audit", "audit-375")
}

// TestEvidenceDownloadAndVerifyOffline: the Evidence page's form downloads
// a bundle in the browser (its session is the credential), and the bundle
// verifies offline against the fingerprint the page shows.
func TestEvidenceDownloadAndVerifyOffline(t *testing.T) {
	h := newHarness(t, options{})
	pushRepos(t, h, 2)
	h.signIn("admin", h.srv.AdminPassword())
	h.page("/evidence", "evidence")
	fp := strings.TrimSpace(h.text("#fingerprint"))
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	if h.count("article.assessment") != 2 {
		t.Fatalf("the assessment shows %d repositories, want 2", h.count("article.assessment"))
	}
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(h.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
		t.Fatal(err)
	}
	h.run("downloading a bundle",
		chromedp.SetValue(chromedp.ID("ref"), "team/svc-01:latest"),
		chromedp.Submit(chromedp.ID("ref")))
	file := filepath.Join(dir, "evidence.tar")
	waitFor(t, "the download", time.Minute, func() bool {
		partial, _ := filepath.Glob(filepath.Join(dir, "*.crdownload"))
		_, err := os.Stat(file)
		return err == nil && len(partial) == 0
	})
	b, err := bundle.Open(file, fp)
	if err != nil {
		t.Fatalf("bundle.Open: %v", err)
	}
	defer b.Close()
	rep, err := b.Verify(t.Context())
	if err != nil || !rep.OK() {
		t.Fatalf("bundle.Verify: %v %+v", err, rep.Failures)
	}
	if len(rep.Artifacts) != 1 || rep.Artifacts[0].Repository != "team/svc-01" {
		t.Fatalf("the bundle holds %+v", rep.Artifacts)
	}
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page("/evidence", "evidence-375")
}

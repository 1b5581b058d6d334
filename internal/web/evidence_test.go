package web_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/bundle"
)

// download GETs path with the browser's cookies, as a form submission
// does, and writes the answer to a file.
func (b *browser) download(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.s.url+path, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	file := filepath.Join(b.t.TempDir(), "evidence.tar")
	f, err := os.Create(file)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.t.Fatal(err)
	}
	return resp, file
}

var formAction = regexp.MustCompile(`<form method="get" action="([^"]+)" class="export"`)

func TestEvidencePageDownloadsAVerifiableBundle(t *testing.T) {
	s := newSite(t, true, nil)
	d := s.push("team/app", "v1", nil)
	b := s.adminBrowser()

	resp, body := b.do("GET", "/evidence", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/evidence: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/evidence", resp.Header)
	// The fingerprint is the one the API serves, with the command to use it.
	tr, err := http.Get(s.url + "/api/v1/keys/trust")
	if err != nil {
		t.Fatal(err)
	}
	tr.Body.Close()
	fp := tr.Header.Get("X-Custody-Trust-Root-Fingerprint")
	if len(fp) != 64 || !strings.Contains(body, `<code class="mono" id="fingerprint">`+fp+`</code>`) ||
		!strings.Contains(body, "custody verify --bundle evidence.tar --trust-root-fingerprint "+fp) {
		t.Fatalf("fingerprint %s not shown:\n%s", fp, body)
	}
	// Both forms download from the export API (through the page's
	// streaming /evidence/bundle), with ref, and with environment, project
	// and at.
	forms := formAction.FindAllStringSubmatch(body, -1)
	if len(forms) != 2 || forms[0][1] != "/evidence/bundle" || forms[1][1] != "/evidence/bundle" {
		t.Fatalf("export forms: %q", forms)
	}
	for _, field := range []string{`name="ref"`, `name="environment"`, `name="project"`, `name="at"`, `name="metadataOnly" value="true"`} {
		if !strings.Contains(body, field) {
			t.Errorf("the export forms lack %s", field)
		}
	}

	// Submitting the artifact form: the session cookie is the credential,
	// the bundle streams, and it verifies offline against the fingerprint.
	resp, file := b.download("/evidence/bundle?ref=" + "team%2Fapp%3Av1")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	if resp.ContentLength != -1 {
		t.Errorf("the bundle came with Content-Length %d: buffered, not streamed", resp.ContentLength)
	}
	bd, err := bundle.Open(file, fp)
	if err != nil {
		t.Fatalf("bundle.Open: %v", err)
	}
	defer bd.Close()
	rep, err := bd.Verify(t.Context())
	if err != nil || !rep.OK() {
		t.Fatalf("bundle.Verify: %v %+v", err, rep.Failures)
	}
	if len(rep.Artifacts) != 1 || rep.Artifacts[0].Digest != d.String() || rep.AuditEntries == 0 {
		t.Fatalf("the bundle holds %+v (%d audit entries), want %s", rep.Artifacts, rep.AuditEntries, d)
	}
	// A mistyped reference is an error page with the API's words, not
	// problem JSON in the browser.
	resp, body = b.do("GET", "/evidence/bundle?ref=nope", nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "give REPOSITORY@DIGEST or REPOSITORY:TAG") || !strings.Contains(body, `<nav aria-label="Main">`) {
		t.Fatalf("a mistyped reference: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	checkSecurityHeaders(t, "/evidence/bundle", resp.Header)
	// Without the session, the export is refused.
	if resp, _ := s.get("/api/v1/export?ref=team%2Fapp%3Av1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("export without a session: %d", resp.StatusCode)
	}
}

func TestEvidencePageAssessment(t *testing.T) {
	s := newSite(t, true, nil)
	s.push("team/app", "v1", nil)
	b := s.adminBrowser()
	_, body := b.do("GET", "/evidence", nil)
	if os.Getenv("WEB_DUMP") != "" {
		os.WriteFile(os.Getenv("WEB_DUMP"), []byte(body), 0o644)
	}
	for _, want := range []string{
		`<a href="/repositories/team/app">team/app</a>`,
		`<span class="badge bad">SLSA 0</span>`,
		"Missing for the next stage:", "Missing for the next SLSA level:",
		"<code>slsa-provenance</code>", "Closes the gap", "more criteria of higher stages and levels not met",
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("the assessment lacks %q:\n%s", want, body)
		}
	}
	if !regexp.MustCompile(`<span class="badge (?:bad|warn|ok)">Stage \d</span>`).MatchString(body) {
		t.Fatalf("no stage shown:\n%s", body)
	}
	// A gap comes with the command that closes it.
	if !regexp.MustCompile(`<td><code>custody [^<]+</code><button type="button" class="copy"`).MatchString(body) {
		t.Fatalf("no command closes a gap:\n%s", body)
	}
	// An unknown project: the API's answer, the rest of the page stays.
	_, body = b.do("GET", "/evidence?project=nope", nil)
	if !strings.Contains(body, "The assessment is not shown") || !strings.Contains(body, `id="fingerprint"`) {
		t.Fatalf("unknown project:\n%s", body)
	}

	// A reader downloads what it may pull, but the assessment is the
	// auditors': the page says what the API refused.
	s.reader("team/**")
	rb := s.browser()
	rb.signIn("reader", readerPassword)
	resp, body := rb.do("GET", "/evidence", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "The assessment is not shown") || strings.Contains(body, "Missing for the next stage") {
		t.Fatalf("a reader's evidence page: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := rb.download("/api/v1/export?ref=team%2Fapp%3Av1&metadataOnly=true"); resp.StatusCode != 200 {
		t.Fatalf("a reader's download: %d", resp.StatusCode)
	}
}

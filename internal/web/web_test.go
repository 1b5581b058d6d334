package web_test

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/web"
)

// site is a real server (in process, on loopback) serving the web
// interface.
type site struct {
	t     testing.TB
	url   string
	admin string // the admin password, with authentication on
}

func newSite(t *testing.T, authOn bool, mutate func(*config.Config)) *site {
	t.Helper()
	cfg := config.Default()
	cfg.Auth.MFA.Roles = nil // passwords alone in these tests
	cfg.Data = t.TempDir()
	if !authOn {
		cfg.Auth.Mode = "none"
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	st := &site{t: t, url: hs.URL}
	if authOn {
		pw, err := os.ReadFile(filepath.Join(cfg.Data, "admin-password"))
		if err != nil {
			t.Fatal(err)
		}
		st.admin = strings.TrimSpace(string(pw))
	}
	return st
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *site) get(path string) (*http.Response, string) {
	s.t.Helper()
	resp, err := noRedirect.Get(s.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func checkSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy":      web.ContentSecurityPolicy,
		"X-Content-Type-Options":       "nosniff",
		"Referrer-Policy":              "no-referrer",
		"X-Frame-Options":              "DENY",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", path, k, got, v)
		}
	}
	if h.Get("Permissions-Policy") == "" {
		t.Errorf("%s: no Permissions-Policy", path)
	}
	if strings.Contains(web.ContentSecurityPolicy, "unsafe-inline") {
		t.Error("the CSP allows inline script or style")
	}
}

func TestPagesCarrySecurityHeaders(t *testing.T) {
	s := newSite(t, false, nil)
	resp, body := s.get("/repositories")
	if resp.StatusCode != 200 || !strings.Contains(body, "<main") || !strings.Contains(body, `<nav aria-label="Main">`) {
		t.Fatalf("/repositories: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/repositories", resp.Header)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("page Cache-Control = %q, want no-store", cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	// The error page carries them too, and says what is wrong.
	resp, body = s.get("/no/such/page")
	if resp.StatusCode != 404 || !strings.Contains(body, "Not found") {
		t.Fatalf("unknown page: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/no/such/page", resp.Header)
	// "/" leads to the repositories.
	if resp, _ := s.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/repositories" {
		t.Fatalf("/: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAssetsAreImmutableAndOnTheOrigin(t *testing.T) {
	s := newSite(t, false, nil)
	_, body := s.get("/repositories")
	refs := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(body, -1)
	var assets int
	for _, m := range refs {
		u := m[1]
		if strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "#") {
			continue
		}
		if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
			t.Errorf("the page refers to another origin: %s", u)
			continue
		}
		if !strings.HasPrefix(u, "/ui/assets/") {
			continue
		}
		assets++
		resp, _ := s.get(u)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d, Cache-Control %q", u, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		checkSecurityHeaders(t, u, resp.Header)
	}
	if assets < 2 {
		t.Fatalf("found %d assets in the page, want the stylesheet and the script", assets)
	}
	if resp, _ := s.get("/ui/assets/0000/custody.css"); resp.StatusCode != 404 {
		t.Errorf("an asset under a stale hash: %d, want 404", resp.StatusCode)
	}
}

func TestSignedOutBrowserIsSentToSignIn(t *testing.T) {
	s := newSite(t, true, nil)
	resp, _ := s.get("/repositories?q=a")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?next=%2Frepositories%3Fq%3Da" {
		t.Fatalf("signed out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	checkSecurityHeaders(t, "/repositories", resp.Header)
}

// TestNoInlineScriptOrStyle keeps the templates inside the CSP: no inline
// script, no style attribute or element, no event handler attribute.
func TestNoInlineScriptOrStyle(t *testing.T) {
	bad := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with content
		regexp.MustCompile(`<script(?:(?:\s[^>]*)?)>`),      // checked below for src
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
	}
	err := fs.WalkDir(os.DirFS("templates"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join("templates", p))
		if err != nil {
			return err
		}
		for i, re := range bad {
			for _, m := range re.FindAllString(string(b), -1) {
				if i == 1 && strings.Contains(m, " src=") {
					continue
				}
				t.Errorf("templates/%s: %q breaks the CSP", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// TestOddHostHeaderIsNoPanic: a page asked for with a Host header that is
// no URL host ("[::1", "a:b:c") is answered, not a dropped connection
// and a stack trace in the log.
func TestOddHostHeaderIsNoPanic(t *testing.T) {
	s := newSite(t, true, nil)
	for _, host := range []string{"[::1", "a:b:c", "%zz"} {
		for _, path := range []string{"/repositories", "/signin"} {
			req, _ := http.NewRequest("GET", s.url+path, nil)
			req.Host = host
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Errorf("Host %q, %s: %v", host, path, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Errorf("Host %q, %s: %d", host, path, resp.StatusCode)
			}
		}
	}
}

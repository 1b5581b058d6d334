package web_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

// TestSessionCookieUnderTLS: served over HTTPS, the session cookie is
// __Host-custody_session, Secure, HttpOnly, SameSite=Strict, Path=/ with
// no Domain; pages carry Strict-Transport-Security; sign-out's expiring
// cookie is Secure too (a browser ignores a __Host- cookie that is not),
// and the session ends on the server.
func TestSessionCookieUnderTLS(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	// The server serves TLS itself with these files; here httptest's TLS
	// listener serves its handler, so the files only need naming.
	cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(cfg.Data, "cert.pem"), filepath.Join(cfg.Data, "key.pem")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(hs.Close)
	pw, err := os.ReadFile(filepath.Join(cfg.Data, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := hs.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, hs.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", hs.URL)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, _ := do("GET", "/signin", nil)
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("a page served over TLS has no Strict-Transport-Security")
	}
	resp, _ = do("POST", "/signin", url.Values{"username": {"admin"}, "password": {strings.TrimSpace(string(pw))}, "next": {"/repositories"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in over TLS: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "custody_session" {
			t.Fatalf("over TLS the session cookie has no __Host- prefix: %+v", ck)
		}
		if ck.Name == "__Host-custody_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Domain != "" {
		t.Fatalf("session cookie over TLS = %+v", cookie)
	}
	// A browser-session cookie: the server ends the session at its
	// timeouts, the browser drops the cookie when it closes.
	if cookie.MaxAge != 0 || !cookie.Expires.IsZero() || strings.Contains(cookie.Raw, "Max-Age") || strings.Contains(cookie.Raw, "Expires") {
		t.Fatalf("the session cookie over TLS outlives the browser session: %q", cookie.Raw)
	}
	// The account page: the bootstrap admin has no second factor yet, so
	// the MFA policy lets it do little else.
	resp, body := do("GET", "/account", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as") {
		t.Fatalf("signed in over TLS: %d", resp.StatusCode)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF field")
	}
	resp, _ = do("POST", "/signout", url.Values{"csrf": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out over TLS: %d", resp.StatusCode)
	}
	var cleared *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-custody_session" {
			cleared = ck
		}
	}
	if cleared == nil || !cleared.Secure || cleared.Path != "/" || cleared.MaxAge >= 0 {
		t.Fatalf("sign-out's cookie over TLS = %+v: a browser keeps the session cookie", cleared)
	}
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/whoami", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	r2, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the signed-out session over TLS: %d, want 401", r2.StatusCode)
	}
}

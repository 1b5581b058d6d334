package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, sending what a browser sends on same-origin requests.
type browser struct {
	t    testing.TB
	s    *site
	jar  *cookiejar.Jar
	c    *http.Client
	site string // Sec-Fetch-Site of unsafe requests
}

func (s *site) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: s.t, s: s, jar: jar, site: "same-origin", c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.s.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != http.MethodGet {
		req.Header.Set("Sec-Fetch-Site", b.site)
		req.Header.Set("Origin", b.s.url)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) signIn(user, pass string) *http.Response {
	b.t.Helper()
	resp, _ := b.do("POST", "/signin", url.Values{"username": {user}, "password": {pass}, "next": {"/repositories?q=x"}})
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body := b.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("%s has no CSRF field:\n%s", path, body)
	}
	return m[1]
}

func TestSignInAndOut(t *testing.T) {
	s := newSite(t, true, nil)
	b := s.browser()
	resp, body := b.do("GET", "/signin?next=/repositories", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<label for="password">`) || !strings.Contains(body, `value="/repositories"`) {
		t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/signin", resp.Header)
	if strings.Contains(body, `<nav aria-label="Main">`) {
		t.Error("the sign-in page shows the navigation to a signed-out browser")
	}

	// A wrong password: the form again, with a message, and no cookie.
	resp = b.signIn("admin", "not the password")
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong password: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}

	resp = b.signIn("admin", s.admin)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/repositories?q=x" {
		t.Fatalf("sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "custody_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure {
		t.Fatalf("session cookie = %+v (over plain HTTP: HttpOnly, SameSite=Strict, Path=/, not Secure)", cookie)
	}
	if cookie.MaxAge != 0 || !cookie.Expires.IsZero() || strings.Contains(cookie.Raw, "Max-Age") || strings.Contains(cookie.Raw, "Expires") {
		t.Fatalf("session cookie %q: want a browser-session cookie (no Max-Age, no Expires; the server enforces the timeouts)", cookie.Raw)
	}
	resp, body = b.do("GET", "/repositories", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Signed in as <strong>admin</strong>") || !strings.Contains(body, `href="/admin"`) {
		t.Fatalf("signed in: %d\n%s", resp.StatusCode, body)
	}

	// Sign-out without the form's CSRF token is refused; the session stays.
	resp, _ = b.do("POST", "/signout", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/repositories", nil); resp.StatusCode != 200 {
		t.Fatalf("after a refused sign-out: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/signout", url.Values{"csrf": {b.csrf("/repositories")}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.do("GET", "/repositories", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d, want the sign-in redirect", resp.StatusCode)
	}
	// The old cookie no longer signs in: the session ended on the server.
	req, _ := http.NewRequest("GET", s.url+"/api/v1/whoami", nil)
	req.AddCookie(cookie)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the signed-out cookie on the API: %d, want 401", r2.StatusCode)
	}
}

// TestSignInAgainEndsThePreviousSession: a browser that signs in again
// gets a new session ID and the one it held before ends on the server
// (no session ID outlives a sign-in).
func TestSignInAgainEndsThePreviousSession(t *testing.T) {
	s := newSite(t, true, nil)
	b := s.browser()
	session := func(resp *http.Response) string {
		for _, c := range resp.Cookies() {
			if c.Name == "custody_session" {
				return c.Value
			}
		}
		t.Fatalf("no session cookie: %d", resp.StatusCode)
		return ""
	}
	first := session(b.signIn("admin", s.admin))
	second := session(b.signIn("admin", s.admin))
	if first == second {
		t.Fatal("signing in again kept the session ID")
	}
	for secret, want := range map[string]int{first: http.StatusUnauthorized, second: http.StatusOK} {
		req, _ := http.NewRequest("GET", s.url+"/api/v1/whoami", nil)
		req.AddCookie(&http.Cookie{Name: "custody_session", Value: secret})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("session %s… after signing in again: %d, want %d", secret[:6], resp.StatusCode, want)
		}
	}
}

// TestSignInRedirectStaysOnSite: the page after sign-in is on this site.
func TestSignInRedirectStaysOnSite(t *testing.T) {
	s := newSite(t, true, nil)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)",
		"/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/\t\\evil.example"} {
		b := s.browser()
		resp, _ := b.do("POST", "/signin", url.Values{"username": {"admin"}, "password": {s.admin}, "next": {next}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("next=%q: %d %q, want /", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestCrossSiteSignInRefused: a sign-in form posted from another site
// does not sign the browser in (login CSRF).
func TestCrossSiteSignInRefused(t *testing.T) {
	s := newSite(t, true, nil)
	b := s.browser()
	b.site = "cross-site"
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

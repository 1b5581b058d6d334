package browser

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestSignInLocal signs in with a local account and out again, and checks
// the sign-in page, the signed-in layout and the navigation an admin sees.
func TestSignInLocal(t *testing.T) {
	h := newHarness(t, options{})
	h.page("/signin", "signin")
	// A wrong password: the form again, with the reason, still signed out.
	h.run("a wrong password",
		chromedp.SetValue(chromedp.ID("username"), "admin"),
		chromedp.SetValue(chromedp.ID("password"), "not the password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)))
	if got := h.text(`[role="alert"]`); !strings.Contains(got, "wrong password") {
		t.Fatalf("wrong password message = %q", got)
	}
	h.axe("signin-error")
	h.screenshot("signin-error")

	h.signIn("admin", h.srv.AdminPassword())
	if got := h.text(".user strong"); got != "admin" {
		t.Fatalf("signed in as %q", got)
	}
	for _, nav := range []string{"/repositories", "/environments", "/audit", "/evidence", "/admin"} {
		if h.count(`nav[aria-label="Main"] a[href="`+nav+`"]`) != 1 {
			t.Errorf("the admin's navigation lacks %s", nav)
		}
	}
	if h.count("header") == 0 || h.count("main") != 1 || h.count("footer") == 0 {
		t.Error("the layout lacks its header, main or footer landmark")
	}
	// Keyboard: the first Tab reaches the skip link, shown on screen with
	// a visible focus outline; Enter moves the focus into main. Every
	// further stop (sign-out, the navigation) has a visible outline too.
	h.visit("/repositories")
	h.run("tabbing to the skip link", chromedp.KeyEvent("\t"))
	focused := func() string {
		return eval[string](h, `(() => { const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
  return e.tagName.toLowerCase() + "." + e.className + " outline=" + (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) +
    " onscreen=" + (r.left >= 0 && r.top >= 0 && r.width > 1 && r.height > 1); })()`)
	}
	if got := focused(); got != "a.skip outline=true onscreen=true" {
		t.Errorf("the first Tab focuses %s, want the skip link, visible and outlined", got)
	}
	for i := range 4 {
		h.run("tabbing on", chromedp.KeyEvent("\t"))
		if got := focused(); !strings.HasSuffix(got, "outline=true onscreen=true") {
			t.Errorf("Tab stop %d after the skip link: %s has no visible focus", i+1, got)
		}
	}
	h.visit("/repositories")
	h.run("skipping to the content", chromedp.KeyEvent("\t"), chromedp.KeyEvent("\r"))
	waitFor(t, "the focus in main", 5*time.Second, func() bool {
		return eval[string](h, `document.activeElement.tagName`) == "MAIN"
	})
}

// TestSignOut: the sign-out button ends the session; pages then lead to
// the sign-in page.
func TestSignOut(t *testing.T) {
	h := newHarness(t, options{})
	h.signIn("admin", h.srv.AdminPassword())
	h.run("signing out", chromedp.Click(chromedp.CSS(`.user button[type="submit"]`)))
	h.waitLocation("the sign-in page", func(l string) bool { return l == "/signin" })
	h.visit("/repositories")
	if loc := h.location(); !strings.HasPrefix(loc, "/signin") {
		t.Fatalf("a page after sign-out: at %s, want the sign-in page", loc)
	}
}

// TestSessionIdleExpiry: a session unused for longer than the idle timeout
// is over; the next page asks to sign in again.
func TestSessionIdleExpiry(t *testing.T) {
	const idle = 3 * time.Second
	h := newHarness(t, options{Env: []string{"CUSTODY_WEB_SESSION_IDLE=" + idle.String()}})
	h.signIn("admin", h.srv.AdminPassword())
	// Used within the idle timeout, the session lives on.
	h.visit("/repositories")
	if loc := h.location(); loc != "/repositories" {
		t.Fatalf("an active session: at %s", loc)
	}
	last := time.Now() // the last request the session made ended here
	// Wait, without touching the session, until the idle timeout has
	// certainly passed since that request.
	waitFor(t, "the idle timeout to pass", time.Minute, func() bool { return time.Since(last) > idle+200*time.Millisecond })
	h.visit("/repositories")
	if loc := h.location(); loc != "/signin?next=%2Frepositories" {
		t.Fatalf("after %v idle: at %s, want the sign-in page", idle, loc)
	}
	h.axe("signin-expired")
}

// TestCSRFRefused: a POST with the session cookie but without the
// session's CSRF token is refused and changes nothing, from a script of
// the page itself as from a form.
func TestCSRFRefused(t *testing.T) {
	h := newHarness(t, options{})
	h.signIn("admin", h.srv.AdminPassword())
	tokens := func() int { return strings.Count(string(h.api("GET", "/api/v1/tokens", nil, http.StatusOK)), `"id"`) }
	before := tokens()
	status := eval[int](h, `fetch("/api/v1/tokens", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({name: "forged", scopes: [{role: "reader", repositories: ["**"]}]})}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Fatalf("POST without the CSRF token: %d, want 403", status)
	}
	status = eval[int](h, `fetch("/api/v1/tokens", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": "forged"},
		body: JSON.stringify({name: "forged", scopes: [{role: "reader", repositories: ["**"]}]})}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token: %d, want 403", status)
	}
	if after := tokens(); after != before {
		t.Fatalf("refused POSTs created tokens: %d before, %d after", before, after)
	}
	// The sign-out form with its token field emptied: refused, still
	// signed in.
	eval[string](h, `document.querySelector('.user input[name="csrf"]').value = ""`)
	h.run("signing out without the token", chromedp.Click(chromedp.CSS(`.user button[type="submit"]`)))
	h.waitLocation("the refusal page", func(l string) bool { return l == "/signout" })
	if got := h.text("main h1"); got != "Forbidden" && !strings.Contains(got, "Denied") && !strings.Contains(got, "denied") {
		t.Errorf("sign-out without the token shows %q, want a refusal", got)
	}
	h.screenshot("error-csrf")
	h.visit("/repositories")
	if loc := h.location(); loc != "/repositories" {
		t.Fatalf("after a refused sign-out: at %s, want still signed in", loc)
	}
}

// TestReaderSeesNoAdmin: a reader's navigation has no Admin and no Audit,
// because the API says so (whoami), and the API refuses the admin pages'
// data anyway.
func TestReaderSeesNoAdmin(t *testing.T) {
	h := newHarness(t, options{})
	h.user("rita", "reader-password-1234", "reader", "**")
	h.signIn("rita", "reader-password-1234")
	if h.count(`nav a[href="/admin"]`) != 0 || h.count(`nav a[href="/audit"]`) != 0 {
		t.Fatal("a reader sees the Admin or Audit navigation")
	}
	if h.count(`nav a[href="/repositories"]`) != 1 {
		t.Fatal("a reader's navigation lacks Repositories")
	}
}

// pushRepos pushes one small image to each of n repositories team/svc-NN.
func pushRepos(t *testing.T, h *harness, n int) {
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: h.srv.AdminPassword()}))
	for i := range n {
		ref, err := name.ParseReference(fmt.Sprintf("%s/team/svc-%02d:latest", h.srv.Host(), i), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRepositoriesSearchAndPages: search, the next page, a repository.
func TestRepositoriesSearchAndPages(t *testing.T) {
	h := newHarness(t, options{})
	h.page("/signin", "signin")
	h.signIn("admin", h.srv.AdminPassword())
	h.page("/repositories", "repositories-empty")
	pushRepos(t, h, 55)
	h.page("/repositories", "repositories")
	rows := `main tbody tr`
	if n := h.count(rows); n != 50 {
		t.Fatalf("first page: %d rows, want 50", n)
	}
	h.run("next page", chromedp.Click(chromedp.CSS(`a[rel="next"]`)))
	h.waitLocation("the second page", func(l string) bool { return strings.Contains(l, "after=") })
	if n := h.count(rows); n != 5 {
		t.Fatalf("second page: %d rows, want 5", n)
	}
	h.screenshot("repositories-page2")
	h.visit("/repositories")
	h.run("searching",
		chromedp.SetValue(chromedp.ID("q"), "svc-1"),
		chromedp.Submit(chromedp.ID("q")))
	h.waitLocation("the search results", func(l string) bool { return strings.Contains(l, "q=svc-1") })
	if n := h.count(rows); n != 10 {
		t.Fatalf("search svc-1: %d rows, want 10", n)
	}
	h.axe("repositories-search")
	h.screenshot("repositories-search")
	h.run("opening a repository", chromedp.Click(chromedp.CSS(`main tbody a[href="/repositories/team/svc-12"]`)),
		chromedp.WaitVisible(chromedp.ID("tags")))
	h.waitLocation("the repository", func(l string) bool { return l == "/repositories/team/svc-12" })
	h.page("/repositories/team/svc-12?tag=latest", "repository")
	if got := h.text("main h1"); got != "team/svc-12" {
		t.Fatalf("repository page heading %q", got)
	}
	// The narrow screen.
	h.run("narrow", chromedp.EmulateViewport(375, 800))
	h.page("/repositories", "repositories-375")
	h.page("/repositories/team/svc-12?tag=latest", "repository-375")
	h.page("/no/such/page", "error-404")
}

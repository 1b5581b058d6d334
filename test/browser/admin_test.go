package browser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/custody-dev/custody/internal/key"
)

// adminPages are the Administration pages and their screenshot names
// (docs/ui.md).
var adminPages = []struct{ path, name string }{
	{"/admin", "admin"},
	{"/admin/users", "admin-users"},
	{"/admin/groups", "admin-groups"},
	{"/admin/grants", "admin-grants"},
	{"/admin/tokens", "admin-tokens"},
	{"/admin/keys", "admin-keys"},
	{"/admin/policies", "admin-policies"},
	{"/admin/vulndb", "admin-vulndb"},
}

// TestAdminPages: an admin creates a user, a grant and an API token with
// the forms, sees the token's secret once, removes the grant after
// confirming, and every Administration page passes axe-core.
func TestAdminPages(t *testing.T) {
	h := newHarness(t, options{})
	// A rotated key ring (the server reads it on each request): a retired
	// key with a closed signing window, and the active one.
	ring, err := key.Open(filepath.Join(h.srv.Data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "first", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ring.Rotate(key.ECDSAP256, "second", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	h.api("PUT", "/api/v1/policies/team/**", map[string]any{"immutableTags": []string{"v*"}, "noDelete": true}, 200)
	h.signIn("admin", h.srv.AdminPassword())
	h.run("opening the Administration from the navigation",
		chromedp.Click(chromedp.CSS(`nav[aria-label="Main"] a[href="/admin"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label="Administration"]`)))

	// A user, with the form.
	h.visit("/admin/users")
	h.run("creating a user",
		chromedp.SetValue(chromedp.ID("new-name"), "alice"),
		chromedp.SetValue(chromedp.ID("new-password"), "alice-password-1234"),
		chromedp.SetValue(chromedp.ID("new-groups"), "release, ci"),
		chromedp.Submit(chromedp.ID("new-name")),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if got := h.text(`p.notice`); got != "User created." {
		t.Fatalf("after creating a user: %q", got)
	}
	if !strings.Contains(h.text("tbody"), "alice") {
		t.Fatal("the new user is not in the list")
	}

	// A grant, with the form.
	h.visit("/admin/grants")
	h.run("adding a grant",
		chromedp.SetValue(chromedp.ID("grant-subject"), "group:release"),
		chromedp.SetValue(chromedp.ID("grant-role"), "promoter"),
		chromedp.SetValue(chromedp.ID("grant-repository"), "team/**"),
		chromedp.Submit(chromedp.ID("grant-subject")),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if n := releaseGrants(h); n != 1 {
		t.Fatalf("grants to group:release: %d, want the one added", n)
	}

	// A token: its secret on the answer, once.
	h.visit("/admin/tokens")
	h.run("creating a token",
		chromedp.SetValue(chromedp.ID("token-name"), "release job"),
		chromedp.SetValue(chromedp.ID("token-repositories"), "team/**"),
		chromedp.Submit(chromedp.ID("token-name")),
		chromedp.WaitVisible(chromedp.CSS(`.token-secret code.secret`)))
	secret := h.text(`.token-secret code.secret`)
	if !strings.HasPrefix(secret, "cst_") {
		t.Fatalf("token secret %q", secret)
	}
	h.mu.Lock()
	cc := h.responses[h.srv.URL+"/admin/tokens"].Get("Cache-Control")
	h.mu.Unlock()
	if cc != "no-store" {
		t.Errorf("the answer with the secret: Cache-Control %q, want no-store", cc)
	}
	h.axe("admin-token-created")
	h.screenshot("admin-token-created")

	for _, p := range adminPages {
		h.page(p.path, p.name)
		if p.path == "/admin/keys" && h.count("tbody tr") != 2 {
			t.Errorf("the keys page lists %d keys, want the retired and the active one", h.count("tbody tr"))
		}
	}
	// The token list (just visited) never shows the secret again.
	if h.count(".token-secret") != 0 || strings.Contains(h.text("main"), secret) {
		t.Fatal("the token list shows the secret again")
	}

	// Remove the grant: a confirmation first, then the change.
	h.visit("/admin/grants")
	row := `//tr[td[normalize-space()="group:release"]]`
	h.run("asking to remove the grant", chromedp.Click(chromedp.Search(row+`//summary`)), chromedp.WaitVisible(chromedp.Search(row+`//button[contains(@class,"danger")]`)))
	h.axe("admin-grants-confirm")
	h.screenshot("admin-grants-confirm")
	h.run("confirming", chromedp.Click(chromedp.Search(row+`//button[contains(@class,"danger")]`)), chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if got, n := h.text(`p.notice`), releaseGrants(h); got != "Grant removed." || n != 0 {
		t.Fatalf("after removing the grant: %q, %d grants to group:release", got, n)
	}
}

// TestAdminPagesNarrow: the Administration pages at 375 px pass axe-core.
func TestAdminPagesNarrow(t *testing.T) {
	h := newHarness(t, options{Width: 375})
	h.signIn("admin", h.srv.AdminPassword())
	for _, p := range []struct{ path, name string }{{"/admin/users", "admin-users-375"}, {"/admin/tokens", "admin-tokens-375"}} {
		h.page(p.path, p.name)
	}
}

// TestAdminRefusedToReader: a reader typing an Administration address
// gets the API's refusal page.
func TestAdminRefusedToReader(t *testing.T) {
	h := newHarness(t, options{})
	h.user("rita", "reader-password-1234", "reader", "**")
	h.signIn("rita", "reader-password-1234")
	h.visit("/admin/users")
	if got := h.text("main h1"); got != "Forbidden" && !strings.Contains(strings.ToLower(got), "denied") {
		t.Errorf("a reader on /admin/users sees %q", got)
	}
	if h.count(`form[action="/admin/users"]`) != 0 {
		t.Error("a reader sees the create-user form")
	}
	h.axe("admin-refused")
	h.screenshot("admin-refused")
}

// releaseGrants counts the rows of the grants list for group:release.
func releaseGrants(h *harness) int {
	h.t.Helper()
	return eval[int](h, `[...document.querySelectorAll("tbody tr")].filter(r => r.cells[0].textContent.trim() === "group:release").length`)
}

package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
)

// apiGet reads path from the API as admin into out.
func (s *site) apiGet(path string, out any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.SetBasicAuth("admin", s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		s.t.Fatal(err)
	}
}

// accounts is what the account API holds: users, grants and tokens.
type accounts struct {
	Users  []auth.User
	Grants []auth.Grant
	Tokens []auth.Token
}

func (s *site) accounts() accounts {
	s.t.Helper()
	var a accounts
	s.apiGet("/api/v1/users", &a.Users)
	s.apiGet("/api/v1/grants", &a.Grants)
	s.apiGet("/api/v1/tokens?all=true", &a.Tokens)
	return a
}

func (a accounts) user(name string) *auth.User {
	for _, u := range a.Users {
		if u.Name == name {
			return &u
		}
	}
	return nil
}

func (a accounts) hasGrant(g auth.Grant) bool {
	return slices.ContainsFunc(a.Grants, func(h auth.Grant) bool {
		return h.Subject == g.Subject && h.Role == g.Role && h.Repository == g.Repository
	})
}

// sameAccounts fails unless before and after hold the same users, grants
// and tokens.
func sameAccounts(t *testing.T, what string, before, after accounts) {
	t.Helper()
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	if string(a) != string(b) {
		t.Errorf("%s changed the accounts:\nbefore %s\nafter  %s", what, b, a)
	}
}

func wantRedirect(t *testing.T, what string, resp *http.Response, body, location string) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != location {
		t.Fatalf("%s: %d %q, want 303 to %s\n%s", what, resp.StatusCode, resp.Header.Get("Location"), location, body)
	}
}

var secretField = regexp.MustCompile(`<code class="secret">([^<]+)</code>`)

func TestAdminManagesUsersTokensAndGrants(t *testing.T) {
	s := newSite(t, true, nil)
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	// The admin sees the Administration in the navigation, and every
	// section of it.
	if _, body := b.do("GET", "/repositories", nil); !strings.Contains(body, `href="/admin"`) {
		t.Fatalf("no Admin in the admin's navigation:\n%s", body)
	}
	for _, p := range []string{"/admin", "/admin/users", "/admin/groups", "/admin/grants", "/admin/tokens", "/admin/keys", "/admin/policies", "/admin/vulndb"} {
		resp, body := b.do("GET", p, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `aria-label="Administration"`) {
			t.Fatalf("%s: %d\n%s", p, resp.StatusCode, body)
		}
		checkSecurityHeaders(t, p, resp.Header)
	}
	// Without projects the database is still served: the feeds'
	// dependency firewall reads it.
	if _, body := b.do("GET", "/admin/vulndb", nil); !strings.Contains(body, "Revision") || !strings.Contains(body, "dependency firewall") {
		t.Errorf("vulnerability database page without projects:\n%s", body)
	}
	csrf := b.csrf("/admin/users")

	// Create a user with groups.
	resp, body := b.do("POST", "/admin/users", url.Values{"csrf": {csrf}, "name": {"alice"}, "password": {"alice-password-1234"}, "groups": {"release, ci"}})
	wantRedirect(t, "create user", resp, body, "/admin/users?done=user-created")
	u := s.accounts().user("alice")
	if u == nil || !slices.Equal(u.Groups, []string{"release", "ci"}) {
		t.Fatalf("alice after creation: %+v", u)
	}
	if _, body := b.do("GET", "/admin/users?done=user-created", nil); !strings.Contains(body, "User created.") || !strings.Contains(body, "alice") {
		t.Fatalf("users page after creation:\n%s", body)
	}
	if _, body := b.do("GET", "/admin/groups", nil); !strings.Contains(body, "release") || !strings.Contains(body, "alice") {
		t.Fatalf("groups page:\n%s", body)
	}
	resp, body = b.do("POST", "/admin/users/alice/groups", url.Values{"csrf": {csrf}, "groups": {"release"}})
	wantRedirect(t, "save groups", resp, body, "/admin/users?done=groups-saved")
	if u := s.accounts().user("alice"); u == nil || !slices.Equal(u.Groups, []string{"release"}) {
		t.Fatalf("alice after saving groups: %+v", u)
	}

	// Create a token: the secret is on the answer, once.
	resp, body = b.do("POST", "/admin/tokens", url.Values{"csrf": {csrf}, "name": {"release job"}, "role": {"reader"}, "repositories": {"team/**"}, "expires": {"168h"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d\n%s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the page with the secret: Cache-Control %q, want no-store", cc)
	}
	m := secretField.FindStringSubmatch(body)
	if m == nil || !strings.HasPrefix(m[1], "cst_") {
		t.Fatalf("no secret on the created token's page:\n%s", body)
	}
	secret := m[1]
	req, _ := http.NewRequest("GET", s.url+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("the shown secret does not authenticate: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	resp, body = b.do("GET", "/admin/tokens", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "release job") || strings.Contains(body, secret) || strings.Contains(body, "token-secret") {
		t.Fatalf("the token list shows the secret again, or not the token: %d\n%s", resp.StatusCode, body)
	}
	toks := s.accounts().Tokens
	if len(toks) != 1 || toks[0].Name != "release job" || toks[0].Owner != "admin" {
		t.Fatalf("tokens: %+v", toks)
	}
	resp, body = b.do("POST", "/admin/tokens/"+toks[0].ID+"/revoke", url.Values{"csrf": {csrf}})
	wantRedirect(t, "revoke token", resp, body, "/admin/tokens?done=token-revoked")
	if toks := s.accounts().Tokens; toks[0].Revoked.IsZero() {
		t.Fatalf("token not revoked: %+v", toks)
	}

	// Add and remove a grant.
	g := auth.Grant{Subject: "user:alice", Role: auth.RolePromoter, Repository: "team/**"}
	form := url.Values{"csrf": {csrf}, "subject": {g.Subject}, "role": {string(g.Role)}, "repository": {g.Repository}}
	resp, body = b.do("POST", "/admin/grants", form)
	wantRedirect(t, "add grant", resp, body, "/admin/grants?done=grant-added")
	if !s.accounts().hasGrant(g) {
		t.Fatal("grant not added")
	}
	if _, body := b.do("GET", "/admin/grants", nil); !strings.Contains(body, "user:alice") || !strings.Contains(body, `action="/admin/grants/remove"`) {
		t.Fatalf("grants page:\n%s", body)
	}
	resp, body = b.do("POST", "/admin/grants/remove", form)
	wantRedirect(t, "remove grant", resp, body, "/admin/grants?done=grant-removed")
	if s.accounts().hasGrant(g) {
		t.Fatal("grant not removed")
	}
	// A bad grant is the API's clear refusal, and nothing changes.
	before := s.accounts()
	resp, body = b.do("POST", "/admin/grants", url.Values{"csrf": {csrf}, "subject": {"nobody"}, "role": {"reader"}, "repository": {"**"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid subject") {
		t.Fatalf("invalid grant: %d\n%s", resp.StatusCode, body)
	}
	sameAccounts(t, "an invalid grant", before, s.accounts())

	// Delete the user.
	resp, body = b.do("POST", "/admin/users/alice/delete", url.Values{"csrf": {csrf}})
	wantRedirect(t, "delete user", resp, body, "/admin/users?done=user-deleted")
	if s.accounts().user("alice") != nil {
		t.Fatal("alice not deleted")
	}
}

// TestAdminDisablesUser: the Users page shows each account's state with
// Disable (behind a confirmation) or Enable; disabling a signed-in user
// ends its session at once (its next page is the sign-in), its sign-in
// is refused, and enabling lets it sign in again.
func TestAdminDisablesUser(t *testing.T) {
	s := newSite(t, true, nil)
	s.reader("team/**")
	admin := s.browser()
	if resp := admin.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	reader := s.browser()
	if resp := reader.signIn("reader", readerPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reader sign-in: %d", resp.StatusCode)
	}
	if resp, _ := reader.do("GET", "/repositories", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("reader's page: %d", resp.StatusCode)
	}
	_, body := admin.do("GET", "/admin/users", nil)
	if !strings.Contains(body, `action="/admin/users/reader/disable"`) || strings.Contains(body, `action="/admin/users/reader/enable"`) ||
		!strings.Contains(body, `<span class="badge ok">active</span>`) {
		t.Fatalf("users page before disabling: no Disable for reader, or an Enable:\n%s", body)
	}
	csrf := admin.csrf("/admin/users")
	resp, body := admin.do("POST", "/admin/users/reader/disable", url.Values{"csrf": {csrf}})
	wantRedirect(t, "disable user", resp, body, "/admin/users?done=user-disabled")
	if u := s.accounts().user("reader"); u == nil || u.Disabled.IsZero() {
		t.Fatalf("reader after disabling: %+v", u)
	}
	_, body = admin.do("GET", "/admin/users?done=user-disabled", nil)
	if !strings.Contains(body, "User disabled") || !strings.Contains(body, `<span class="badge bad">disabled</span>`) ||
		!strings.Contains(body, `action="/admin/users/reader/enable"`) || strings.Contains(body, `action="/admin/users/reader/disable"`) {
		t.Fatalf("users page after disabling:\n%s", body)
	}
	if resp, _ := reader.do("GET", "/repositories", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Fatalf("a disabled user's session still shows a page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := s.browser().signIn("reader", readerPassword); resp.StatusCode == http.StatusSeeOther {
		t.Fatal("a disabled user signed in")
	}
	resp, body = admin.do("POST", "/admin/users/reader/enable", url.Values{"csrf": {csrf}})
	wantRedirect(t, "enable user", resp, body, "/admin/users?done=user-enabled")
	if u := s.accounts().user("reader"); u == nil || !u.Disabled.IsZero() {
		t.Fatalf("reader after enabling: %+v", u)
	}
	if resp := s.browser().signIn("reader", readerPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("an enabled user's sign-in: %d", resp.StatusCode)
	}
	// The admin cannot disable itself: the API's refusal, nothing changes.
	before := s.accounts()
	if resp, body := admin.do("POST", "/admin/users/admin/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "your own account") {
		t.Fatalf("disabling oneself: %d\n%s", resp.StatusCode, body)
	}
	sameAccounts(t, "disabling oneself", before, s.accounts())
}

func TestAdminPagesRefuseNonAdmins(t *testing.T) {
	s := newSite(t, true, nil)
	s.reader("team/**")
	s.api("POST", "/api/v1/tokens", map[string]any{"name": "admin's", "scopes": []map[string]any{{"role": "reader", "repositories": []string{"**"}}}}, http.StatusCreated)
	before := s.accounts()
	adminToken := before.Tokens[0].ID

	b := s.browser()
	if resp := b.signIn("reader", readerPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if _, body := b.do("GET", "/repositories", nil); strings.Contains(body, `href="/admin"`) {
		t.Errorf("a reader's navigation offers the Administration:\n%s", body)
	}
	for _, p := range []string{"/admin", "/admin/users", "/admin/groups", "/admin/grants", "/admin/tokens"} {
		resp, body := b.do("GET", p, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "admin") {
			t.Errorf("%s as a reader: %d, want the API's 403\n%s", p, resp.StatusCode, body)
		}
	}
	csrf := b.csrf("/repositories")
	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/admin/users", url.Values{"name": {"mallory"}, "password": {"mallory-password-1"}}, http.StatusForbidden},
		{"/admin/users/admin/groups", url.Values{"groups": {"x"}}, http.StatusForbidden},
		{"/admin/users/admin/delete", nil, http.StatusForbidden},
		{"/admin/users/admin/disable", nil, http.StatusForbidden},
		{"/admin/users/admin/enable", nil, http.StatusForbidden},
		{"/admin/grants", url.Values{"subject": {"user:reader"}, "role": {"admin"}, "repository": {"**"}}, http.StatusForbidden},
		{"/admin/grants/remove", url.Values{"subject": {"user:reader"}, "role": {"reader"}, "repository": {"team/**"}}, http.StatusForbidden},
		// Another user's token does not exist for a reader.
		{"/admin/tokens/" + adminToken + "/revoke", nil, http.StatusNotFound},
	} {
		form := url.Values{"csrf": {csrf}}
		for k, v := range tc.form {
			form[k] = v
		}
		resp, body := b.do("POST", tc.path, form)
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s as a reader: %d, want %d\n%s", tc.path, resp.StatusCode, tc.want, body)
		}
		sameAccounts(t, "POST "+tc.path+" as a reader", before, s.accounts())
	}
}

func TestAdminFormsWithoutCSRFChangeNothing(t *testing.T) {
	s := newSite(t, true, nil)
	s.reader("team/**")
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	csrf := b.csrf("/admin/users")
	before := s.accounts()
	forms := map[string]url.Values{
		"/admin/users":                {"name": {"mallory"}},
		"/admin/users/reader/groups":  {"groups": {"x"}},
		"/admin/users/reader/delete":  {},
		"/admin/users/reader/disable": {},
		"/admin/grants":               {"subject": {"user:reader"}, "role": {"admin"}, "repository": {"**"}},
		"/admin/grants/remove":        {"subject": {"user:reader"}, "role": {"reader"}, "repository": {"team/**"}},
		"/admin/tokens":               {"name": {"x"}, "role": {"reader"}, "repositories": {"**"}},
	}
	for path, form := range forms {
		for _, tc := range []struct {
			what, csrf, site string
		}{
			{"no CSRF token", "", "same-origin"},
			{"a wrong CSRF token", "x" + csrf, "same-origin"},
			{"a cross-site request", csrf, "cross-site"},
		} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if tc.csrf != "" {
				f.Set("csrf", tc.csrf)
			}
			b.site = tc.site
			resp, body := b.do("POST", path, f)
			if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "cst_") {
				t.Errorf("POST %s with %s: %d, want 403\n%s", path, tc.what, resp.StatusCode, body)
			}
			sameAccounts(t, fmt.Sprintf("POST %s with %s", path, tc.what), before, s.accounts())
		}
	}
}

func TestAdminListsSortAndPage(t *testing.T) {
	s := newSite(t, true, nil)
	for i := range 55 {
		s.api("POST", "/api/v1/users", map[string]any{"name": fmt.Sprintf("user%02d", i)}, http.StatusCreated)
	}
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	row := regexp.MustCompile(`<tr>\s*<td>([^<]+)</td>`)
	names := func(body string) []string {
		var out []string
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	_, body := b.do("GET", "/admin/users?sort=name&order=desc", nil)
	got := names(body)
	if len(got) != 50 || got[0] != "user54" || got[49] != "user05" {
		t.Fatalf("first page, by name descending: %v", got)
	}
	if !strings.Contains(body, `aria-sort="descending"`) || !strings.Contains(body, `href="/admin/users?order=desc&amp;page=2&amp;sort=name"`) {
		t.Fatalf("first page has no sort state or next link:\n%s", body)
	}
	_, body = b.do("GET", "/admin/users?sort=name&order=desc&page=2", nil)
	if got := names(body); !slices.Equal(got, []string{"user04", "user03", "user02", "user01", "user00", "admin"}) {
		t.Fatalf("second page: %v", got)
	}
	// A page past the end shows the last one.
	_, body = b.do("GET", "/admin/users?page=99", nil)
	if got := names(body); len(got) != 6 || got[5] != "user54" {
		t.Fatalf("page 99: %v", got)
	}
}

func TestAdminKeysPoliciesAndVulnDB(t *testing.T) {
	s := newSite(t, true, func(c *config.Config) {
		c.Projects = []config.Project{{Repositories: "apps/**", Environments: []config.Environment{{Name: "dev"}}}}
		// A rotated ring: a retired key with a closed signing window and
		// the active one.
		ring, err := key.Open(filepath.Join(c.Data, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ring.Create(key.ECDSAP256, "first", []byte("ring-pass")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ring.Rotate(key.ECDSAP256, "second", []byte("ring-pass")); err != nil {
			t.Fatal(err)
		}
	})
	s.api("PUT", "/api/v1/policies/apps/**", map[string]any{"immutableTags": []string{"v*"}, "noDelete": true}, http.StatusOK)
	var tr key.TrustRoot
	s.apiGet("/api/v1/keys", &tr)
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	_, body := b.do("GET", "/admin/keys", nil)
	if len(tr.Keys) != 2 {
		t.Fatalf("trust root: %+v", tr)
	}
	if !strings.Contains(body, "open (signs now)") || !strings.Contains(body, "retired") {
		t.Errorf("keys page lacks the validity windows:\n%s", body)
	}
	for _, k := range tr.Keys {
		if !strings.Contains(body, `data-copy="`+k.ID+`"`) || !strings.Contains(body, string(k.Status)) {
			t.Errorf("keys page lacks key %s:\n%s", k.ID, body)
		}
	}
	_, body = b.do("GET", "/admin/policies", nil)
	if !strings.Contains(body, "<code>apps/**</code>") || !strings.Contains(body, "<code>v*</code>") || !strings.Contains(body, "refused") {
		t.Fatalf("policies page:\n%s", body)
	}
	_, body = b.do("GET", "/admin/vulndb", nil)
	if !strings.Contains(body, "<dt>Revision</dt>") || !strings.Contains(body, "never") {
		t.Fatalf("vulnerability database page:\n%s", body)
	}
	_, body = b.do("GET", "/admin", nil)
	if !strings.Contains(body, "never imported") {
		t.Fatalf("overview:\n%s", body)
	}
}

package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/gate/spec"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
)

const envProject = "apps/**"

// newPromotionSite is a server with a signing key and one project: dev
// (anything), strict (needs an SBOM), prod (two approvers); rel1 and rel2
// are promoters, reader reads.
func newPromotionSite(t *testing.T) *site {
	t.Setenv("CUSTODY_KEY_PASSWORD", "ring-pass")
	s := newSite(t, true, func(c *config.Config) {
		ring, err := key.Open(filepath.Join(c.Data, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass")); err != nil {
			t.Fatal(err)
		}
		c.Projects = []config.Project{{Repositories: envProject, Environments: []config.Environment{
			{Name: "dev"},
			{Name: "strict", Gate: spec.Gate{Rules: []spec.Rule{{Use: "sbom_present"}}}},
			{Name: "prod", Approvals: 2},
		}}}
	})
	for _, u := range []string{"rel1", "rel2"} {
		s.api("POST", "/api/v1/users", map[string]any{"name": u, "password": u + "-long-passphrase"}, http.StatusCreated)
		s.api("POST", "/api/v1/grants", map[string]any{"subject": "user:" + u, "role": "promoter", "repository": envProject}, http.StatusCreated)
	}
	s.reader(envProject)
	return s
}

// envStatus reads the environment as admin through the API.
func (s *site) envStatus(repo, env, at string) promotionhttp.EnvironmentStatus {
	s.t.Helper()
	q := url.Values{"repository": {repo}, "environment": {env}}
	if at != "" {
		q.Set("at", at)
	}
	req, _ := http.NewRequest("GET", s.url+"/api/v1/environments?"+q.Encode(), nil)
	req.SetBasicAuth("admin", s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st promotionhttp.EnvironmentStatus
	if resp.StatusCode != 200 || json.Unmarshal(b, &st) != nil {
		s.t.Fatalf("environment %s %s: %d %s", repo, env, resp.StatusCode, b)
	}
	return st
}

// action posts an Environments form as b with its CSRF token.
func (b *browser) action(path, page string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	form.Set("csrf", b.csrf(page))
	return b.do("POST", path, form)
}

// TestEnvironmentsApproveAsSecondPromoter: the first promoter's promote
// records an approval; a reader sees no Approve button and a forged
// approval is refused by the API with nothing changed; the second
// promoter's Approve moves prod.
func TestEnvironmentsApproveAsSecondPromoter(t *testing.T) {
	s := newPromotionSite(t)
	d := s.push("apps/web", "v1", nil).String()
	page := "/environments/apps/web?project=" + url.QueryEscape(envProject)
	form := func() url.Values {
		return url.Values{"repository": {"apps/web"}, "project": {envProject}, "environment": {"prod"}, "digest": {d}}
	}

	rel1 := s.browser()
	rel1.signIn("rel1", "rel1-long-passphrase")
	resp, _ := rel1.action("/environments/promote", page, form())
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=approved") {
		t.Fatalf("first approval: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	st := s.envStatus("apps/web", "prod", "")
	if st.Current != "" || len(st.Pending) != 1 || st.Pending[0].Digest != d || len(st.Pending[0].Approvers) != 1 {
		t.Fatalf("after one approval: %+v", st)
	}

	reader := s.browser()
	reader.signIn("reader", readerPassword)
	resp, body := reader.do("GET", page, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Waiting for approval") || strings.Contains(body, `action="/environments/approve"`) ||
		strings.Contains(body, `action="/environments/revoke"`) || strings.Contains(body, `action="/environments/rollback"`) {
		t.Fatalf("reader's page: %d\n%s", resp.StatusCode, body)
	}
	resp, body = reader.action("/environments/approve", "/environments", form())
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reader's forged approval: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = reader.action("/environments/reject", "/environments", form())
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reader's forged rejection: %d", resp.StatusCode)
	}
	if st := s.envStatus("apps/web", "prod", ""); st.Current != "" || len(st.Pending) != 1 || len(st.Pending[0].Approvers) != 1 {
		t.Fatalf("after the reader's forgeries: %+v", st)
	}

	rel2 := s.browser()
	rel2.signIn("rel2", "rel2-long-passphrase")
	_, body = rel2.do("GET", page, nil)
	if !strings.Contains(body, `action="/environments/approve"`) || !strings.Contains(body, "rel1 (1 of 2)") {
		t.Fatalf("promoter's page has no approval to decide:\n%s", body)
	}
	resp, _ = rel2.action("/environments/approve", page, form())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second approval: %d", resp.StatusCode)
	}
	_, body = rel2.do("GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(body, "promoted to prod") || !strings.Contains(body, "<code>"+d+"</code>") || strings.Contains(body, "Waiting for approval") {
		t.Fatalf("after the second approval:\n%s", body)
	}
	if st := s.envStatus("apps/web", "prod", ""); st.Current != d || len(st.Pending) != 0 {
		t.Fatalf("prod after two approvals: %+v", st)
	}
}

// TestEnvironmentsNoticeIsTheSitesOwn: the notice after an action is one
// of the page's own texts, never words a link from elsewhere put in the
// query (?done=Your session expired, sign in at evil.example).
func TestEnvironmentsNoticeIsTheSitesOwn(t *testing.T) {
	s := newPromotionSite(t)
	d := s.push("apps/web", "v1", nil).String()
	b := s.browser()
	b.signIn("admin", s.admin)
	page := "/environments/apps/web?project=" + url.QueryEscape(envProject)
	for _, q := range []string{
		"&done=" + url.QueryEscape("Your session expired: sign in again at https://evil.example"),
		"&done=promoted&digest=" + url.QueryEscape("sign in at evil.example") + "&env=dev",
		"&done=promoted&digest=" + d + "&env=" + url.QueryEscape("dev. Sign in again at evil.example"),
		"&done=approved&digest=" + d + "&env=prod&approvals=1&needed=" + url.QueryEscape("2. Sign in at evil.example"),
	} {
		resp, body := b.do("GET", page+q, nil)
		if resp.StatusCode != http.StatusOK || strings.Contains(body, "evil.example") || strings.Contains(body, `class="notice" role="status"`) {
			t.Errorf("%s: %d, the page says what the link wrote:\n%s", q, resp.StatusCode, body)
		}
	}
	_, body := b.do("GET", page+"&done=promoted&digest="+d+"&env=dev", nil)
	if !strings.Contains(body, `<p class="notice" role="status">`+d[:19]+" promoted to dev.</p>") {
		t.Errorf("the site's own notice is missing:\n%s", body)
	}
}

// TestEnvironmentsReject: a promoter's Reject withdraws the approvals
// so far (a signed record); the next approval starts again from one.
func TestEnvironmentsReject(t *testing.T) {
	s := newPromotionSite(t)
	d := s.push("apps/web", "v1", nil).String()
	page := "/environments/apps/web?project=" + url.QueryEscape(envProject)
	form := url.Values{"repository": {"apps/web"}, "project": {envProject}, "environment": {"prod"}, "digest": {d}, "reason": {"not this week"}}
	rel1, rel2 := s.browser(), s.browser()
	rel1.signIn("rel1", "rel1-long-passphrase")
	rel2.signIn("rel2", "rel2-long-passphrase")
	if resp, _ := rel1.action("/environments/promote", page, form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval: %d", resp.StatusCode)
	}
	if resp, _ := rel2.action("/environments/reject", page, form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rejection: %d", resp.StatusCode)
	}
	if st := s.envStatus("apps/web", "prod", ""); st.Current != "" || len(st.Pending) != 0 {
		t.Fatalf("after the rejection: %+v", st)
	}
	// Nothing pending: a second rejection is refused.
	if resp, _ := rel2.action("/environments/reject", page, form); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("rejecting nothing: %d", resp.StatusCode)
	}
	// rel2 approving now is the first approval again: prod does not move.
	if resp, _ := rel2.action("/environments/approve", page, form); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(resp.Header.Get("Location"), "approvals=1&needed=2") {
		t.Fatalf("approval after the rejection: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st := s.envStatus("apps/web", "prod", ""); st.Current != "" || len(st.Pending) != 1 {
		t.Fatalf("after a fresh approval: %+v", st)
	}
}

// TestEnvironmentsRefusedPromotionShowsRules: a promotion the gate
// refuses shows each rule's result and reason, and nothing moves.
func TestEnvironmentsRefusedPromotionShowsRules(t *testing.T) {
	s := newPromotionSite(t)
	d := s.push("apps/web", "v1", nil).String()
	page := "/environments/apps/web?project=" + url.QueryEscape(envProject)
	rel1 := s.browser()
	rel1.signIn("rel1", "rel1-long-passphrase")
	resp, body := rel1.action("/environments/promote", page, url.Values{"repository": {"apps/web"}, "project": {envProject}, "environment": {"strict"}, "digest": {d}})
	if resp.StatusCode < 400 || !strings.Contains(body, "Promotion refused") || !strings.Contains(body, "<td>sbom_present</td>") ||
		!strings.Contains(body, `<span class="badge bad">fail</span>`) {
		t.Fatalf("refused promotion: %d\n%s", resp.StatusCode, body)
	}
	if st := s.envStatus("apps/web", "strict", ""); st.Current != "" {
		t.Fatalf("strict moved: %+v", st)
	}
	// Checking the gate shows the same rules without promoting.
	resp, body = rel1.action("/environments/gate", page, url.Values{"repository": {"apps/web"}, "project": {envProject}, "environment": {"strict"}, "digest": {d}})
	if resp.StatusCode != 200 || !strings.Contains(body, "<td>sbom_present</td>") || strings.Contains(body, "Promotion refused") {
		t.Fatalf("gate check: %d\n%s", resp.StatusCode, body)
	}
}

// TestEnvironmentsAtInstant: the date picker's instant shows what ran
// then, the earlier digest, while "now" shows the later one.
func TestEnvironmentsAtInstant(t *testing.T) {
	s := newPromotionSite(t)
	d1 := s.push("apps/web", "v1", nil).String()
	d2 := s.push("apps/web", "v2", nil).String()
	s.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": d1, "environment": "dev"}, http.StatusOK)
	between := time.Now().UTC()
	for !time.Now().UTC().After(between) { // the next record is later than between
	}
	s.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": d2, "environment": "dev"}, http.StatusOK)

	reader := s.browser()
	reader.signIn("reader", readerPassword)
	short := func(d string) string { return d[:len("sha256:")+12] }
	resp, body := reader.do("GET", "/environments", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, short(d2)) || strings.Contains(body, short(d1)) {
		t.Fatalf("now: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/environments", resp.Header)
	at := url.QueryEscape(between.Format(time.RFC3339Nano))
	resp, body = reader.do("GET", "/environments?at="+at, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, short(d1)) || strings.Contains(body, short(d2)) {
		t.Fatalf("at %s: %d\n%s", between, resp.StatusCode, body)
	}
	resp, body = reader.do("GET", "/environments/apps/web?project="+url.QueryEscape(envProject)+"&at="+at, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<dd class="at-digest"><code>`+d1+`</code>`) {
		t.Fatalf("repository at %s: %d\n%s", between, resp.StatusCode, body)
	}
	// The picker's own format (datetime-local, UTC) is understood.
	if resp, _ := reader.do("GET", "/environments?at="+url.QueryEscape(time.Now().UTC().Format("2006-01-02T15:04:05")), nil); resp.StatusCode != 200 {
		t.Fatalf("datetime-local value: %d", resp.StatusCode)
	}
	if resp, _ := reader.do("GET", "/environments?at=yesterday", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad instant: %d", resp.StatusCode)
	}
}

// TestEnvironmentsOverviewCountsPending: the overview shows, per
// environment, how many promotions wait for approvals now and lists
// them (also for a repository that never ran in the environment); after
// the second approval the count is gone.
func TestEnvironmentsOverviewCountsPending(t *testing.T) {
	s := newPromotionSite(t)
	d := s.push("apps/web", "v1", nil).String()
	page := "/environments/apps/web?project=" + url.QueryEscape(envProject)
	form := url.Values{"repository": {"apps/web"}, "project": {envProject}, "environment": {"prod"}, "digest": {d}}
	rel1 := s.browser()
	rel1.signIn("rel1", "rel1-long-passphrase")
	if _, body := rel1.do("GET", "/environments", nil); strings.Contains(body, "pending") {
		t.Fatalf("the overview counts pending approvals before any:\n%s", body)
	}
	if resp, _ := rel1.action("/environments/promote", page, form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first approval: %d", resp.StatusCode)
	}
	resp, body := rel1.do("GET", "/environments", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `prod (2 approvals, <span class="badge warn">1 pending</span>)`) ||
		!strings.Contains(body, "Waiting for approvals") || !strings.Contains(body, "into prod: 1 of 2 approvals") ||
		!strings.Contains(body, `<a href="/environments/apps/web?project=apps%2f%2a%2a">apps/web</a>`) {
		t.Fatalf("the overview after one approval: %d\n%s", resp.StatusCode, body)
	}
	// At a past instant the overview shows what ran, not what waits now.
	if _, body := rel1.do("GET", "/environments?at=2026-01-01T00:00:00", nil); strings.Contains(body, "pending") {
		t.Fatalf("the overview at an instant counts pending approvals:\n%s", body)
	}
	rel2 := s.browser()
	rel2.signIn("rel2", "rel2-long-passphrase")
	form.Set("csrf", rel2.csrf(page))
	if resp, _ := rel2.do("POST", "/environments/approve", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second approval: %d", resp.StatusCode)
	}
	_, body = rel2.do("GET", "/environments", nil)
	if strings.Contains(body, "pending") || strings.Contains(body, "Waiting for approvals") {
		t.Fatalf("the overview after the promotion still counts it pending:\n%s", body)
	}
	// The repository's link opens its environments (the project's name
	// escaped once: it was escaped twice and the page answered 404).
	link := `/environments/apps/web?project=apps%2f%2a%2a`
	if !strings.Contains(body, `<th scope="row"><a href="`+link+`">apps/web</a></th>`) {
		t.Fatalf("the overview's row link:\n%s", body)
	}
	if resp, _ := rel2.do("GET", link, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", link, resp.StatusCode)
	}
}

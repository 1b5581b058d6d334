package web_test

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	_ "github.com/custody-dev/custody/internal/meta/sqlite" // the sqlite driver, to tamper with the log
	"github.com/custody-dev/custody/internal/tlog"
)

// adminBrowser signs the admin in (admin holds the audit permission).
func (s *site) adminBrowser() *browser {
	s.t.Helper()
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("admin sign-in: %d", resp.StatusCode)
	}
	return b
}

// search asks the audit API as admin.
func (s *site) search(q string) tlog.EntriesResponse {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/api/v1/audit/search?"+q, nil)
	req.SetBasicAuth("admin", s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r tlog.EntriesResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

var auditRowIndex = regexp.MustCompile(`<td><a href="/api/v1/audit/proof/inclusion\?index=(\d+)"`)

// rowIndexes are the entry indexes an Audit page lists, in order.
func rowIndexes(t *testing.T, body string) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range auditRowIndex.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

func TestAuditPageFiltersAndPages(t *testing.T) {
	s := newSite(t, true, nil)
	for i := range 28 {
		repo := "team/a"
		if i%2 == 1 {
			repo = "team/b"
		}
		s.push(repo, "v"+strconv.Itoa(i), nil)
	}
	b := s.adminBrowser()

	// Filtered by repository: newest first, 50 a page, the next page
	// continues below the last index, and together they are what the
	// API's search finds.
	want := s.search("repo=team/a")
	if len(want.Entries) <= 50 {
		t.Fatalf("only %d entries about team/a: the test needs more than a page", len(want.Entries))
	}
	resp, body := b.do("GET", "/audit?repo=team%2Fa", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/audit: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/audit", resp.Header)
	// Each entry's repository links to the filter by it, escaped once (it
	// was escaped twice: the link filtered by "team%2Fa" and found nothing).
	if !strings.Contains(body, `<a href="/audit?repo=team%2fa">team/a</a>`) {
		t.Errorf("the entries' repository filter link is not /audit?repo=team%%2fa:\n%s", body)
	}
	first := rowIndexes(t, body)
	if len(first) != 50 {
		t.Fatalf("first page lists %d entries, want 50", len(first))
	}
	next := regexp.MustCompile(`<a href="(/audit\?[^"]+)" rel="next">`).FindStringSubmatch(body)
	if next == nil {
		t.Fatalf("no next page:\n%s", body)
	}
	nextURL := strings.ReplaceAll(next[1], "&amp;", "&")
	if !strings.Contains(nextURL, "before="+strconv.FormatUint(first[49], 10)) || !strings.Contains(nextURL, "repo=team%2Fa") {
		t.Fatalf("next page link %q does not keep the filter and continue below %d", nextURL, first[49])
	}
	_, body = b.do("GET", nextURL, nil)
	second := rowIndexes(t, body)
	all := append(first, second...)
	if len(all) != len(want.Entries) {
		t.Fatalf("the pages list %d entries, the API finds %d", len(all), len(want.Entries))
	}
	for i, idx := range all {
		if w := want.Entries[len(want.Entries)-1-i].Index; idx != w {
			t.Fatalf("row %d is entry %d, want %d (newest first)", i, idx, w)
		}
	}
	if strings.Contains(body, `rel="next"`) || !strings.Contains(body, `href="/audit?repo=team%2fa">Newest entries</a>`) && !strings.Contains(body, `href="/audit?repo=team%2Fa">Newest entries</a>`) {
		t.Fatalf("the last page offers another, or no way back:\n%s", body)
	}

	// Actor and action: every row is one of them.
	_, body = b.do("GET", "/audit?actor=admin&action=tag.set&repo=team%2Fb", nil)
	rows := rowIndexes(t, body)
	if len(rows) != 14 {
		t.Fatalf("tag.set by admin on team/b: %d rows, want 14", len(rows))
	}
	if strings.Contains(body, "manifest.put</a>") || strings.Contains(body, ">team/a</a>") {
		t.Fatalf("the filter let other entries through:\n%s", body)
	}
	// A time range: all of it, none of it, and a bad time.
	_, body = b.do("GET", "/audit?action=tag.set&since=2000-01-01&until="+url.QueryEscape("2999-01-01 00:00"), nil)
	if n := len(rowIndexes(t, body)); n != 28 {
		t.Fatalf("tag.set since 2000: %d rows, want 28", n)
	}
	_, body = b.do("GET", "/audit?since=2999-01-01", nil)
	if len(rowIndexes(t, body)) != 0 || !strings.Contains(body, "No entry matches this filter.") {
		t.Fatalf("entries from the future:\n%s", body)
	}
	if resp, body := b.do("GET", "/audit?since=yesterday", nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "since") {
		t.Fatalf("a bad time: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := b.do("GET", "/audit?before=x", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad cursor: %d", resp.StatusCode)
	}
}

func TestAuditPageCheckpointAndVerify(t *testing.T) {
	var data string
	s := newSite(t, true, func(c *config.Config) { data = c.Data })
	s.push("team/app", "v1", nil)
	b := s.adminBrowser()

	// Before the first checkpoint: said so, and Verify has nothing to
	// verify against.
	_, body := b.do("GET", "/audit", nil)
	if !strings.Contains(body, "No checkpoint has been signed yet") {
		t.Fatalf("no checkpoint yet:\n%s", body)
	}
	_, body = b.do("GET", "/audit/verify", nil)
	if !strings.Contains(body, "nothing to verify the entries against") {
		t.Fatalf("verify before a checkpoint:\n%s", body)
	}

	s.api("POST", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	_, body = b.do("GET", "/audit", nil)
	m := regexp.MustCompile(`<dt>Tree size</dt><dd>(\d+) entries</dd>`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "<dt>Root hash</dt>") || !strings.Contains(body, "— custody/audit") {
		t.Fatalf("the latest checkpoint is not shown:\n%s", body)
	}
	resp, body := b.do("GET", "/audit/verify", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<span class="badge ok">OK</span> `+m[1]+` entries match the signed checkpoint`) {
		t.Fatalf("verify an intact log: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "/audit/verify", resp.Header)

	// An entry edited in the database behind the server's back: Verify
	// names it.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(data, "meta.db"), RawQuery: "_pragma=busy_timeout(10000)"}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE tlog_leaves SET entry = replace(entry, '"result":"ok"', '"result":"denied"') WHERE idx = 2`); err != nil {
		t.Fatal(err)
	}
	_, body = b.do("GET", "/audit/verify", nil)
	if !strings.Contains(body, `<span class="badge bad">FAILED</span>`) || !strings.Contains(body, "entry 2: its content hashes to") {
		t.Fatalf("verify a tampered log:\n%s", body)
	}
}

// TestAuditPageRefusedToReaders: a caller without the audit permission
// sees no Audit navigation and gets the API's refusal, on the log and on
// Verify.
func TestAuditPageRefusedToReaders(t *testing.T) {
	s := newSite(t, true, nil)
	s.push("team/app", "v1", nil)
	s.api("POST", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	s.reader("team/**")
	b := s.browser()
	b.signIn("reader", readerPassword)
	_, body := b.do("GET", "/repositories", nil)
	if strings.Contains(body, `href="/audit"`) {
		t.Error("a reader sees the Audit navigation")
	}
	before := s.search("").Size
	for _, p := range []string{"/audit", "/audit/verify", "/audit?actor=admin"} {
		resp, body := b.do("GET", p, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "HTTP 403") || strings.Contains(body, "<dt>Root hash</dt>") || strings.Contains(body, "entries match") {
			t.Fatalf("%s as a reader: %d\n%s", p, resp.StatusCode, body)
		}
	}
	// Each refusal is itself logged; nothing else changed.
	after := s.search("")
	var refused int
	for _, e := range after.Entries[before:] {
		ent, err := tlog.ParseEntry([]byte(e.Entry))
		if err != nil || ent.Result != "denied" || ent.Actor != "reader" {
			t.Errorf("a refused read logged %s", e.Entry)
		}
		refused++
	}
	if refused == 0 {
		t.Error("the refusals were not logged")
	}
}

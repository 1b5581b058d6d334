package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestFarFutureRetentionEndToEnd: on a real `custody serve`, a compliance
// lock until 2300 (past the last instant int64 nanoseconds hold, where it
// used to wrap around to 1715) is shown and audited as set, refuses the
// manifest's deletion, and survives a restart; a date past year 9999 is
// refused with 400 and changes nothing; a default period of 2500000h
// (285 years) gives its true date.
func TestFarFutureRetentionEndToEnd(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	cli := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(testserver.Binary(t), append(args, "--server", s.URL)...).CombinedOutput()
		return string(out), err
	}
	m, d, _ := image(t, s.URL, "app", "1")
	if code, body := putManifest(t, s.URL, "app", "latest", m); code != http.StatusCreated {
		t.Fatalf("push: %d %s", code, body)
	}
	ref := "app@" + d.String()
	const y2300 = "2300-01-01T00:00:00Z"
	if out, err := cli("retention", "set", ref, "--mode", "compliance", "--until", y2300); err != nil || !strings.Contains(out, "compliance until "+y2300) {
		t.Fatalf("retention set: %v\n%s", err, out)
	}
	show := func() {
		t.Helper()
		out, err := cli("retention", "show", ref)
		if err != nil || !strings.Contains(out, "retention:  compliance until "+y2300) {
			t.Fatalf("retention show: %v\n%s", err, out)
		}
	}
	show()
	code, body := do(t, http.MethodDelete, s.URL+"/v2/app/manifests/"+d.String(), nil)
	wantDenied(t, code, body, "compliance retention until "+y2300)

	// The audit log states what was stored.
	waitAudit(t, s.URL, `"retention.set"`, "compliance until "+y2300)

	// Past the bound: 400, nothing changes (nothing audited either).
	before := waitAudit(t, s.URL, `"manifest.delete"`, `"denied"`)
	for _, until := range []string{"10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z"} {
		code, body = do(t, http.MethodPut, fmt.Sprintf("%s/api/v1/retention/app/@%s", s.URL, d),
			[]byte(fmt.Sprintf(`{"mode":"compliance","retainUntil":%q}`, until)))
		if code != http.StatusBadRequest {
			t.Fatalf("retainUntil %s: %d %s; want 400", until, code, body)
		}
	}
	if out, err := cli("retention", "set", ref, "--mode", "compliance", "--until", "10000-01-01T00:00:00Z"); err == nil {
		t.Fatalf("retention set --until 10000-01-01 succeeded:\n%s", out)
	}
	show()

	// A default period near the longest duration: its true date.
	code, body = do(t, http.MethodPut, s.URL+"/api/v1/policies/far/*", []byte(`{"retention":{"mode":"compliance","period":"2500000h"}}`))
	if code != http.StatusOK {
		t.Fatalf("policy: %d %s", code, body)
	}
	m2, d2, _ := image(t, s.URL, "far/a", "2")
	pushed := time.Now()
	if code, body := putManifest(t, s.URL, "far/a", d2.String(), m2); code != http.StatusCreated {
		t.Fatalf("push: %d %s", code, body)
	}
	// The audit log is written in order: once this push is in, any entry
	// of the refused requests would be too.
	after := waitAudit(t, s.URL, `"manifest.put"`, `"far/a"`)
	for _, e := range auditEntries(t, s.URL)[before:after] {
		if strings.Contains(e, `"retention.set"`) {
			t.Fatalf("a refused request was audited as a retention change: %s", e)
		}
	}
	var l struct {
		Mode        string    `json:"mode"`
		RetainUntil time.Time `json:"retainUntil"`
	}
	code, body = do(t, http.MethodGet, fmt.Sprintf("%s/api/v1/retention/far/a/@%s", s.URL, d2), nil)
	if err := json.Unmarshal([]byte(body), &l); err != nil || code != http.StatusOK {
		t.Fatalf("lock of far/a: %d %s", code, body)
	}
	want := pushed.Add(2500000 * time.Hour)
	if l.Mode != "compliance" || l.RetainUntil.Year() < 2300 || l.RetainUntil.Sub(want).Abs() > time.Minute {
		t.Fatalf("default lock = %+v, want compliance until about %s", l, want.UTC().Format(time.RFC3339))
	}
	code, body = do(t, http.MethodDelete, s.URL+"/v2/far/a/manifests/"+d2.String(), nil)
	wantDenied(t, code, body, "compliance retention until "+l.RetainUntil.UTC().Format(time.RFC3339))
	waitAudit(t, s.URL, `"retention.default"`, "compliance until "+l.RetainUntil.UTC().Format(time.RFC3339Nano))

	// Stored, not only remembered: the same after a restart.
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	show()
	code, body = do(t, http.MethodDelete, s.URL+"/v2/app/manifests/"+d.String(), nil)
	wantDenied(t, code, body, "compliance retention until "+y2300)
}

// auditEntries returns the audit log's entries.
func auditEntries(t *testing.T, base string) []string {
	t.Helper()
	code, body := do(t, http.MethodGet, base+"/api/v1/audit/entries?start=0&end=1000", nil)
	var r tlog.EntriesResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK {
		t.Fatalf("audit entries: %d %s", code, body)
	}
	var out []string
	for _, e := range r.Entries {
		out = append(out, e.Entry)
	}
	return out
}

// waitAudit waits (the audit log is written asynchronously) for an
// entry containing every one of parts and returns the number of entries
// up to and including the first such.
func waitAudit(t *testing.T, base string, parts ...string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := auditEntries(t, base)
	next:
		for i, e := range entries {
			for _, p := range parts {
				if !strings.Contains(e, p) {
					continue next
				}
			}
			return i + 1
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry contains %q; entries:\n%s", parts, strings.Join(entries, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package server_test

import (
	"bytes"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/custody-dev/custody/internal/meta/sqlite" // the "sqlite" database/sql driver

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTamperedAuditLogStopsCheckpoints edits a stored audit entry between
// two runs of the server: the second run must say so (ERROR log, /readyz,
// custody_audit_log_integrity_ok 0) and sign no checkpoint, also not
// after new entries nor at shutdown.
func TestTamperedAuditLogStopsCheckpoints(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	run := func(logs *syncBuffer, fn func(base string)) {
		t.Helper()
		s, err := server.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		fn(hs.URL)
		hs.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	put := func(base, repo string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/v1", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	metric := func(base string) string {
		t.Helper()
		_, body, _ := get(t, base+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "custody_audit_log_integrity_ok ") {
				return line
			}
		}
		t.Fatalf("/metrics has no custody_audit_log_integrity_ok:\n%s", body)
		return ""
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(cfg.Data, "meta.db")}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkpoints := func() (n, size int) {
		t.Helper()
		if err := db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(size), 0) FROM tlog_checkpoints`).Scan(&n, &size); err != nil {
			t.Fatal(err)
		}
		return n, size
	}

	var first syncBuffer
	run(&first, func(base string) {
		for _, repo := range []string{"team/a", "team/b", "team/c"} {
			put(base, repo)
		}
		if code, body, _ := get(t, base+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz of an untouched log = %d %q", code, body)
		}
		if got := metric(base); got != "custody_audit_log_integrity_ok 1" {
			t.Fatalf("untouched log: %s", got)
		}
	})
	n0, size0 := checkpoints()
	if n0 == 0 || size0 == 0 {
		t.Fatalf("the first run signed no checkpoint at shutdown (%d, size %d)", n0, size0)
	}
	res, err := db.Exec(`UPDATE tlog_leaves SET entry = replace(entry, 'team/b', 'team/x') WHERE idx = 1`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("edited %d entries, want 1", n)
	}

	var second syncBuffer
	run(&second, func(base string) {
		code, body, _ := get(t, base+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "audit log") {
			t.Fatalf("/readyz of a tampered log = %d %q, want 503 naming the audit log", code, body)
		}
		if got := metric(base); got != "custody_audit_log_integrity_ok 0" {
			t.Fatalf("tampered log: %s", got)
		}
		put(base, "team/d")
		resp, err := http.Post(base+"/api/v1/audit/checkpoint", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("POST /api/v1/audit/checkpoint on a tampered log = %s, want 409", resp.Status)
		}
	})
	if n, size := checkpoints(); n != n0 || size != size0 {
		t.Fatalf("checkpoints after the tampered run: %d (largest %d), want still %d (%d)", n, size, n0, size0)
	}
	logs := second.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "AUDIT LOG INTEGRITY CHECK FAILED") || !strings.Contains(logs, "entry 1 ") {
		t.Fatalf("the tampered run logged no ERROR naming the edited entry:\n%s", logs)
	}
	if strings.Contains(first.String(), "INTEGRITY CHECK FAILED") {
		t.Fatalf("the untouched run reported a failed check:\n%s", first.String())
	}
}

package server_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/server"
)

// TestInternalFailureNamesRequestIDOnly breaks the metadata database under
// a running server (drops a table a handler reads): the answer must be 500
// with a detail that names the request ID and no internal text, and the
// log must carry the error under that same ID.
func TestInternalFailureNamesRequestIDOnly(t *testing.T) {
	for _, c := range []struct {
		name, auth, table, path string
	}{
		// Authentication cannot read the accounts: once a 403 that sent
		// the SQL error.
		{"authentication", "", "auth_tokens", "/api/v1/tokens"},
		{"retention API", "none", "retention", "/api/v1/retention/app"},
		{"policy API", "none", "policies", "/api/v1/policies"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Auth.MFA.Roles = nil // passwords alone in these tests
			cfg.Data = t.TempDir()
			if c.auth != "" {
				cfg.Auth.Mode = c.auth
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			s, err := server.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			hs := httptest.NewServer(s.Handler())
			t.Cleanup(hs.Close)
			db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(cfg.Data, "meta.db"), RawQuery: "_pragma=busy_timeout(10000)"}).String())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("DROP TABLE " + c.table); err != nil {
				t.Fatal(err)
			}

			const id = "req-7f3a"
			req, _ := http.NewRequest(http.MethodGet, hs.URL+c.path, nil)
			if pw, err := os.ReadFile(filepath.Join(cfg.Data, "admin-password")); err == nil {
				req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
			}
			req.Header.Set("X-Request-Id", id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var d problem.Details
			if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != 500 || d.Status != 500 ||
				d.Type != problem.Internal.Type() || d.Detail != "internal error; request ID "+id ||
				resp.Header.Get("X-Request-Id") != id {
				t.Fatalf("GET %s: %d %s", c.path, resp.StatusCode, body)
			}
			if b := strings.ToLower(string(body)); strings.Contains(b, c.table) || strings.Contains(b, "table") || strings.Contains(b, "sql") {
				t.Fatalf("GET %s sent internal text: %s", c.path, body)
			}
			var logged bool
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, "request_id="+id) && strings.Contains(line, "no such table: "+c.table) {
					logged = true
				}
			}
			if !logged {
				t.Fatalf("GET %s: no ERROR log line with request_id=%s and the error:\n%s", c.path, id, logs)
			}
		})
	}
}

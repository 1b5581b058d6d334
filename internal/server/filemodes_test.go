package server_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestDataFileModes: after a real server's first start, a push and a
// vulnerability database import, no file or directory under the data
// directory grants anything to group or others (meta.db and its -wal and
// -shm hold password and token hashes). Changing the admin password
// removes the admin-password file, says so in the log, and a restart
// does not write it again.
func TestDataFileModes(t *testing.T) {
	// A project turns promotions, and with them the vulnerability
	// database's API, on.
	conf := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(conf, []byte("projects:\n  - repositories: \"apps/**\"\n    environments:\n      - name: dev\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The server creates the data directory itself.
	s := testserver.Start(t, testserver.Options{Auth: true, Data: filepath.Join(t.TempDir(), "data"), Args: []string{"--config", conf}})
	basic := func(pass string) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+pass))}
	}
	admin := basic(s.AdminPassword())

	cfg := []byte(`{"modes":1}`)
	cd := digest.FromBytes(cfg)
	code, body := do(t, http.MethodPost, fmt.Sprintf("%s/v2/app/blobs/uploads/?digest=%s", s.URL, cd), cfg,
		append([]string{"Content-Type", "application/octet-stream"}, admin...)...)
	if code != http.StatusCreated {
		t.Fatalf("push blob: %d %s", code, body)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`,
		manifestType, cd, len(cfg))
	code, body = do(t, http.MethodPut, s.URL+"/v2/app/manifests/latest", []byte(m), append([]string{"Content-Type", manifestType}, admin...)...)
	if code != http.StatusCreated {
		t.Fatalf("push manifest: %d %s", code, body)
	}
	adv := `{"id":"GHSA-test-mode-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"example.com/x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`
	code, body = do(t, http.MethodPost, s.URL+"/api/v1/vulndb", []byte(adv), append([]string{"Content-Type", "application/json"}, admin...)...)
	if code != http.StatusOK {
		t.Fatalf("vulndb import: %d %s", code, body)
	}

	seen := map[string]bool{}
	err := filepath.WalkDir(s.Data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Data, p)
		seen[rel] = true
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: group or others may use it", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"meta.db", "meta.db-wal", "meta.db-shm", "vulndb.db", "vulndb.db-wal", "vulndb.db-shm",
		"admin-password", "blobs/sha256/" + cd.Encoded()[:2] + "/" + cd.Encoded()} {
		if !seen[want] {
			t.Errorf("no %s under the data directory (checked: %v)", want, seen)
		}
	}

	// The admin changes its password: the file with the first one goes.
	code, body = do(t, http.MethodPut, s.URL+"/api/v1/users/admin", []byte(`{"password":"a new and long passphrase"}`),
		append([]string{"Content-Type", "application/json"}, admin...)...)
	if code != http.StatusOK {
		t.Fatalf("change the admin password: %d %s", code, body)
	}
	pwFile := filepath.Join(s.Data, "admin-password")
	if _, err := os.Stat(pwFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("admin-password after the password change: %v; want it removed", err)
	}
	if !s.WaitLog("removed the file that held the first one", 10*time.Second) || !strings.Contains(s.Logs(), pwFile) {
		t.Fatalf("the log does not say admin-password was removed:\n%s", s.Logs())
	}
	if code, body := do(t, http.MethodGet, s.URL+"/v2/", nil, basic("a new and long passphrase")...); code != http.StatusOK {
		t.Fatalf("the new password does not sign in: %d %s", code, body)
	}
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	if _, err := os.Stat(pwFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("admin-password after a restart: %v; want none (the account exists)", err)
	}
}

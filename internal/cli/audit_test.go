package cli

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
)

// auditEvents makes n audited requests: manifest PUTs the registry refuses
// as invalid (each is one audit entry).
func auditEvents(t *testing.T, srv *testserver.Server, n int) {
	t.Helper()
	for i := range n {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/team/app/manifests/t%d", srv.URL, i), strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// saveCheckpoint signs a checkpoint of the current tree and saves it.
func saveCheckpoint(t *testing.T, srv *testserver.Server) string {
	t.Helper()
	code, out, errb := run(t, "audit", "checkpoint", "--sign", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("audit checkpoint: %s", errb)
	}
	p := filepath.Join(t.TempDir(), "cp.txt")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tamper stops the server, runs SQL statements on its database and
// restarts it.
func tamper(t *testing.T, srv *testserver.Server, stmts ...string) {
	t.Helper()
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(srv.Data, "meta.db")}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	srv.Restart()
}

// setEntry is SQL that replaces entry idx by a modified copy with a
// correct leaf hash, as a careful attacker would.
func setEntry(idx int, e tlog.Entry) string {
	b := e.Canonical()
	return fmt.Sprintf(`UPDATE tlog_leaves SET entry = '%s', leaf_hash = X'%x' WHERE idx = %d`, b, tlog.LeafHash(b), idx)
}

func verify(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, errb := run(t, append([]string{"audit", "verify"}, args...)...)
	return code, out + errb
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	fake := tlog.Entry{Action: "manifest.put", Actor: "anonymous", Auth: "none", Repo: "team/app", Result: "ok", Time: "2026-01-01T00:00:00.000000000Z"}
	cases := []struct {
		name  string
		stmts []string
		since bool // verify --since-checkpoint (the checkpoint of size 60)
		want  []string
	}{
		{
			name:  "edit entry JSON only",
			stmts: []string{`UPDATE tlog_leaves SET entry = replace(entry, '"result":"invalid"', '"result":"ok"') WHERE idx = 7`},
			want:  []string{"entry 7: its content hashes to", "root mismatch", "entry 7 is the first that differs"},
		},
		{
			name:  "edit entry and leaf hash",
			stmts: []string{setEntry(11, fake)},
			want:  []string{"root mismatch", "entry 11 is the first that differs"},
		},
		{
			name:  "delete entry",
			stmts: []string{`DELETE FROM tlog_leaves WHERE idx = 12`},
			want:  []string{"missing: index 12"},
		},
		{
			name: "reorder entries",
			stmts: []string{
				`UPDATE tlog_leaves SET idx = -1 WHERE idx = 3`,
				`UPDATE tlog_leaves SET idx = 3 WHERE idx = 9`,
				`UPDATE tlog_leaves SET idx = 9 WHERE idx = -1`,
			},
			want: []string{"root mismatch", "entry 3 is the first that differs"},
		},
		{
			name: "insert entry",
			stmts: []string{
				`UPDATE tlog_leaves SET idx = -idx - 1 WHERE idx >= 20`,
				`UPDATE tlog_leaves SET idx = -idx WHERE idx < 0`,
				fmt.Sprintf(`INSERT INTO tlog_leaves(idx, entry, leaf_hash) VALUES (20, '%s', X'%x')`, fake.Canonical(), tlog.LeafHash(fake.Canonical())),
			},
			want: []string{"root mismatch", "entry 20 is the first that differs"},
		},
		{
			name: "roll back leaves and checkpoints",
			stmts: []string{
				`DELETE FROM tlog_leaves WHERE idx >= 40`,
				`DELETE FROM tlog_checkpoints WHERE size > 40`,
			},
			since: true,
			want:  []string{"inconsistent history", "rolled back"},
		},
		{
			name:  "replay old checkpoint",
			stmts: []string{`DELETE FROM tlog_checkpoints WHERE size > 40`},
			since: true,
			want:  []string{"inconsistent history", "replayed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, testserver.Options{})
			auditEvents(t, srv, 40)
			saveCheckpoint(t, srv)
			auditEvents(t, srv, 20)
			cp := saveCheckpoint(t, srv)
			key := filepath.Join(srv.Data, tlog.PublicKeyFile)
			args := []string{"--server", srv.URL, "--key", key}
			if tc.since {
				args = append(args, "--since-checkpoint", cp)
			}
			if code, out := verify(t, args...); code != 0 {
				t.Fatalf("verify before tampering: exit %d\n%s", code, out)
			}

			tamper(t, srv, tc.stmts...)
			args[1] = srv.URL
			code, out := verify(t, args...)
			if code == 0 {
				t.Fatalf("verify after tampering succeeded:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("verify output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestAuditExportAndRefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	srv := testserver.Start(t, testserver.Options{})
	auditEvents(t, srv, 40)
	cp := saveCheckpoint(t, srv)
	auditEvents(t, srv, 20)
	saveCheckpoint(t, srv)
	key := filepath.Join(srv.Data, tlog.PublicKeyFile)

	// Offline verification from an export.
	dir := filepath.Join(t.TempDir(), "export")
	if code, _, errb := run(t, "audit", "export", "--server", srv.URL, dir); code != 0 {
		t.Fatalf("export: %s", errb)
	}
	if code, out := verify(t, "--export", dir, "--key", key, "--since-checkpoint", cp); code != 0 {
		t.Fatalf("verify export: %s", out)
	}
	// A wrong key, and an edited export, fail.
	otherDir := t.TempDir()
	if _, _, err := tlog.LoadOrCreateKey(otherDir, "custody/audit"); err != nil {
		t.Fatal(err)
	}
	if code, out := verify(t, "--export", dir, "--key", filepath.Join(otherDir, tlog.PublicKeyFile)); code == 0 || !strings.Contains(out, "signature invalid") {
		t.Fatalf("verify with another key: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "entries.jsonl"))
	b = []byte(strings.Replace(string(b), `team/app`, `team/zzz`, 1))
	_ = os.WriteFile(filepath.Join(dir, "entries.jsonl"), b, 0o644)
	if code, out := verify(t, "--export", dir, "--key", key); code == 0 || !strings.Contains(out, "entry 0:") {
		t.Fatalf("verify edited export: exit %d\n%s", code, out)
	}

	// Roll the leaves back but not the signed checkpoints: the server must
	// notice at start and refuse to sign a checkpoint of the forked log.
	tamper(t, srv, `DELETE FROM tlog_leaves WHERE idx >= 40`)
	auditEvents(t, srv, 25)
	code, _, errb := run(t, "audit", "checkpoint", "--sign", "--server", srv.URL)
	if code == 0 || !strings.Contains(errb, "inconsistent") || !strings.Contains(errb, "rolled back") {
		t.Fatalf("signing a forked log: exit %d, %s", code, errb)
	}
	if !srv.WaitLog("AUDIT LOG INTEGRITY CHECK FAILED", 5*time.Second) {
		t.Fatalf("server did not log the refusal:\n%s", srv.Logs())
	}
}

// pushTagged pushes a small image manifest to repo:tag and returns its
// digest.
func pushTagged(t *testing.T, srv *testserver.Server, repo, tag string) string {
	t.Helper()
	cfg := []byte(`{"tag":"` + tag + `"}`)
	cd := fmt.Sprintf("sha256:%x", sha256.Sum256(cfg))
	do := func(method, path, ct string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		return resp
	}
	do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+cd, "application/octet-stream", cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cd, len(cfg))
	return do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", []byte(m)).Header.Get("Docker-Content-Digest")
}

// TestAuditVerifyReconcilesTags: a tag the metadata holds without an
// audit entry recording it (a change lost from the log) fails verify,
// although the log itself is intact.
func TestAuditVerifyReconcilesTags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	srv := testserver.Start(t, testserver.Options{})
	pushTagged(t, srv, "team/app", "a")
	d := pushTagged(t, srv, "team/app", "b")
	saveCheckpoint(t, srv)
	key := filepath.Join(srv.Data, tlog.PublicKeyFile)
	code, out := verify(t, "--server", srv.URL, "--key", key)
	if code != 0 || !strings.Contains(out, "reconciliation: 2 tags checked against the log, 0 unrecorded") {
		t.Fatalf("verify of a consistent registry: exit %d\n%s", code, out)
	}

	tamper(t, srv, `INSERT INTO tags(repo, tag, digest, updated) SELECT repo, 'ghost', digest, updated FROM tags WHERE tag = 'b'`)
	code, out = verify(t, "--server", srv.URL, "--key", key)
	if code == 0 {
		t.Fatalf("verify with an unrecorded tag succeeded:\n%s", out)
	}
	if want := "tag team/app:ghost points at " + d + ", but no audit entry records it"; !strings.Contains(out, want) {
		t.Fatalf("verify output lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "FAIL: tag team/app:a ") || strings.Contains(out, "FAIL: tag team/app:b ") {
		t.Fatalf("verify reported a recorded tag:\n%s", out)
	}
}

package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestAPICommandsSendCredentialAndUserAgent: API commands send
// CUSTODY_TOKEN and custody's user agent.
func TestAPICommandsSendCredentialAndUserAgent(t *testing.T) {
	var mu sync.Mutex
	var auth, ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, ua = r.Header.Get("Authorization"), r.Header.Get("User-Agent")
		mu.Unlock()
		_, _ = io.WriteString(w, `{"subject":"alice","method":"token"}`)
	}))
	defer srv.Close()
	t.Setenv(envToken, "t0ken")
	code, out, errs := run(t, "whoami", "--server", srv.URL)
	if code != 0 || !strings.HasPrefix(out, "alice ") {
		t.Fatalf("whoami: %d %q %q", code, out, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer t0ken" || ua != "custody/"+Version {
		t.Errorf("sent Authorization %q, User-Agent %q", auth, ua)
	}
}

// TestAPICommandErrorsPrintedAlike: every command that talks to the API
// prints a problem answer the same way, whatever it asked.
func TestAPICommandErrorsPrintedAlike(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"type":"https://custody.dev/problems/forbidden","title":"Forbidden","status":403,"detail":"alice may not do that"}`)
	}))
	defer srv.Close()
	osv := filepath.Join(t.TempDir(), "GHSA-1.json")
	if err := os.WriteFile(osv, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "Forbidden (403): alice may not do that"
	for _, args := range [][]string{
		{"whoami"},
		{"builds", "--revision", "abc"},
		{"versions", "tools/app"},
		{"tag", "history", "team/app:latest"},
		{"retention", "show", "app@" + digest.FromString("x").String()},
		{"vulndb", "import", osv},
		{"violations"},
		{"audit", "checkpoint"},
		{"gc"},
	} {
		code, out, errs := run(t, append(args, "--server", srv.URL)...)
		if code != 1 || !strings.Contains(errs, want) || out != "" {
			t.Errorf("custody %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(args, " "), code, out, errs, want)
		}
	}
}

// TestGCCommandOnline runs GC in a running server through its API.
func TestGCCommandOnline(t *testing.T) {
	data := t.TempDir()
	_, base := mtServer(t, data)
	b := mtRandom(3000)
	d := digest.FromBytes(b)
	if code, body := mtDo(t, http.MethodPost, base+"/v2/g/blobs/uploads/?digest="+d.String(), b, "application/octet-stream"); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, _ := mtDo(t, http.MethodDelete, base+"/v2/g/blobs/"+d.String(), nil, ""); code != http.StatusAccepted {
		t.Fatalf("unlink: %d", code)
	}
	code, out, errs := run(t, "gc", "--server", base+"/", "--dry-run", "-o", "json")
	if code != 0 {
		t.Fatalf("gc --dry-run: %d %s", code, errs)
	}
	var rep struct {
		DryRun bool `json:"dryRun"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.DryRun {
		t.Fatalf("gc --dry-run: %v %s", err, out)
	}
	if _, err := os.Stat(mtBlobPath(data, d)); err != nil {
		t.Fatalf("the dry run deleted the blob: %v", err)
	}
	if code, out, errs := run(t, "gc", "--server", base); code != 0 || !strings.Contains(out, "deleted ") {
		t.Fatalf("gc: %d %q %s", code, out, errs)
	}
}

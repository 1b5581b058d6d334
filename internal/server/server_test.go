package server_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/testserver"
)

func newInProcess(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestOperationalEndpoints(t *testing.T) {
	hs := newInProcess(t)
	if code, body, _ := get(t, hs.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body, _ := get(t, hs.URL+"/readyz"); code != 200 || !strings.HasPrefix(body, "ready\n") || !strings.Contains(body, "disk_free_bytes ") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	code, _, h := get(t, hs.URL+"/v2/")
	if code != 200 || h.Get("X-Request-Id") == "" {
		t.Fatalf("/v2/ = %d, request id %q", code, h.Get("X-Request-Id"))
	}
	get(t, hs.URL+"/v2/nope/manifests/latest")
	code, body, _ := get(t, hs.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`custody_http_requests_total{code="200",endpoint="base",method="GET"} 1`,
		`custody_http_requests_total{code="404",endpoint="manifest",method="GET"} 1`,
		`custody_http_request_duration_seconds_bucket`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "nope") {
		t.Error("/metrics leaks repository names into labels")
	}
	// A client-supplied request ID is echoed; a hostile one is replaced.
	req, _ := http.NewRequest("GET", hs.URL+"/v2/", nil)
	req.Header.Set("X-Request-Id", "ci-run-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "ci-run-42" {
		t.Errorf("request id = %q, want ci-run-42", got)
	}
}

func TestDataDirLocked(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	cmd := exec.Command(testserver.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", srv.Data)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("a second server started on the same data directory")
	}
	if !strings.Contains(string(out), "in use by another custody process") {
		t.Fatalf("unclear error: %s", out)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	cmd := exec.Command(testserver.Binary(t), "serve", "--data", t.TempDir(), "--log-format", "xml")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "text or json") {
		t.Fatalf("serve with a bad log format: %v\n%s", err, out)
	}
}

// TestGracefulShutdownFinishesUpload sends SIGTERM while a chunk is in
// flight: the chunk completes, the server exits cleanly, and after a
// restart the upload is resumed and committed.
func TestGracefulShutdownFinishesUpload(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	resp, err := http.Post(srv.URL+"/v2/shut/down/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload = %d", resp.StatusCode)
	}
	chunk := bytes.Repeat([]byte("custody!"), 1<<17) // 1 MiB
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+loc, pr)
	req.ContentLength = int64(len(chunk))
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", len(chunk)-1))
	done := make(chan *http.Response, 1)
	go func() {
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("PATCH: %v", err)
			done <- nil
			return
		}
		r.Body.Close()
		done <- r
	}()
	if _, err := pw.Write(chunk[:1000]); err != nil {
		t.Fatal(err)
	}
	// Signal only once the server is inside the PATCH handler: a connection
	// still in the listen backlog when shutdown closes the listener is
	// reset by the kernel, which no server can prevent. The in-flight gauge
	// counts the /metrics request itself too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, m, _ := get(t, srv.URL+"/metrics")
		if strings.Contains(m, "custody_http_requests_in_flight 2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the PATCH never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(20 * time.Second) }()
	// Shutdown has begun once the listener is closed: new connections are
	// refused while the PATCH is still open.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", srv.Addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the server still accepts connections 10s after SIGTERM:\n%s", srv.Logs())
		}
	}
	if _, err := pw.Write(chunk[1000:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r == nil || r.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight PATCH during shutdown: %v", r)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, srv.Logs())
	}

	srv.Restart()
	code, _, h := get(t, srv.URL+loc)
	if code != http.StatusNoContent || h.Get("Range") != fmt.Sprintf("0-%d", len(chunk)-1) {
		t.Fatalf("status after restart = %d Range %q", code, h.Get("Range"))
	}
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(chunk))
	req, _ = http.NewRequest(http.MethodPut, srv.URL+loc+"?digest="+d, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("commit after restart = %d", resp.StatusCode)
	}
	code, body, _ := get(t, srv.URL+"/v2/shut/down/blobs/"+d)
	if code != 200 || body != string(chunk) {
		t.Fatalf("blob after restart = %d, %d bytes", code, len(body))
	}
}

// TestStaleUploadsPurged starts a server whose upload TTL is one second:
// an idle session and its data disappear, a blob does not.
func TestStaleUploadsPurged(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Args: []string{"--upload-ttl", "1s"}})
	resp, err := http.Post(srv.URL+"/v2/purge/me/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	if _, err := os.Stat(srv.Data + "/uploads/" + id); err != nil {
		t.Fatalf("upload file: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, _ := get(t, srv.URL+loc)
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle upload still there after 15s (status %d)", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(srv.Data + "/uploads/" + id); !os.IsNotExist(err) {
		t.Fatalf("upload data left behind: %v", err)
	}
	_, metrics, _ := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, "custody_uploads_purged_total 1") {
		t.Error("purge not counted in /metrics")
	}
}

// TestNewReleasesOnFailure: a server that fails to start late (projects
// without authentication) releases the data directory for the next one.
func TestNewReleasesOnFailure(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Auth.Mode = "none"
	cfg.Projects = []config.Project{{Repositories: "apps/**", Environments: []config.Environment{{Name: "dev"}}}}
	if _, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "need authentication") {
		t.Fatalf("projects with auth none: %v", err)
	}
	cfg.Projects = nil
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("the failed start kept the data directory: %v", err)
	}
	s.Close()
}

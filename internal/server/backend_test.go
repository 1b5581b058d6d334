package server_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
)

// freeze stops the processes with SIGSTOP, as a hung engine would be, and
// continues them when the test ends; thaw continues them earlier.
func freeze(t *testing.T, what string, pids []int) (thaw func()) {
	t.Helper()
	thaw = func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	for i, p := range pids {
		// The first is the engine's main process; others may have exited.
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil && (i == 0 || !errors.Is(err, syscall.ESRCH)) {
			t.Fatalf("SIGSTOP %s (pid %d): %v", what, p, err)
		}
	}
	// kill returns once the signal is sent; each thread stops when it next
	// enters the kernel. Wait until every thread of the main process is
	// stopped, so the requests below meet a frozen engine.
	for deadline := time.Now().Add(10 * time.Second); !stopped(pids[0]); {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) did not stop within 10s of SIGSTOP", what, pids[0])
		}
		time.Sleep(time.Millisecond)
	}
	return thaw
}

// stopped reports whether every thread of process pid is stopped (state
// T in /proc/<pid>/task/<tid>/stat).
func stopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name's closing parenthesis.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// postgresPids returns the postmaster of scripts/postgres.sh's server and
// its children (among them the backends serving the open connections).
func postgresPids(t *testing.T) []int {
	t.Helper()
	dir := testserver.NeedEnv(t, "CUSTODY_POSTGRES_DIR", "postgres.sh")
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{pid}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(kids)) {
		if k, err := strconv.Atoi(f); err == nil {
			pids = append(pids, k)
		}
	}
	return pids
}

func minioPid(t *testing.T) []int {
	t.Helper()
	dir := testserver.NeedEnv(t, "CUSTODY_MINIO_DIR", "minio.sh")
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return []int{pid}
}

// TestFrozenBackendsFailCleanly: with PostgreSQL or the object store
// frozen (SIGSTOP), a request that needs it fails within the backend
// timeout with a clean 500, /readyz answers 503 naming the backend, and
// both recover once the engine continues. Before, requests hung for as
// long as the engine was frozen and /readyz ignored the object store.
func TestFrozenBackendsFailCleanly(t *testing.T) {
	store := testserver.NewReplicated(t, "frozen")
	testserver.NeedEnv(t, "CUSTODY_POSTGRES_DIR", "postgres.sh")
	testserver.NeedEnv(t, "CUSTODY_MINIO_DIR", "minio.sh")
	const timeout = 2 * time.Second
	srv := testserver.Start(t, testserver.Options{
		Data: store.Data,
		Env:  append(store.Env(), fmt.Sprintf("CUSTODY_BACKEND_TIMEOUT=%v", timeout)),
	})
	// A client that would wait far longer than any bound.
	client := &http.Client{Timeout: 2 * time.Minute}
	req := func(method, path string) (int, string, time.Duration) {
		t.Helper()
		r, _ := http.NewRequest(method, srv.URL+path, nil)
		start := time.Now()
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v after %v", method, path, err, time.Since(start))
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	const repo = "frozen/app"
	blob := []byte("frozen backends fail cleanly")
	d, resp, body := tryPush(t, srv.URL, repo, blob)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push = %d %s", resp.StatusCode, body)
	}
	waitReady := func() {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if code, _, _ := req(http.MethodGet, "/readyz"); code == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("/readyz did not recover after the engine continued")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		name    string
		pids    func(*testing.T) []int
		path    string
		bound   time.Duration
		backend string
	}{
		// A statement waits at most the timeout for the server's answer.
		{"postgres", postgresPids, "/v2/" + repo + "/manifests/latest", 3 * timeout, "metadata store unavailable"},
		// An S3 request is tried at most twice.
		{"minio", minioPid, "/v2/" + repo + "/blobs/" + d, 5 * timeout, "object store unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			thaw := freeze(t, c.name, c.pids(t))
			code, body, took := req(http.MethodGet, c.path)
			t.Logf("GET with %s frozen: %d after %v: %s", c.name, code, took.Round(time.Millisecond), strings.TrimSpace(body))
			if code != http.StatusInternalServerError || took > c.bound || strings.Contains(body, "timeout") || strings.Contains(body, "127.0.0.1") {
				t.Errorf("GET with %s frozen = %d after %v (%s), want a clean 500 within %v", c.name, code, took, body, c.bound)
			}
			code, body, took = req(http.MethodGet, "/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, c.backend) || took > 2*timeout {
				t.Errorf("/readyz with %s frozen = %d after %v %q, want 503 %q", c.name, code, took, body, c.backend)
			}
			thaw()
			waitReady()
			if code, body, _ := req(http.MethodGet, "/v2/"+repo+"/blobs/"+d); code != http.StatusOK || body != string(blob) {
				t.Errorf("GET blob after %s continued = %d %q", c.name, code, body)
			}
		})
	}
}

// Package testserver starts real `custody serve` processes on loopback for
// integration, crash and client tests: the binary is built once per test
// binary, each server gets its own data directory and a free port, and
// tests can kill (SIGKILL) and restart it on the same data.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/custody once per test process and returns its path,
// with the race detector when the test binary has it (go test -race), so
// the servers' own goroutines are checked too. CUSTODY_TEST_BINARY, when
// set, names a prebuilt binary instead.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("CUSTODY_TEST_BINARY"); p != "" {
			binPath = p
			return
		}
		removeStaleBinaries()
		dir, err := os.MkdirTemp("", fmt.Sprintf("custody-bin-%d-", os.Getpid()))
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "custody")
		args := []string{"build", "-o", binPath}
		if raceBuild {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/custody")...)
		cmd.Dir = moduleRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building custody: %v", buildErr)
	}
	return binPath
}

// removeStaleBinaries deletes the binaries earlier test processes built
// (custody-bin-<pid>-*, about 70 MiB each) once their process has ended:
// a test binary has no exit hook to remove its own, and a day of test runs
// would otherwise fill the temporary directory.
func removeStaleBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "custody-bin-*-*"))
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), "custody-bin-"), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Server is a running `custody serve` process.
type Server struct {
	t    testing.TB
	Data string
	Args []string
	Env  []string
	// Addr is host:port; URL is http://Addr.
	Addr string
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// Options configure Start.
type Options struct {
	// Data is the data directory; a fresh temporary one when empty.
	Data string
	// Args are extra flags for `custody serve`.
	Args []string
	// Env are extra environment variables (KEY=VALUE).
	Env []string
	// Auth keeps authentication on (the product's default). Without it
	// the server runs with --auth=none.
	Auth bool
	// Config, when set, is the text of the configuration file (YAML) the
	// server runs with: written to a temporary file named by --config.
	Config string
}

// Start runs `custody serve` on 127.0.0.1 with a free port and waits until
// it answers /healthz. The process is killed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Data == "" {
		opts.Data = t.TempDir()
	}
	args := opts.Args
	if opts.Config != "" {
		cfg := filepath.Join(t.TempDir(), "custody.yaml")
		if err := os.WriteFile(cfg, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", cfg}, args...)
	}
	if !opts.Auth {
		args = append([]string{"--auth=none"}, args...)
	}
	s := &Server{t: t, Data: opts.Data, Args: args, Env: opts.Env}
	s.start()
	t.Cleanup(func() { s.Kill() })
	return s
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", s.Data}, s.Args...)
	cmd := exec.Command(Binary(t), args...)
	// Tests sign in with passwords alone unless they turn the MFA policy
	// on (Env may set CUSTODY_MFA_ROLES again: the last one counts).
	cmd.Env = append(append(os.Environ(), "CUSTODY_READY_FILE="+ready, "CUSTODY_MFA_ROLES=none"), s.Env...)
	s.logs = &syncBuffer{}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting custody: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	logs, done := s.logs, s.done
	go func() {
		_ = cmd.Wait()
		// A race-enabled server reports a data race on its stderr and
		// goes on: fail the test that started it.
		if raceBuild && strings.Contains(logs.String(), "WARNING: DATA RACE") {
			t.Errorf("custody serve reported a data race:\n%s", logs.String())
		}
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			s.Addr = strings.TrimSpace(string(b))
			s.URL = "http://" + s.Addr
			break
		}
		select {
		case <-s.done:
			t.Fatalf("custody serve exited before it was ready:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("custody serve not ready after 30s:\n%s", s.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("custody serve /healthz: %v", err)
	}
	resp.Body.Close()
}

// AdminPassword returns the password of the admin account the server
// created on its first start (Options.Auth).
func (s *Server) AdminPassword() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Data, "admin-password"))
	if err != nil {
		s.t.Fatalf("reading the admin password: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// Host returns host:port, the registry part of an image reference.
func (s *Server) Host() string { return s.Addr }

// Pid returns the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns what the server has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit.
func (s *Server) Stop(timeout time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if st := s.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("custody exited with %v", st)
		}
		return nil
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("custody did not stop within %v", timeout)
	}
}

// Restart starts a new process on the same data directory (after Kill or
// Stop). The port changes.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM).
func (s *Server) PeakRSS() (int64, error) {
	return PeakRSS(s.Pid())
}

// PeakRSS reads VmHWM of a process from /proc.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// WaitContext is a context that ends with the test.
func WaitContext(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitLog waits up to timeout for the server's log to contain s. The log
// reaches this process through a pipe copied by another goroutine, so a
// line the server wrote before answering may arrive after the answer.
func (s *Server) WaitLog(substr string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; {
		if strings.Contains(s.Logs(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BlobFiles counts the regular files in the server's filesystem blob
// store (0 when it holds none yet): a refusal test compares it before and
// after to show that nothing was stored.
func (s *Server) BlobFiles(t testing.TB) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.Data, "blobs"), func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

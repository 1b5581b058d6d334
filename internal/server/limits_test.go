package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
)

// slowClientEnv bounds bodies to 1 KiB per second-long window and headers
// to one second, so tests see a cut within seconds.
var slowClientEnv = []string{
	"CUSTODY_BODY_WINDOW=1s",
	"CUSTODY_BODY_MIN_BYTES=1024",
	"CUSTODY_READ_HEADER_TIMEOUT=1s",
}

// closedWithin sends head, then trickles one byte of trickle every
// interval, and returns how long the server kept the connection open
// (failing the test if it still is after limit).
func closedWithin(t *testing.T, addr, head string, trickle []byte, interval, limit time.Duration) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	// The server ends the connection (possibly after an error answer);
	// reading to EOF or a reset notices it.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start)
		case <-tick.C:
		}
		if time.Since(start) > limit {
			t.Fatalf("the server still holds a connection trickling bytes after %v", time.Since(start))
		}
		if i < len(trickle) {
			_, _ = c.Write(trickle[i : i+1]) // errors show up as closed
		}
	}
}

// TestSlowClientsAreCutOff: a client trickling a request's headers or
// body, or sending nothing at all, loses its connection within the bound;
// before, it held it (and a file descriptor) for ever.
func TestSlowClientsAreCutOff(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Auth: true, Env: slowClientEnv})
	form := "grant_type=password&username=admin&password=" + strings.Repeat("x", 100)
	tokenHead := "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(form))
	cases := []struct {
		name, head string
		trickle    []byte
	}{
		{"token body", tokenHead, []byte(form)},
		{"token body, nothing sent", tokenHead, nil},
		{"headers", "", []byte(tokenHead)},
		{"nothing at all", "", nil},
		{"upload body", "PATCH /v2/slow/blobs/uploads/abc HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46eA==\r\nContent-Length: 100000\r\n\r\n", bytes.Repeat([]byte("a"), 1000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := closedWithin(t, srv.Addr, c.head, c.trickle, 200*time.Millisecond, 10*time.Second)
			t.Logf("closed after %v", d.Round(time.Millisecond))
		})
	}
}

// TestUploadsOutlastTheBodyWindow: the body bound is a minimum rate, not a
// total: an upload taking many windows at a steady rate completes, and a
// large upload at full speed is unaffected.
func TestUploadsOutlastTheBodyWindow(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Env: slowClientEnv})
	upload := func(content []byte, pace func(w io.Writer, b []byte) error) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v2/steady/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(pace(pw, content)) }()
		req, _ := http.NewRequest(http.MethodPatch, srv.URL+loc, pr)
		req.ContentLength = int64(len(content))
		req.Header.Set("Content-Range", fmt.Sprintf("0-%d", len(content)-1))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PATCH: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH = %d", resp.StatusCode)
		}
		loc, sep := resp.Header.Get("Location"), "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		req, _ = http.NewRequest(http.MethodPut, srv.URL+loc+sep+"digest="+fmt.Sprintf("sha256:%x", sha256.Sum256(content)), nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("commit = %d", resp.StatusCode)
		}
	}
	// 3 KiB per 100 ms for 2.5 s: 30 KiB/s, well over 1 KiB per 1 s window.
	steady := make([]byte, 75<<10)
	rand.Read(steady)
	start := time.Now()
	upload(steady, func(w io.Writer, b []byte) error {
		for len(b) > 0 {
			n := min(3<<10, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("the steady upload took only %v: it does not outlast the window", took)
	}
	big := make([]byte, 64<<20)
	rand.Read(big)
	upload(big, func(w io.Writer, b []byte) error { _, err := w.Write(b); return err })
}

// TestConnectionCapPerClient: one address holds at most
// CUSTODY_MAX_CONNS_PER_CLIENT connections; the next one is closed at
// once, the ones open keep working, and a freed slot is usable again.
func TestConnectionCapPerClient(t *testing.T) {
	const max = 4
	srv := testserver.Start(t, testserver.Options{Env: []string{fmt.Sprintf("CUSTODY_MAX_CONNS_PER_CLIENT=%d", max)}})
	// testserver.Start's own keep-alive connection is closed here; the
	// server frees its slot once it notices, so each connection is dialled
	// until it is served (which also proves the server counted it).
	http.DefaultClient.CloseIdleConnections()
	var conns []net.Conn
	for range max {
		c := dialServed(t, srv.Addr)
		defer c.Close()
		conns = append(conns, c)
	}
	extra, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := extra.Read(make([]byte, 1)); n != 0 || !(errors.Is(err, io.EOF) || isReset(err)) {
		t.Fatalf("connection %d from one address: read %d bytes, %v; want it closed", max+1, n, err)
	}
	conns[0].Close()
	dialServed(t, srv.Addr).Close()
	if code := healthz(t, conns[1]); code != http.StatusOK {
		t.Fatalf("an allowed connection stopped working: %d", code)
	}
}

// dialServed dials addr until a connection is served (the server may
// still hold a slot of a connection the test closed).
func dialServed(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if healthzOrZero(c) == http.StatusOK {
			_ = c.SetDeadline(time.Time{})
			return c
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection slot became free")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

func healthzOrZero(c net.Conn) int {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func healthz(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestBodyRefusedWhereNoneIsTaken: GET, HEAD and DELETE carry no body; one
// sent anyway is refused with 400 before anything runs, and the
// connection closed, so the body is never read or waited for. A refused
// DELETE deletes nothing.
func TestBodyRefusedWhereNoneIsTaken(t *testing.T) {
	hs := newInProcess(t)
	content := []byte("keep me")
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(content))
	resp, err := http.Post(hs.URL+"/v2/body/blobs/uploads/?digest="+d, "application/octet-stream", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic upload = %d", resp.StatusCode)
	}
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, "/v2/", `"code":"UNSUPPORTED"`},
		{http.MethodDelete, "/v2/body/blobs/" + d, `"code":"UNSUPPORTED"`},
		{http.MethodGet, "/api/v1/policies", `body-not-accepted`},
	} {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, strings.NewReader("unexpected"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), c.want) || !resp.Close {
			t.Errorf("%s %s with a body = %d %s (close %v), want 400 %s and the connection closed", c.method, c.path, resp.StatusCode, b, resp.Close, c.want)
		}
	}
	if code, body, _ := get(t, hs.URL+"/v2/body/blobs/"+d); code != http.StatusOK || body != string(content) {
		t.Fatalf("blob after the refused DELETE = %d %q", code, body)
	}
}

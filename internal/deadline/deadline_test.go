package deadline_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/deadline"
)

// frozenPeer accepts connections and never reads or writes, as a stopped
// engine whose kernel still accepts does.
func frozenPeer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

func TestStalledReadsAndWritesFail(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c, err := deadline.Dialer{Timeout: timeout}.DialContext(context.Background(), "tcp", frozenPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a frozen peer = %v", err)
	}
	if took := time.Since(start); took < timeout || took > 10*timeout {
		t.Fatalf("read failed after %v, want about %v", took, timeout)
	}
	// Writes fill the socket buffers, then stall.
	start = time.Now()
	buf := make([]byte, 1<<20)
	for err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		if _, err = c.Write(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write = %v", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("writes to a frozen peer never failed")
		}
	}
}

// TestCallerDeadlineStillCancels: a deadline in the past (how drivers
// cancel a pending read) ends a pending Read at once, and clearing it
// restores the bound.
func TestCallerDeadlineStillCancels(t *testing.T) {
	c, err := deadline.Dialer{Timeout: time.Minute}.DialContext(context.Background(), "tcp", frozenPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	// Whether the Read is pending or not yet started, a past deadline
	// ends it.
	if err := c.SetDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	var rerr error
	select {
	case rerr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a past deadline did not end the pending read")
	}
	if !errors.Is(rerr, os.ErrDeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled read = %v after %v", rerr, time.Since(start))
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	short := deadline.Wrap(c, 100*time.Millisecond)
	if _, err := short.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after clearing the deadline = %v", err)
	}
}

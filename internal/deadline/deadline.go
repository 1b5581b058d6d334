// Package deadline bounds how long a connection to a backend (the
// PostgreSQL server, the S3 object store) may go without progress: every
// Read and every Write must complete within the timeout, or fails with
// os.ErrDeadlineExceeded. A frozen engine then fails the call within the
// timeout instead of hanging it for as long as the engine is frozen, while
// a long transfer that keeps moving is never cut.
package deadline

import (
	"context"
	"net"
	"sync"
	"time"
)

// Dialer dials connections bounded by Timeout: the dial itself and then
// each Read and Write.
type Dialer struct {
	Timeout time.Duration
	// KeepAlive is the TCP keep-alive period (0: Go's default).
	KeepAlive time.Duration
}

// DialContext dials like net.Dialer and wraps the connection.
func (d Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout, KeepAlive: d.KeepAlive}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return Wrap(c, d.Timeout), nil
}

// Wrap returns c with each Read and Write bounded by timeout (0: c as is).
// Deadlines the caller sets still apply when they are earlier (database
// drivers cancel a pending read by setting a deadline in the past).
func Wrap(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	return &conn{Conn: c, timeout: timeout}
}

type conn struct {
	net.Conn
	timeout time.Duration

	mu sync.Mutex
	// read and write are the deadlines the caller set (zero: none).
	read, write time.Time
}

// bound returns the earlier of now+timeout and the caller's deadline.
func (c *conn) bound(set time.Time) time.Time {
	d := time.Now().Add(c.timeout)
	if !set.IsZero() && set.Before(d) {
		return set
	}
	return d
}

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.Conn.SetReadDeadline(c.bound(c.read))
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	err := c.Conn.SetWriteDeadline(c.bound(c.write))
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.write = t, t
	return c.setBoth(t)
}

// setBoth applies a caller's deadline to pending I/O at once when it is
// earlier than the bound (a cancellation); a later one takes effect at
// the next Read or Write.
func (c *conn) setBoth(t time.Time) error {
	if t.IsZero() || t.After(time.Now().Add(c.timeout)) {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	if t.IsZero() || t.After(time.Now().Add(c.timeout)) {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write = t
	if t.IsZero() || t.After(time.Now().Add(c.timeout)) {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

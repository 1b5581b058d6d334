// Package intake bounds what one client can make the server hold: its open
// connections (Listener caps them per client address) and the time its
// request bodies take to arrive (Bodies cuts a body that stops making
// progress). Bodies also refuses a body on a request whose method takes
// none, so nothing reads or waits for it.
//
// Header read time and idle keep-alive time are net/http's own
// ReadHeaderTimeout and IdleTimeout, which the server sets beside these.
package intake

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener caps the concurrent connections from one client IP address. A
// connection over the cap is closed as soon as it is accepted, before
// anything is read from it. Loopback addresses are not exempt: a reverse
// proxy on the same host shares one address for all its clients, so raise
// or disable the cap behind one.
type Listener struct {
	net.Listener
	// Max is the cap per address; 0 or less disables it.
	Max int
	// Refused, when set, is called for each connection closed over the cap.
	Refused func(remote net.Addr)

	mu   sync.Mutex
	open map[string]int // guarded by mu
}

// Accept returns the next connection within the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.Max <= 0 {
			return c, err
		}
		ip := clientIP(c.RemoteAddr())
		l.mu.Lock()
		if l.open == nil {
			l.open = make(map[string]int)
		}
		if l.open[ip] >= l.Max {
			l.mu.Unlock()
			_ = c.Close()
			if l.Refused != nil {
				l.Refused(c.RemoteAddr())
			}
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &conn{Conn: c, release: sync.OnceFunc(func() { l.release(ip) })}, nil
	}
}

// Open returns the number of connections open from ip (for tests and
// metrics).
func (l *Listener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

func clientIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back when closed. It keeps the underlying
// connection's ReadFrom and CloseWrite, which net/http uses for sendfile(2)
// and for closing connections cleanly.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Bodies bounds request bodies. Every Window, at least MinBytes of a body
// must arrive (or the body end): the connection's read deadline starts one
// Window ahead and moves one Window on each time MinBytes more have
// arrived, so an upload of any size at a useful rate is never cut, while a
// client trickling bytes, or sending none, loses its connection within one
// Window of its last progress.
type Bodies struct {
	Window   time.Duration
	MinBytes int64
	// Refuse answers a request that is refused before its handler runs
	// (a body on a method that takes none) in the format of its endpoint.
	Refuse func(w http.ResponseWriter, r *http.Request, status int, msg string)
}

// TakesNoBody reports whether requests with this method carry no body.
func TakesNoBody(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Wrap returns h with its request bodies bounded.
func (b Bodies) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		if TakesNoBody(r.Method) {
			// Close the connection: the unread body must not be taken
			// for the next request.
			w.Header().Set("Connection", "close")
			b.Refuse(w, r, http.StatusBadRequest, r.Method+" requests take no body")
			return
		}
		rc := http.NewResponseController(w)
		body := &body{ReadCloser: r.Body, rc: rc, window: b.Window, min: b.MinBytes}
		if err := body.extend(); err != nil {
			// The connection cannot take deadlines (e.g. in tests with a
			// recorder): serve unbounded rather than fail.
			h.ServeHTTP(w, r)
			return
		}
		// A body the handler leaves unread keeps its deadline: net/http
		// discards the rest within it, then sets its own deadlines for the
		// next request.
		r.Body = body
		h.ServeHTTP(w, r)
	})
}

// body moves the connection's read deadline as bytes arrive.
type body struct {
	io.ReadCloser
	rc     *http.ResponseController
	window time.Duration
	min    int64
	got    int64 // bytes since the deadline last moved
	done   bool
}

func (b *body) extend() error {
	b.got = 0
	return b.rc.SetReadDeadline(time.Now().Add(b.window))
}

// clear lifts the deadline once the body is over: net/http reads the idle
// connection in the background while the handler works on, and a deadline
// passing then would cancel the request.
func (b *body) clear() {
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.clear()
	case err != nil:
		// Timed out or broken: the connection is closed after the
		// handler answers; nothing more is read from it.
	case b.got >= b.min:
		_ = b.extend()
	}
	return n, err
}

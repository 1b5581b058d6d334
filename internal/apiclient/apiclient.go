// Package apiclient is the HTTP client of custody's command line: one
// server, one credential, bounded waits, and the server's errors (RFC 9457
// problem details on /api/v1/, OCI error JSON on /v2/) decoded into one
// typed error.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of Options' zero values.
const (
	// DefaultConnectTimeout bounds dialling the server.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultTLSTimeout bounds the TLS handshake.
	DefaultTLSTimeout = 30 * time.Second
	// DefaultHeaderTimeout bounds the wait for the answer's headers once
	// the request is sent: the time the server may work on it.
	DefaultHeaderTimeout = 5 * time.Minute
	// DefaultMaxBody is the largest answer read.
	DefaultMaxBody = 64 << 20
	// maxRedirects is how many redirects a request follows.
	maxRedirects = 10
)

// Options tune a Client; the zero value is sane.
type Options struct {
	// Authorization is the Authorization header sent with every request
	// to the server's own origin ("Bearer ...", "Basic ..."); empty sends
	// none.
	Authorization string
	// UserAgent is sent as User-Agent ("custody/1.2.3").
	UserAgent string
	// ConnectTimeout, TLSTimeout and HeaderTimeout bound dialling, the TLS
	// handshake and the wait for the answer's headers (0: the defaults).
	// Sending a body and reading the answer are not bounded by them, so a
	// large upload or download is not cut short; Timeout bounds the whole
	// exchange when set.
	ConnectTimeout, TLSTimeout, HeaderTimeout time.Duration
	// Timeout bounds a whole request, body included; 0 means no bound
	// beyond the ones above and the context's.
	Timeout time.Duration
	// MaxBody is the largest answer read (0: DefaultMaxBody).
	MaxBody int64
	// Transport, when set, carries the requests instead of a network
	// transport (the connect, TLS and header timeouts then do not apply):
	// the web interface calls the API in process with it.
	Transport http.RoundTripper
}

// Client talks to one custody server.
type Client struct {
	base    *url.URL
	opts    Options
	http    *http.Client
	maxBody int64
}

// New returns a client of the server at base ("https://custody.example.com").
func New(base string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid server %q (expected a URL such as http://127.0.0.1:5000)", base)
	}
	c := &Client{base: u, opts: opts, maxBody: opts.MaxBody}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBody
	}
	var t http.RoundTripper = opts.Transport
	if t == nil {
		t = NewTransport(opts)
	}
	c.http = &http.Client{Transport: t, Timeout: opts.Timeout, CheckRedirect: c.checkRedirect}
	return c, nil
}

// NewTransport returns an HTTP transport bounded by o's connect, TLS and
// header timeouts (the defaults for zero values), for the CLI's other
// HTTP: the registry protocol that go-containerregistry speaks.
func NewTransport(o Options) *http.Transport {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: or(o.ConnectTimeout, DefaultConnectTimeout), KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = or(o.TLSTimeout, DefaultTLSTimeout)
	t.ResponseHeaderTimeout = or(o.HeaderTimeout, DefaultHeaderTimeout)
	return t
}

// Base returns the server's base URL.
func (c *Client) Base() string { return c.base.String() }

// checkRedirect follows a few redirects, and sends the credential only to
// the server's own origin: never to another host or port, nor over plain
// HTTP after HTTPS.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if !c.sameOrigin(req.URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

func (c *Client) sameOrigin(u *url.URL) bool {
	return u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host)
}

// Request is one call to the server.
type Request struct {
	Method string
	// Path is the path and query under the base URL ("/api/v1/whoami").
	Path string
	// Header holds extra headers.
	Header http.Header
	// JSON, when not nil, is sent JSON-encoded.
	JSON any
	// Body, when not nil, is sent as is (an upload) with ContentType.
	Body        io.Reader
	ContentType string
}

// Do sends in (JSON-encoded, unless nil) with method to path and decodes
// the JSON answer into out: nil discards it, a *[]byte receives it as is.
// An answer of status 300 or more is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.Send(ctx, Request{Method: method, Path: path, JSON: in}, out)
}

// Send is Do for requests with headers or a streamed body.
func (c *Client) Send(ctx context.Context, r Request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", r.Method, r.Path, err)
	}
	if int64(len(b)) > c.maxBody {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes", r.Method, r.Path, c.maxBody)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp, b)
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*out = b
		return nil
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", r.Method, r.Path, err)
		}
		return nil
	}
}

// send sends r and returns the response, whatever its status.
func (c *Client) send(ctx context.Context, r Request) (*http.Response, error) {
	body, ctype := r.Body, r.ContentType
	if r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	if !strings.HasPrefix(r.Path, "/") {
		return nil, fmt.Errorf("request path %q does not start with /", r.Path)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.base.String()+r.Path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	if c.opts.Authorization != "" {
		req.Header.Set("Authorization", c.opts.Authorization)
	}
	return c.http.Do(req)
}

// Download streams the answer of a GET of path into w (no size limit),
// calling progress, when not nil, with the bytes written so far and the
// total the server announced in header totalHeader (-1 when absent). An
// answer of status 300 or more is an *Error.
func (c *Client) Download(ctx context.Context, path, totalHeader string, w io.Writer, progress func(n, total int64)) error {
	resp, err := c.send(ctx, Request{Method: http.MethodGet, Path: path})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
		return decodeError(resp, b)
	}
	total := int64(-1)
	if v, err := strconv.ParseInt(resp.Header.Get(totalHeader), 10, 64); err == nil {
		total = v
	}
	pw := &progressWriter{w: w, total: total, progress: progress}
	if _, err := io.Copy(pw, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

type progressWriter struct {
	w        io.Writer
	n, total int64
	progress func(n, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.progress != nil {
		p.progress(p.n, p.total)
	}
	return n, err
}

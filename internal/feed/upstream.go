package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
)

// AnnotationUpstream is the manifest annotation of a proxied version: the
// URL its bytes were fetched from.
const AnnotationUpstream = "dev.custody.feed.upstream"

// Limits of the upstream client.
const (
	// MaxUpstreamDocument caps a metadata document read from upstream (an
	// npm packument, a simple index, a version list).
	MaxUpstreamDocument = 64 << 20
	// MaxUpstreamFile caps one file fetched from upstream.
	MaxUpstreamFile = 2 << 30
	// upstreamTimeout bounds one upstream exchange, body included.
	upstreamTimeout = 10 * time.Minute
	// upstreamHeaderTimeout bounds the wait for upstream's response
	// headers: an upstream that does not answer is treated as unreachable
	// soon, so metadata falls back to what is stored.
	upstreamHeaderTimeout = 30 * time.Second
	maxRedirects          = 10
)

// Errors of upstream exchanges.
var (
	// ErrUpstreamNotFound: upstream answered 404 or 410.
	ErrUpstreamNotFound = errors.New("not found upstream")
	// ErrUpstreamTooLarge: upstream's response exceeds the cap.
	ErrUpstreamTooLarge = errors.New("upstream response exceeds the size limit")
	// ErrUpstreamMismatch: upstream's bytes do not match the hash upstream
	// itself published for them; nothing was stored.
	ErrUpstreamMismatch = errors.New("upstream's bytes do not match the hash upstream published for them")
	// ErrUpstreamChanged: upstream offers other bytes for a version whose
	// bytes are recorded already (trust on first use); the record stands.
	ErrUpstreamChanged = errors.New("upstream offers other bytes for a recorded version")
)

// UpstreamError is an upstream answer that is neither success nor "not
// found", or a failure to reach upstream at all.
type UpstreamError struct {
	URL    string
	Status int // 0 when upstream could not be reached
	Err    error
}

func (e *UpstreamError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("upstream %s answered %d", e.URL, e.Status)
	}
	return fmt.Sprintf("upstream %s unreachable: %v", e.URL, e.Err)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// Upstream is a proxy feed's client of its upstream registry: the one
// place that fetches from outside. It sends the feed's own upstream
// credentials (never a client's: each request is built afresh, and a
// client's Authorization header never reaches it) and only to upstream's
// own origin, follows at most ten redirects and only to http(s) URLs
// (dropping the credentials when a redirect leaves upstream's origin),
// caps what it reads, names itself custody/<version>, and collapses
// concurrent first fetches of one version into one (Collapse).
type Upstream struct {
	base      *url.URL
	authz     string // the Authorization header value; "" for none
	client    *http.Client
	userAgent string
	timeout   time.Duration
	group     singleflight.Group
}

// UpstreamOptions adjust NewUpstream; the zero value is the default.
type UpstreamOptions struct {
	// Getenv reads the credentials' environment variables (os.Getenv
	// when nil).
	Getenv func(string) string
	// Transport replaces the HTTP transport (tests with TLS upstreams).
	Transport http.RoundTripper
	// Timeout bounds one exchange, body included (10 minutes when zero).
	Timeout time.Duration
}

// NewUpstream returns the upstream client of proxy feed f, reading its
// credentials' environment variables now (at server start, so a missing
// secret is an error there and not on the first install).
func NewUpstream(f config.Feed, o UpstreamOptions) (*Upstream, error) {
	base, err := url.Parse(f.Upstream)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.User != nil {
		return nil, fmt.Errorf("feed %s: upstream %q is not an http(s) URL without credentials", f.Name, f.Upstream)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	u := &Upstream{base: base, userAgent: "custody/" + buildVersion(), timeout: o.Timeout}
	if u.timeout <= 0 {
		u.timeout = upstreamTimeout
	}
	switch a := f.UpstreamAuth; {
	case a.TokenEnv != "":
		tok := getenv(a.TokenEnv)
		if tok == "" {
			return nil, fmt.Errorf("feed %s: upstreamAuth.tokenEnv names %s, which is empty or not set", f.Name, a.TokenEnv)
		}
		u.authz = "Bearer " + tok
	case a.Username != "":
		pw := getenv(a.PasswordEnv)
		if pw == "" {
			return nil, fmt.Errorf("feed %s: upstreamAuth.passwordEnv names %s, which is empty or not set", f.Name, a.PasswordEnv)
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(a.Username, pw)
		u.authz = r.Header.Get("Authorization")
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = http.ProxyFromEnvironment
		t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = upstreamHeaderTimeout
		t.MaxIdleConnsPerHost = 16
		tr = t
	}
	u.client = &http.Client{Transport: tr, CheckRedirect: u.checkRedirect}
	return u, nil
}

// buildVersion is custody's version as the build recorded it ("dev" for
// a development build).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Base is upstream's base URL, without a trailing '/'.
func (u *Upstream) Base() string { return u.base.String() }

// URL is the URL of path (already escaped, '/'-separated) under the base.
func (u *Upstream) URL(path string) string {
	return u.base.String() + "/" + strings.TrimPrefix(path, "/")
}

// Resolve returns ref (an absolute URL, or one relative to base, as found
// in an upstream document) as an absolute http(s) URL; an error for any
// other scheme.
func (u *Upstream) Resolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("upstream link %q: %w", ref, err)
	}
	abs := b.ResolveReference(r)
	if (abs.Scheme != "http" && abs.Scheme != "https") || abs.Host == "" || abs.User != nil {
		return "", fmt.Errorf("upstream link %q is not an http(s) URL", ref)
	}
	abs.Fragment = ""
	return abs.String(), nil
}

// sameOrigin reports whether v is on upstream's scheme, host and port:
// the only place its credentials go.
func (u *Upstream) sameOrigin(v *url.URL) bool {
	return strings.EqualFold(v.Scheme, u.base.Scheme) && strings.EqualFold(v.Host, u.base.Host)
}

func (u *Upstream) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %q: only http(s) is followed", req.URL.Scheme)
	}
	if !u.sameOrigin(req.URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

// Get fetches rawURL (an absolute http(s) URL: upstream's, or a file's
// location it named) with accept as the Accept header, and returns the
// body of a 2xx answer, which fails with ErrUpstreamTooLarge after limit
// bytes. The caller closes it. 404 and 410 are ErrUpstreamNotFound;
// other answers and failures to connect are *UpstreamError. The feed's
// credentials are sent only to upstream's own origin.
func (u *Upstream) Get(ctx context.Context, rawURL, accept string, limit int64) (io.ReadCloser, http.Header, error) {
	t, err := url.Parse(rawURL)
	if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.Host == "" {
		return nil, nil, &UpstreamError{URL: rawURL, Err: errors.New("not an http(s) URL")}
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.String(), nil)
	if err != nil {
		cancel()
		return nil, nil, &UpstreamError{URL: rawURL, Err: err}
	}
	req.Header.Set("User-Agent", u.userAgent)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if u.authz != "" && u.sameOrigin(t) {
		req.Header.Set("Authorization", u.authz)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		cancel()
		return nil, nil, &UpstreamError{URL: rawURL, Err: err}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", rawURL, ErrUpstreamNotFound)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		resp.Body.Close()
		cancel()
		return nil, nil, &UpstreamError{URL: rawURL, Status: resp.StatusCode}
	case resp.ContentLength > limit:
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("%s: %d bytes: %w", rawURL, resp.ContentLength, ErrUpstreamTooLarge)
	}
	return &cappedBody{r: resp.Body, left: limit, cancel: cancel}, resp.Header, nil
}

// GetDocument fetches a metadata document (at most MaxUpstreamDocument
// bytes) whole.
func (u *Upstream) GetDocument(ctx context.Context, rawURL, accept string) ([]byte, http.Header, error) {
	rc, hd, err := u.Get(ctx, rawURL, accept, MaxUpstreamDocument)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		if !errors.Is(err, ErrUpstreamTooLarge) {
			err = &UpstreamError{URL: rawURL, Err: err}
		}
		return nil, nil, err
	}
	return b, hd, nil
}

// cappedBody fails with ErrUpstreamTooLarge once more than left bytes
// arrive, and ends the exchange's deadline when closed.
type cappedBody struct {
	r      io.ReadCloser
	left   int64
	cancel context.CancelFunc
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrUpstreamTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, ErrUpstreamTooLarge
	}
	return n, err
}

func (c *cappedBody) Close() error {
	err := c.r.Close()
	c.cancel()
	return err
}

// Collapse runs fetch once for all concurrent callers with the same key
// (a version's repository and tag, say): the first caller's fetch runs
// detached from its request's cancellation (bounded by the client's
// timeout), so a client hanging up does not fail the others, and every
// caller gets its result. A caller whose own context ends stops waiting.
// After it returns the callers read what fetch stored, so one upstream
// fetch serves them all.
func (u *Upstream) Collapse(ctx context.Context, key string, fetch func(context.Context) error) error {
	ch := u.group.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
		defer cancel()
		return nil, fetch(fctx)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Upstreams builds the upstream client of every proxy feed among feeds,
// by feed name, reading their credentials from the environment now (the
// server does, when it starts, and gives them to each Protocol).
func Upstreams(feeds []config.Feed, o UpstreamOptions) (map[string]*Upstream, error) {
	out := map[string]*Upstream{}
	for _, f := range feeds {
		if f.Kind != KindProxy {
			continue
		}
		u, err := NewUpstream(f, o)
		if err != nil {
			return nil, err
		}
		out[f.Name] = u
	}
	return out, nil
}

// CheckAtEOF returns a reader of r that, instead of ending, calls check
// once r is exhausted and fails with its error: so a store reading it
// (Store.PutBlob) fails, and keeps nothing, when the bytes do not match
// what upstream published for them. Hashes computed by writers teed from
// r are complete when check runs.
func CheckAtEOF(r io.Reader, check func() error) io.Reader {
	return &eofCheck{r: r, check: check}
}

type eofCheck struct {
	r     io.Reader
	check func() error
	eof   bool
	err   error
}

func (c *eofCheck) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if !c.eof {
		n, err := c.r.Read(p)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
		c.eof = true
		if n > 0 {
			// The last bytes go to the reader (and writers teed from it)
			// before check judges them all.
			return n, nil
		}
	}
	c.err = io.EOF
	if cerr := c.check(); cerr != nil {
		c.err = cerr
	}
	return 0, c.err
}

// Trust on first use. A proxied version's first sealed bytes are its
// record. Hashes are compared as algorithm-qualified strings
// ("sha512:<hex>", "sha256:<hex>", "h1:<base64>").

// UpstreamMismatch audits upstream bytes that did not match the hash
// upstream published for them (feed.upstream_mismatch, result denied),
// naming both; nothing was stored.
func (p Protocol) UpstreamMismatch(ctx context.Context, r *http.Request, repo, tag, from, advertised, received string) {
	p.Audit.Record(ctx, audit.Event{Action: "feed.upstream_mismatch", Repo: repo, Tag: tag, Result: "denied", Request: r,
		Reason: fmt.Sprintf("%s: upstream advertised %s, its bytes are %s; nothing stored", from, advertised, received)})
}

// Recorded applies the recorded-wins rule to a hash upstream offers for
// a version whose hash is recorded: it returns the recorded hash, which
// is what custody keeps serving and states in metadata, and, when the two
// differ, audits feed.upstream_changed (result denied) with both and
// reports changed. Equal hashes (or no offer) change nothing.
func (p Protocol) Recorded(ctx context.Context, r *http.Request, repo, tag, from, recorded, offered string) (hash string, changed bool) {
	if offered == "" || strings.EqualFold(offered, recorded) {
		return recorded, false
	}
	p.Audit.Record(ctx, audit.Event{Action: "feed.upstream_changed", Repo: repo, Tag: tag, Result: "denied", Request: r,
		Reason: fmt.Sprintf("%s: recorded %s, upstream now offers %s; the recorded bytes stay and are served", from, recorded, offered)})
	return recorded, true
}

// IsProxy reports whether the feed called name is a proxy feed.
func (p Protocol) IsProxy(name string) bool { return p.Feeds[name].Kind == KindProxy }

// Upstream is the upstream client of the proxy feed called name; nil when
// it is not a proxy feed or the server gave the Protocol no clients.
func (p Protocol) Upstream(name string) *Upstream {
	if !p.IsProxy(name) {
		return nil
	}
	return p.Upstreams[name]
}

// ProxyReadOnly is the text of a refused write to a proxy feed.
const ProxyReadOnly = "proxy feed is read-only; publish to a hosted feed"

// UpstreamRefused is upstream content a proxy refused for a reason other
// than a hash mismatch (an archive leaving its directory, a document
// naming another version, a file too large); nothing was stored. Msg is
// for the client.
type UpstreamRefused struct{ Msg string }

func (e *UpstreamRefused) Error() string { return e.Msg }

// PullFailure maps a failed pull-through (a fetch that was to seal a
// version) to the answer every protocol gives in its own error format:
// 404 when upstream has no such version, 502 when upstream's content was
// refused (UpstreamRefused, audited here as feed.upstream_refused;
// ErrUpstreamMismatch, audited where it was found) or upstream failed or
// could not be reached (logged), 503 when the request ended first. ok is
// false for any other error: the protocol's own failure (its 500). what
// names the version ("name@version").
func (p Protocol) PullFailure(ctx context.Context, r *http.Request, feedName, repo, what string, err error) (status int, msg string, ok bool) {
	var refused *UpstreamRefused
	var upErr *UpstreamError
	switch {
	case errors.Is(err, ErrUpstreamNotFound):
		return http.StatusNotFound, what + " is not found upstream either", true
	case errors.Is(err, ErrUpstreamMismatch):
		return http.StatusBadGateway, err.Error(), true
	case errors.As(err, &refused):
		p.Audit.Record(ctx, audit.Event{Action: "feed.upstream_refused", Repo: repo, Result: "denied", Reason: refused.Msg, Request: r})
		return http.StatusBadGateway, refused.Msg, true
	case errors.As(err, &upErr), errors.Is(err, ErrUpstreamTooLarge):
		p.Log.WarnContext(ctx, "proxy feed: upstream fetch failed", "feed", feedName, "version", what, "err", err)
		base := ""
		if u := p.Upstream(feedName); u != nil {
			base = u.Base()
		}
		return http.StatusBadGateway, "upstream " + base + " did not deliver " + what + "; nothing stored", true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the upstream fetch of " + what + " did not finish; nothing stored", true
	}
	return 0, "", false
}

// Package web is custody's web interface: server-rendered html/template
// pages and a few small progressive-enhancement scripts, all embedded, so
// `custody serve` serves them with no build step and the browser never
// asks another origin for anything.
//
// Pages decide no permission themselves. Each page calls the /api/v1/ API
// in process (Request.API, an apiclient.Client whose transport hands the
// request to the server's own handler) with the browser's session as the
// credential, so a page shows and does exactly what the API grants that
// caller, and a forged form post is refused by the API like any other
// request. Sessions, the session cookie and CSRF are internal/auth's.
//
// A page file (repositories.go, audit.go, ...) mounts its routes in a
// <group>Routes method that New calls, renders its templates
// (templates/<page>.html, each defining "title" and "main") with
// Request.Render, and returns errors for the error page (see docs/ui.md
// and the package tests for the pattern).
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/auth"
)

//go:embed assets templates templates/_*.html
var files embed.FS

// Options configure the web interface.
type Options struct {
	// API carries the pages' calls to /api/v1/ in process: the server's
	// handler behind a transport that does not add credentials of its
	// own (the browser's session is forwarded as the credential).
	API http.RoundTripper
	// Auth is true when the server authenticates (auth.mode builtin):
	// pages then need a signed-in caller.
	Auth bool
	// SecureCookies is true when the server is served over TLS: the
	// session cookie is then Secure and __Host- prefixed
	// (auth.SessionCookieName).
	SecureCookies bool
	// WebAuthn is true when the server offers security keys (web.url):
	// the sign-in form then offers one.
	WebAuthn bool
	// Version is shown in the footer.
	Version string
	Log     *slog.Logger
}

// Site is the web interface's handler.
type Site struct {
	opts  Options
	mux   *http.ServeMux
	pages map[string]*template.Template // by page template file name
	// assetPrefix is "/ui/assets/<hash>/": the hash of every asset, so a
	// new release never meets a stale cached copy.
	assetPrefix string
}

// New builds the web interface.
func New(opts Options) (*Site, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.API == nil {
		return nil, errors.New("web: an in-process API transport is required")
	}
	s := &Site{opts: opts, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	sum, err := assetsHash()
	if err != nil {
		return nil, err
	}
	s.assetPrefix = "/ui/assets/" + sum + "/"
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	s.mux.Handle("GET "+s.assetPrefix, s.assets())
	// Each page file mounts its own routes; they are listed here, not
	// registered from init functions, so nothing runs at package
	// initialisation and a reader sees every page group in one place.
	s.signInRoutes()
	s.repositoriesRoutes()
	s.auditRoutes()
	s.evidenceRoutes()
	s.artifactRoutes()
	s.environmentsRoutes()
	s.adminRoutes()
	s.accountRoutes()
	// Everything else the server does not route is the web
	// interface's: unknown paths get its not-found page.
	s.mux.Handle("/", s.handler(func(w http.ResponseWriter, r *Request) error {
		if r.URL.Path == "/" {
			http.Redirect(w, r.Request, "/repositories", http.StatusSeeOther)
			return nil
		}
		return errNotFound
	}))
	return s, nil
}

// ServeHTTP serves the web interface with its security headers.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if s.opts.SecureCookies { // served over TLS: stay on HTTPS
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

// ContentSecurityPolicy is the policy of every web interface answer: only
// the server's own scripts, styles and images (data: images too), no
// inline script or style, no framing, forms post only to the server.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every web answer carries.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()")
}

// assetsHash is a short hash over every embedded asset.
func assetsHash() (string, error) {
	h := sha256.New()
	var names []string
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n + "\x00"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// assets serves the embedded assets under the hashed prefix, cached for
// good: their URL changes with their content.
func (s *Site) assets() http.Handler {
	sub, _ := fs.Sub(files, "assets")
	fsrv := http.StripPrefix(strings.TrimSuffix(s.assetPrefix, "/"), http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			s.fail(w, &Request{Request: r, site: s}, errNotFound) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fsrv.ServeHTTP(w, r)
	})
}

// asset returns the URL of an embedded asset ("custody.css").
func (s *Site) asset(name string) string { return s.assetPrefix + name }

// parseTemplates parses templates/layout.html and the shared blocks
// (templates/_*.html) with each page template.
func (s *Site) parseTemplates() error {
	funcs := template.FuncMap{
		"asset": s.asset,
	}
	for k, f := range templateFuncs {
		funcs[k] = f
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/_*.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, n)
		if err != nil {
			return err
		}
		s.pages[base] = t
	}
	return nil
}

// Request is what a page handler gets: the browser's request, the caller
// as the API sees it, and an API client that calls /api/v1/ in process
// with the browser's credential.
type Request struct {
	*http.Request
	// API calls the server's /api/v1/ as the browser's caller: its
	// answers and refusals are the page's.
	API *apiclient.Client
	// Who is the signed-in caller (nil when nobody is signed in, or
	// authentication is off).
	Who *auth.Whoami
	// CSRF is the session's token, for the forms a page renders (the
	// layout's forms carry it already).
	CSRF string
	site *Site
}

// Ctx is the request's context.
func (r *Request) Ctx() context.Context { return r.Context() }

// Get calls GET path on the API and decodes its JSON answer into out.
func (r *Request) Get(path string, out any) error {
	return r.API.Do(r.Context(), http.MethodGet, path, nil, out)
}

// Call calls method on the API path with in as the JSON body. On an
// unsafe method the browser's own CSRF token (its form field "csrf" or
// X-CSRF-Token header) goes with it, never one the page knows: the API
// decides whether the browser proved it.
func (r *Request) Call(method, path string, in, out any) error {
	return r.API.Do(r.Context(), method, path, in, out)
}

// page registers a page handler for pattern ("GET /repositories"). A
// page that needs no signed-in caller uses s.public.
func (s *Site) page(pattern string, h func(http.ResponseWriter, *Request) error) {
	s.mux.Handle(pattern, s.handler(h))
}

// handler runs h with the caller: with authentication on, a caller who
// is not signed in is sent to the sign-in page first.
func (s *Site) handler(h func(http.ResponseWriter, *Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		r := s.newRequest(hr)
		if s.opts.Auth {
			var who auth.Whoami
			err := r.Get("/api/v1/whoami", &who)
			var ae *apiclient.Error
			switch {
			case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
				s.signInFirst(w, r)
				return
			case err != nil:
				s.fail(w, r, err)
				return
			}
			r.Who = &who
			if who.Session != nil {
				r.CSRF = who.Session.CSRF
			}
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// public registers a page that needs no signed-in caller (sign-in).
func (s *Site) public(pattern string, h func(http.ResponseWriter, *Request) error) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		r := s.newRequest(hr)
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}))
}

// signInFirst sends the browser to the sign-in page, to come back to
// this page (GET) afterwards.
func (s *Site) signInFirst(w http.ResponseWriter, r *Request) {
	next := "/"
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	http.Redirect(w, r.Request, "/signin?next="+urlQueryEscape(next), http.StatusSeeOther)
}

// newRequest wraps a browser request with its in-process API client.
func (s *Site) newRequest(hr *http.Request) *Request {
	// The base is fixed, not the browser's Host (which may be anything a
	// client sends, "[::1" too): asBrowser gives the API the browser's Host.
	c, err := apiclient.New("http://custody.internal", apiclient.Options{
		Transport: &asBrowser{next: s.opts.API, from: hr, cookie: auth.SessionCookieName(s.opts.SecureCookies)},
		UserAgent: "custody-web/" + s.opts.Version,
	})
	if err != nil { // unreachable: the base is a constant
		panic(err)
	}
	return &Request{Request: hr, API: c, site: s}
}

// asBrowser carries an in-process API request with the browser's
// credential and origin: its session cookie (and no other cookie), its
// address (for sign-in throttling and the audit log), its Origin and
// Sec-Fetch-Site headers, and on unsafe methods the CSRF token the browser
// sent. The API checks them as it checks any request.
type asBrowser struct {
	next   http.RoundTripper
	from   *http.Request
	cookie string
}

func (t *asBrowser) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.RemoteAddr = t.from.RemoteAddr
	req.Host = t.from.Host
	req.Header.Del("Cookie")
	if c, err := t.from.Cookie(t.cookie); err == nil {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	for _, h := range []string{"Origin", "Sec-Fetch-Site", "X-Request-Id"} {
		if v := t.from.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if !safeMethod(req.Method) {
		tok := t.from.Header.Get(auth.CSRFHeader)
		if tok == "" && t.from.Method == http.MethodPost {
			tok = t.from.PostFormValue("csrf")
		}
		req.Header.Del(auth.CSRFHeader)
		if tok != "" {
			req.Header.Set(auth.CSRFHeader, tok)
		}
	}
	return t.next.RoundTrip(req)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Package browser tests the web interface in a real headless Chromium
// (Debian's chromium, driven with chromedp) against a real `custody serve`
// (internal/testserver). The harness signs in, visits pages, runs axe-core
// (vendored in testdata/, MPL-2.0) on each, saves screenshots under
// $CUSTODY_TEST_OUTPUT, and fails a test whose browser sent any request to
// another origin than the server's or met a Content-Security-Policy
// violation.
package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/custody-dev/custody/internal/testserver"
)

//go:embed testdata/axe.min.js
var axeSource string

// harness is one server and one browser.
type harness struct {
	t   *testing.T
	srv *testserver.Server
	// ctx is the browser tab's context.
	ctx context.Context

	mu        sync.Mutex
	requests  []string               // every URL the page asked for
	responses map[string]http.Header // document and asset answers by URL
	problems  []string               // console errors: CSP violations, exceptions
}

// actionTimeout bounds one step of a test in the browser.
const actionTimeout = time.Minute

// options configure newHarness.
type options struct {
	// Env are extra environment variables of `custody serve`.
	Env []string
	// Width is the viewport width (1280 when 0).
	Width int64
	// Data and Args are the server's data directory (a fresh one when
	// empty) and extra `custody serve` flags.
	Data string
	Args []string
}

// chromiumFlags are the browser's flags: headless, no sandbox (CI runs as
// root), and nothing that talks to the network on its own.
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("headless", true),
	chromedp.Flag("no-sandbox", true),
	chromedp.Flag("disable-gpu", true),
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("no-first-run", true),
	chromedp.Flag("no-default-browser-check", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-extensions", true),
	chromedp.Flag("disable-default-apps", true),
	chromedp.Flag("metrics-recording-only", true),
	chromedp.Flag("mute-audio", true),
	chromedp.Flag("hide-scrollbars", true),
}

// newHarness starts a server with authentication on and a browser.
func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	chromium := testserver.Client(t, "chromium")
	srv := testserver.Start(t, testserver.Options{Auth: true, Env: o.Env, Data: o.Data, Args: o.Args})
	h := &harness{t: t, srv: srv, responses: map[string]http.Header{}}
	width := o.Width
	if width == 0 {
		width = 1280
	}
	allocOpts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(width), 900),
	}, chromiumFlags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(h.record))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	h.ctx = ctx
	// The first action starts the browser, on the tab's own context (a
	// timeout there would end the browser); later ones are bounded.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(h.checkOriginAndConsole)
	return h
}

// record keeps what the browser asked for and answered, and its console
// errors (it runs in the tab's event loop: quick, no commands).
func (h *harness) record(ev any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		h.requests = append(h.requests, e.Request.URL)
	case *network.EventResponseReceived:
		hdr := http.Header{}
		for k, v := range e.Response.Headers {
			hdr.Set(k, fmt.Sprint(v))
		}
		h.responses[e.Response.URL] = hdr
	case *cdplog.EventEntryAdded:
		// Error answers (a refused request is a 403 page) are the
		// tests' business; anything else logged as an error (a CSP
		// violation, a failed script) fails the test.
		if e.Entry.Level == cdplog.EntryLevelError && !strings.Contains(e.Entry.Text, "Failed to load resource: the server responded with a status of") {
			h.problems = append(h.problems, string(e.Entry.Source)+": "+e.Entry.Text)
		}
	case *runtime.EventExceptionThrown:
		h.problems = append(h.problems, "exception: "+e.ExceptionDetails.Text)
	}
}

// checkOriginAndConsole fails the test for any request to another origin
// than the server's (the interface works air-gapped) and for any console
// error (a CSP violation is one).
func (h *harness) checkOriginAndConsole() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.requests {
		if u == h.srv.URL || strings.HasPrefix(u, h.srv.URL+"/") || strings.HasPrefix(u, "data:") || u == "about:blank" {
			continue
		}
		h.t.Errorf("the browser asked another origin than the server's: %s", u)
	}
	for _, p := range h.problems {
		h.t.Errorf("browser console: %s", p)
	}
}

// run runs chromedp actions, failing the test on error.
func (h *harness) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

// value runs an action that returns a value, failing the test on error.
func value[T any](h *harness, what string, a chromedp.Action[T]) T {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval evaluates JavaScript in the page, awaiting a promise it returns.
func eval[T any](h *harness, expr string) T {
	h.t.Helper()
	return value(h, "evaluating "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// visit opens path and waits for the page's main landmark.
func (h *harness) visit(path string) {
	h.t.Helper()
	h.run("visiting "+path, chromedp.Navigate(h.srv.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// location returns the page's path and query.
func (h *harness) location() string {
	h.t.Helper()
	return eval[string](h, `location.pathname + location.search`)
}

// waitLocation waits until the page's path and query satisfy ok, through
// navigations (an evaluation during one fails and is tried again).
func (h *harness) waitLocation(what string, ok func(string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname + location.search : ""`))
		cancel()
		if err == nil && loc != "" && ok(loc) {
			return loc
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: at %q (%v)", what, loc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// text returns the text of the first element matching sel.
func (h *harness) text(sel string) string {
	h.t.Helper()
	return value(h, "reading "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// count returns how many elements match the CSS selector sel.
func (h *harness) count(sel string) int {
	h.t.Helper()
	return eval[int](h, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// signIn signs in through the sign-in form and waits for the signed-in
// page.
func (h *harness) signIn(user, password string) {
	h.t.Helper()
	h.visit("/signin")
	h.run("signing in as "+user,
		chromedp.SetValue(chromedp.ID("username"), user),
		chromedp.SetValue(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(".user")),
	)
}

// axeResult is what the harness reads of axe-core's results.
type axeResult struct {
	Version    string `json:"version"`
	Passes     int    `json:"passes"`
	Violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any  `json:"target"`
			HTML   string `json:"html"`
		} `json:"nodes"`
	} `json:"violations"`
}

// axe runs axe-core on the current page (WCAG 2.x A and AA rules and best
// practices) and fails the test for serious or critical violations. The
// script is evaluated through the DevTools protocol, not served by the
// page: it is part of the test, not the product.
func (h *harness) axe(page string) {
	h.t.Helper()
	script := axeSource + `
;axe.run(document).then(r => ({version: r.testEngine.version, passes: r.passes.length, violations: r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.map(n => ({target: n.target, html: n.html}))}))}))`
	res := value(h, "running axe-core on "+page, chromedp.Evaluate[axeResult](script, chromedp.EvalAwaitPromise))
	if res.Passes == 0 {
		h.t.Fatalf("axe-core %q checked nothing on %s", res.Version, page)
	}
	h.t.Logf("axe-core %s on %s: %d rules pass, %d violated", res.Version, page, res.Passes, len(res.Violations))
	for _, v := range res.Violations {
		if v.Impact != "serious" && v.Impact != "critical" {
			h.t.Logf("axe %s: %s (%s) on %d elements", page, v.ID, v.Impact, len(v.Nodes))
			continue
		}
		for _, n := range v.Nodes {
			h.t.Errorf("axe %s: %s (%s): %s at %v: %s", page, v.ID, v.Impact, v.Help, n.Target, n.HTML)
		}
	}
}

// outputDir is where screenshots go: $CUSTODY_TEST_OUTPUT, else a
// directory of the test run.
var (
	outputOnce sync.Once
	outputPath string
)

func outputDir(t *testing.T) string {
	outputOnce.Do(func() {
		outputPath = os.Getenv("CUSTODY_TEST_OUTPUT")
		if outputPath == "" {
			outputPath, _ = os.MkdirTemp("", "custody-screenshots-")
		}
		_ = os.MkdirAll(outputPath, 0o755)
	})
	return outputPath
}

// screenshot saves the whole page as <name>.png.
func (h *harness) screenshot(name string) {
	h.t.Helper()
	png := value(h, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(outputDir(h.t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.t.Logf("screenshot %s", p)
}

// page visits path, checks its security headers, runs axe-core and saves
// a screenshot named name: what every page test does.
func (h *harness) page(path, name string) {
	h.t.Helper()
	h.visit(path)
	h.checkHeaders(h.srv.URL + path)
	h.axe(name)
	h.checkWidth(name)
	h.screenshot(name)
}

// checkWidth fails the test when the page is wider than a narrow
// viewport: on a phone the page itself never scrolls sideways (a wide
// table scrolls inside its .table-wrap).
func (h *harness) checkWidth(name string) {
	h.t.Helper()
	vw := eval[int](h, `window.innerWidth`)
	if vw > 600 {
		return
	}
	if w := eval[int](h, `document.documentElement.scrollWidth`); w > vw {
		wide := eval[string](h, `[...document.querySelectorAll("main *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap")).slice(0, 3).map(e => e.outerHTML.slice(0, 120)).join("\n")`)
		h.t.Errorf("%s is %d px wide in a %d px viewport; too wide:\n%s", name, w, vw, wide)
	}
}

// checkHeaders checks the security headers of the answer to url as the
// browser received it.
func (h *harness) checkHeaders(url string) {
	h.t.Helper()
	h.mu.Lock()
	hdr, ok := h.responses[url]
	h.mu.Unlock()
	if !ok {
		h.t.Errorf("no answer recorded for %s", url)
		return
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	} {
		if got := hdr.Get(k); got != want {
			h.t.Errorf("%s: %s = %q, want %q", url, k, got, want)
		}
	}
}

// api calls the server's API as admin with Basic credentials.
func (h *harness) api(method, path string, body any, want int) []byte {
	h.t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	req.SetBasicAuth("admin", h.srv.AdminPassword())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

// user creates a local user with a password and grants role on pattern.
func (h *harness) user(name, password, role, pattern string) {
	h.t.Helper()
	h.api("POST", "/api/v1/users", map[string]any{"name": name, "password": password}, http.StatusCreated)
	h.api("POST", "/api/v1/grants", map[string]any{"subject": "user:" + name, "role": role, "repository": pattern}, http.StatusCreated)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

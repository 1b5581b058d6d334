package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/registry"
)

// view is what the layout renders; the page's own data is Data.
type view struct {
	Title     string
	Who       any
	CSRF      string
	Nav       []navItem
	Version   string
	RequestID string
	Data      any
}

type navItem struct {
	Label, Path string
	Current     bool
}

// nav is the main navigation: what the caller may open. Whether a caller
// audits or administers is the API's answer (whoami), not the page's.
func (r *Request) nav() []navItem {
	if r.site.opts.Auth && r.Who == nil {
		return nil // signed out: nothing to open yet
	}
	items := []navItem{{Label: "Repositories", Path: "/repositories"}, {Label: "Environments", Path: "/environments"}}
	audit, admin := !r.site.opts.Auth, !r.site.opts.Auth
	if r.Who != nil {
		audit, admin = r.Who.Can.Audit, r.Who.Can.Admin
	}
	if audit {
		items = append(items, navItem{Label: "Audit", Path: "/audit"})
	}
	items = append(items, navItem{Label: "Evidence", Path: "/evidence"})
	if admin {
		items = append(items, navItem{Label: "Admin", Path: "/admin"})
	}
	for i := range items {
		p := items[i].Path
		items[i].Current = r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/")
	}
	return items
}

// Render answers the page template file name ("repositories.html") with
// data (the template's .Data) and status.
func (r *Request) Render(w http.ResponseWriter, status int, name, title string, data any) error {
	t, ok := r.site.pages[name]
	if !ok {
		return fmt.Errorf("web: no page template %q", name)
	}
	v := view{Title: title, CSRF: r.CSRF, Nav: r.nav(), Version: r.site.opts.Version, RequestID: registry.RequestID(r.Context()), Data: data}
	if r.Who != nil {
		v.Who = r.Who
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Page errors a handler may return; an *apiclient.Error is shown as the
// API's refusal.
var (
	errNotFound = &pageError{Status: http.StatusNotFound, Title: "Not found", Detail: "There is no such page."}
)

// pageError is an error page's content.
type pageError struct {
	Status        int
	Title, Detail string
	// Enrol: the refusal is mfa-required; the page links to Account.
	Enrol bool
}

func (e *pageError) Error() string { return e.Title + ": " + e.Detail }

// NotFound is the error a page returns for something that does not exist.
func NotFound(detail string) error {
	return &pageError{Status: http.StatusNotFound, Title: "Not found", Detail: detail}
}

// BadRequest is the error a page returns for a malformed query or form.
func BadRequest(detail string) error {
	return &pageError{Status: http.StatusBadRequest, Title: "Bad request", Detail: detail}
}

// fail renders err as the error page: an API refusal with its status,
// title and detail (a 401 sends the browser to sign in), anything else as
// a 500 that names only the request ID (the log has the error).
func (s *Site) fail(w http.ResponseWriter, r *Request, err error) {
	pe := &pageError{}
	var ae *apiclient.Error
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && s.opts.Auth:
		s.signInFirst(w, r)
		return
	case errors.As(err, &ae) && strings.HasSuffix(ae.Type, "/step-up-required"):
		// A dangerous action wants a fresh second factor: ask for it,
		// then offer to repeat the action.
		if perr := s.stepUpPrompt(w, r, ae.Detail); perr != nil {
			s.opts.Log.Error("rendering the step-up prompt failed", "err", perr)
		}
		return
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		pe = &pageError{Status: ae.Status, Title: ae.Title, Detail: ae.Detail, Enrol: strings.HasSuffix(ae.Type, "/mfa-required")}
		if pe.Title == "" {
			pe.Title = http.StatusText(ae.Status)
		}
		if retry := ae.Status == http.StatusTooManyRequests; retry && pe.Detail == "" {
			pe.Detail = "Too many attempts; try again later."
		}
	default:
		s.opts.Log.Error("web page failed", "path", r.URL.Path, "request", registry.RequestID(r.Context()), "err", err)
		pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong",
			Detail: "The server could not show this page. Quote request ID " + registry.RequestID(r.Context()) + " to your administrator."}
	}
	w.Header().Set("Cache-Control", "no-store")
	if rerr := r.Render(w, pe.Status, "error.html", pe.Title, pe); rerr != nil {
		s.opts.Log.Error("rendering the error page failed", "err", rerr)
	}
}

// templateFuncs are the functions every template may use.
var templateFuncs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"bytes":       humanBytes,
	"shortDigest": shortDigest,
	"shortRev":    shortRev,
	"query":       urlQueryEscape,
	"path":        urlPathEscape,
	"confirm":     newConfirmation,
}

// confirmation is the data of the shared "confirm" block
// (templates/_confirm.html): a destructive form behind a disclosure.
type confirmation struct {
	CSRF, Summary, Action, Question, Button string
	Fields                                  []field
}

type field struct{ Name, Value string }

// newConfirmation is the template function confirm: CSRF token, summary,
// form action, question, button label, then hidden fields as name, value
// pairs.
func newConfirmation(csrf, summary, action, question, button string, fields ...string) (confirmation, error) {
	if len(fields)%2 != 0 {
		return confirmation{}, fmt.Errorf("confirm: hidden fields come in name, value pairs, got %d strings", len(fields))
	}
	c := confirmation{CSRF: csrf, Summary: summary, Action: action, Question: question, Button: button}
	for i := 0; i < len(fields); i += 2 {
		c.Fields = append(c.Fields, field{fields[i], fields[i+1]})
	}
	return c, nil
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// urlPathEscape escapes a repository name for a path, keeping its '/'.
func urlPathEscape(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// shortDigest is "sha256:0123456789ab" (the algorithm and 12 hex digits).
func shortDigest(d any) string {
	s := fmt.Sprint(d)
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) <= 12 {
		return s
	}
	return alg + ":" + hex[:12]
}

// shortRev is a commit's first 12 characters.
func shortRev(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// humanBytes is a size in B, KiB, MiB, GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
